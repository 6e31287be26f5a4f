// namespace() views of the data API against a real redis-server: their keys
// live apart from the root's and from each other's, they share the tiers and
// the bus (a value set in a view on one instance is read in that view on the
// other), and clear() on a view drops its values, and its inner views', on
// every instance, leaving everything else.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { useRedisCaches } from '../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function eventually(check: () => Promise<boolean>, timeoutMs = 1000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (performance.now() >= deadline) return false;
    await sleep(10);
  }
}

describe('data API: namespace() views', () => {
  const ctx = useRedisCaches({ prefix: 'nsv', flush: true });

  it("keeps a view's keys apart: users.get('1') is neither cache.get('users:1') nor another view's '1'", async () => {
    const cache = await ctx.open();
    const users = cache.namespace('users');
    await users.set('1', 'user one');
    await cache.set('users:1', 'root key');
    await cache.namespace('movies').set('1', 'movie one');
    await cache.set('users%:1', 'escaped look-alike');
    assert.equal(await users.get('1'), 'user one');
    assert.equal(await cache.get('users:1'), 'root key');
    assert.equal(await cache.namespace('movies').get('1'), 'movie one');
    assert.equal(await cache.get('users%:1'), 'escaped look-alike');
    assert.equal(await users.get('users:1'), undefined);
    assert.equal(await ctx.admin.exists(`${ctx.ns}:d:users%:1`), 1, "the view's store key");
  });

  it('shares the tiers: a value set in a view on A is read in the same view on B, from Redis', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.namespace('users').set('42', { name: 'ada' });
    assert.deepStrictEqual(await b.namespace('users').get('42'), { name: 'ada' });
    assert.equal(await b.get('42'), undefined);
    let runs = 0;
    assert.deepStrictEqual(await b.namespace('users').getOrSet('42', () => (runs++, { name: 'other' })), { name: 'ada' });
    assert.equal(runs, 0);
  });

  it("clear() on a view drops its values and its inner views' on both instances; the root's and other views' stay", async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    const users = a.namespace('users');
    await users.set('1', 'u1');
    await users.namespace('admins').set('1', 'admin1');
    await a.namespace('movies').set('1', 'm1');
    await a.set('1', 'root1');
    // B holds every value in L1.
    assert.equal(await b.namespace('users').get('1'), 'u1');
    assert.equal(await b.namespace('users').namespace('admins').get('1'), 'admin1');
    const events: unknown[] = [];
    a.on('invalidate', (e) => events.push(e));

    assert.deepStrictEqual(await users.clear(), { delivered: true });
    assert.deepStrictEqual(
      events.map((e) => {
        const { tags, ...rest } = e as { tags: readonly string[] };
        return { ...rest, tagCount: tags.length };
      }),
      [{ kind: 'clear', tagCount: 1, remote: false, delivered: true, clear: true, namespace: 'users' }],
    );
    for (const cache of [a, b]) {
      assert.ok(await eventually(async () => (await cache.namespace('users').get('1')) === undefined), 'the view still has its value');
      assert.equal(await cache.namespace('users').namespace('admins').get('1'), undefined, 'the inner view still has its value');
      assert.equal(await cache.namespace('movies').get('1'), 'm1');
      assert.equal(await cache.get('1'), 'root1');
    }
    // The view works on afterwards.
    await users.set('1', 'u1 again');
    assert.ok(await eventually(async () => (await b.namespace('users').get('1')) === 'u1 again'));
  });

  it("the cache's own clear() drops the views' values too", async () => {
    const a = await ctx.open();
    await a.namespace('users').set('1', 'u1');
    await a.clear();
    assert.equal(await a.namespace('users').get('1'), undefined);
  });

  it('getOrSet, delete, deleteMany and source() work inside a view, on its own keys', async () => {
    const a = await ctx.open();
    const users = a.namespace('users');
    assert.equal(await users.getOrSet('1', () => 'loaded'), 'loaded');
    assert.equal(await users.get('1'), 'loaded');
    await a.set('1', 'root');
    await users.delete('1');
    assert.equal(await users.get('1'), undefined);
    assert.equal(await a.get('1'), 'root', "the root's '1' is another key");
    await users.set('2', 2);
    await users.set('3', 3);
    await users.deleteMany(['2', '3']);
    assert.equal(await users.has('2'), false);
    assert.equal(await users.has('3'), false);
    const source = users.source({ load: (id: number) => ({ id }) }, { prefix: 'id:' });
    assert.deepStrictEqual(await source.get(7), { id: 7 });
    assert.deepStrictEqual(await users.get('id:7'), { id: 7 });
  });

  it("emits the view's name with data events", async () => {
    const a = await ctx.open();
    const seen: unknown[] = [];
    a.on('store', (e) => seen.push(['store', e]));
    a.on('hit', (e) => seen.push(['hit', e]));
    const admins = a.namespace('users').namespace('admins');
    await admins.set('1', 'x');
    await admins.get('1');
    const [store, hit] = seen as [[string, { fillMs: number }], [string, unknown]];
    assert.ok(store[1].fillMs >= 0);
    assert.deepStrictEqual(seen, [
      ['store', { key: '1', route: 'data', tiers: ['L1', 'L2'], bytes: 3, fillMs: store[1].fillMs, namespace: 'users:admins' }],
      ['hit', { key: '1', route: 'data', stale: false, tier: 'L1', namespace: 'users:admins' }],
    ]);
    assert.equal(hit[0], 'hit');
  });

  it('refuses an empty view name with a TypeError', async () => {
    const a = await ctx.open();
    assert.throws(() => a.namespace(''), TypeError);
  });
});
