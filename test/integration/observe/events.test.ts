// Event payloads as a metrics bridge needs them (issue 9): hit {key, tier,
// route, stale}, miss {key, route, collapsed?}, store {key, route, tiers,
// bytes, fillMs}, bypass {route, reason, url}, invalidate {kind, tags, remote,
// delivered}; `route` bounded (table prefix, framework route pattern, 'other').
// Express 5 and 4, Koa 3 and 2; then the data API and remote invalidations.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache, type CacheOptions, type Serializer, type TierCache, type TierCacheEvents } from '../../../src/index.js';
import { useCleanup, useRedisCaches } from '../../support/cache-context.js';
import { adapters, buildApp } from '../middleware/apps.js';

let counter = 0;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Seen = Array<{ [E in keyof TierCacheEvents]: [E, TierCacheEvents[E]] }[keyof TierCacheEvents]>;

/** Records every event of `names`, in order. */
function record(cache: TierCache, names: ReadonlyArray<keyof TierCacheEvents> = ['hit', 'miss', 'store', 'bypass', 'invalidate']): Seen {
  const seen: Seen = [];
  for (const name of names) cache.on(name, (payload) => seen.push([name, payload] as Seen[number]));
  return seen;
}

/** fillMs varies: checked to be a plausible number, then fixed to 0 for deepEqual. */
function withoutTimes(seen: Seen): unknown[] {
  return seen.map(([name, e]) => {
    if (name !== 'store') return [name, e];
    assert.ok(Number.isFinite(e.fillMs) && e.fillMs >= 0 && e.fillMs < 10_000, `fillMs ${e.fillMs}`);
    return [name, { ...e, fillMs: 0 }];
  });
}

