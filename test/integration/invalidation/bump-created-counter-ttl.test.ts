// README ("What lives in Redis"): a request that stores nothing leaves
// nothing in Redis. But a write answered 2xx bumps its path's counter, and the
// bump created a missing counter with the week-long TTL of a shared one: a
// client posting to /api/orders/<id> for ids nothing caches grew Redis by a
// counter per id for a week (helper-99's probe). A counter a bump creates now
// lives as long as one a lookup creates (PROVISIONAL_COUNTER_TTL_MS); a store
// that records it renews it. Losing such a counter is safe as losing any is:
// here its expiry (played by PEXPIRE 1 ms, a minute early) must neither let an
// invalidated value be served on either instance nor leave either refusing its
// stores (real redis-server; the Cluster case on a real 3-master Cluster).
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import type { Redis, Cluster } from 'ioredis';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { PROVISIONAL_COUNTER_TTL_MS } from '../../../src/store/fill-protocol.js';
import { keySlot } from '../../../src/store/hash-slot.js';
import { TAG_COUNTER_TTL_MS } from '../../../src/store/redis-versions.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { clusterCaches } from '../../support/cluster-caches.js';
import { eventually } from '../../support/eventually.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Every counter key of `ns` whose name holds `part`, with its PTTL. */
async function countersWith(admin: Redis, ns: string, part: string): Promise<Array<[string, number]>> {
  const keys = (await admin.keys(`${ns}:v:{*`)).filter((k) => k.includes(part) && !k.endsWith(':new'));
  return Promise.all(keys.map(async (k) => [k, await admin.pttl(k)] as [string, number]));
}

/**
 * The sequence both deployments run, on instances `a` and `b` of one namespace:
 * an entry of `k` tagged `t` stored and read on both; its counter lost
 * (evicted), so the invalidation that follows creates it; the created counter
 * expires; then both instances, several times over: never the invalidated
 * value, and within a few rounds hits (the loader not called) on both, and
 * on a third instance (`open`). `redis` reads and writes behind the caches' back.
 */
async function expiredBumpCounterSequence(a: TierCache, b: TierCache, open: () => Promise<TierCache>, redis: Redis | Cluster, counter: string): Promise<void> {
  let loads = 0;
  const load = (value: string) => async () => {
    loads++;
    return value;
  };
  assert.equal(await a.getOrSet('k', load('old'), { tags: ['t'] }), 'old');
  assert.equal(await b.getOrSet('k', load('wrong'), { tags: ['t'] }), 'old', 'b did not find the entry a stored');
  assert.ok((await redis.pttl(counter)) > 2 * PROVISIONAL_COUNTER_TTL_MS, 'the store did not renew the counter');

  await redis.del(counter); // evicted: no entry's counter left in Redis
  const heard = b.stats().bus.received;
  assert.deepEqual(await a.invalidateTags(['t']), { delivered: true });
  const left = await redis.pttl(counter);
  assert.ok(left > 0 && left <= PROVISIONAL_COUNTER_TTL_MS, `the counter the invalidation created lives ${left} ms`);
  await eventually(() => b.stats().bus.received > heard, 'b hears the invalidation', 5000);

  // Its provisional lifetime runs out: a and b both know the version it held, Redis no longer does.
  await redis.pexpire(counter, 1);
  await eventually(async () => (await redis.exists(counter)) === 0, 'the counter expires', 2000);

  loads = 0;
  for (let round = 0; round < 4; round++) {
    for (const [name, cache] of [['a', a], ['b', b]] as const) {
      assert.equal(await cache.getOrSet('k', load('new'), { tags: ['t'] }), 'new', `${name} served the invalidated value (round ${round})`);
    }
  }
  // One fill each at most, and one more for a store refused once: never a miss on every request.
  assert.ok(loads <= 4, `${loads} loads in 8 requests: stores refused over and over`);
  const before = loads;
  const hits = a.stats().l1.hits + a.stats().l2.hits + b.stats().l1.hits + b.stats().l2.hits;
  for (const cache of [a, b]) assert.equal(await cache.getOrSet('k', load('again'), { tags: ['t'] }), 'new');
  assert.equal(loads, before, 'the instances still miss');
  assert.equal(a.stats().l1.hits + a.stats().l2.hits + b.stats().l1.hits + b.stats().l2.hits, hits + 2, 'not hits');

  // An instance that never knew the version reads the counter (made again, from the clock) and may
  // refuse what a and b stored (a Cluster stores without checking counters of other slots): one fill
  // at most, then hits; its store renews the counter for a week, and invalidations still reach everyone.
  const c = await open();
  assert.equal(await c.getOrSet('k', load('new'), { tags: ['t'] }), 'new');
  const afterC = loads;
  for (const cache of [c, a, b]) assert.equal(await cache.getOrSet('k', load('again'), { tags: ['t'] }), 'new');
  assert.equal(loads, afterC, 'an instance still misses after the third one stored');
  assert.ok((await redis.pttl(counter)) > 2 * PROVISIONAL_COUNTER_TTL_MS, 'no store renewed the recreated counter');
  assert.deepEqual(await b.invalidateTags(['t']), { delivered: true });
  await eventually(async () => (await a.getOrSet('k', load('newer'), { tags: ['t'] })) === 'newer', 'a serves the value after the second invalidation', 5000);
  assert.equal(await b.getOrSet('k', load('wrong'), { tags: ['t'] }), 'newer');
  await eventually(async () => (await c.getOrSet('k', load('newer'), { tags: ['t'] })) === 'newer', 'c serves the value after the second invalidation', 5000);
}

