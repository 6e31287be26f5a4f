// A set() whose store Redis refuses (a counter its stamp recorded moved: an
// invalidation from another instance whose message has not arrived) is
// stamped again and retried, twice at most; when it is overtaken every time,
// or its value's lifetime ran out meanwhile, it gives up and becomes a
// delete() of the key (tier-cache.ts setValue), so the value from before does
// not answer for it. Here the overtaking invalidation is played by the counter
// of a tag the value records, moved behind the cache's back right before each
// store; a real redis-server, instance A through a TCP proxy.
import assert from 'node:assert/strict';
import type { TierCache } from '../../../src/index.js';
import type { TieredStore } from '../../../src/store/tiered-store.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('set() overtaken by invalidations: the give-up', function () {
  this.timeout(30_000);
  const ctx = useRedisCaches({ prefix: 'set-give-up', flush: true });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  /** Wraps A's store.set: `before(n)` runs ahead of the n-th store (1-based), `after(n, stored)` once it answered. */
  function aroundStores(cache: TierCache, before: (n: number) => Promise<void>, after: (n: number, stored: unknown) => void = () => undefined): () => number {
    const store = cache.store as TieredStore;
    const set = store.set.bind(store);
    let calls = 0;
    store.set = async (...args: Parameters<TieredStore['set']>) => {
      const n = ++calls;
      await before(n);
      const stored = await set(...args);
      after(n, stored);
      return stored;
    };
    return () => calls;
  }

  it('overtaken on every try, and its delete refused too: the error names the set()', async () => {
    proxy = await startTcpProxy(ctx.redis.port);
    const a = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 2000 } });
    const b = await ctx.open();
    const errors: string[] = [];
    a.on('error', ({ err }: { err: Error }) => errors.push(err.message));
    assert.equal(await b.getOrSet('k', () => 'old', { ttl: '1h' }), 'old');
    assert.equal(await a.get('k'), 'old');
    const counter = `${ctx.ns}:v:{t}`;
    const refused: unknown[] = [];
    const stores = aroundStores(
      a,
      async () => void (await ctx.admin.incr(counter)),
      (n, stored) => {
        refused.push(stored);
        // The third refusal is the last: Redis becomes unreachable before the delete() it turns into.
        if (n === 3) proxy!.cut('refuse');
      },
    );
    await a.set('k', 'new', { ttl: '1h', tags: ['t'] });
    assert.deepEqual(refused, [false, false, false], 'premise: every store was refused');
    assert.equal(stores(), 3);
    assert.notEqual(await a.get('k'), 'old', 'A served the value from before its own set()');
    await eventually(() => errors.some((m) => m.includes('set("k") was applied on this instance and queued')), `the queued delete is reported as the set(): ${JSON.stringify(errors)}`, 5_000);
  });

  it('overtaken on every try, Redis answering: the set() resolves with no store event and no error (the invalidations may be ordered after it)', async () => {
    const a = await ctx.open({ l2: { commandTimeout: '3s' } });
    const b = await ctx.open({ l2: { commandTimeout: '3s' } });
    const errors: Array<{ message: string; where: string }> = [];
    const stored: string[] = [];
    a.on('error', ({ err, where }: { err: Error; where: string }) => errors.push({ message: err.message, where }));
    a.on('store', ({ key }: { key: string }) => stored.push(key));
    assert.equal(await b.getOrSet('k', () => 'old', { ttl: '1h' }), 'old');
    const counter = `${ctx.ns}:v:{t}`;
    aroundStores(a, async () => void (await ctx.admin.incr(counter)));
    await a.set('k', 'new', { ttl: '1h', tags: ['t'] });
    const said = errors.slice();
    assert.deepEqual(stored, [], 'a store event for a set() stored nowhere');
    assert.deepEqual(said, [], 'an error for a set() whose overtaking invalidations may be ordered after it');
    await eventually(async () => (await b.get('k')) === undefined, 'B stops serving the value from before the set()', 5_000);
  });

  it('refused once, its lifetime over by then: stored nowhere, the key misses (neither the value past its TTL nor the one from before)', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    const errors: string[] = [];
    a.on('error', ({ err, where }: { err: Error; where: string }) => void (where === 'store' && errors.push(err.message)));
    assert.equal(await b.getOrSet('k', () => 'old', { ttl: '1h' }), 'old');
    assert.equal(await a.get('k'), 'old');
    const counter = `${ctx.ns}:v:{t}`;
    const stores = aroundStores(a, async (n) => {
      if (n > 1) return;
      await ctx.admin.incr(counter);
      await sleep(300); // the value's 200 ms are over before Redis answers
    });
    await a.set('k', 'new', { ttl: 200, tags: ['t'] });
    assert.equal(stores(), 1, 'a value whose lifetime was over was stored again');
    // A value no reader would get now: its not being stored loses nothing, and is no error.
    assert.deepEqual(errors, []);
    assert.equal(await a.get('k'), undefined);
    await eventually(async () => (await b.get('k')) === undefined, 'B stops serving the value from before the set()', 5_000);
  });
});