describe('events: payloads', function () {
  const cleanup = useCleanup();
  const open = (options: CacheOptions = {}) => cleanup.track(createCache({ namespace: `events${process.pid}-${++counter}`, redis: false, ...options }));

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      const build = (cache: TierCache) =>
        buildApp(adapter, cache, {
          appLevel: true,
          routes: [
            { path: '/api/a', handler: (io) => io.send('aaaa') },
            { path: '/p/:id', mw: { ttl: '1m' }, handler: (io) => io.send(`p${io.params['id']}`) },
            { path: '/zzz', handler: (io) => io.send('z') },
            { path: '/old', handler: (io) => io.send('old') },
            { path: '/slow', mw: { ttl: '1m' }, handler: async (io) => (await sleep(150), io.send('slow')) },
          ],
        });

      it('hit, miss, store and bypass carry key, tier, route (table prefix, route pattern, else other), stale, tiers, bytes and the reason', async () => {
        const cache = open({ routes: { '/api': '1m', '/zzz': false } });
        const seen = record(cache);
        const app = build(cache);
        await request(app.target).get('/api/a');
        await request(app.target).get('/api/a');
        await request(app.target).get('/p/7');
        await request(app.target).get('/p/7');
        await request(app.target).get('/api/a').set('Authorization', 'Bearer x');
        const key = (seen[0]![1] as { key: string }).key;
        const pKey = (seen[3]![1] as { key: string }).key;
        assert.deepEqual(withoutTimes(seen), [
          ['miss', { key, route: '/api' }],
          ['store', { key, route: '/api', tiers: ['L1'], bytes: 4, fillMs: 0 }],
          ['hit', { key, tier: 'L1', route: '/api', stale: false }],
          ['miss', { key: pKey, route: '/p/:id' }],
          ['store', { key: pKey, route: '/p/:id', tiers: ['L1'], bytes: 2, fillMs: 0 }],
          ['hit', { key: pKey, tier: 'L1', route: '/p/:id', stale: false }],
          ['bypass', { route: '/api', reason: 'authorization', url: '/api/a' }],
        ]);
        assert.notEqual(key, pKey);
      });

      it('with no listener, a request builds no event: emit is never called for hits, misses, stores or bypasses', async () => {
        const cache = open({ routes: { '/api': '1m' } });
        const emitted: string[] = [];
        const emit = cache.emit.bind(cache);
        cache.emit = ((name: string, ...args: unknown[]) => (emitted.push(name), emit(name, ...args))) as typeof cache.emit;
        const app = build(cache);
        for (let i = 0; i < 3; i++) await request(app.target).get('/api/a');
        await request(app.target).get('/api/a').set('Authorization', 'Bearer x');
        assert.deepEqual(emitted, []);
        assert.equal(cache.stats().l1.hits, 2);
        assert.deepEqual(cache.stats().bypasses, { authorization: 1 }, 'counted all the same');
      });

      it("a bypass on a path neither the table nor a route pattern names has route 'other'", async () => {
        const cache = open({ ttl: '1m' });
        const seen = record(cache, ['bypass']);
        await request(build(cache).target).get('/unrouted?x=1').set('Cookie', 'sid=1');
        assert.deepEqual(seen, [['bypass', { route: 'other', reason: 'cookie', url: '/unrouted?x=1' }]]);
      });

      it('a stale answer is a hit with stale: true, counted in stats().stale; a request waiting on a fill is a collapsed miss', async () => {
        const cache = open({ routes: { '/old': { ttl: 40, staleWhileRevalidate: '1m' } } });
        const app = build(cache);
        await request(app.target).get('/old');
        await sleep(80);
        const seen = record(cache, ['hit', 'miss']);
        await request(app.target).get('/old');
        assert.deepEqual(seen[0], ['hit', { key: (seen[0]![1] as { key: string }).key, tier: 'L1', route: '/old', stale: true }]);
        assert.equal(cache.stats().stale, 1);

        seen.length = 0;
        const server = await cleanup.serve(app.target);
        await Promise.all([request(server).get('/slow'), sleep(30).then(() => request(server).get('/slow'))]);
        const misses = seen.filter(([name]) => name === 'miss').map(([, e]) => e);
        const slowKey = (misses[0] as { key: string }).key;
        assert.deepEqual(misses, [
          { key: slowKey, route: '/slow' },
          { key: slowKey, route: '/slow', collapsed: true },
        ]);
        assert.equal(cache.stats().coalesced, 1);
      });

      it('origin mode: a stale entry that must be revalidated is a miss, and a request waiting on that fill a collapsed miss', async () => {
        const cache = open({ routes: { '/slow': { ttl: '1m', freshness: 'origin' } } });
        const app = buildApp(adapter, cache, {
          appLevel: true,
          routes: [{ path: '/slow', handler: async (io) => (await sleep(150), io.set('Cache-Control', 'max-age=0'), io.set('ETag', '"e"'), io.send('slow')) }],
        });
        const server = await cleanup.serve(app.target);
        await request(server).get('/slow'); // stored, stale at once
        const seen = record(cache, ['miss']);
        await Promise.all([request(server).get('/slow'), sleep(30).then(() => request(server).get('/slow'))]);
        const key = (seen[0]![1] as { key: string }).key;
        assert.deepEqual(seen, [
          ['miss', { key, route: '/slow' }],
          ['miss', { key, route: '/slow', collapsed: true }],
        ]);
      });
    });
  }

  it('invalidate names the kind (tags, user, prefix, key, clear), the tags bumped, remote: false and whether Redis took it', async () => {
    const cache = open();
    const seen = record(cache, ['invalidate']);
    await cache.invalidateTags(['movie:7']);
    await cache.invalidateUser(42);
    await cache.invalidatePrefix('/api/movies');
    await cache.invalidateKey('k1');
    await cache.delete('d1');
    await cache.clear();
    assert.deepEqual(
      seen.map(([, e]) => e),
      [
        { kind: 'tags', tags: ['movie:7'], remote: false, delivered: true },
        { kind: 'user', tags: ['user:42'], remote: false, delivered: true },
        { kind: 'prefix', tags: ['path:/api/movies'], remote: false, delivered: true },
        { kind: 'key', tags: ['key:k1'], key: 'k1', remote: false, delivered: true },
        { kind: 'key', tags: [`key:${(seen[4]![1] as unknown as { tags: string[] }).tags[0]!.slice(4)}`], key: 'd1', remote: false, delivered: true },
        { kind: 'clear', tags: [], clear: true, remote: false, delivered: true },
      ],
    );
  });

  it('the data API reports route "data": miss, store (bytes of the encoded value), hit', async () => {
    const cache = open();
    const seen = record(cache, ['hit', 'miss', 'store']);
    assert.deepEqual(await cache.getOrSet('k', () => ({ a: 1 })), { a: 1 });
    assert.deepEqual(await cache.get('k'), { a: 1 });
    assert.deepEqual(withoutTimes(seen), [
      ['miss', { key: 'k', route: 'data' }],
      ['store', { key: 'k', route: 'data', tiers: ['L1'], bytes: 7, fillMs: 0 }],
      ['hit', { key: 'k', tier: 'L1', route: 'data', stale: false }],
    ]);
  });

  it('a getOrSet() answered from L1 is a hit, in a view too', async () => {
    const cache = open();
    const view = cache.namespace('users');
    await cache.set('k', 1);
    await view.set('u', 2);
    const seen = record(cache, ['hit', 'miss']);
    assert.equal(await cache.getOrSet('k', () => 9), 1);
    assert.equal(await view.getOrSet('u', () => 9), 2);
    assert.deepEqual(seen, [
      ['hit', { key: 'k', tier: 'L1', route: 'data', stale: false }],
      ['hit', { key: 'u', tier: 'L1', route: 'data', stale: false, namespace: 'users' }],
    ]);
  });

  it('a get() of an L1 entry this instance cannot read (its deserialize() throws on it) is a miss, and the entry is dropped', async () => {
    let readable = true;
    const serializer: Serializer = {
      name: 'switchable',
      serialize: (v) => JSON.stringify(v),
      deserialize: (bytes) => {
        if (!readable) throw new Error('unreadable');
        return JSON.parse(bytes.toString('utf8'));
      },
    };
    const cache = open({ serializer });
    const view = cache.namespace('users');
    await cache.set('k', { a: 1 });
    await view.set('u', { b: 2 });
    const seen = record(cache, ['hit', 'miss']);
    readable = false;
    assert.equal(await cache.get('k'), undefined);
    assert.equal(await view.get('u'), undefined);
    assert.deepEqual(seen, [
      ['miss', { key: 'k', route: 'data' }],
      ['miss', { key: 'u', route: 'data', namespace: 'users' }],
    ]);
    assert.equal(cache.stats().l1.entries, 0, 'the unreadable entries stayed in L1');
  });

  it('deleteMany() reports one invalidate per key, with its key, its key tag and its view', async () => {
    const cache = open();
    const view = cache.namespace('users');
    const seen = record(cache, ['invalidate']);
    await cache.deleteMany(['a', 'b']);
    await view.deleteMany(['c', 'd', 'e']);
    const keyTag = (k: string) => `key:${cache.dataKey(k)}`;
    const events = seen.map(([, e]) => e as TierCacheEvents['invalidate']);
    assert.deepEqual(events.slice(0, 2), [
      { kind: 'key', tags: [keyTag('a')], key: 'a', remote: false, delivered: true },
      { kind: 'key', tags: [keyTag('b')], key: 'b', remote: false, delivered: true },
    ]);
    assert.deepEqual(
      events.slice(2).map((e) => ({ ...e, tags: e.tags.length })),
      ['c', 'd', 'e'].map((key) => ({ kind: 'key', tags: 1, key, remote: false, delivered: true, namespace: 'users' })),
    );
    assert.equal(new Set(events.slice(2).map((e) => e.tags[0])).size, 3, 'each key of the view its own tag');
    assert.equal(events.length, 5);
  });
});

