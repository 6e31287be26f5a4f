// Why this test exists: pull() reads the entry in one step and takes it in a
// second, then invalidated the key as delete() does (its counter bumped, the
// L2 entry deleted). A set() from another instance landing between the two
// was deleted unseen: the newer value was lost though nobody got it. Now the
// second step takes the entry, and moves the key's counter, only while the
// counter still holds the version the pulled entry records (each set() moves
// it); otherwise the newer value stays, and the other instances are told the
// version it records, so their L1 copies of the pulled value stop matching.
// Three caches on one real redis-server; the interleaving is forced by a hook
// before the pull's second step (and, for a large value, before its GET).
import assert from 'node:assert/strict';
import { LARGE_ENTRY_BYTES } from '../../src/store/fill-protocol.js';
import { TAG_COUNTER_TTL_MS } from '../../src/store/redis-versions.js';
import type { TierCache } from '../../src/index.js';
import { useRedisCaches } from '../support/cache-context.js';
import { eventually } from '../support/eventually.js';
import { watch } from '../support/script-watch.js';

type Settle = (...args: unknown[]) => Promise<unknown>;

/** Runs `hook` once, before `cache`'s next pull sends its second step. */
function beforeSettle(cache: TierCache, hook: () => Promise<void>): void {
  const fills = (cache.store as unknown as { fills: { settleClaim: Settle } }).fills;
  const settle = fills.settleClaim.bind(fills);
  fills.settleClaim = async (...args: unknown[]) => {
    fills.settleClaim = settle;
    await hook();
    return settle(...args);
  };
}

/** Runs `hook` once, right after `cache`'s next pull's second step is answered (before the pull goes on). */
function afterSettle(cache: TierCache, hook: () => Promise<void>): void {
  const fills = (cache.store as unknown as { fills: { settleClaim: Settle } }).fills;
  const settle = fills.settleClaim.bind(fills);
  fills.settleClaim = async (...args: unknown[]) => {
    fills.settleClaim = settle;
    const settled = await settle(...args);
    await hook();
    return settled;
  };
}

/** The second step of `cache`'s next pull, once it is answered (a pull that misses does not wait for it). */
function nextSettle(cache: TierCache): Promise<unknown> {
  const fills = (cache.store as unknown as { fills: { settleClaim: Settle } }).fills;
  const settle = fills.settleClaim.bind(fills);
  return new Promise((resolve) => {
    fills.settleClaim = (...args: unknown[]) => {
      fills.settleClaim = settle;
      const settled = settle(...args);
      settled.then(resolve, resolve);
      return settled;
    };
  });
}

/** Runs `hook` once, after `cache`'s next lookup script is answered and before its reply is read. */
function afterLookup(cache: TierCache, hook: () => Promise<void>): void {
  const client = cache.store.l2!.client as unknown as Record<string, Settle>;
  const original = client.evalshaBuffer!;
  client.evalshaBuffer = async (...args: unknown[]) => {
    client.evalshaBuffer = original;
    const reply = await original.apply(client, args);
    await hook();
    return reply;
  };
}