describe('a counter a bump creates lives as long as a provisional one', function () {
  this.timeout(30_000);
  const ctx = useRedisCaches({ prefix: 'bump-made-ttl' });

  it('writes to distinct paths nothing caches leave no counter alive past the provisional TTL', async () => {
    const cache = await ctx.open({ ttl: '1m' });
    const app = express();
    app.use(expressCache(cache));
    app.post('/api/orders/:id', (_req, res) => void res.json({ ok: true }));
    for (let i = 0; i < 5; i++) assert.equal((await request(app).post(`/api/orders/${i}`)).status, 200);
    await sleep(100);
    const made = await countersWith(ctx.admin, ctx.ns, '/api/orders/');
    assert.ok(made.length >= 5, `the writes invalidated nothing: ${JSON.stringify(made)}`);
    for (const [key, left] of made) assert.ok(left > 0 && left <= PROVISIONAL_COUNTER_TTL_MS, `${key} lives ${left} ms`);
  });

  it('writes repeated on each of those paths (a PUT then a PATCH) leave none alive past the provisional TTL either', async () => {
    const cache = await ctx.open({ ttl: '1m' });
    const app = express();
    app.use(expressCache(cache));
    app.put('/api/orders/:id', (_req, res) => void res.json({ ok: true }));
    app.patch('/api/orders/:id', (_req, res) => void res.json({ ok: true }));
    for (let i = 0; i < 5; i++) {
      assert.equal((await request(app).put(`/api/orders/${i}`)).status, 200);
      assert.equal((await request(app).patch(`/api/orders/${i}`)).status, 200);
    }
    await sleep(100);
    const made = await countersWith(ctx.admin, ctx.ns, '/api/orders/');
    assert.ok(made.length >= 5, `the writes invalidated nothing: ${JSON.stringify(made)}`);
    for (const [key, left] of made) assert.ok(left > 0 && left <= PROVISIONAL_COUNTER_TTL_MS, `${key} lives ${left} ms`);
  });

  it('invalidating tags nobody recorded (data API) leaves counters with the provisional TTL, and one that exists keeps the shared TTL', async () => {
    const cache = await ctx.open();
    assert.equal(await cache.getOrSet('x', async () => 1, { tags: ['used'] }), 1);
    assert.deepEqual(await cache.invalidateTags(['unused-1', 'unused-2', 'used']), { delivered: true });
    for (const tag of ['unused-1', 'unused-2']) {
      const left = await ctx.admin.pttl(`${ctx.ns}:v:{${tag}}`);
      assert.ok(left > 0 && left <= PROVISIONAL_COUNTER_TTL_MS, `${tag}'s counter lives ${left} ms`);
    }
    assert.ok((await ctx.admin.pttl(`${ctx.ns}:v:{used}`)) > 2 * PROVISIONAL_COUNTER_TTL_MS, "a recorded counter's bump shortened it");
  });

  it('a provisional counter found below what the invalidating instance knew (Redis went back) is raised past it and stays provisional', async () => {
    const cache = await ctx.open();
    const counter = `${ctx.ns}:v:{t}`;
    assert.deepEqual(await cache.invalidateTags(['t']), { delivered: true });
    const known = Number(await ctx.admin.get(counter));
    await ctx.admin.set(counter, String(known - 5), 'PX', 30_000);
    assert.deepEqual(await cache.invalidateTags(['t']), { delivered: true });
    assert.ok(Number(await ctx.admin.get(counter)) > known, 'the floor did not raise the counter');
    const left = await ctx.admin.pttl(counter);
    assert.ok(left > 0 && left <= PROVISIONAL_COUNTER_TTL_MS, `the raised counter lives ${left} ms`);
  });

  it('a counter a bump finds is renewed to the shared TTL when it has more than twice the provisional one left, or none; a provisional one keeps what it has', async () => {
    const cache = await ctx.open();
    const counter = (tag: string) => `${ctx.ns}:v:{${tag}}`;
    assert.deepEqual(await cache.invalidateTags(['aged', 'persisted', 'shared']), { delivered: true });
    // A shared counter some days into its week; one left without a TTL (an operator's PERSIST, a restore); one
    // a second fill's lookup found provisional and gave twice the provisional TTL (fill-protocol.ts LOOKUP).
    await ctx.admin.pexpire(counter('aged'), 5 * PROVISIONAL_COUNTER_TTL_MS);
    await ctx.admin.persist(counter('persisted'));
    await ctx.admin.pexpire(counter('shared'), 1.5 * PROVISIONAL_COUNTER_TTL_MS);
    assert.deepEqual(await cache.invalidateTags(['aged', 'persisted', 'shared']), { delivered: true });
    for (const tag of ['aged', 'persisted']) {
      const left = await ctx.admin.pttl(counter(tag));
      assert.ok(left > TAG_COUNTER_TTL_MS - 60_000, `the bump left ${tag}'s counter ${left} ms, not the shared TTL`);
    }
    const shared = await ctx.admin.pttl(counter('shared'));
    assert.ok(shared > PROVISIONAL_COUNTER_TTL_MS && shared <= 1.5 * PROVISIONAL_COUNTER_TTL_MS, `the bump changed a provisional counter's TTL to ${shared} ms`);
  });

  it('once a counter an invalidation created expired, two instances serve nothing it invalidated and store again', async () => {
    const a = await ctx.open({ l2: { commandTimeout: 2000 } });
    const b = await ctx.open({ l2: { commandTimeout: 2000 } });
    await expiredBumpCounterSequence(a, b, () => ctx.open({ l2: { commandTimeout: 2000 } }), ctx.admin, `${ctx.ns}:v:{t}`);
  });
});