describe('events: with Redis', function () {
  const ctx = useRedisCaches({ prefix: 'events-redis' });

  it('a getOrSet that waits on a loader run of its instance is a collapsed miss, however the run ends (as stats().coalesced counts it)', async () => {
    const cache = await ctx.open();
    const seen = record(cache, ['hit', 'miss']);
    const slow = <T>(value: T) => async () => (await sleep(100), value);
    await Promise.all([1, 2, 3].map(() => cache.getOrSet('k', slow('v'))));
    const view = cache.namespace('users');
    await Promise.all([1, 2].map(() => view.getOrSet('u', slow('w'))));
    const failing = async () => (await sleep(100), Promise.reject(new Error('loader failed')));
    const failed = await Promise.allSettled([cache.getOrSet('bad', failing), cache.getOrSet('bad', failing)]);
    assert.deepEqual(failed.map((r) => r.status), ['rejected', 'rejected'], 'premise: both calls shared the failing run');
    assert.equal(cache.stats().coalesced, 4, 'premise: four calls waited on another run');
    const misses = seen.filter(([name]) => name === 'miss').map(([, e]) => e);
    assert.deepEqual(
      misses.filter((e) => (e as { collapsed?: boolean }).collapsed === true),
      [
        { key: 'k', route: 'data', collapsed: true },
        { key: 'k', route: 'data', collapsed: true },
        { key: 'u', route: 'data', collapsed: true, namespace: 'users' },
        { key: 'bad', route: 'data', collapsed: true },
      ],
    );
    assert.equal(misses.length, 7, 'one miss per loader run, one collapsed miss per waiter');
  });

  it('getOrSet calls that wait on a run of their instance which found the value in L2 are L2 hits, as the run is', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('stored', 'v');
    const seen = record(b, ['hit', 'miss']);
    assert.deepEqual(await Promise.all([1, 2, 3].map(() => b.getOrSet('stored', () => 'loaded'))), ['v', 'v', 'v']);
    assert.deepEqual(seen, [1, 2, 3].map(() => ['hit', { key: 'stored', tier: 'L2', route: 'data', stale: false }]));
  });

  it("a store reaches both tiers while Redis answers; another instance's invalidations arrive with remote: true and their kind", async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    const stores = record(a, ['store']);
    await a.set('x', 'v');
    assert.deepEqual((stores[0]![1] as unknown as { tiers: string[] }).tiers, ['L1', 'L2']);
    const heard = record(b, ['invalidate']);
    await a.invalidateUser('u1');
    await a.invalidatePrefix('/shop');
    await a.clear();
    for (let i = 0; i < 100 && heard.length < 3; i++) await sleep(20);
    assert.deepEqual(
      heard.map(([, e]) => e),
      [
        { kind: 'user', tags: ['user:u1'], remote: true, delivered: true },
        { kind: 'prefix', tags: ['path:/shop'], remote: true, delivered: true },
        { kind: 'clear', tags: [], clear: true, remote: true, delivered: true },
      ],
    );
  });
});