describe('data API: a set() landing while another instance pulls the key', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'pull-set' });

  const sizes = [
    { name: 'small', value: (tag: string) => tag },
    { name: `large (>= ${LARGE_ENTRY_BYTES} bytes)`, value: (tag: string) => tag + 'x'.repeat(LARGE_ENTRY_BYTES) },
  ];

  for (const { name, value } of sizes) {
    it(`${name}: between the pull's read and its take, the pull gets the older value and the newer one stays, for every instance`, async () => {
      const a = await ctx.open();
      const b = await ctx.open();
      const c = await ctx.open();
      const older = value('older');
      const newer = value('newer');
      await b.set('k', older);
      assert.equal(await c.get('k'), older, 'C holds a copy of the older value in L1');
      beforeSettle(a, () => b.set('k', newer));
      assert.equal(await a.pull('k'), older, 'the pull got the value it read');
      assert.equal(await ctx.admin.exists(a.dataKey('k')), 1, 'the newer value was deleted by the pull of the older one');
      assert.equal(await a.get('k'), newer, 'the newer value does not read back on the pulling instance');
      assert.equal(await b.get('k'), newer, 'the newer value does not read back on the instance that set it');
      // C hears of the pull on the bus: its copy of the older value stops matching.
      await eventually(async () => (await c.get('k')) === newer, "C still serves its L1 copy of the pulled value (or not the newer one)", 5_000);
      // The newer value is there to be pulled, once.
      assert.equal(await c.pull('k'), newer);
      assert.equal(await b.pull('k'), undefined);
      assert.equal(await a.get('k'), undefined);
    });
  }

  it('large: a set() between the lookup and the GET of the bytes: the pull gets the newer value, and it is gone everywhere', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    const older = 'older' + 'x'.repeat(LARGE_ENTRY_BYTES);
    const newer = 'newer' + 'x'.repeat(LARGE_ENTRY_BYTES);
    await b.set('k', older);
    const watched = watch(a);
    watched.beforeGet(async () => void (await b.set('k', newer)));
    assert.equal(await a.pull('k'), newer, 'the pull did not get the bytes it read');
    assert.equal(watched.hooked(), 1, 'the set() was not made between the lookup and the GET');
    assert.equal(await ctx.admin.exists(a.dataKey('k')), 0, 'the value the pull got is still in Redis');
    assert.equal(await b.pull('k'), undefined, 'a value was taken twice');
    assert.equal(await b.get('k'), undefined, 'the value the pull got still reads on the instance that set it');
  });

  it('a pull that finds the value invalid: a set() landing between its read and its delete stays', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await b.set('k', 'older', { tags: ['t'] });
    await b.invalidateTags(['t']);
    beforeSettle(a, () => b.set('k', 'newer'));
    const settled = nextSettle(a);
    assert.equal(await a.pull('k'), undefined, 'the invalid value was handed over');
    await settled;
    assert.equal(await ctx.admin.exists(a.dataKey('k')), 1, 'the newer value was deleted with the invalid one');
    assert.equal(await a.get('k'), 'newer');
    assert.equal(await b.pull('k'), 'newer');
  });

  it("a set() landing right after the pull's take stays: the pull's Redis side was all done in the take", async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await b.set('k', 'older');
    afterSettle(a, () => b.set('k', 'newer'));
    assert.equal(await a.pull('k'), 'older');
    assert.equal(await ctx.admin.exists(a.dataKey('k')), 1, 'the newer value was deleted after the pull that took the older one');
    assert.equal(await a.get('k'), 'newer');
    assert.equal(await b.pull('k'), 'newer');
  });

  // A pull moves the key's counter in its take, as delete() does: a read on another instance that had the value
  // from Redis just before the take, and keeps it after it heard of the pull, must not serve it again. Also when
  // Redis went back (a failover to a replica behind) and the counter holds less than the version the value records.
  for (const wentBack of [false, true]) {
    it(`a read on another instance that raced the pull does not keep the pulled value${wentBack ? ' (the counter gone back below the value\'s version)' : ''}`, async () => {
      const a = await ctx.open();
      const b = await ctx.open();
      const c = await ctx.open();
      // Its counter lives as long as the value (10 min): the take gives it the life of a bumped counter.
      await b.set('k', 'token', { ttl: '10m' });
      const counter = a.store.versions.counterKeyOf(`key:${a.dataKey('k')}`);
      const recorded = Number(await ctx.admin.get(counter));
      if (wentBack) beforeSettle(a, async () => void (await ctx.admin.set(counter, String(recorded - 1), 'KEEPTTL')));
      let pulled: unknown;
      afterLookup(c, async () => {
        const heard = c.stats().bus.received;
        pulled = await a.pull('k');
        await eventually(() => c.stats().bus.received > heard, 'C hears of the pull');
      });
      await c.get('k');
      assert.equal(pulled, 'token', 'the pull did not get the value');
      assert.equal(await c.get('k'), undefined, 'C serves the pulled value again');
      assert.ok(Number(await ctx.admin.get(counter)) > recorded, 'the key counter was not moved past the pulled value');
      const ttl = await ctx.admin.pttl(counter);
      // As delete()'s bump leaves it: a bumped counter's life, not the value's (nor for ever).
      assert.ok(ttl > TAG_COUNTER_TTL_MS - 60_000 && ttl <= TAG_COUNTER_TTL_MS, `the key counter lives ${ttl} ms`);
    });
  }

  it('a read on the pulling instance that raced its own pull does not keep the pulled value', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await b.set('k', 'token');
    let pulled: unknown;
    afterLookup(a, async () => void (pulled = await a.pull('k')));
    await a.get('k');
    assert.equal(pulled, 'token', 'the pull did not get the value');
    assert.equal(await a.get('k'), undefined, 'the pulling instance serves the pulled value again');
  });

  it("a set() over a key of another type between the pull's script and its GET is not handed over unclaimed", async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await ctx.admin.rpush(a.dataKey('k'), 'foreign');
    const watched = watch(a);
    watched.beforeGet(async () => void (await b.set('k', 'v')));
    assert.equal(await a.pull('k'), undefined, 'the pull handed over a value it never claimed');
    assert.equal(watched.hooked(), 1, 'the set() was not made between the script and the GET');
    assert.equal(await b.pull('k'), 'v', 'the value the pull read is gone');
    assert.equal(await a.pull('k'), undefined);
  });

  it('pull() of bytes that are no entry: a miss (never a throw), and they are dropped', async () => {
    const a = await ctx.open();
    await ctx.admin.set(a.dataKey('k'), 'not an entry of any tiercache');
    assert.equal(await a.pull('k'), undefined);
    await eventually(async () => (await ctx.admin.exists(a.dataKey('k'))) === 0, 'the damaged bytes stayed in Redis');
  });

  // Also with its key counter gone (evicted, expired): the release does not go on to take or delete then.
  for (const counterGone of [false, true]) {
    it(`a pull whose value Redis could not vouch for lets it go: neither taken nor deleted${counterGone ? ' (its key counter gone)' : ', the next pull gets it'}`, async () => {
      const a = await ctx.open();
      const b = await ctx.open();
      // Tagged 't', which A has never heard of: only Redis can vouch for the value (a read of its counters).
      await b.set('k', 'v', { tags: ['t'] });
      if (counterGone) await ctx.admin.del(a.store.versions.counterKeyOf(`key:${a.dataKey('k')}`));
      const versions = a.store.versions as unknown as { askRedis: Settle };
      const askRedis = versions.askRedis.bind(versions);
      versions.askRedis = async () => {
        versions.askRedis = askRedis;
        return undefined;
      };
      const settled = nextSettle(a);
      assert.equal(await a.pull('k'), undefined);
      await settled;
      assert.equal(await ctx.admin.exists(a.dataKey('k')), 1, 'a value nobody got was deleted');
      if (!counterGone) assert.equal(await a.pull('k'), 'v');
    });
  }

  it('a pull of a value whose key counter is gone (evicted, expired) takes it as delete() would: the key works after it', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    // A set it: it knows the key's version, and vouches for the value itself when Redis's counter is missing.
    await a.set('k', 'v');
    assert.equal(await b.get('k'), 'v');
    const counter = a.store.versions.counterKeyOf(`key:${a.dataKey('k')}`);
    await ctx.admin.del(counter);
    assert.equal(await a.pull('k'), 'v');
    assert.equal(await ctx.admin.exists(a.dataKey('k')), 0);
    assert.equal(await ctx.admin.exists(counter), 1, "the key's counter was not made again past the pulled value");
    await eventually(async () => (await b.get('k')) === undefined, "B still serves its L1 copy of the pulled value");
    await a.set('k', 'w');
    assert.equal(await a.get('k'), 'w');
    assert.equal(await b.get('k'), 'w');
  });

  it('no set() in between: the pull takes the value, and an L1 copy on another instance is dropped', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await b.set('k', 'v');
    assert.equal(await b.get('k'), 'v');
    assert.equal(await a.pull('k'), 'v');
    assert.equal(await ctx.admin.exists(a.dataKey('k')), 0);
    await eventually(async () => (await b.get('k')) === undefined, "B still serves its L1 copy of the pulled value", 5_000);
    assert.equal(await b.pull('k'), undefined);
  });
});