describe('a counter a bump creates lives as long as a provisional one (Redis Cluster)', function () {
  this.timeout(60_000);
  const env = clusterCaches();

  it('once a counter an invalidation created expired, two instances serve nothing it invalidated and store again', async () => {
    const ns = 'bump-made-ttl-c0';
    const a = await env.open(ns);
    const b = await env.open(ns);
    const counter = `${ns}:v:{t}`;
    // The counter in a slot other than the entry's: the store renews it outside its script (storeOnCluster).
    assert.notEqual(keySlot(counter), keySlot(a.dataKey('k')));
    await expiredBumpCounterSequence(a, b, () => env.open(ns), env.client(), counter);
  });

  it('a store that found the counter of another slot gone (expired after the bump made it) renews it once it is made again', async () => {
    const ns = 'bump-made-ttl-c2';
    const a = await env.open(ns);
    const counter = `${ns}:v:{t}`;
    assert.notEqual(keySlot(counter), keySlot(a.dataKey('k1')));
    assert.notEqual(keySlot(counter), keySlot(a.dataKey('k2')));
    const direct = env.client();
    assert.deepEqual(await a.invalidateTags(['t']), { delivered: true });
    await direct.pexpire(counter, 1); // its provisional lifetime over
    await eventually(async () => (await direct.exists(counter)) === 0, 'the counter expires', 2000);
    // Stamped with the version a knows; stored (a Cluster does not check other slots), the counter still gone.
    assert.equal(await a.getOrSet('k1', async () => 'one', { tags: ['t'] }), 'one');
    assert.equal(await direct.exists(counter), 0);
    // a forgets what it knew (a bus reconnect): its next fill reads the counter, made again, and stores.
    a.store.versions.reset();
    assert.equal(await a.getOrSet('k2', async () => 'two', { tags: ['t'] }), 'two');
    assert.ok(await direct.exists(a.dataKey('k2')), 'k2 was not stored');
    const left = await direct.pttl(counter);
    assert.ok(left > 2 * PROVISIONAL_COUNTER_TTL_MS, `the counter k2 recorded lives ${left} ms: the store did not renew it`);
  });

  it('a store renews a counter of another slot upward only: one that outlives what the store needs (a year-long entry recorded it) keeps its TTL', async () => {
    const ns = 'bump-made-ttl-c5';
    const a = await env.open(ns);
    const b = await env.open(ns);
    const counter = `${ns}:v:{t}`;
    assert.notEqual(keySlot(counter), keySlot(b.dataKey('k')));
    const direct = env.client();
    assert.equal(await a.getOrSet('long', async () => 'year', { tags: ['t'], ttl: '365d' }), 'year');
    const year = await direct.pttl(counter);
    assert.ok(year > 300 * 24 * 3600_000, `premise: the year-long entry's store left its counter ${year} ms`);
    // Another instance (nothing renewed by it yet) stores a short-lived entry recording the same counter.
    assert.equal(await b.getOrSet('k', async () => 'minute', { tags: ['t'], ttl: '1m' }), 'minute');
    assert.ok(await direct.exists(b.dataKey('k')), 'premise: k was stored');
    const left = await direct.pttl(counter);
    assert.ok(left > 300 * 24 * 3600_000, `the short entry's store cut the counter to ${left} ms: the year-long entry would be refused once it expires`);
  });

  it('a provisional counter found below what the invalidating instance knew is raised past it and stays provisional', async () => {
    const ns = 'bump-made-ttl-c3';
    const a = await env.open(ns);
    const counter = `${ns}:v:{t}`;
    const direct = env.client();
    assert.deepEqual(await a.invalidateTags(['t']), { delivered: true });
    const known = Number(await direct.get(counter));
    await direct.set(counter, String(known - 5), 'PX', 30_000);
    assert.deepEqual(await a.invalidateTags(['t']), { delivered: true });
    assert.ok(Number(await direct.get(counter)) > known, 'the floor did not raise the counter');
    const left = await direct.pttl(counter);
    assert.ok(left > 0 && left <= PROVISIONAL_COUNTER_TTL_MS, `the raised counter lives ${left} ms`);
  });

  it('invalidating tags nobody recorded leaves counters with the provisional TTL', async () => {
    const ns = 'bump-made-ttl-c1';
    const a = await env.open(ns);
    const tags = Array.from({ length: 6 }, (_, i) => `unused-${i}`);
    assert.deepEqual(await a.invalidateTags(tags), { delivered: true });
    const direct = env.client();
    for (const tag of tags) {
      const left = await direct.pttl(`${ns}:v:{${tag}}`);
      assert.ok(left > 0 && left <= PROVISIONAL_COUNTER_TTL_MS, `${tag}'s counter lives ${left} ms`);
    }
  });
});
