// The Redis side of a fill (src/store/fill-protocol.ts), step by step on a
// real redis-server: the lookup takes the lock and reads (or provisionally
// creates) the counters; the store step stores only if no counter moved and
// renews them; a fill that stores nothing deletes the counters it created —
// but never ones another fill has read meanwhile, whose store would then be
// refused for nothing.
import assert from 'node:assert/strict';
import type { TierCache } from '../../src/index.js';
import { EntryKind, type StoredEntry } from '../../src/store/entry.js';
import { PROVISIONAL_COUNTER_TTL_MS } from '../../src/store/fill-protocol.js';
import { NO_TICKET } from '../../src/store/tiered-store.js';
import { useRedisCaches } from '../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function entryFor(stamp: { epoch: number; tags: readonly string[]; versions: readonly number[] }, body: string): StoredEntry {
  const now = Date.now();
  return { kind: EntryKind.Bytes, createdAt: now, freshUntil: now + 60_000, staleUntil: now + 60_000, epoch: stamp.epoch, tags: stamp.tags, versions: stamp.versions, head: Buffer.alloc(0), body: Buffer.from(body) };
}

describe('the Redis side of a fill', function () {
  const ctx = useRedisCaches({ prefix: 'fillproto', flush: true });
  const counterOf = (cache: TierCache, tag: string) => (tag.startsWith('key:') ? `{${tag.slice(4)}}:v` : `${cache.prefix}:v:{${tag}}`);

  it('a fill that stores nothing deletes the counters its lookup created, and releases its lock', async () => {
    const cache = await ctx.open({ l1: false });
    const store = cache.store;
    const lookup = await store.lookupForFill(`${cache.prefix}:k1`, ['key:k1', 'fresh-tag'], cache.fillLock?.request(`${cache.prefix}:k1`));
    assert.equal(lookup.lock, 'ours');
    assert.equal(await ctx.admin.exists(counterOf(cache, 'fresh-tag')), 1);
    const ttl = await ctx.admin.pttl(counterOf(cache, 'fresh-tag'));
    assert.ok(ttl > 0 && ttl <= PROVISIONAL_COUNTER_TTL_MS, `a provisional counter lives ${ttl} ms`);
    store.abandonFill(lookup.ticket);
    await sleep(50);
    assert.equal(await ctx.admin.exists(counterOf(cache, 'fresh-tag')), 0, 'the abandoned fill left its counter');
    assert.equal(await ctx.admin.exists(`${counterOf(cache, 'fresh-tag')}:new`), 0, "the abandoned fill left its counter's mark");
    assert.equal(await ctx.admin.exists(`{${cache.prefix}:k1}:lock`), 0, 'the abandoned fill left its lock');
  });

  it("set() stores an entry recording its key counter one version on, moves the counter there (its TTL kept), and a fill stamped before is refused", async () => {
    const cache = await ctx.open({ l1: false });
    const store = cache.store;
    const key = `${cache.prefix}:k9`;
    const fill = await store.lookupForFill(key, [`key:${key}`], cache.fillLock?.request(key));
    const before = fill.stamp!.versions[0]!;
    const setStamp = await store.versions.stamp([`key:${key}`]);
    assert.equal(setStamp.versions[0], before);
    assert.equal(await store.set(key, entryFor(setStamp, 'set value')), true);
    const moved = Number(await ctx.admin.get(counterOf(cache, `key:${key}`)));
    assert.ok(moved > before, `the key counter did not move on (${before} -> ${moved})`);
    assert.ok((await ctx.admin.pttl(counterOf(cache, `key:${key}`))) > 0, 'the moved counter lost its TTL');
    const stored = await store.get(key);
    assert.equal(stored?.entry.body.toString(), 'set value');
    assert.deepEqual(stored?.entry.versions, [moved], 'the stored entry does not record the moved version');
    assert.equal(await store.storeFill([{ key, entry: entryFor(fill.stamp!, 'fill value'), l1Entry: entryFor(fill.stamp!, 'fill value') }], fill.ticket), false, 'the fill stamped before the set() was stored');
    assert.equal((await store.get(key))?.entry.body.toString(), 'set value');
    assert.equal(await ctx.admin.exists(`{${key}}:lock`), 0, 'the refused fill left its lock');
  });

  it("a fill that stores (an HTTP answer, a getOrSet() value) leaves its key counter where its lookup read it: only set() moves it", async () => {
    const cache = await ctx.open({ l1: false });
    const store = cache.store;
    const key = `${cache.prefix}:k11`;
    const fill = await store.lookupForFill(key, [`key:${key}`], cache.fillLock?.request(key));
    const read = Number(await ctx.admin.get(counterOf(cache, `key:${key}`)));
    const entry = entryFor(fill.stamp!, 'fill value');
    assert.equal(await store.storeFill([{ key, entry, l1Entry: entry }], fill.ticket), true);
    assert.equal(Number(await ctx.admin.get(counterOf(cache, `key:${key}`))), read, 'a fill moved its key counter');
    assert.deepEqual((await store.get(key))?.entry.versions, [read]);
  });

  it('set() of a key whose counter is gone (evicted, expired, damaged) moves it past every version it had, never back to what the set() recorded', async () => {
    const cache = await ctx.open({ l1: false });
    const store = cache.store;
    const key = `${cache.prefix}:k10`;
    const counter = counterOf(cache, `key:${key}`);
    const stamp = await store.versions.stamp([`key:${key}`]);
    for (let i = 0; i < 3; i++) await ctx.admin.incr(counter); // moved on elsewhere (other set()s, invalidations)
    const highest = Number(await ctx.admin.get(counter));
    for (const lose of [() => ctx.admin.del(counter), () => ctx.admin.set(counter, 'x')]) {
      await lose();
      assert.equal(await store.set(key, entryFor(stamp, 'value')), true);
      const moved = Number(await ctx.admin.get(counter));
      assert.ok(moved > highest, `the lost counter came back at ${moved}, not past ${highest}`);
      assert.deepEqual((await store.get(key))?.entry.versions, [moved]);
    }
  });

  it('a fill without the lock that stores nothing deletes the counters its lookup created too', async () => {
    const cache = await ctx.open({ l1: false, l2: { lockTimeout: 0 } });
    assert.equal(cache.fillLock, undefined);
    const lookup = await cache.store.lookupForFill(`${cache.prefix}:k1`, ['key:k1', 'fresh-tag'], undefined);
    assert.equal(lookup.lock, 'none');
    assert.equal(await ctx.admin.exists(counterOf(cache, 'fresh-tag')), 1);
    cache.store.abandonFill(lookup.ticket);
    await sleep(50);
    assert.equal(await ctx.admin.exists(counterOf(cache, 'fresh-tag')), 0, 'the abandoned fill left its counter');
    assert.equal(await ctx.admin.exists(counterOf(cache, 'key:k1')), 0, 'the abandoned fill left its key counter');
  });

  it("a counter another fill read survives the abandon of the fill that created it, and that fill's store goes through", async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: a.prefix });
    const first = await a.store.lookupForFill(`${a.prefix}:k1`, ['shared-tag'], undefined);
    assert.equal(first.ticket.createdTags.includes('shared-tag'), true);
    const second = await b.store.lookupForFill(`${a.prefix}:k2`, ['shared-tag'], undefined);
    assert.equal(second.ticket.createdTags.includes('shared-tag'), false, 'the second lookup found the counter');
    a.store.abandonFill(first.ticket);
    await sleep(50);
    assert.equal(await ctx.admin.exists(counterOf(a, 'shared-tag')), 1, 'the abandon deleted a counter another fill had read');
    const entry = entryFor(second.stamp!, 'k2 body');
    assert.equal(await b.store.storeFill([{ key: `${a.prefix}:k2`, entry, l1Entry: entry }], second.ticket), true);
    assert.ok((await ctx.admin.pttl(counterOf(a, 'shared-tag'))) > PROVISIONAL_COUNTER_TTL_MS * 2, 'the store renewed the counter');
  });

  it("an abandoned fill leaves the counter it created once another instance's entry recorded it, whatever TTL that entry gave it", async () => {
    // A fill whose lookup failed is stamped from a plain read (as a set() is), and a store gives its key
    // counter the entry's own lifetime: for an entry of 60 s or less, a counter no older-looking than
    // the provisional one a lookup makes. The abandon that followed deleted it, and B's entry read as a miss.
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: a.prefix });
    const key = `${a.prefix}:k-recorded`;
    const tag = `key:${key}`;
    const fill = await a.store.lookupForFill(key, [tag], a.fillLock!.request(key));
    assert.deepEqual(fill.ticket.createdTags, [tag]);
    const stamp = await b.store.versions.stamp([tag]);
    const now = Date.now();
    const entry: StoredEntry = { ...entryFor(stamp, 'stored by B'), freshUntil: now + 30_000, staleUntil: now + 30_000 };
    assert.equal(await b.store.storeFill([{ key, entry, l1Entry: entry }], NO_TICKET), true);
    const left = await ctx.admin.pttl(counterOf(a, tag));
    assert.ok(left > 0 && left <= PROVISIONAL_COUNTER_TTL_MS, `the recorded counter lives ${left} ms`);
    assert.equal(await ctx.admin.exists(`${counterOf(a, tag)}:new`), 0, "the store left the counter marked as A's lookup's");
    a.store.abandonFill(fill.ticket);
    await sleep(50);
    assert.equal(await ctx.admin.exists(`{${key}}:lock`), 0, 'the abandoned fill left its lock');
    assert.equal(await ctx.admin.exists(counterOf(a, tag)), 1, "the abandon deleted the counter B's entry recorded");
    assert.equal((await b.store.get(key))?.entry.body.toString(), 'stored by B');
  });

  it('refuses to store a fill overtaken by an invalidation of one of its tags, and releases the lock anyway', async () => {
    const cache = await ctx.open({ l1: false });
    const lockRequest = cache.fillLock!.request(`${cache.prefix}:k1`);
    const lookup = await cache.store.lookupForFill(`${cache.prefix}:k1`, ['movie:7'], lockRequest);
    await cache.invalidateTags(['movie:7']);
    const entry = entryFor(lookup.stamp!, 'old');
    assert.equal(await cache.store.storeFill([{ key: `${cache.prefix}:k1`, entry, l1Entry: entry }], lookup.ticket), false);
    assert.equal(await ctx.admin.exists(`${cache.prefix}:k1`), 0);
    assert.equal(await ctx.admin.exists(lockRequest.key), 0);
  });
  it('a store renews a shared counter only once less than 90% of its week is left, and its own key counter whenever it would not outlive the entry', async () => {
    const cache = await ctx.open({ l1: false });
    const week = 7 * 24 * 3600_000;
    const fill = async (k: string, tags: string[], life = 60_000) => {
      const key = `${cache.prefix}:${k}`;
      const lookup = await cache.store.lookupForFill(key, [`key:${key}`, ...tags], undefined);
      const entry = { ...entryFor(lookup.stamp!, k), staleUntil: Date.now() + life };
      assert.equal(await cache.store.storeFill([{ key, entry, l1Entry: entry }], lookup.ticket), true);
      return key;
    };
    await fill('k1', ['shared']);
    const shared = counterOf(cache, 'shared');
    assert.ok((await ctx.admin.pttl(shared)) > 0.99 * week, 'the first store gave the shared counter a week');
    await ctx.admin.pexpire(shared, Math.round(0.95 * week));
    await fill('k2', ['shared']);
    assert.ok((await ctx.admin.pttl(shared)) <= 0.95 * week, 'a counter with 95% of its week left was renewed (a write per fill)');
    await ctx.admin.pexpire(shared, Math.round(0.85 * week));
    await fill('k3', ['shared']);
    assert.ok((await ctx.admin.pttl(shared)) > 0.99 * week, 'a counter with 85% of its week left was not renewed');
    // An entry's own counter is made with the provisional TTL by the lookup: an entry that lives longer gets it renewed to its life.
    const long = await fill('k4', [], 10 * 60_000);
    const own = await ctx.admin.pttl(counterOf(cache, `key:${long}`));
    assert.ok(own > 9 * 60_000 && own <= 10 * 60_000 + 50, `the counter of an entry living 10 min lives ${own} ms`);
  });
  it('a counter turned into a key of another type while the handler ran reads as moved: nothing is stored, the lock is released, and no error is counted', async () => {
    const cache = await ctx.open({ l1: false });
    const key = `${cache.prefix}:k-wrongtype`;
    const lookup = await cache.store.lookupForFill(key, [`key:${key}`, 'typed-tag'], cache.fillLock!.request(key));
    assert.equal(lookup.lock, 'ours');
    await ctx.admin.del(counterOf(cache, 'typed-tag'));
    await ctx.admin.hset(counterOf(cache, 'typed-tag'), 'x', '1');
    const errors = cache.store.l2!.errors;
    const entry = entryFor(lookup.stamp!, 'body');
    assert.equal(await cache.store.storeFill([{ key, entry, l1Entry: entry }], lookup.ticket), false);
    assert.equal(await ctx.admin.exists(key), 0, 'stored over a counter that is not one');
    assert.equal(await ctx.admin.exists(`{${key}}:lock`), 0, 'the lock was left held');
    assert.equal(cache.store.l2!.errors, errors, 'the store step failed with an error');
  });
  it('an entry recording 2,500 counters (more than one MGET takes in the store step) is stored, and refused once the last of them moved', async () => {
    const cache = await ctx.open({ l1: false });
    const tags = Array.from({ length: 2_500 }, (_, i) => `many-${i}`);
    for (const [name, bump] of [['k-many', false], ['k-many-moved', true]] as const) {
      const key = `${cache.prefix}:${name}`;
      const lookup = await cache.store.lookupForFill(key, [`key:${key}`, ...tags], undefined);
      if (bump) await ctx.admin.incr(counterOf(cache, tags[tags.length - 1]!));
      const entry = entryFor(lookup.stamp!, name);
      assert.equal(await cache.store.storeFill([{ key, entry, l1Entry: entry }], lookup.ticket), !bump);
      assert.equal(await ctx.admin.exists(key), bump ? 0 : 1);
    }
  });
});
