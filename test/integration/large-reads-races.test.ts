// Large entries (fill-protocol.ts LARGE_ENTRY_BYTES) are read in two round
// trips: the lookup script judges the entry by its first 20 bytes and reads
// the counters, then a plain GET brings the bytes. large-reads.test.ts forces
// what can change in Redis between the two; this file forces what can reach
// the reader between them: an invalidation whose bus message is heard while
// the GET's reply (bytes Redis read before the invalidation) is still on its
// way. The bytes must be judged against what the instance knows when they
// arrive, not only against the counters the script read, or they would be
// served (and kept in L1) after the message said they are invalid. Also: a
// large fresh entry gone between script and GET on three instances at once
// (one loader run: the fill steps are taken under the lock), a pull whose GET
// outlives its claim (the value still goes to exactly one caller), and
// entries exactly at the threshold.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import express from 'express';
import { Redis } from 'ioredis';
import request from 'supertest';
import type { TierCache } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { LARGE_ENTRY_BYTES } from '../../src/store/fill-protocol.js';
import { collectBytes } from '../support/blob-app.js';
import { useRedisCaches } from '../support/cache-context.js';
import { eventually } from '../support/eventually.js';

type Method = (...args: unknown[]) => Promise<unknown>;

/**
 * Hooks on `cache`'s plain GETs (the read of a large entry's bytes): `before`
 * runs once before the next GET is sent, `after` once Redis has answered it,
 * before its caller sees the reply (a reply late on the data connection).
 */
function hookGets(cache: TierCache): { before(h: () => Promise<void>): void; after(h: () => Promise<void>): void; gets(): number } {
  const client = cache.store.l2!.client as unknown as Record<string, Method>;
  const getBuffer = client.getBuffer!.bind(client);
  let before: (() => Promise<void>) | undefined;
  let after: (() => Promise<void>) | undefined;
  let gets = 0;
  client.getBuffer = async (...args) => {
    gets++;
    const b = before;
    before = undefined;
    if (b !== undefined) await b();
    const reply = await getBuffer(...args);
    const a = after;
    after = undefined;
    if (a !== undefined) await a();
    return reply;
  };
  return { before: (h) => void (before = h), after: (h) => void (after = h), gets: () => gets };
}

