// Why this test exists (h136/s35's open items, h144): a tag invalidation
// (invalidateTags, deleteMany) made while this instance was cut off waits in
// its queue behind other invalidations. Once Redis answered again, a set() of
// a value with that tag made here while the replay still ran longer than one
// command timeout either waited for the whole replay (its store refused on
// every try: it became a delete() it then waited to deliver; 920 ms with 9
// items queued) or was stored, reported as stored, and then made invalid
// everywhere by the replay's bump (its key's own tag, a deleteMany). A set()
// waits about one command timeout at most, and one reported stored stays.
// One real redis-server; A goes through a TCP proxy slowed during the replay.
import assert from 'node:assert/strict';
import type { TierCache } from '../../../src/index.js';
import type { TagVersions } from '../../../src/store/tag-versions.js';
import type { TieredStore } from '../../../src/store/tiered-store.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

const queued = (cache: TierCache) => (cache as unknown as { queue: { length: number } }).queue.length;
const TIMEOUT = 500;

describe('a set() made while a long replay of an invalidation of its tag runs', function () {
  this.timeout(40_000);
  const ctx = useRedisCaches({ prefix: 'set-long-replay', flush: true });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    proxy?.setDelay(0);
    await proxy?.close();
    proxy = undefined;
  });

  // A through a proxy, with 'k' (and 'old') set before, tagged 't'; A cut off; `queue` makes A's invalidations.
  async function cutOffWith(queue: (a: TierCache) => Promise<unknown>, commandTimeout = TIMEOUT): Promise<{ a: TierCache; stores: string[] }> {
    proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 0, true);
    const a = await ctx.open({ redis: proxy.url, l2: { breakerCooldown: 100, commandTimeout } });
    a.on('error', () => undefined);
    const stores: string[] = [];
    a.on('store', (e: { key: string }) => stores.push(e.key));
    const c = await ctx.open({ l1: false, l2: { commandTimeout: '3s' } });
    await c.set('k', 'before', { ttl: '1h', tags: ['t'] });
    await c.set('old', 'before', { ttl: '1h', tags: ['t'] });
    assert.equal(await a.get('k'), 'before');
    proxy.cut('refuse');
    await eventually(() => a.health().l2 !== 'ok', 'A sees Redis down', 5_000);
    await queue(a);
    return { a, stores };
  }

  /** Heals A's link, slowed: each replayed delete() is three round trips (DEL, bump, publish), ~0.3 s each. */
  async function healSlowly(a: TierCache): Promise<void> {
    await healSlowlyBy(a, 50);
  }

  async function healSlowlyBy(a: TierCache, delay: number): Promise<void> {
    proxy!.heal();
    proxy!.setDelay(delay);
    await eventually(() => a.health().l2 === 'ok', 'A reaches Redis again', 10_000);
  }

  for (const how of ['invalidateTags', 'deleteMany'] as const) {
    it(`(${how}) returns within about a command timeout, and is not undone once reported stored`, async () => {
      const { a, stores } = await cutOffWith(async (a) => {
        for (let i = 0; i < 8; i++) void a.delete(`other${i}`);
        if (how === 'invalidateTags') await a.invalidateTags(['t']);
        else await a.deleteMany(['k', 'old']);
      });
      await healSlowly(a);
      const begun = performance.now();
      await a.set('k', 'a-later', { ttl: '1h', tags: ['t'] });
      const waited = performance.now() - begun;
      const left = queued(a);
      await eventually(() => queued(a) === 0, "A's queue is replayed", 20_000);
      const replayed = performance.now() - begun;
      proxy!.setDelay(0);
      assert.ok(waited < 2.5 * TIMEOUT, `the set() waited ${Math.round(waited)} ms for a replay it is not part of`);
      assert.ok(left > 0 && replayed > waited + 2 * TIMEOUT, `the replay ended ${Math.round(replayed)} ms after the set() began (the test proves nothing)`);
      const d = await ctx.open({ l1: false, l2: { commandTimeout: '3s' } });
      if (stores.includes('k')) assert.equal(await d.get('k'), 'a-later', `the queued ${how}() undid the set() reported stored after it`);
      else assert.notEqual(await d.get('k'), 'before', 'the value from before the set() is read after it');
      assert.equal(await d.get('old'), undefined, 'a value from before the replay survived it');
    });
  }
  it('one that the replay outlasts stores nothing, and says so: an error (where: store) naming the set() before it resolves', async () => {
    const { a, stores } = await cutOffWith(async (a) => {
      for (let i = 0; i < 8; i++) void a.delete(`other${i}`);
      await a.invalidateTags(['t']);
    });
    const said: string[] = [];
    a.on('error', ({ err, where }: { err: Error; where: string }) => void (where === 'store' && said.push(err.message)));
    await healSlowly(a);
    await a.set('k', 'a-later', { ttl: '1h', tags: ['t'] });
    const heard = said.slice();
    const left = queued(a);
    await eventually(() => queued(a) === 0, "A's queue is replayed", 20_000);
    proxy!.setDelay(0);
    assert.ok(left > 0 && !stores.includes('k'), `premise: the set() outlasted by the replay (${left} queued after it) stored nothing (stored: ${stores.includes('k')})`);
    assert.equal(heard.length, 1, `errors (where: store) when the set() resolved: ${JSON.stringify(heard)}`);
    assert.match(heard[0]!, /set\("k"\) was not stored: invalidations of its tags made on this instance before it/);
  });

  it("waits one command timeout in all: its stamp's read of Redis after the replay wait gets what is left of it, not a timeout of its own", async () => {
    const T = 1500;
    const { a } = await cutOffWith(async (a) => void (await a.invalidateTags(['t'])), T);
    // The replay of t takes a good part of the set()'s wait (each round trip 2 x 150 ms); then the stamp's read of
    // the tag A does not know ('fresh') meets a link that answers nothing in time.
    await healSlowlyBy(a, 150);
    const versions = (a.store as TieredStore).versions;
    const stamp = versions.stamp.bind(versions);
    let began: number | undefined;
    let stamped: number | undefined;
    versions.stamp = async (...args: Parameters<TagVersions['stamp']>) => {
      if (args[0].includes('fresh') && began !== undefined) {
        stamped = performance.now() - began;
        proxy!.setDelay(10 * T);
      }
      return stamp(...args);
    };
    began = performance.now();
    await a.set('k', 'a-later', { ttl: '1h', tags: ['t', 'fresh'] });
    const took = performance.now() - began;
    proxy!.setDelay(0);
    assert.ok(stamped !== undefined && stamped > 0.25 * T, `premise: the stamp began ${Math.round(stamped ?? -1)} ms into the set(), after the replay wait`);
    assert.ok(took < 1.15 * T, `the set() took ${Math.round(took)} ms, past its one command timeout (${T} ms): the stamp waited one of its own`);
  });

  it('one made while Redis is still cut off is reported once, by its queued delete naming it (no second error)', async () => {
    const { a, stores } = await cutOffWith(async (a) => void (await a.invalidateTags(['t'])));
    const said: Array<{ where: string; message: string }> = [];
    a.on('error', ({ err, where }: { err: Error; where: string }) => void said.push({ where, message: err.message }));
    await a.set('k', 'a-later', { ttl: '1h', tags: ['t'] });
    await eventually(() => said.length > 0, 'the set() is reported', 5_000);
    assert.deepEqual(stores, [], 'premise: nothing stored');
    assert.deepEqual(said.map((e) => e.where), ['invalidation'], JSON.stringify(said));
    assert.match(said[0]!.message, /set\("k"\) was applied on this instance and queued/);
  });

  // What A queued while cut off, first what the set() waits for (a clear(), or an invalidation of its tag t merged at
  // the queue's head with one of u), then eight others; 'twice': t again after two others, which the set() made
  // after the first t's replay waits for too; a clear() queued once a try failed takes the place of the backlog
  // before it, and t after it is waited for. Made before: it waits for that invalidation alone. Four command timeouts
  // here (the replay of what it waits for and the store well within it), while the whole replay (ten items, three
  // round trips of ~0.1 s each) takes longer than that.
  const deletes = (a: TierCache, n: number) => {
    for (let i = 0; i < n; i++) void a.delete(`other${i}`);
  };
  const backlogs: ReadonlyArray<[string, (a: TierCache) => Promise<void>, ReadonlyArray<'after' | 'before'>]> = [
    ['an invalidation of its tag', async (a) => (await Promise.all([a.invalidateTags(['t']), a.invalidateTags(['u'])]), deletes(a, 8)), ['after', 'before']],
    ['a clear()', async (a) => (await a.clear(), deletes(a, 8)), ['after', 'before']],
    ['an invalidation of its tag, twice', async (a) => (void a.invalidateTags(['t']), deletes(a, 2), await a.invalidateTags(['t']), deletes(a, 6)), ['after']],
    // The first try failed (Redis down): the clear() then takes the place of what was queued before it (collapse).
    ['a clear() that took the place of an invalidation of its tag, then that tag again', async (a) => (await a.invalidateTags(['t']), await a.clear(), await a.invalidateTags(['t']), deletes(a, 8)), ['after']],
  ];
  for (const [what, queue, whens] of backlogs) {
    for (const when of whens) {
      it(`is stored once ${what} is replayed, though others queued after it are still being replayed (made ${when} that replay)`, async () => {
        const { a, stores } = await cutOffWith(queue, 4 * TIMEOUT);
        const queuedThen = queued(a);
        await healSlowly(a);
        if (when === 'after') await eventually(() => queued(a) < queuedThen, `${what} is replayed`, 10_000);
        await a.set('k', 'a-later', { ttl: '1h', tags: ['t'] });
        assert.ok(queued(a) > 0, 'the replay had ended (the test proves nothing)');
        await eventually(() => queued(a) === 0, "A's queue is replayed", 20_000);
        proxy!.setDelay(0);
        assert.deepEqual(stores, ['k'], 'the set() was not stored while invalidations of other keys were replayed');
        const d = await ctx.open({ l1: false, l2: { commandTimeout: '3s' } });
        assert.equal(await d.get('k'), 'a-later', 'the set() reported stored was undone by the replay');
        assert.equal(await a.get('k'), 'a-later');
      });
    }
  }
});
