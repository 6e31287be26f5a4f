// An L1 hit that had to be checked in Redis first: a cache whose bus is not
// subscribed cannot hear invalidations, so each L1 entry's tag versions are
// read from Redis before it is served. Served that way, it is still an L1 hit,
// and stats() counts it as one (and not as an L2 hit). Real redis-server, a
// user whom an ACL forbids every channel.
import assert from 'node:assert/strict';
import { createCache } from '../../src/index.js';
import { useRedisCaches } from '../support/cache-context.js';
import { eventually } from '../support/eventually.js';

describe('data API: L1 hits checked in Redis', function () {
  const ctx = useRedisCaches({ prefix: 'vh', flush: true });

  it('counts an L1 entry served after its versions were read from Redis as an L1 hit', async () => {
    const user = `vh-${ctx.ns}`;
    await ctx.admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', 'resetchannels', '+@all');
    const cache = ctx.track(createCache({ namespace: ctx.ns, redis: `redis://${user}:pw@127.0.0.1:${ctx.redis.port}` }));
    const errors: Error[] = [];
    cache.on('error', (e: { err: Error }) => errors.push(e.err));
    await eventually(() => errors.some((e) => /NOPERM/.test(e.message)), 'the refused SUBSCRIBE is reported', 5000);
    assert.equal(cache.health().bus, 'reconnecting');

    await cache.set('k', 'v', { tags: ['t'] });
    const before = cache.stats();
    assert.equal(await cache.get('k'), 'v');
    assert.equal(await cache.get('k'), 'v');
    const after = cache.stats();
    assert.equal(after.l1.hits - before.l1.hits, 2, 'L1 hits');
    assert.equal(after.l1.misses - before.l1.misses, 0, 'L1 misses');
    assert.equal(after.l2.hits - before.l2.hits, 0, 'L2 hits');
  });
});

describe('data API: an L2 entry past the epoch an instance knows', function () {
  const ctx = useRedisCaches({ prefix: 've', flush: true });

  // The epoch moved in Redis without a message (a clear() whose message was lost); the other instance learns it
  // only from its once-a-second epoch check. Until then what it reads from L2 carries an epoch it has not heard of.
  it('is served after Redis vouches for it, by get() and getOrSet(), and left in L2 (it was deleted, and refilled by getOrSet)', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('warm', 1);
    assert.equal(await b.get('warm'), 1);
    await ctx.admin.incr(`{${ctx.ns}}:epoch`);
    // A's first store records the old epoch and is refused; A then reads the epoch and stores with it.
    assert.equal(await a.getOrSet('first', () => 'refused'), 'refused');
    assert.equal(await a.getOrSet('k', () => 'from a'), 'from a');
    assert.equal(await a.getOrSet('k2', () => 'from a'), 'from a');
    let loads = 0;
    assert.equal(await b.getOrSet('k', () => (loads++, 'from b')), 'from a');
    assert.equal(loads, 0, "b ran its loader over a's entry");
    assert.equal(await b.get('k2'), 'from a');
    assert.equal(await ctx.admin.exists(a.dataKey('k'), a.dataKey('k2')), 2, 'an entry b read was deleted from L2');
  });
});

// A get() of a key this instance never read goes to Redis for the counters every value of the key records: Redis's
// word on them, not what the instance last heard. Found by helper-103: with 8b30fce alone, a clear() or a view's
// clear() that had reached Redis but whose message had not reached B yet was not seen by such a get().
describe('data API: a get() of a key never read here, an invalidation in Redis whose message has not come', function () {
  const ctx = useRedisCaches({ prefix: 'vw', flush: true });
  for (const l1 of [true, false] as const) {
    it(`is not served after a clear() (the epoch moved) nor after the view's clear() (L1 ${l1 ? 'on' : 'off'})`, async () => {
      const a = await ctx.open();
      const b = await ctx.open(l1 ? {} : { l1: false });
      await a.set('k', 'old');
      await a.namespace('films').set('k', 'old');
      await a.namespace('films').set('j', 'x');
      // B knows the epoch and the view's counter (it read another key of the view).
      assert.equal(await b.namespace('films').get('j'), 'x');
      // The view's clear() as it lands in Redis, its message not (yet) heard by B.
      const [view] = await ctx.admin.keys(`*${ctx.ns}*space:films*`);
      await ctx.admin.incr(view!);
      assert.equal(await b.namespace('films').get('k'), undefined, "the view's clear() was not seen");
      await ctx.admin.incr(`{${ctx.ns}}:epoch`);
      assert.equal(await b.get('k'), undefined, 'the clear() was not seen');
    });
  }
});

// A counter read below what an entry records is taken for a stale read (on a Cluster, another slot's script that ran
// first) and Redis is asked again. On standalone Redis the read is atomic with the entry's: such a counter went back
// (restored, made again by hand), and asked again it is lower again: the entry stays refused, and deleted.
describe("data API: a view's counter in Redis below what an entry records", function () {
  const ctx = useRedisCaches({ prefix: 'vb', flush: true });
  for (const l1 of [true, false] as const) {
    it(`refuses the entry on an instance that knows neither, and deletes it from L2 (L1 ${l1 ? 'on' : 'off'})`, async () => {
      const a = await ctx.open();
      await a.namespace('films').set('k', 'recorded the higher version', { tags: ['u'] });
      const [view] = await ctx.admin.keys(`*${ctx.ns}*space:films*`);
      const held = BigInt((await ctx.admin.get(view!))!);
      await ctx.admin.set(view!, String(held - 5n), 'KEEPTTL');
      const [entryKey] = await ctx.admin.keys(`${ctx.ns}:d:*`);
      // 'u' is not known to B: its local state cannot decide, and the counters read with the entry do.
      const b = await ctx.open(l1 ? {} : { l1: false });
      assert.equal(await b.namespace('films').get('k'), undefined, 'an entry recording a version Redis no longer holds was served');
      await eventually(async () => (await ctx.admin.exists(entryKey!)) === 0, 'the entry is deleted from L2', 2000);
      const c = await ctx.open(l1 ? {} : { l1: false });
      assert.equal(await c.namespace('films').getOrSet('k', () => 'loaded'), 'loaded');
    });
  }
});