const MiB = 1024 * 1024;
const blob = (bytes: number) => randomBytes(Math.ceil((bytes * 3) / 4)).toString('base64').slice(0, bytes);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('large entries: what reaches the reader between the lookup script and the GET', function () {
  this.timeout(30_000);
  const ctx = useRedisCaches({ prefix: 'large-races', flush: true, defaults: { l2: { commandTimeout: '2s' } } });

  /** Runs `invalidate` and waits until `b` has heard its message. */
  const heardBy = async (b: TierCache, invalidate: () => Promise<unknown>) => {
    const heard = b.stats().bus.received;
    await invalidate();
    await eventually(() => b.stats().bus.received > heard, 'B heard the invalidation', 2_000);
  };

  for (const how of ['invalidateTags', 'delete', 'clear', 'namespace clear'] as const) {
    it(`getOrSet(): ${how} heard while the GET's reply of the bytes from before is on its way: not served, not kept in L1`, async () => {
      const a = await ctx.open();
      const b = await ctx.open({ namespace: ctx.ns });
      const [onA, onB] = how === 'namespace clear' ? [a.namespace('v'), b.namespace('v')] : [a, b];
      await onA.set('k', blob(MiB), { tags: ['t'] });
      const hooks = hookGets(b);
      hooks.after(() =>
        heardBy(b, () => (how === 'invalidateTags' ? a.invalidateTags(['t']) : how === 'delete' ? onA.delete('k') : how === 'clear' ? a.clear() : (onA as unknown as { clear(): Promise<unknown> }).clear())),
      );
      assert.equal(await onB.getOrSet('k', () => 'loaded', { tags: ['t'] }), 'loaded', 'bytes invalidated before the read resolved were served');
      assert.equal(await onB.get('k'), 'loaded');
      assert.equal(hooks.gets() >= 1, true, 'the premise: the read went through a plain GET');
    });
  }

  it("get(): an invalidation heard while the GET's reply is on its way: a miss, and none in L1", async () => {
    const a = await ctx.open();
    const b = await ctx.open({ namespace: ctx.ns });
    await a.set('k', blob(MiB), { tags: ['t'] });
    hookGets(b).after(() => heardBy(b, () => a.invalidateTags(['t'])));
    assert.equal(await b.get('k'), undefined, 'get() served bytes after hearing their invalidation');
    assert.equal(await b.get('k'), undefined, 'L1 kept them');
  });

  for (const how of ['invalidatePrefix', 'invalidateUser'] as const) {
    for (const fresh of [true, false]) {
      it(`HTTP: ${how} heard while the GET's reply of a ${fresh ? 'fresh' : 'stale (swr, sie)'} large body is on its way: the handler answers, then and next time`, async () => {
        let version = 0;
        const appFor = (cache: TierCache) =>
          express()
            .use('/api', expressCache(cache, { ttl: fresh ? '1m' : 100, staleWhileRevalidate: '1m', staleIfError: '1m', user: (req) => req.headers['x-user'] as string | undefined }))
            .get('/api/movies/list', (_req, res) => void res.type('application/octet-stream').send(Buffer.alloc(64 * 1024, version)));
        const a = await ctx.open();
        const b = await ctx.open({ namespace: ctx.ns });
        await request(appFor(a)).get('/api/movies/list').set('x-user', 'u1').expect(200);
        if (!fresh) await sleep(150);
        version = 1;
        const hooks = hookGets(b);
        hooks.after(() => heardBy(b, () => (how === 'invalidatePrefix' ? a.invalidatePrefix('/api/movies') : a.invalidateUser('u1'))));
        const appB = appFor(b);
        for (const when of ['then', 'next time']) {
          const res = await request(appB).get('/api/movies/list').set('x-user', 'u1').buffer(true).parse(collectBytes);
          assert.equal(res.status, 200);
          assert.equal((res.body as Buffer)[0], 1, `${when}: B answered the body invalidated before (${String(res.headers['cache-status'])})`);
        }
        assert.ok(hooks.gets() >= 1, 'the premise: the read went through a plain GET');
      });
    }
  }

  it('three instances whose GETs all find a large fresh entry gone: the loader runs once, under the lock', async () => {
    const a = await ctx.open();
    await a.set('hot', blob(MiB));
    const caches = [await ctx.open({ namespace: ctx.ns }), await ctx.open({ namespace: ctx.ns }), await ctx.open({ namespace: ctx.ns })];
    // Every GET waits until all three scripts found the entry fresh (no lock taken), then it is deleted.
    let waiting = 0;
    let release!: () => void;
    const all = new Promise<void>((resolve) => (release = resolve));
    for (const c of caches) {
      hookGets(c).before(async () => {
        if (++waiting === 3) {
          await ctx.admin.del(a.dataKey('hot'));
          release();
        }
        await all;
      });
    }
    let runs = 0;
    const load = async () => {
      runs++;
      await sleep(300);
      return `new ${runs}`;
    };
    const got = await Promise.all(caches.map((c) => c.getOrSet('hot', load)));
    assert.equal(runs, 1, `the loader ran ${runs} times`);
    assert.deepEqual(got, ['new 1', 'new 1', 'new 1']);
  });

  it("a pull whose GET outlives its claim: another instance's pull takes the value, the first gets nothing", async () => {
    // A's claim lives one command timeout (300 ms); its GET's reply is held past it. Held by the hook, after the
    // client answered: a client with a timer of its own (ioredis's) has the GET answered in time, as a reply that
    // reached the socket just in time and whose caller ran late; tiercache's own deadline would count the hold.
    const own = new Redis(ctx.redis.url, { commandTimeout: 300 });
    let a: TierCache | undefined;
    try {
      a = await ctx.open({ l1: false, redis: own, l2: { commandTimeout: 300 } });
      const b = await ctx.open({ l1: false, namespace: ctx.ns });
      const value = blob(MiB);
      await a.set('p', value);
      let second: unknown;
      hookGets(a).after(async () => {
        await sleep(450);
        second = await b.pull('p');
      });
      const first = await a.pull('p');
      assert.equal(first, undefined, 'the pull whose claim expired got the value too');
      assert.ok(second === value, 'the other pull did not get the value, whole');
      assert.equal(await ctx.admin.exists(a.dataKey('p')), 0);
    } finally {
      await a?.close();
      own.disconnect();
    }
  });

  it('entries of exactly LARGE_ENTRY_BYTES - 1, LARGE_ENTRY_BYTES and + 1 bytes: getOrSet() hit, get(), pull(), each the value, one L2 hit each', async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    for (const size of [LARGE_ENTRY_BYTES - 1, LARGE_ENTRY_BYTES, LARGE_ENTRY_BYTES + 1]) {
      // Keys of one length: the entry records its key's tag.
      let length = size - 200;
      let value = '';
      for (;;) {
        value = 'x'.repeat(length);
        await a.set('q', value);
        const stored = await ctx.admin.strlen(a.dataKey('q'));
        if (stored === size) break;
        length += size - stored;
      }
      for (const key of ['g', 'r', 'p']) await a.set(key, value);
      const hits = b.stats().l2.hits;
      assert.equal(await b.getOrSet('g', () => 'loaded'), value, `getOrSet() at ${size}`);
      assert.equal(await b.get('r'), value, `get() at ${size}`);
      assert.equal(await b.pull('p'), value, `pull() at ${size}`);
      assert.equal(b.stats().l2.hits - hits, 3, `L2 hits at ${size}`);
    }
    assert.equal(b.stats().l2.errors, 0);
  });

  it('close() while a large read is between its script and its GET: the read settles', async () => {
    const a = await ctx.open();
    const b = await ctx.open({ namespace: ctx.ns });
    b.on('error', () => undefined);
    await a.set('c', blob(MiB));
    let closing: Promise<void> | undefined;
    hookGets(b).before(async () => void (closing = b.close()));
    const got = await b.getOrSet('c', () => 'loaded').catch((e: Error) => e);
    await closing;
    assert.ok(typeof got === 'string', `the read ended with ${String(got)}`);
  });
});
