// The data API (get / set / delete / getOrSet / has / pull / source, stats,
// health, ready, close, events) against real redis-server processes: values
// round-trip exactly through L2, instances sharing one Redis see each other's
// values and invalidations, and a dead, frozen or corrupt Redis degrades to
// misses instead of hanging or throwing. No Redis mock anywhere.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { isDeepStrictEqual } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import express from 'express';
import { Redis } from 'ioredis';
import request from 'supertest';
import { createCache, TierCache, TierCacheClosedError, TierCacheConfigError, TierCacheError, type CacheOptions } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { ENTRY_FORMAT, encodeEntry } from '../../src/store/entry-codec.js';
import { EntryKind } from '../../src/store/entry.js';
import { MAX_ENTRY_TAGS } from '../../src/store/fill-protocol.js';
import { EPOCH_CHECK_MS } from '../../src/store/invalidation-bus.js';
import { useCleanup, useRedisCaches } from '../support/cache-context.js';
import { gatedLoader } from '../support/gated-loader.js';
import { freePort } from '../support/redis-server.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

let namespaceCounter = 0;
/** A namespace no other test uses (valid: letters, digits, '-', '_', '.'). */
function nextNamespace(): string {
  return `t${process.pid}-${++namespaceCounter}`;
}

/**
 * The command timeout of the bulk-invalidation tests' caches: tens of scripts in a row, each of which must not pass
 * it while Redis is healthy, on a loaded machine too (the 200 ms default is a bound for one command, not a health test).
 */
const HEALTHY_REDIS_MS = 3_000;
/**
 * How soon another instance must have dropped what a bulk invalidation covered ("at once": as its messages arrive).
 * Far below what it would take otherwise (an L1 lifetime: 30 s by default); 200 ms before, of which up to 112 were
 * seen taken on a loaded machine.
 */
const AT_ONCE_MS = 3_000;

/** Polls `check` until it returns true or `timeoutMs` passes; returns the last result. */
async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 1000, everyMs = 10): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (performance.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await run();
  return { value, ms: performance.now() - start };
}

/** A full garbage collection (V8's gc() turned on for this process). */
const collectGarbage: () => void = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

/** Heap and buffers in use after a full garbage collection (twice: the second waits for the first's sweeping of buffers). */
function heldBytes(): number {
  collectGarbage();
  collectGarbage();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

const MiB = 1024 * 1024;

const FILLER = 'k'.repeat(10_000);

/** A flat string of its own (as keys read from requests or records are), ~10 KB. */
function longKey(label: string, i: number): string {
  const key = `${label}${i}:${FILLER}`;
  key.charCodeAt(0); // V8 flattens a concatenated string when a character is read: the key holds its 10 KB itself
  return key;
}

/** One redis-server per describe, FLUSHALL before each test, a fresh namespace per test, caches closed after it. */
const useRedis = () => useRedisCaches({ prefix: 't', flush: true });

/** Every 'error' the caches emit and every time their L2 goes down, as `name: message` lines. */
function reportedProblems(caches: Record<string, TierCache>): string[] {
  const problems: string[] = [];
  for (const [name, cache] of Object.entries(caches)) {
    cache.on('error', (e) => problems.push(`${name} error (${e.where}): ${e.err.message}`));
    cache.on('l2', (e) => {
      if (e.state === 'down') problems.push(`${name}: L2 reported down (${e.err?.message})`);
    });
  }
  return problems;
}

/** The current namespace epoch in Redis (created by the cache's ready()). */
async function epochOf(admin: Redis, ns: string): Promise<number> {
  const raw = await admin.get(`{${ns}}:epoch`);
  assert.notEqual(raw, null, `no epoch counter {${ns}}:epoch in Redis`);
  return Number(raw);
}

const JSON_VALUES: Record<string, unknown> = {
  nested: {
    user: { id: 42, name: 'Zoë 日本語 😀', roles: ['admin', 'editor'], address: { city: 'Zürich', zip: null } },
    deep: { a: { b: { c: { d: { e: [1, [2, [3, [4]]]] } } } } },
    empty: { obj: {}, arr: [] },
  },
  unicode: 'héllo — 日本語 — 😀👍🏽 — e\u0301 — \u0000 \u2028 "quoted" \\ \n\t',
  numbers: [0, 1, -1, 1.5, -0.25, 1e300, -1e-300, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 53 + 2],
  nullValue: null,
  arrayOfMixed: [null, true, false, 'x', 1, { k: [null] }, []],
  topString: 'just a string',
  topNumber: 3.14159,
  topFalse: false,
  topZero: 0,
  emptyString: '',
  emptyArray: [],
  emptyObject: {},
};

describe('data API: values through L2', () => {
  const ctx = useRedis();

  it('stores data keys as `${namespace}:d:${key}`', async () => {
    const a = await ctx.open();
    assert.equal(a.dataKey('user:42'), `${ctx.ns}:d:user:42`);
    await a.set('user:42', { id: 42 });
    assert.equal(await ctx.admin.exists(`${ctx.ns}:d:user:42`), 1);
  });

  it('keeps keys that differ only in lone surrogates apart, on every instance', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('user:\uD800', { who: 'D800' });
    assert.equal(await b.get('user:\uDC00'), undefined);
    assert.equal(await b.get('user:\uDBFF'), undefined);
    let loads = 0;
    const loaded = await b.getOrSet('user:\uDFFF', () => {
      loads++;
      return { who: 'DFFF' };
    });
    assert.deepStrictEqual(loaded, { who: 'DFFF' });
    assert.equal(loads, 1, 'the loader was skipped: another key’s value was returned');
    assert.deepStrictEqual(await b.get('user:\uD800'), { who: 'D800' });
  });

  it('keeps a key longer than 256 characters under a digest of it: its value reaches another instance, a key one character apart misses', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    const key = longKey('user', 1);
    assert.ok(a.dataKey(key).length < 80, a.dataKey(key));
    await a.set(key, { long: true });
    assert.deepStrictEqual(await b.get(key), { long: true });
    assert.equal(await b.get(key + 'x'), undefined);
    assert.equal(await b.get(longKey('user', 2)), undefined);
  });

  it('round-trips JSON values exactly through L2 (read by a second instance)', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    for (const [key, value] of Object.entries(JSON_VALUES)) await a.set(key, value);
    const before = b.stats();
    for (const [key, value] of Object.entries(JSON_VALUES)) {
      assert.deepStrictEqual(await b.get(key), value, `value of ${key}`);
    }
    const after = b.stats();
    const n = Object.keys(JSON_VALUES).length;
    assert.equal(after.l2.hits - before.l2.hits, n, 'every read came from L2');
    assert.equal(after.l1.hits - before.l1.hits, 0, 'no read came from B’s L1');
  });

  it('round-trips a Buffer with all 256 byte values exactly through L2', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    const value = Buffer.concat([ALL_BYTES, Buffer.from(ALL_BYTES).reverse(), Buffer.alloc(1000, 0), ALL_BYTES]);
    await a.set('bytes', value);
    await a.set('empty-bytes', Buffer.alloc(0));
    const before = b.stats().l2.hits;
    const got = await b.get<Buffer>('bytes');
    assert.ok(Buffer.isBuffer(got), `expected a Buffer, got ${typeof got}`);
    assert.deepStrictEqual(got, value);
    const empty = await b.get<Buffer>('empty-bytes');
    assert.ok(Buffer.isBuffer(empty));
    assert.equal(empty.length, 0);
    assert.equal(b.stats().l2.hits - before, 2);
  });

  it('a value set on one instance is read by the other, both ways', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('from-a', { by: 'a' });
    await b.set('from-b', { by: 'b' });
    assert.deepStrictEqual(await b.get('from-a'), { by: 'a' });
    assert.deepStrictEqual(await a.get('from-b'), { by: 'b' });
    // An overwrite on B reaches A once A's copy is gone from A's L1 (A never read it).
    await b.set('from-a', { by: 'b now' });
    const c = await ctx.open();
    assert.deepStrictEqual(await c.get('from-a'), { by: 'b now' });
  });

  it('a getOrSet() loader on another instance that began before a plain set() does not store its older value over it: its callers get it, the cache keeps the set value', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    let release!: () => void;
    const loading = new Promise<void>((resolve) => (release = resolve));
    let started = false;
    const slow = a.getOrSet('row:7', async () => {
      started = true;
      await loading; // read the row before the write, answer after it
      return { v: 'old' };
    });
    for (let i = 0; i < 100 && !started; i++) await sleep(5);
    assert.ok(started, "A's loader did not start");
    await b.set('row:7', { v: 'new' });
    release();
    assert.deepStrictEqual(await slow, { v: 'old' }, "A's callers get what its loader returned");
    const c = await ctx.open();
    assert.deepStrictEqual(await c.get('row:7'), { v: 'new' }, "A's loader stored its older value over B's set()");
    assert.deepStrictEqual(await b.get('row:7'), { v: 'new' });
    assert.deepStrictEqual(await a.get('row:7'), { v: 'new' }, 'A kept serving its refused value');
    // A later set() on B moves the key on again (its own copy knows the version it stored).
    await b.set('row:7', { v: 'newer' });
    assert.deepStrictEqual(await (await ctx.open()).get('row:7'), { v: 'newer' });
    assert.deepStrictEqual(await b.get('row:7'), { v: 'newer' });
    // And a delete() elsewhere still reaches the copy that recorded the moved version.
    await (await ctx.open()).delete('row:7');
    for (let i = 0; i < 100 && (await b.get('row:7')) !== undefined; i++) await sleep(5);
    assert.equal(await b.get('row:7'), undefined, "a delete() did not reach B's copy of its set() value");
    assert.equal(await a.get('row:7'), undefined);
  });

  it('concurrent set()s of one key are all stored, in the order they were called: the last one is what every instance reads', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    let stores = 0;
    a.on('store', () => stores++);
    for (let round = 0; round < 3; round++) {
      stores = 0;
      await Promise.all(Array.from({ length: 6 }, (_, i) => a.set(`hot:${round}`, `v${i}`)));
      assert.equal(stores, 6, 'a set() was refused, its value lost without an error');
      assert.equal(await a.get(`hot:${round}`), 'v5');
      assert.equal(await b.get(`hot:${round}`), 'v5', 'Redis holds another than the last value set');
    }
  });

  it('a set() whose entry Redis cannot hold (a tag over 64 KiB) stays in L1 and is still deleted by a deleteMany() from another instance', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('big-tag', 'a-value', { tags: ['x'.repeat(70_000)] });
    assert.equal(await a.get('big-tag'), 'a-value');
    const result = await b.deleteMany(['big-tag', 'other']);
    assert.equal(result.delivered, true);
    for (let i = 0; i < 100 && (await a.get('big-tag')) !== undefined; i++) await sleep(5);
    assert.equal(await a.get('big-tag'), undefined, "the deleteMany() did not reach A's copy");
  });

  it("a getOrSet() fill whose entry Redis cannot hold (a tag over 64 KiB) is kept in L1, and its 'store' event names L1 alone", async () => {
    const a = await ctx.open({ l2: { commandTimeout: HEALTHY_REDIS_MS } });
    const b = await ctx.open({ l1: false, l2: { commandTimeout: HEALTHY_REDIS_MS } });
    const tiers: unknown[] = [];
    a.on('store', (e) => tiers.push(e.tiers));
    assert.equal(await a.getOrSet('unfit-fill', () => 'loaded', { tags: ['x'.repeat(70_000)] }), 'loaded');
    assert.equal(await a.get('unfit-fill'), 'loaded', 'A does not keep it in L1');
    assert.equal(await b.get('unfit-fill'), undefined, 'L2 holds the fill');
    assert.deepEqual(tiers, [['L1']], "the 'store' event names a tier the value is not in");
  });

  // With no L1 to keep it, such a fill is stored nowhere: storeInL2 resolves false, not L1_ONLY.
  it("a getOrSet() fill whose entry Redis cannot hold, on an instance without L1, is stored nowhere and says no 'store'", async () => {
    const a = await ctx.open({ l1: false, l2: { commandTimeout: HEALTHY_REDIS_MS } });
    const tiers: unknown[] = [];
    a.on('store', (e) => tiers.push(e.tiers));
    assert.equal(await a.getOrSet('unfit-nowhere', () => 'loaded', { tags: ['x'.repeat(70_000)] }), 'loaded');
    assert.equal(await a.get('unfit-nowhere'), undefined, 'the fill is held somewhere');
    assert.deepEqual(tiers, [], "a 'store' event for a fill stored nowhere");
  });

  // Redis cannot hold the entry, so the set() keeps it in L1 alone (README), but the key's older value in Redis must not
  // answer for it after the set() resolved: not on another instance, nor on this one once its L1 copy is gone.
  for (const [why, tags, limit] of [
    ['a tag over 64 KiB', ['x'.repeat(70_000)], /65,535 bytes/],
    [`${MAX_ENTRY_TAGS + 904} tags`, Array.from({ length: MAX_ENTRY_TAGS + 903 }, (_, i) => `t${i}`), new RegExp(`at most ${MAX_ENTRY_TAGS} tags`)],
  ] as const) {
    it(`a set() over an older value whose entry Redis cannot hold (${why}) stays in its L1, reported; the older value answers for it nowhere`, async () => {
      const a = await ctx.open({ l2: { commandTimeout: HEALTHY_REDIS_MS } });
      const b = await ctx.open({ l1: false, l2: { commandTimeout: HEALTHY_REDIS_MS } });
      const problems = reportedProblems({ A: a, B: b });
      await a.set('over-old', 'older');
      assert.equal(await b.get('over-old'), 'older');
      const stores: (readonly string[])[] = [];
      a.on('store', (e) => stores.push(e.tiers));
      const errors = a.stats().l2.errors;
      await a.set('over-old', 'newer', { tags });
      assert.equal(await a.get('over-old'), 'newer', 'A does not keep it in L1');
      assert.equal(await b.get('over-old'), undefined, 'another instance reads the value from before the set()');
      assert.equal(problems.length, 1, problems.join('\n'));
      assert.match(problems[0]!, limit);
      // Said as what it is: a store to L1 alone, and a command Redis was not sent, counted as one that failed.
      assert.deepEqual(stores, [['L1']], "the 'store' events of the set()");
      assert.equal(a.stats().l2.errors - errors, 1, 'L2 errors counted for the set()');
      a.store.l1!.clear();
      assert.equal(await a.get('over-old'), undefined, 'A reads the value from before its set() once its L1 copy is gone');
    });
  }

  it('a set() whose entry Redis cannot hold leaves in L1 a set() of the key made here while it read the version its drop moved the key to', async () => {
    const a = await ctx.open({ l2: { commandTimeout: HEALTHY_REDIS_MS } });
    a.on('error', () => undefined);
    const versions = a.store.versions;
    const stamp = versions.stamp;
    let armed = false;
    let later: Promise<void> | undefined;
    // The drop is delivered ('invalidate'), then the unfit value's stamp is read: the other set() lands in L1 meanwhile.
    a.once('invalidate', () => (armed = true));
    versions.stamp = async (...args) => {
      if (armed) {
        armed = false;
        later = a.set('meanwhile', 'newest');
        await later;
      }
      return stamp.apply(versions, args);
    };
    await a.set('meanwhile', 'newer', { tags: ['x'.repeat(70_000)] });
    versions.stamp = stamp;
    assert.ok(later !== undefined, 'no set() was made while the unfit one read its stamp: the test proves nothing');
    assert.equal(await a.get('meanwhile'), 'newest', 'the unfit value took the place of the set() made after it');
  });

  // keepInL1Only's drop queued (Redis takes no invalidation from this user): a value in L1 recording the key's version
  // from before the drop would be served here until the drop is delivered, while other instances read the older one.
  it('a set() whose entry Redis cannot hold, on an instance whose drop of the key Redis refuses for now, is kept nowhere until it is delivered', async () => {
    const user = `nopub-${ctx.ns}`;
    await ctx.admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all', '-publish', '-spublish');
    const a = await ctx.open({ redis: `redis://${user}:pw@127.0.0.1:${ctx.redis.port}`, l2: { commandTimeout: HEALTHY_REDIS_MS } });
    a.on('error', () => undefined);
    await a.set('refused-drop', 'older');
    assert.equal(await a.get('refused-drop'), 'older');
    await a.set('refused-drop', 'newer', { tags: ['x'.repeat(70_000)] });
    assert.equal(a.health().l2, 'ok', 'L2 went down: the test proves nothing');
    assert.equal(await a.get('refused-drop'), undefined, 'A serves the value of a set() whose drop of the older one Redis has not taken');
    // Delivered at its next try, before close(), which would wait for it.
    await ctx.admin.call('ACL', 'SETUSER', user, '+publish', '+spublish');
  });

  it("set() on one instance does not reach another's L1 copy, which serves until its L1 lifetime ends; delete() then set() reaches it (README)", async () => {
    const a = await ctx.open();
    const b = await ctx.open({ l1: { ttl: 300 } });
    const c = await ctx.open({ l1: false });
    await a.set('user:42', { name: 'old' }, { ttl: '1h' });
    assert.deepStrictEqual(await b.get('user:42'), { name: 'old' }, 'B warms its L1');
    await a.set('user:42', { name: 'new' }, { ttl: '1h' });
    await sleep(50);
    assert.deepStrictEqual(await a.get('user:42'), { name: 'new' });
    assert.deepStrictEqual(await c.get('user:42'), { name: 'new' }, 'an instance without an L1 copy reads L2');
    assert.deepStrictEqual(await b.get('user:42'), { name: 'old' }, "B's L1 copy was told of the set()");
    await sleep(300);
    assert.deepStrictEqual(await b.get('user:42'), { name: 'new' }, 'B serves its copy past l1.ttl');
    await a.delete('user:42');
    await a.set('user:42', { name: 'newer' }, { ttl: '1h' });
    assert.ok(await eventually(async () => isDeepStrictEqual(await b.get('user:42'), { name: 'newer' })), 'delete() then set() did not reach B');
  });

  it("set() right after another instance's delete() or invalidateTags() stores its value: both instances read it, Redis holds it, one 'store' event each", async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    const stores: string[] = [];
    a.on('store', (e) => stores.push(e.key));
    for (let i = 0; i < 10; i++) {
      // B's bump is in Redis when its call resolves; its bus message may not have reached A yet.
      await a.set(`d${i}`, 'v1');
      await b.delete(`d${i}`);
      await a.set(`d${i}`, 'v2');
      await a.set(`t${i}`, 'v1', { tags: [`group:${i}`] });
      await b.invalidateTags([`group:${i}`]);
      await a.set(`t${i}`, 'v2', { tags: [`group:${i}`] });
      for (const key of [`d${i}`, `t${i}`]) {
        assert.equal(await a.get(key), 'v2', `A lost ${key}`);
        assert.equal(await b.get(key), 'v2', `B misses ${key}`);
        assert.equal(await ctx.admin.exists(a.dataKey(key)), 1, `${key} is not in Redis`);
      }
    }
    assert.equal(stores.length, 40);
  });

  it("set() whose stamp a version bump in Redis overtook, before this instance heard of it, is stamped again and stored; a 'store' event only for a store that happened", async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    const stores: Array<readonly string[]> = [];
    a.on('store', (e) => stores.push(e.tiers));
    await a.set('k', 'v1');
    // Another instance's delete() as this one sees it before the bus message: the key's counter moved, nothing published.
    await ctx.admin.incr(a.store.versions.counterKeyOf(`key:${a.dataKey('k')}`));
    await a.set('k', 'v2');
    assert.equal(await a.get('k'), 'v2');
    assert.equal(await b.get('k'), 'v2');
    assert.deepStrictEqual(stores, [['L1', 'L2'], ['L1', 'L2']]);
  });

  it("set() overtaken by an invalidation of its tags every time it is stamped again leaves no value from before it: the key misses on every instance", async () => {
    // A's client runs every command, but before each store of 'k' another instance's invalidateTags(['hot'])
    // reaches Redis (as in a storm of them), ahead of its message: every stamp set() takes is overtaken.
    const client = new Redis(ctx.redis.url);
    type Evalsha = (...args: unknown[]) => Promise<unknown>;
    const hooked = client as unknown as { evalshaBuffer: Evalsha };
    const a = createCache({ namespace: ctx.ns, redis: client });
    try {
      await a.ready();
      const b = await ctx.open();
      await a.set('k', 'from before');
      assert.equal(await b.get('k'), 'from before');
      const entryKey = a.dataKey('k');
      const hotCounter = a.store.versions.counterKeyOf('hot');
      const send = hooked.evalshaBuffer.bind(client);
      let overtaken = 0;
      hooked.evalshaBuffer = async (sha, count, keysAndArgs) => {
        const keys = keysAndArgs as string[];
        if (keys[0] === entryKey && keys[1] === entryKey && keys.includes(hotCounter)) {
          overtaken++;
          await ctx.admin.incr(hotCounter);
        }
        return send(sha, count, keysAndArgs);
      };
      await a.set('k', 'new', { tags: ['hot'] });
      hooked.evalshaBuffer = send;
      assert.equal(overtaken, 3, 'stamped three times, overtaken each time');
      const c = await ctx.open();
      assert.equal(await a.get('k'), undefined, 'this instance read the value from before the set()');
      assert.equal(await c.get('k'), undefined, 'another instance read the value from before the set()');
      assert.ok(await eventually(async () => (await b.get('k')) === undefined), 'an instance holding the value from before still serves it');
    } finally {
      await a.close(); // never closes a client it was given
      client.disconnect();
    }
  });

  it('warms L1 after an L2 hit: the second get on B is an L1 hit', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('warm', { v: 1 });

    const s0 = b.stats();
    assert.deepStrictEqual(await b.get('warm'), { v: 1 });
    const s1 = b.stats();
    assert.equal(s1.l2.hits - s0.l2.hits, 1, 'first get: one L2 hit');
    assert.equal(s1.l1.hits - s0.l1.hits, 0, 'first get: no L1 hit');
    assert.equal(s1.l1.misses - s0.l1.misses, 1, 'first get: one L1 miss');
    assert.equal(s1.l1.entries, s0.l1.entries + 1, 'the entry is now in B’s L1');

    assert.deepStrictEqual(await b.get('warm'), { v: 1 });
    const s2 = b.stats();
    assert.equal(s2.l1.hits - s1.l1.hits, 1, 'second get: one L1 hit');
    assert.equal(s2.l2.hits - s1.l2.hits, 0, 'second get: no L2 hit');
    assert.equal(s2.l2.misses - s1.l2.misses, 0, 'second get: no L2 miss');

    // Proof it is served from B's memory: the Redis copy is gone, B still has it.
    await ctx.admin.del(b.dataKey('warm'));
    assert.deepStrictEqual(await b.get('warm'), { v: 1 });
  });

  it('returns frozen values from L1, and a caller mutating its object after set() does not change the cache', async () => {
    const a = await ctx.open();
    const original = { name: 'before', list: [1, 2, { x: 'y' }], inner: { n: 1 } };
    await a.set('obj', original);
    original.name = 'mutated';
    original.list.push(99);
    original.inner.n = 2;

    const got = await a.get<{ name: string; list: unknown[]; inner: { n: number } }>('obj');
    assert.deepStrictEqual(got, { name: 'before', list: [1, 2, { x: 'y' }], inner: { n: 1 } });
    assert.ok(Object.isFrozen(got), 'top level frozen');
    assert.ok(Object.isFrozen(got!.list), 'nested array frozen');
    assert.ok(Object.isFrozen(got!.list[2]), 'object inside array frozen');
    assert.ok(Object.isFrozen(got!.inner), 'nested object frozen');
    // Reflect.set, not assignment: whether assignment throws depends on strict mode.
    assert.equal(Reflect.set(got!, 'name', 'x'), false, 'a property of the returned value could be changed');
    assert.equal(Reflect.set(got!.inner, 'n', 5), false, 'a nested property of the returned value could be changed');
    assert.throws(() => {
      got!.list.push(3);
    }, TypeError);
    assert.deepStrictEqual(await a.get('obj'), { name: 'before', list: [1, 2, { x: 'y' }], inner: { n: 1 } });

    // A value decoded from L2 (and then warmed into L1) is frozen too.
    const b = await ctx.open();
    const fromL2 = await b.get<{ inner: object }>('obj');
    assert.ok(Object.isFrozen(fromL2) && Object.isFrozen(fromL2!.inner));
    const fromL1 = await b.get<{ inner: object }>('obj');
    assert.ok(Object.isFrozen(fromL1) && Object.isFrozen(fromL1!.inner));
  });

  it('returns a copy of a Buffer: changing it (or the one given to set) does not change the cache', async () => {
    const a = await ctx.open();
    const given = Buffer.from(ALL_BYTES);
    await a.set('buf', given);
    given.fill(0);

    const first = await a.get<Buffer>('buf');
    assert.deepStrictEqual(first, ALL_BYTES);
    first!.fill(7);
    assert.deepStrictEqual(await a.get<Buffer>('buf'), ALL_BYTES, 'L1 copy unchanged');

    const b = await ctx.open();
    const fromL2 = await b.get<Buffer>('buf');
    assert.deepStrictEqual(fromL2, ALL_BYTES);
    fromL2!.fill(9);
    assert.deepStrictEqual(await b.get<Buffer>('buf'), ALL_BYTES, 'L1 copy warmed from L2 unchanged');
  });

  it('rejects values that are neither JSON-serializable nor a Buffer with a TypeError', async () => {
    const a = await ctx.open();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await assert.rejects(a.set('cyclic', cyclic), TypeError);
    await assert.rejects(a.set('fn', () => 1), TypeError);
    await assert.rejects(a.set('undef', undefined), TypeError);
    assert.equal(await ctx.admin.exists(a.dataKey('cyclic'), a.dataKey('fn'), a.dataKey('undef')), 0);
  });

  it('rejects a Map, a Set, a RegExp, an Error, a Promise, an ArrayBuffer, a DataView or a typed array (but a Uint8Array given whole) anywhere in a JSON value (JSON writes them as {} or an object of indices) with a TypeError naming it and where it is, and stores nothing', async () => {
    const a = await ctx.open();
    const cases: Array<[string, unknown, RegExp]> = [
      ['map', new Map([['a', 1]]), /a Map at value:/],
      ['set', { user: { roles: new Set(['admin']) } }, /a Set at value\.user\.roles:/],
      ['nested', { rows: [{}, { seen: new Map() }] }, /a Map at value\.rows\[1\]\.seen:/],
      ['regexp', { 'odd key': /x/ }, /a RegExp at value\["odd key"\]:/],
      ['error', [new Error('boom')], /an Error at value\[0\]:/],
      ['promise', { user: Promise.resolve(1) }, /a Promise .* at value\.user:/],
      // Found by helper-70: stored as {} before.
      ['arraybuffer', new ArrayBuffer(8), /an ArrayBuffer .* at value:/],
      ['dataview', { payload: new DataView(new ArrayBuffer(4)) }, /a DataView .* at value\.payload:/],
      // Found by helper-98: came back as {"0":1.5,"1":2} before.
      ['float64', new Float64Array([1.5, 2]), /a Float64Array .* at value:/],
      ['nested-bytes', { bytes: new Uint8Array([1, 2]) }, /a Uint8Array .* at value\.bytes:/],
      ['empty-int16', [new Int16Array(0)], /an? Int16Array .* at value\[0\]:/],
      // Found by helper-106: written as their own enumerable fields alone, so stored without what they hold
      // (the system Error's message, the Map's entries): {"ok":false,"error":{"code":"ENOENT","errno":-2}}.
      ['error-fields', { ok: false, error: Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT', errno: -2 }) }, /an Error at value\.error:/],
      ['map-fields', { seen: Object.assign(new Map([['a', 1]]), { size2: 1 }) }, /a Map at value\.seen:/],
    ];
    for (const [key, value, said] of cases) {
      await assert.rejects(a.set(key, value), (err: unknown) => err instanceof TypeError && said.test(err.message) && err.message.includes("'v8' serializer"), `set(${key})`);
      let loads = 0;
      await assert.rejects(a.getOrSet(`g-${key}`, () => (loads++, value)), (err: unknown) => err instanceof TypeError && said.test(err.message), `getOrSet(${key})`);
      assert.equal(loads, 1);
      assert.equal(await ctx.admin.exists(a.dataKey(key), a.dataKey(`g-${key}`)), 0, `${key} was stored`);
    }
    // What JSON writes by its own rules is stored as JSON writes it (README): a Date as its ISO string, NaN and ±Infinity as null.
    await a.set('numbers', { nan: NaN, inf: Infinity, neg: -Infinity, at: new Date(0), empty: {}, own: { toJSON: () => 'mine' }, indexed: { '0': 'a plain object keyed "0"' } });
    assert.deepStrictEqual(await (await ctx.open()).get('numbers'), { nan: null, inf: null, neg: null, at: '1970-01-01T00:00:00.000Z', empty: {}, own: 'mine', indexed: { '0': 'a plain object keyed "0"' } });
    assert.equal(await a.getOrSet('nan', () => NaN), null, 'getOrSet returns what a hit returns');
    // An instance of a class of the app's own is not one of them: JSON writes its fields, and it is stored so, also
    // when another part of the value ({}) has JSON's output looked into.
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
    }
    await a.set('instance', { empty: {}, at: new Point(1, 2), list: [new Point(3, 4)] });
    assert.deepStrictEqual(await (await ctx.open()).get('instance'), { empty: {}, at: { x: 1, y: 2 }, list: [{ x: 3, y: 4 }] });
  });

  it('rejects a key that is not a non-empty string in get() as set(), getOrSet(), has(), pull() and delete() do, with the same TypeError, never a synchronous throw', async () => {
    const a = await ctx.open();
    for (const cache of [a, a.namespace('view')]) {
      for (const key of ['', 42, undefined] as never[]) {
        const calls: Record<string, () => Promise<unknown>> = {
          get: () => cache.get(key),
          has: () => cache.has(key),
          pull: () => cache.pull(key),
          set: () => cache.set(key, 1),
          getOrSet: () => cache.getOrSet(key, () => 1),
          delete: () => cache.delete(key),
        };
        for (const [name, call] of Object.entries(calls)) {
          let pending: Promise<unknown> | undefined;
          assert.doesNotThrow(() => {
            pending = call();
          }, `${name}(${String(key)}) threw at once instead of rejecting`);
          await assert.rejects(pending!, (err: unknown) => err instanceof TypeError && err.message.startsWith('tiercache: a cache key must be a non-empty string'), `${name}(${String(key)})`);
        }
      }
    }
  });
});

describe('data API: stats() counts every lookup once, in the tier that answered it', () => {
  const ctx = useRedis();
  const counts = (cache: TierCache) => {
    const { l1, l2 } = cache.stats();
    return { l1: [l1.hits, l1.misses], l2: [l2.hits, l2.misses] };
  };

  it('get and getOrSet: misses and hits in L1 and in L2, an invalidated entry an L2 miss counted once', async () => {
    const a = await ctx.open();
    assert.equal(await a.getOrSet('k', () => 'v', { tags: ['t'] }), 'v');
    assert.deepStrictEqual(counts(a), { l1: [0, 1], l2: [0, 1] }, 'getOrSet that loads: missed in both');
    assert.equal(await a.get('k'), 'v');
    assert.deepStrictEqual(counts(a), { l1: [1, 1], l2: [0, 1] }, 'get: an L1 hit');
    assert.equal(await a.get('absent'), undefined);
    assert.deepStrictEqual(counts(a), { l1: [1, 2], l2: [0, 2] }, 'get of a key L2 does not have: missed in both');

    const b = await ctx.open();
    assert.equal(await b.get('k'), 'v');
    assert.deepStrictEqual(counts(b), { l1: [0, 1], l2: [1, 0] }, 'get on an empty L1: an L2 hit');
    const c = await ctx.open();
    assert.equal(await c.getOrSet('k', () => 'not loaded'), 'v');
    assert.deepStrictEqual(counts(c), { l1: [0, 1], l2: [1, 0] }, 'getOrSet on an empty L1: an L2 hit');

    assert.deepStrictEqual(await a.invalidateTags(['t']), { delivered: true });
    const d = await ctx.open();
    assert.equal(await d.get('k'), undefined);
    assert.deepStrictEqual(counts(d), { l1: [0, 1], l2: [0, 1] }, 'get of an invalidated entry: an L2 miss');
    await a.set('k', 'stale again', { tags: ['old'] });
    assert.deepStrictEqual(await a.invalidateTags(['old']), { delivered: true });
    const e = await ctx.open();
    assert.equal(await e.getOrSet('k', () => 'v2'), 'v2');
    assert.deepStrictEqual(counts(e), { l1: [0, 1], l2: [0, 1] }, 'getOrSet of an invalidated entry: one L2 miss, though the lookup is taken again for the fill');
  });

  it('an invalidated entry that a getOrSet finds in L2 is deleted there, also when the loader then stores nothing', async () => {
    const a = await ctx.open();
    await a.set('k', 'v', { tags: ['t'] });
    assert.deepStrictEqual(await a.invalidateTags(['t']), { delivered: true });
    const b = await ctx.open();
    await assert.rejects(b.getOrSet('k', () => Promise.reject(new Error('the loader failed'))), /the loader failed/);
    assert.ok(await eventually(async () => (await ctx.admin.exists(a.dataKey('k'))) === 0, 1000), 'the invalidated entry is still in Redis after 1 s');
  });
});

describe('data API: L1 byte bound', () => {
  const ctx = useRedis();

  // 2,000 inserts: ten times what fits (about 200), so L1 evicts on every insert after the first 200 or so.
  it('keeps stats().l1.bytes within maxBytes over 2,000 inserts of ~1 KB, evicting', async function () {
    this.timeout(60_000);
    const maxBytes = 200_000;
    // On a loaded machine (or under mutation testing) the inserts can outlast
    // the data API's 60 s TTL, and one Redis command past the 200 ms default
    // timeout opens the breaker, so the last get would skip L2: item:1 must
    // still come from L2 at the end.
    const a = await ctx.open({ l1: { maxBytes }, ttl: '1h', l2: { commandTimeout: '5s' } });
    const filler = 'x'.repeat(1000);
    let maxSeen = 0;
    for (let i = 1; i <= 2_000; i++) {
      await a.set(`item:${i}`, { i, filler });
      if (i % 100 === 0) {
        const { bytes } = a.stats().l1;
        maxSeen = Math.max(maxSeen, bytes);
        assert.ok(bytes <= maxBytes, `after ${i} inserts stats().l1.bytes = ${bytes} > ${maxBytes}`);
        assert.ok(bytes > 0, `after ${i} inserts stats().l1.bytes = 0: nothing charged`);
      }
    }
    const { l1 } = a.stats();
    assert.ok(l1.evictions > 0, `evictions = ${l1.evictions}`);
    assert.ok(l1.entries < 2_000, `entries = ${l1.entries}`);
    assert.ok(l1.entries > 0);
    // Each entry is charged at least its ~1 KB body.
    assert.ok(l1.entries <= maxBytes / 1000, `${l1.entries} entries of ~1 KB cannot fit in ${maxBytes} bytes`);
    assert.ok(maxSeen > maxBytes / 2, `L1 never filled up (max ${maxSeen} bytes)`);
    // The newest value is an L1 hit; the oldest was evicted from L1 but still comes from L2.
    const s0 = a.stats();
    assert.deepStrictEqual(await a.get('item:2000'), { i: 2_000, filler });
    assert.equal(a.stats().l1.hits - s0.l1.hits, 1);
    assert.deepStrictEqual(await a.get('item:1'), { i: 1, filler });
    assert.equal(a.stats().l2.hits - s0.l2.hits, 1);
  });
});

describe('data API: memory that L1 and its bookkeeping hold', () => {
  const ctx = useRedis();

  it('charges a value by the heap its parsed form holds: 3,000 empty objects (9 KB of JSON) cost at least 160 KB, also when read from L2', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('objects', Array.from({ length: 3000 }, () => ({})));
    assert.ok(a.stats().l1.bytes >= 160_000, `charged ${a.stats().l1.bytes} bytes`);
    assert.equal((await b.get<object[]>('objects'))?.length, 3000);
    assert.ok(b.stats().l1.bytes >= 160_000, `charged ${b.stats().l1.bytes} bytes after an L2 hit`);
  });

  const shapes: Record<string, (i: number) => unknown> = {
    'records': (i) => Array.from({ length: 40 }, (_, j) => ({ id: i * 40 + j, name: `User ${i}-${j}`, email: `u${i}.${j}@example.com`, active: j % 2 === 0, score: j * 1.5, roles: ['reader'], address: { city: 'Paris', zip: `750${j % 20}` } })),
    'arrays of small numbers': (i) => Array.from({ length: 4000 }, (_, j) => (i + j) % 10),
    '[{}, {}, ...]': () => Array.from({ length: 3000 }, () => ({})),
  };
  for (const [shape, make] of Object.entries(shapes)) {
    it(`holds at most 1.5 times maxBytes of heap for values that are ${shape}`, async function () {
      // CPU only (12 MiB of values made, parsed and collected): on a 2-core machine shared with other work,
      // past mocha's 10 s in serial runs too; the bound is on heap, not time.
      this.timeout(30_000);
      const maxBytes = 4 * MiB;
      const cache = createCache({ redis: false, l1: { maxBytes } });
      try {
        const count = Math.ceil((3 * maxBytes) / JSON.stringify(make(0)).length);
        const before = heldBytes();
        for (let i = 0; i < count; i++) await cache.set(`v${i}`, make(i));
        const held = heldBytes() - before;
        assert.ok(cache.stats().l1.evictions > 0, 'L1 never filled up');
        assert.ok(held <= 1.5 * maxBytes, `${(held / MiB).toFixed(1)} MiB held for maxBytes ${maxBytes / MiB} MiB`);
      } finally {
        await cache.close();
      }
    });
  }

  it('holds per-key bookkeeping within its byte bounds for 10 KB keys: get() of 5,000 absent keys, set() of 5,000 keys', async function () {
    this.timeout(30_000);
    const cache = createCache({ redis: false, l1: { maxBytes: 1 * MiB } });
    try {
      // Warm up (code compiled, hashing set up) so the measure counts what the cache keeps.
      for (let i = 0; i < 1000; i++) await cache.get(longKey('warm', i));
      const before = heldBytes();
      for (let i = 0; i < 5000; i++) await cache.get(longKey('absent', i));
      const afterGets = heldBytes() - before;
      for (let i = 0; i < 5000; i++) await cache.set(longKey('key', i), { i });
      const afterSets = heldBytes() - before;
      assert.ok(afterGets < 2 * MiB, `${(afterGets / MiB).toFixed(1)} MiB held after the gets`);
      assert.ok(afterSets < 4 * MiB, `${(afterSets / MiB).toFixed(1)} MiB held after the sets (L1: ${(cache.stats().l1.bytes / MiB).toFixed(1)} MiB)`);
    } finally {
      await cache.close();
    }
  });
});

describe('data API: getOrSet', () => {
  const ctx = useRedis();

  it('runs the loader once for 20 concurrent callers, and all get the value (coalesced = 19)', async () => {
    const a = await ctx.open();
    let runs = 0;
    const loader = async () => {
      runs++;
      await sleep(50);
      return { loaded: true, at: runs };
    };
    const results = await Promise.all(Array.from({ length: 20 }, () => a.getOrSet('hot', loader)));
    assert.equal(runs, 1, 'loader runs');
    for (const r of results) assert.deepStrictEqual(r, { loaded: true, at: 1 });
    assert.equal(a.stats().coalesced, 19);
    assert.equal(a.stats().fills, 1);
    // Stored for next time, in both tiers.
    assert.deepStrictEqual(await a.getOrSet('hot', loader), { loaded: true, at: 1 });
    assert.equal(runs, 1);
    const b = await ctx.open();
    assert.deepStrictEqual(await b.get('hot'), { loaded: true, at: 1 });
  });

  it('a value whose TTL ran out while its loader ran is returned but stored nowhere, and no store is reported', async () => {
    const a = await ctx.open();
    const stores: unknown[] = [];
    a.on('store', (e) => stores.push(e));
    const value = await a.getOrSet('slow', async () => {
      await sleep(80);
      return 'late';
    }, { ttl: 20 });
    assert.equal(value, 'late');
    assert.deepEqual(stores, [], "a 'store' event for a value stored nowhere");
    assert.equal(a.stats().l1.entries, 0);
    assert.equal(await ctx.admin.exists(a.dataKey('slow')), 0);
  });

  it('rejects every concurrent caller when the loader throws, and runs the loader again on the next call', async () => {
    const a = await ctx.open();
    let runs = 0;
    const boom = new Error('loader failed');
    const failing = async () => {
      runs++;
      await sleep(50);
      throw boom;
    };
    const settled = await Promise.allSettled(Array.from({ length: 20 }, () => a.getOrSet('flaky', failing)));
    assert.equal(runs, 1, 'loader runs');
    for (const s of settled) {
      assert.equal(s.status, 'rejected');
      assert.equal((s as PromiseRejectedResult).reason, boom);
    }
    assert.equal(await a.get('flaky'), undefined, 'nothing stored');
    assert.equal(await ctx.admin.exists(a.dataKey('flaky')), 0);

    const value = await a.getOrSet('flaky', async () => {
      runs++;
      return 'recovered';
    });
    assert.equal(runs, 2, 'the next call runs the loader again');
    assert.equal(value, 'recovered');
    assert.equal(await a.get('flaky'), 'recovered');
  });

  it('callers that join a loader that never settles wait l2.lockTimeout at most, then load themselves; later callers get that value', async () => {
    const a = ctx.track(createCache({ namespace: ctx.ns, redis: false, l2: { lockTimeout: 300 } }));
    const stuck = hangingLoader();
    try {
      void a.getOrSet('stuck', stuck.load);
      await sleep(50);
      let runs = 0;
      const own = async () => (runs++, 'loaded by a waiter');
      const waited = await timed(() => withinMs(Promise.all([a.getOrSet('stuck', own), a.getOrSet('stuck', own)]), 2_000));
      assert.deepEqual(waited.value, ['loaded by a waiter', 'loaded by a waiter']);
      assert.ok(waited.ms >= 200 && waited.ms < 1_000, `the waiters waited ${Math.round(waited.ms)} ms, not about the 300 ms lockTimeout`);
      assert.equal(runs, 1, 'the waiters share one run of their own');
      assert.equal(await withinMs(a.getOrSet('stuck', own), 100), 'loaded by a waiter');
      assert.equal(runs, 1);
    } finally {
      stuck.release();
    }
  });

  it('a waiter past l2.lockTimeout that loads itself still takes the first run\'s value when that comes first', async () => {
    const a = ctx.track(createCache({ namespace: ctx.ns, redis: false, l2: { lockTimeout: 200 } }));
    let runs = 0;
    const slow = async () => {
      const run = ++runs;
      await sleep(run === 1 ? 400 : 1_000);
      return `run ${run}`;
    };
    const first = a.getOrSet('slow', slow);
    await sleep(50);
    const waiter = await timed(() => withinMs(a.getOrSet('slow', slow), 3_000));
    assert.equal(await first, 'run 1');
    assert.equal(waiter.value, 'run 1', 'the waiter got its own, later run');
    assert.ok(waiter.ms < 800, `the waiter waited ${Math.round(waiter.ms)} ms: for its own run, not the first`);
  });

  it("a waiter past l2.lockTimeout that loads itself is not handed the first run's failure: a loader that rejects late fails only its own callers", async () => {
    const a = ctx.track(createCache({ namespace: ctx.ns, redis: false, l2: { lockTimeout: 200 } }));
    const boom = new Error('the first run failed late');
    const first = a.getOrSet('late', async () => {
      await sleep(350);
      throw boom;
    });
    const firstOutcome = first.then(() => 'resolved', (err: unknown) => err);
    await sleep(50);
    // Waits 200 ms on the first run, then loads itself (done at about 650 ms); the first run rejects at 350 ms meanwhile.
    const waiter = await withinMs(
      a.getOrSet('late', async () => {
        await sleep(400);
        return 'loaded by the waiter';
      }).then((value) => value, (err: unknown) => `rejected: ${(err as Error).message}`),
      3_000,
    );
    assert.equal(await firstOutcome, boom, "the first run's own callers get its failure");
    assert.equal(waiter, 'loaded by the waiter');
    assert.equal(await a.get('late'), 'loaded by the waiter');
  });

  it("callers keep waiting on a run under an l2.lockTimeout past setTimeout's range (30 days), instead of loading at once", async () => {
    const a = ctx.track(createCache({ namespace: ctx.ns, redis: false, l2: { lockTimeout: '30d' } }));
    const stuck = hangingLoader();
    try {
      void a.getOrSet('stuck', stuck.load);
      await sleep(20);
      let runs = 0;
      const waiter = a.getOrSet('stuck', () => (runs++, 'loaded by a waiter'));
      await sleep(100);
      assert.equal(runs, 0, 'the waiter stopped waiting at once');
      stuck.release();
      assert.equal(await waiter, undefined);
    } finally {
      stuck.release();
    }
  });

  it('returns a value stored on the same instance while a loader of its key still runs, without waiting for the loader', async () => {
    const a = await ctx.open();
    const stuck = hangingLoader();
    try {
      void a.getOrSet('busy', stuck.load);
      await sleep(20);
      await a.set('busy', 'set meanwhile');
      const { value, ms } = await timed(() => withinMs(a.getOrSet('busy', () => 'not run'), 2_000));
      assert.equal(value, 'set meanwhile');
      assert.ok(ms < 100, `getOrSet took ${Math.round(ms)} ms with the value in L1`);
    } finally {
      stuck.release();
    }
  });

  it("a set() on the same instance while a loader of its key runs wins: the loader's own caller gets its value, which is stored nowhere; a caller that joined the run and every read after the set() get the set() value", async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    let row = 'old';
    const filling = a.getOrSet('k', async () => {
      const seen = row; // read before the write, as a slow query would
      await sleep(100);
      return seen;
    });
    await sleep(30);
    const joined = a.getOrSet('k', () => 'not run');
    row = 'new';
    await a.set('k', 'new');
    const after = a.getOrSet('k', () => 'not run');
    assert.equal(await filling, 'old');
    assert.equal(await joined, 'new');
    assert.equal(await after, 'new');
    await sleep(20);
    assert.equal(await a.get('k'), 'new');
    assert.equal(await b.get('k'), 'new', 'Redis holds the loader\'s older value');
  });

  it('a loader that stores nothing (undefined, ctx.skip()) after a set() of its key on the same instance leaves the set() value valid in Redis: the counters the set() recorded stay', async () => {
    const a = await ctx.open();
    const b = await ctx.open({ l1: false });
    for (const [key, load] of [
      ['undefined', async () => (await sleep(80), undefined)],
      ['skip', async (c: { skip(): void }) => (await sleep(80), c.skip(), 'skipped')],
    ] as const) {
      const filling = a.getOrSet<unknown>(key, load);
      await sleep(30);
      await a.set(key, 'set');
      await filling;
      await sleep(30);
      assert.equal(await b.get(key), 'set', `${key}: the set() value is no longer valid in Redis`);
      assert.equal(await ctx.admin.exists(a.store.versions.counterKeyOf(`key:${a.dataKey(key)}`)), 1, `${key}: its counter was deleted`);
    }
  });

  it('stores nothing when the loader returns undefined', async () => {
    const a = await ctx.open();
    let runs = 0;
    const nothing = async () => {
      runs++;
      return undefined;
    };
    assert.equal(await a.getOrSet('absent', nothing), undefined);
    assert.equal(await a.get('absent'), undefined);
    assert.equal(await ctx.admin.exists(a.dataKey('absent')), 0, 'nothing in Redis');
    assert.equal(a.stats().l1.entries, 0, 'nothing in L1');
    assert.equal(a.stats().fills, 0);
    assert.equal(await a.getOrSet('absent', nothing), undefined);
    assert.equal(runs, 2, 'the loader runs again next time');
  });

  it('stores falsy values (0, false, "", null) and returns them as hits', async () => {
    const a = await ctx.open();
    let runs = 0;
    for (const [key, value] of [['zero', 0], ['no', false], ['empty', ''], ['nil', null]] as const) {
      const load = () => {
        runs++;
        return value;
      };
      assert.equal(await a.getOrSet(key, load), value);
      assert.equal(await a.getOrSet(key, load), value);
    }
    assert.equal(runs, 4);
  });
});

describe('data API: getOrSet returns what a hit returns', () => {
  const ctx = useRedis();

  it('returns a deep-frozen copy on the miss, as on every hit, and leaves the loader\'s own object alone', async () => {
    const a = await ctx.open();
    const loaded = { name: 'ada', tags: ['x'], at: new Date(0) };
    const miss = await a.getOrSet('user:1', () => loaded);
    const hit = await a.getOrSet('user:1', () => assert.fail('the loader ran on a hit'));
    for (const [label, value] of [['miss', miss], ['hit', hit]] as const) {
      assert.ok(Object.isFrozen(value) && Object.isFrozen(value.tags), `the ${label} is not deep-frozen`);
      // The JSON round trip: what a hit (or another instance) reads.
      assert.deepStrictEqual(value, { name: 'ada', tags: ['x'], at: '1970-01-01T00:00:00.000Z' }, `the ${label}`);
    }
    assert.ok(!Object.isFrozen(loaded), "the loader's object was frozen");
    const b = await ctx.open();
    assert.deepStrictEqual(await b.getOrSet('user:1', () => assert.fail('the loader ran on B')), miss, 'B reads what A returned');
  });

  it('returns a fresh copy of a Buffer on the miss and on every hit', async () => {
    const a = await ctx.open();
    const loaded = Buffer.from(ALL_BYTES);
    const miss = await a.getOrSet('buf', () => loaded);
    assert.notEqual(miss, loaded, "the miss returned the loader's own Buffer");
    miss.fill(0);
    const hit = await a.getOrSet('buf', () => assert.fail('the loader ran on a hit'));
    assert.deepStrictEqual(hit, ALL_BYTES);
  });

  it('returns a frozen copy while the cache is disabled too: the loader runs every time', async () => {
    const cache = ctx.track(createCache({ namespace: ctx.ns, redis: false, enabled: false }));
    let runs = 0;
    for (let i = 0; i < 2; i++) {
      const value = await cache.getOrSet('k', () => ({ run: ++runs }));
      assert.ok(Object.isFrozen(value));
      assert.deepStrictEqual(value, { run: i + 1 });
    }
  });
});

describe('data API: the loader decides', () => {
  const ctx = useRedis();

  it('ctx.setTtl() stores the value for that long instead of the call\'s ttl (PTTL in Redis, L1 lifetime)', async () => {
    const a = await ctx.open();
    const value = await a.getOrSet(
      'token',
      (loader) => {
        assert.equal(loader.key, 'token');
        loader.setTtl('5s');
        return 'abc';
      },
      { ttl: '1h' },
    );
    assert.equal(value, 'abc');
    const pttl = await ctx.admin.pttl(a.dataKey('token'));
    assert.ok(pttl > 0 && pttl <= 5_000, `PTTL ${pttl} is not within (0, 5000]`);
    const entry = a.store.l1!.peek(a.dataKey('token'))!;
    assert.equal(entry.freshUntil - entry.createdAt, 5_000);
  });

  it('ctx.setTtl() with an invalid duration rejects the call with TierCacheConfigError and stores nothing', async () => {
    const a = await ctx.open();
    await assert.rejects(a.getOrSet('bad', (loader) => (loader.setTtl('soon' as never), 1)), (err: unknown) => err instanceof TierCacheError && /setTtl/.test((err as Error).message));
    assert.equal(await ctx.admin.exists(a.dataKey('bad')), 0);
  });

  it('ctx.skip() returns the value to every caller without storing it; the next call loads again', async () => {
    const a = await ctx.open();
    let runs = 0;
    const load = async (loader: { skip(): void }) => {
      runs++;
      await sleep(30);
      loader.skip();
      return { error: 'upstream down' };
    };
    const results = await Promise.all([a.getOrSet('flaky', load), a.getOrSet('flaky', load)]);
    assert.equal(runs, 1);
    for (const r of results) assert.deepStrictEqual(r, { error: 'upstream down' });
    assert.equal(await a.get('flaky'), undefined);
    assert.equal(await ctx.admin.exists(a.dataKey('flaky')), 0, 'nothing in Redis');
    await a.getOrSet('flaky', load);
    assert.equal(runs, 2);
  });
});

describe('data API: getOrSet across instances', () => {
  const ctx = useRedis();

  it('two instances, 10 concurrent callers on each: the loader runs once in all, every caller gets its value', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    let runs = 0;
    const load = async () => {
      runs++;
      await sleep(200);
      return { loaded: runs };
    };
    const calls = [a, b].flatMap((cache) => Array.from({ length: 10 }, () => cache.getOrSet('shared', load)));
    const results = await Promise.all(calls);
    assert.equal(runs, 1, 'loader runs across both instances');
    for (const r of results) assert.deepStrictEqual(r, { loaded: 1 });
    assert.equal(a.stats().fills + b.stats().fills, 1);
    // Nine callers joined their instance's run; the other instance's run waited for the value.
    assert.equal(a.stats().coalesced + b.stats().coalesced, 19);
  });

  it('a waiter loads itself once the lock expires (l2.lockTimeout) while the holder\'s loader still runs: the wait is bounded', async () => {
    const a = await ctx.open({ l2: { lockTimeout: 300 } });
    const b = await ctx.open({ l2: { lockTimeout: 300 } });
    let runs = 0;
    const slow = a.getOrSet('slow', async () => {
      runs++;
      await sleep(1_500);
      return 'from A';
    });
    await sleep(50);
    const { value, ms } = await timed(() => b.getOrSet('slow', async () => (runs++, 'from B')));
    assert.equal(value, 'from B');
    assert.ok(ms >= 250 && ms < 1_000, `B waited ${Math.round(ms)} ms, not about the 300 ms the lock holds`);
    assert.equal(await slow, 'from A');
    assert.equal(runs, 2);
  });

  it('when the holder\'s loader fails, a waiter on the other instance loads itself at once (the lock is released)', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    const failing = a
      .getOrSet('flaky', async () => {
        await sleep(100);
        throw new Error('A failed');
      })
      .catch((err: Error) => err.message);
    await sleep(30);
    const { value, ms } = await timed(() => b.getOrSet('flaky', () => 'from B'));
    assert.equal(await failing, 'A failed');
    assert.equal(value, 'from B');
    assert.ok(ms < 1_000, `B waited ${Math.round(ms)} ms for a lock released after ~100 ms (lockTimeout 3 s)`);
  });

  it("a loader that outlives l2.lockTimeout and then fails leaves the lock of the run its instance began since: another instance waits on that run, its loader does not run", async () => {
    const a = await ctx.open({ l2: { lockTimeout: 1_000, commandTimeout: '3s' } });
    const b = await ctx.open({ l2: { lockTimeout: 1_000, commandTimeout: '3s' } });
    const first = a
      .getOrSet('late', async () => {
        await sleep(1_700);
        throw new Error('the query timed out');
      })
      .catch((err: Error) => err.message);
    // Past the first run's lock and its callers' wait: a second run on A takes the lock afresh.
    await sleep(1_300);
    let finish!: () => void;
    const second = a.getOrSet('late', () => new Promise<string>((resolve) => (finish = () => resolve('second'))));
    assert.equal(await first, 'the query timed out');
    // The first run's release went out as it failed: a PING behind it answers once Redis ran it.
    await a.store.l2!.client.ping();
    assert.equal(await ctx.admin.exists(`{${a.dataKey('late')}}:lock`), 1, "the first run's release took the lock of the run begun since");
    let loadsB = 0;
    const there = b.getOrSet('late', async () => (loadsB++, 'from B'));
    await sleep(200);
    finish();
    assert.equal(await second, 'second');
    assert.deepEqual([await there, loadsB], ['second', 0], "another instance ran its loader beside the run that held the key's lock");
  });

  it('a loader that never settles holds later callers on its own instance no longer than l2.lockTimeout: they find the value another instance stored', async () => {
    const a = await ctx.open({ l2: { lockTimeout: 300 } });
    const b = await ctx.open({ l2: { lockTimeout: 300 } });
    const stuck = hangingLoader();
    try {
      void a.getOrSet('stuck', stuck.load);
      await sleep(50);
      const fromB = await timed(() => b.getOrSet('stuck', () => 'from B'));
      assert.equal(fromB.value, 'from B');
      // A never warmed its L1 with it: the value is found in L2, not waited for behind the stuck run.
      const later = await timed(() => withinMs(a.getOrSet('stuck', () => 'from A again'), 2_000));
      assert.equal(later.value, 'from B');
      assert.ok(later.ms < 250, `A's getOrSet took ${Math.round(later.ms)} ms with the value in L2`);
      assert.equal(stuck.runs, 1);
    } finally {
      stuck.release();
    }
  });
});

/** A loader whose runs never settle until release() (which ends them with undefined: nothing stored). */
function hangingLoader(): { load: () => Promise<undefined>; release: () => void; readonly runs: number } {
  const releases: Array<() => void> = [];
  return {
    load: () => new Promise<undefined>((resolve) => releases.push(() => resolve(undefined))),
    release: () => releases.forEach((release) => release()),
    get runs() {
      return releases.length;
    },
  };
}

/** `promise`, or a rejection saying it was still pending after `ms`. */
function withinMs<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe('data API: corrupt and foreign L2 data', () => {
  const ctx = useRedis();

  const garbage: Record<string, Buffer> = {
    'random bytes': Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x10]),
    'plain text': Buffer.from('not a tiercache entry'),
    'JSON text': Buffer.from('{"value":"looks like data"}'),
    'empty value': Buffer.alloc(0),
    'magic, then junk': Buffer.from([0x54, 0x43, 0x01, 0x01, 0xff, 0xff]),
  };

  // pull() claims an entry under `{key}:pull` with a TTL: foreign data there (none of its own claims) held off every
  // pull of the key for as long as it stayed: for good, or (one with a TTL) until it expired.
  for (const junk of ['a string without a TTL', 'a list', 'a string with a TTL', 'a hash with a TTL'] as const) {
    it(`pull() is not held off by ${junk} where it claims the entry`, async () => {
      const a = await ctx.open({ l2: { commandTimeout: '3s' } });
      await a.set('t', 'token');
      const claimKey = `{${a.dataKey('t')}}:pull`;
      if (junk === 'a list') await ctx.admin.rpush(claimKey, 'x');
      else if (junk === 'a hash with a TTL') await ctx.admin.multi().hset(claimKey, 'f', 'v').pexpire(claimKey, 60_000).exec();
      else if (junk === 'a string with a TTL') await ctx.admin.set(claimKey, 'not a claim', 'PX', 60_000);
      else await ctx.admin.set(claimKey, 'a claim from a restore');
      assert.equal(await a.pull('t'), 'token', 'pull() missed: held off by what is at its claim key');
      assert.equal(await ctx.admin.exists(a.dataKey('t'), claimKey), 0);
    });
  }

  // The other side of taking foreign data over: a claim of another pull (its token, with a TTL) is one, and the entry
  // is that pull's to take. Taken over, the pull that claimed first came back empty while this one got the value.
  it("pull() that finds another pull's claim (a token, with a TTL) takes nothing: the entry stays for that pull", async () => {
    const a = await ctx.open({ l2: { commandTimeout: '3s' } });
    const b = await ctx.open({ l1: false, l2: { commandTimeout: '3s' } });
    await a.set('t', 'token');
    const claimKey = `{${a.dataKey('t')}}:pull`;
    await ctx.admin.set(claimKey, randomUUID(), 'PX', 60_000);
    assert.equal(await b.pull('t'), undefined, "pull() took an entry another pull had claimed");
    assert.equal(await ctx.admin.exists(a.dataKey('t')), 1, 'the claimed entry is gone from Redis');
  });

  for (const [name, bytes] of Object.entries(garbage)) {
    it(`reads corrupt bytes (${name}) in an L2 entry as a miss and deletes the key`, async () => {
      const a = await ctx.open();
      const key = a.dataKey('corrupt');
      await ctx.admin.set(key, bytes);
      const s0 = a.stats();
      assert.equal(await a.get('corrupt'), undefined);
      assert.equal(a.stats().l2.misses - s0.l2.misses, 1, 'counted as an L2 miss');
      assert.equal(a.stats().l2.hits - s0.l2.hits, 0);
      const deleted = await eventually(async () => (await ctx.admin.exists(key)) === 0, 1000);
      assert.ok(deleted, 'the corrupt key is still in Redis after 1 s');
      // And a fresh value can be stored and read there afterwards.
      await a.set('corrupt', 'fine');
      const b = await ctx.open();
      assert.equal(await b.get('corrupt'), 'fine');
    });
  }

  it("a server record's master_replid2 holding a key of another type is no record: every epoch check goes through, nothing is reported", async () => {
    const a = await ctx.open({ l2: { commandTimeout: HEALTHY_REDIS_MS } });
    await a.set('k', 'v', { tags: ['t'] });
    await ctx.admin.del(`{${ctx.ns}}:server:replid2`);
    await ctx.admin.hset(`{${ctx.ns}}:server:replid2`, 'foreign', 'data');
    const b = await ctx.open({ l2: { commandTimeout: HEALTHY_REDIS_MS } });
    const problems = reportedProblems({ A: a, B: b });
    const checks = [a, b].map((cache) => cache.stats().l2.errors);
    await sleep(EPOCH_CHECK_MS + 200); // an epoch check of each, the one B's ready() waited for before it
    assert.deepEqual(problems, []);
    assert.deepEqual([a, b].map((cache) => cache.stats().l2.errors), checks, 'epoch checks failed');
    assert.equal(await b.get('k'), 'v');
  });

  it('deletes a corrupt entry that getOrSet finds, also when the loader then stores nothing', async () => {
    const a = await ctx.open();
    await ctx.admin.set(a.dataKey('k'), Buffer.from('garbage'));
    await assert.rejects(a.getOrSet('k', () => Promise.reject(new Error('the loader failed'))), /the loader failed/);
    assert.ok(await eventually(async () => (await ctx.admin.exists(a.dataKey('k'))) === 0, 1000), 'the corrupt key is still in Redis after 1 s');
  });

  it('reads a corrupt entry as a miss for getOrSet, which loads and replaces it', async () => {
    const a = await ctx.open();
    await ctx.admin.set(a.dataKey('k'), Buffer.from('garbage'));
    assert.equal(await a.getOrSet('k', () => 'loaded'), 'loaded');
    const b = await ctx.open();
    assert.equal(await b.get('k'), 'loaded');
  });

  // A tag counter or the namespace epoch that is not a positive integer as INCR
  // writes it (someone's SET, another program, a key of another type) is made
  // again from the clock, like a lost one: the scripts that read or bump it
  // failed on it before, so every lookup of the tag missed L2 with an error
  // and its invalidations stayed undelivered for as long as the key lived.
  const badCounters: Record<string, (admin: Redis, key: string) => Promise<unknown>> = {
    text: (admin, key) => admin.set(key, 'garbage'),
    'a decimal': (admin, key) => admin.set(key, '1.5'),
    'a negative number': (admin, key) => admin.set(key, '-3'),
    'leading zeros': (admin, key) => admin.set(key, '007'),
    'more than a safe integer': (admin, key) => admin.set(key, '99999999999999999999'),
    'a list': (admin, key) => admin.rpush(key, '1'),
  };
  for (const [name, plant] of Object.entries(badCounters)) {
    it(`makes a tag counter holding ${name} again: the invalidation is delivered and L2 serves the tag's entries again`, async () => {
      const a = await ctx.open();
      await a.set('k', 'v1', { tags: ['t'] });
      const counterKey = (await ctx.admin.keys(`${ctx.ns}:v:*`)).find((k) => k.endsWith('t}'));
      assert.ok(counterKey !== undefined, 'no counter of tag t in Redis');
      await ctx.admin.del(counterKey);
      await plant(ctx.admin, counterKey);
      // Instances that never saw the tag: no floor of theirs raises the counter first.
      const b = await ctx.open();
      const errors: string[] = [];
      b.on('error', ({ err, where }) => errors.push(`${where}: ${err.message}`));

      assert.equal(await b.get('k'), undefined, 'the entry that recorded the old version is not served');
      assert.deepStrictEqual(await b.invalidateTags(['t']), { delivered: true });
      assert.match(String(await ctx.admin.get(counterKey)), /^[1-9]\d{15}$/, 'the counter holds a version from the clock again');
      await b.set('k', 'v2', { tags: ['t'] });
      const c = await ctx.open();
      assert.equal(await c.get('k'), 'v2', 'a cache with an empty L1 reads the entry stored after the repair');
      assert.deepStrictEqual(errors, []);
    });
  }

  it('makes a namespace epoch holding text again: entries are stored and read through L2', async () => {
    const a = await ctx.open();
    await ctx.admin.set(`{${ctx.ns}}:epoch`, 'garbage');
    await a.set('k', 'v');
    const b = await ctx.open();
    assert.equal(await b.get('k'), 'v');
    assert.match(String(await ctx.admin.get(`{${ctx.ns}}:epoch`)), /^[1-9]\d{15}$/);
  });

  // A key of another type answers GET with a WRONGTYPE error: it was a miss that
  // stayed in Redis, reported again on every read.
  const otherTypes: Record<string, (admin: Redis, key: string) => Promise<unknown>> = {
    list: (admin, key) => admin.rpush(key, 'a', 'b'),
    hash: (admin, key) => admin.hset(key, 'f', 'v'),
    zset: (admin, key) => admin.zadd(key, 1, 'm'),
    stream: (admin, key) => admin.xadd(key, '*', 'f', 'v'),
  };
  for (const [type, plant] of Object.entries(otherTypes)) {
    it(`reads a ${type} under an entry key as a miss, deletes it and reports it once, not on every read`, async () => {
      const a = await ctx.open({ l1: false });
      const errors: string[] = [];
      a.on('error', ({ err }) => errors.push(err.message));
      const key = a.dataKey('typed');
      await plant(ctx.admin, key);
      const s0 = a.stats();
      assert.equal(await a.get('typed'), undefined);
      assert.ok(await eventually(async () => (await ctx.admin.exists(key)) === 0, 1000), `the ${type} is still in Redis after 1 s`);
      assert.equal(a.stats().l2.misses - s0.l2.misses, 1, 'counted as an L2 miss');
      assert.equal(await a.get('typed'), undefined);
      assert.equal(errors.length, 1, `error events: ${errors.join('; ')}`);
      assert.match(errors[0]!, /WRONGTYPE/);
      assert.equal(a.health().l2, 'ok', 'a key of another type took L2 down');
    });
  }

  it('getOrSet over a list under the entry key deletes it, holds the fill lock while the loader runs, and reports nothing, also when the loader stores nothing', async () => {
    const a = await ctx.open({ l1: false });
    const errors: string[] = [];
    a.on('error', ({ err }) => errors.push(err.message));
    const key = a.dataKey('k');
    await ctx.admin.rpush(key, 'a', 'b');
    let lockHeld: number | undefined;
    const loader = async () => {
      lockHeld = await ctx.admin.exists(`{${key}}:lock`);
      throw new Error('the loader failed');
    };
    await assert.rejects(a.getOrSet('k', loader), /the loader failed/);
    assert.equal(await ctx.admin.exists(key), 0, 'the list is still in Redis');
    assert.equal(lockHeld, 1, 'the fill lock was not held while the loader ran');
    assert.deepStrictEqual(errors, []);
    assert.equal(await a.getOrSet('k', () => 'loaded'), 'loaded');
    assert.equal(await (await ctx.open()).get('k'), 'loaded');
  });

  it('reads an entry past its life that Redis still holds (another instance\'s clock ahead, a restore without TTLs) as a miss, for get() and pull(), and deletes it', async () => {
    const a = await ctx.open();
    const now = Date.now();
    const epoch = await epochOf(ctx.admin, ctx.ns);
    const entry = (life: number) =>
      encodeEntry({ kind: EntryKind.Json, createdAt: now - 120_000, freshUntil: now + life, staleUntil: now + life, epoch, tags: [], versions: [], head: Buffer.alloc(0), body: Buffer.from('"old"') });
    await ctx.admin.set(a.dataKey('control'), entry(60_000));
    assert.equal(await a.get('control'), 'old', 'the same entry within its life is a hit');
    for (const read of ['get', 'pull'] as const) {
      const key = a.dataKey(`over-${read}`);
      await ctx.admin.set(key, entry(-60_000));
      assert.equal(await a[read](`over-${read}`), undefined, `${read}() served an entry past its life`);
      assert.ok(await eventually(async () => (await ctx.admin.exists(key)) === 0, 1000), `${read}() left it in Redis`);
    }
  });

  it('reads foreign data (a valid-looking entry with another format byte) as a miss and deletes the key', async () => {
    const a = await ctx.open();
    const now = Date.now();
    const valid = encodeEntry({
      kind: EntryKind.Json,
      createdAt: now,
      freshUntil: now + 60_000,
      staleUntil: now + 60_000,
      epoch: await epochOf(ctx.admin, ctx.ns),
      tags: [],
      versions: [],
      head: Buffer.alloc(0),
      body: Buffer.from(JSON.stringify({ written: 'by hand' })),
    });
    // Control: the same bytes with the right format byte are a hit, so the
    // miss below is due to the format byte alone.
    await ctx.admin.set(a.dataKey('control'), valid);
    assert.deepStrictEqual(await a.get('control'), { written: 'by hand' });

    const foreign = Buffer.from(valid);
    foreign[2] = ENTRY_FORMAT + 1;
    const key = a.dataKey('foreign');
    await ctx.admin.set(key, foreign);
    assert.equal(await a.get('foreign'), undefined);
    assert.ok(await eventually(async () => (await ctx.admin.exists(key)) === 0, 1000), 'the foreign key is still in Redis after 1 s');

    const unknownKind = Buffer.from(valid);
    unknownKind[3] = 0x77;
    await ctx.admin.set(a.dataKey('kind'), unknownKind);
    assert.equal(await a.get('kind'), undefined);
    assert.ok(await eventually(async () => (await ctx.admin.exists(a.dataKey('kind'))) === 0, 1000));
  });
});

describe('data API: TTL', () => {
  const ctx = useRedis();

  it('a value with ttl 100 ms has PTTL in (0, 100] in Redis and is gone from both tiers after 250 ms', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('short', { v: 1 }, { ttl: 100 });
    const pttl = await ctx.admin.pttl(a.dataKey('short'));
    assert.ok(pttl > 0 && pttl <= 100, `PTTL = ${pttl}`);
    assert.deepStrictEqual(await b.get('short'), { v: 1 }, 'B has it in L1 now');
    assert.deepStrictEqual(await a.get('short'), { v: 1 });

    await sleep(250);
    assert.equal(await a.get('short'), undefined, 'A (L1 copy) still returns it');
    assert.equal(await b.get('short'), undefined, 'B (warmed L1 copy) still returns it');
    assert.equal(await ctx.admin.exists(a.dataKey('short')), 0, 'still in Redis');
    assert.equal(a.store.l1?.peek(a.dataKey('short')), undefined, 'still in A’s L1');
    assert.equal(b.store.l1?.peek(b.dataKey('short')), undefined, 'still in B’s L1');
    const c = await ctx.open();
    assert.equal(await c.get('short'), undefined);
  });

  it('refuses a ttl of 0 ms (0, 0.4, "0s", "0ms") in set(), getOrSet() and source() with TierCacheConfigError naming ttl and saying it takes at least 1 ms: nothing is changed anywhere', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('price', 100);
    assert.equal(await b.get('price'), 100);
    for (const ttl of [0, 0.4, '0s', '0ms'] as const) {
      const named = (option: string) => (err: unknown) => err instanceof TierCacheConfigError && err.option === option;
      await assert.rejects(a.set('price', 200, { ttl }), named('ttl'), `set() with ttl ${String(ttl)}`);
      // 0.4 is more than 0: the message says what is taken.
      await assert.rejects(a.set('price', 200, { ttl }), /ttl must be at least 1 ms \(durations are rounded to whole milliseconds, so anything under 0\.5 ms is 0/);
      let runs = 0;
      await assert.rejects(a.getOrSet('fresh', () => (runs++, 1), { ttl }), named('ttl'), `getOrSet() with ttl ${String(ttl)}`);
      assert.equal(runs, 0, 'the loader ran');
      assert.throws(() => a.source({ load: (id: number) => id }, { prefix: 'n:', ttl }), named('source ttl'));
    }
    assert.equal(await a.get('price'), 100);
    assert.equal(await b.get('price'), 100);
    assert.equal(await ctx.admin.exists(a.dataKey('fresh')), 0);
  });

  it('refuses a ttl past 10 years (1e20, Number.MAX_VALUE) in set(), getOrSet(), ctx.setTtl() and createCache with TierCacheConfigError, before anything is stored or locked', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('price', 100);
    assert.equal(await b.get('price'), 100);
    const named = (option: string) => (err: unknown) => err instanceof TierCacheConfigError && err.option === option && /at most 10 years/.test(err.message);
    for (const ttl of [1e20, Number.MAX_VALUE, '11y'] as const) {
      await assert.rejects(a.set('price', 200, { ttl }), named('ttl'), `set() with ttl ${String(ttl)}`);
      await assert.rejects(a.getOrSet('g', () => 'A', { ttl }), named('ttl'), `getOrSet() with ttl ${String(ttl)}`);
      await assert.rejects(a.getOrSet('g', (loader) => (loader.setTtl(ttl), 'A')), named('setTtl'), `ctx.setTtl(${String(ttl)})`);
      assert.throws(() => createCache({ redis: false, ttl }), named('ttl'));
    }
    assert.equal(await a.get('price'), 100);
    assert.equal(await b.get('price'), 100);
    // ctx.setTtl() threw inside the loader, which released its lock (without awaiting Redis).
    assert.ok(await eventually(async () => (await ctx.admin.keys('*lock*')).length === 0, 500), 'a fill lock was left held');
    // Nothing holds the key: another instance loads at once, without waiting on a lock.
    const { value, ms } = await timed(() => b.getOrSet('g', () => 'B'));
    assert.equal(value, 'B');
    assert.ok(ms < 500, `B waited ${Math.round(ms)} ms`);
    // The longest ttl taken is stored in Redis as it is.
    await a.set('decade', 1, { ttl: '10y' });
    const pttl = await ctx.admin.pttl(a.dataKey('decade'));
    assert.ok(pttl > 315_575_000_000 && pttl <= 315_576_000_000, `PTTL ${pttl}`);
    assert.equal(await b.get('decade'), 1);
  });

  it('uses the cache-wide ttl when set() has none', async () => {
    const a = await ctx.open({ ttl: '2s' });
    await a.set('k', 1);
    const pttl = await ctx.admin.pttl(a.dataKey('k'));
    assert.ok(pttl > 1500 && pttl <= 2000, `PTTL = ${pttl}`);
  });

  it("spreads the lifetimes of values stored together below their ttl by the cache's jitter, for set() and getOrSet() (PTTL in Redis)", async () => {
    const a = await ctx.open({ jitter: '50%' });
    const keys: string[] = [];
    const started = Date.now();
    for (let i = 0; i < 20; i++) {
      await a.set(`s${i}`, i, { ttl: '1m' });
      await a.getOrSet(`g${i}`, () => i, { ttl: '1m' });
      keys.push(`s${i}`, `g${i}`);
    }
    const lifetimes = await Promise.all(keys.map((k) => ctx.admin.pttl(a.dataKey(k))));
    // A lifetime is above 30 s when set; PTTL reads it up to `elapsed` ms later.
    const elapsed = Date.now() - started;
    for (const ms of lifetimes) assert.ok(ms > 30_000 - elapsed && ms <= 60_000, `a PTTL of ${ms} ms is outside (30 s - ${elapsed} ms, 60 s]`);
    // Without jitter all 40 lie within the few milliseconds the loop took.
    assert.ok(Math.max(...lifetimes) - Math.min(...lifetimes) > 5_000, `40 values stored together expire within ${Math.max(...lifetimes) - Math.min(...lifetimes)} ms of each other`);
  });

  it('caps how long an L2 hit stays in L1 by l1.ttl', async () => {
    const a = await ctx.open();
    const b = await ctx.open({ l1: { ttl: 100 } });
    await a.set('k', 'v', { ttl: '1m' });
    assert.equal(await b.get('k'), 'v');
    assert.notEqual(b.store.l1?.peek(b.dataKey('k')), undefined);
    await sleep(200);
    assert.equal(b.store.l1?.peek(b.dataKey('k')), undefined, 'still in B’s L1 after l1.ttl');
    const s0 = b.stats();
    assert.equal(await b.get('k'), 'v');
    assert.equal(b.stats().l2.hits - s0.l2.hits, 1, 'read from L2 again');
  });
});

describe('data API: has, pull, delete', () => {
  const ctx = useRedis();

  it('has(key) is true for stored values (falsy ones included) and false for missing ones', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    for (const [key, value] of [['zero', 0], ['no', false], ['empty', ''], ['nil', null], ['obj', { a: 1 }]] as const) {
      await a.set(key, value);
      assert.equal(await a.has(key), true, `A has ${key}`);
      assert.equal(await b.has(key), true, `B has ${key} (from L2)`);
    }
    assert.equal(await a.has('missing'), false);
    assert.equal(await b.has('missing'), false);
  });

  it('pull(key) returns the value and then it is gone from both instances', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('once', { token: 'abc' });
    const hits: unknown[] = [];
    a.on('hit', (e: { tier: unknown }) => hits.push(e.tier));
    assert.deepStrictEqual(await a.pull('once'), { token: 'abc' });
    assert.deepEqual(hits, ['L2'], 'a pull takes the value from L2, never from an L1 copy');
    assert.equal(await a.get('once'), undefined);
    assert.equal(await b.get('once'), undefined);
    assert.equal(await ctx.admin.exists(a.dataKey('once')), 0);
    assert.equal(await a.pull('once'), undefined, 'a second pull gets nothing');
    assert.equal(await b.pull('missing'), undefined);
  });

  it('pull(key) of a missing key claims nothing: a value set right after it is pulled, and no claim is left in Redis', async () => {
    const a = await ctx.open();
    assert.equal(await a.pull('later'), undefined);
    assert.equal(await ctx.admin.exists(`{${a.dataKey('later')}}:pull`), 0, 'a claim left on a missing key');
    await a.set('later', 'v');
    assert.equal(await a.pull('later'), 'v');
    assert.equal(await ctx.admin.exists(a.dataKey('later'), `{${a.dataKey('later')}}:pull`), 0);
  });

  it('pull(key) whose second step reaches Redis after its claim ran out (its process stalled) takes nothing: another pull gets the value, never both', async () => {
    const a = await ctx.open({ l2: { commandTimeout: 200 } });
    const b = await ctx.open();
    await a.set('stalled', 'token');
    // A stall between the two steps (a long GC pause, a busy event loop), longer than the claim lives.
    const fills = (a.store as unknown as { fills: { settleClaim: (...args: unknown[]) => Promise<boolean> } }).fills;
    const settle = fills.settleClaim.bind(fills);
    let stalled!: () => void;
    const past = new Promise<void>((resolve) => (stalled = resolve));
    fills.settleClaim = async (...args: unknown[]) => {
      await sleep(300);
      stalled();
      return settle(...args);
    };
    const pulling = a.pull('stalled');
    await sleep(250);
    assert.equal(await b.pull('stalled'), 'token', 'the claim of the stalled pull ran out: another pull gets the value');
    await past;
    assert.equal(await pulling, undefined, 'the stalled pull got it too');
  });

  it('pull(key) of a value invalidated since it was set misses and removes it from Redis', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('stale', 'v', { tags: ['t'] });
    await a.invalidateTags(['t']);
    assert.equal(await ctx.admin.exists(a.dataKey('stale')), 1, 'invalidateTags() deleted it: nothing to show');
    assert.equal(await b.pull('stale'), undefined);
    // Its second step (the delete) is not waited for by a pull that misses.
    assert.ok(await eventually(async () => (await ctx.admin.exists(a.dataKey('stale'), `{${a.dataKey('stale')}}:pull`)) === 0), 'the invalid value stayed in Redis');
  });

  it('pull(key) counts an L2 hit when it takes the value, an L2 miss when it finds it invalid', async () => {
    const a = await ctx.open();
    await a.set('counted', 'v');
    await a.set('invalid', 'v', { tags: ['gone'] });
    await a.invalidateTags(['gone']);
    const s0 = a.stats().l2;
    assert.equal(await a.pull('counted'), 'v');
    const s1 = a.stats().l2;
    assert.deepEqual([s1.hits - s0.hits, s1.misses - s0.misses], [1, 0], 'the pull that took the value');
    assert.equal(await a.pull('invalid'), undefined);
    const s2 = a.stats().l2;
    assert.deepEqual([s2.hits - s1.hits, s2.misses - s1.misses], [0, 1], 'the pull that found it invalid');
  });

  it('pull(key) on an instance without L1 (l1: false): a missing key misses, a value is taken', async () => {
    const a = await ctx.open({ l1: false });
    assert.equal(await a.pull('none'), undefined);
    await a.set('once', 'token');
    assert.equal(await a.pull('once'), 'token');
    assert.equal(await a.pull('once'), undefined);
  });

  it('pull(key) on the other instance takes a value that instance never had in L1', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('job', [1, 2, 3]);
    assert.deepStrictEqual(await b.pull('job'), [1, 2, 3]);
    assert.equal(await b.get('job'), undefined);
    assert.equal(await ctx.admin.exists(a.dataKey('job')), 0);
  });

  // pull() was a get() and then a delete(): every caller whose get() came before the first delete() got the value (a
  // one-time token used twice), from L1 copies and from L2 alike. Redis takes the entry and hands it to one caller.
  for (const where of ['in both L1s', 'in L2 alone', 'through a view, in both L1s'] as const) {
    it(`pull(key): of many concurrent pulls on two instances exactly one gets the value (${where}), and it is gone everywhere`, async () => {
      const a = await ctx.open();
      const b = await ctx.open();
      for (let round = 0; round < 5; round++) {
        const key = `token${round}`;
        const ca = where.startsWith('through') ? a.namespace('once') : a;
        const cb = where.startsWith('through') ? b.namespace('once') : b;
        await ca.set(key, { token: round });
        if (where !== 'in L2 alone') assert.deepEqual(await cb.get(key), { token: round }, 'B has a copy in L1');
        else a.store.l1?.delete(a.dataKey(key)); // A's own copy too: both read L2
        const got = (await Promise.all([...Array(10)].flatMap(() => [ca.pull(key), cb.pull(key)]))).filter((v) => v !== undefined);
        assert.deepEqual(got, [{ token: round }], `round ${round}: ${got.length} pulls got the value`);
        assert.equal(await ca.get(key), undefined);
        assert.ok(await eventually(async () => (await cb.get(key)) === undefined, 2000), "B's copy is dropped");
      }
    });
  }

  it('pull(key) without Redis: of many concurrent pulls one gets the value', async () => {
    const cache = ctx.track(createCache({ redis: false }));
    await cache.set('once', 'token');
    const hits: unknown[] = [];
    cache.on('hit', (e: { tier: unknown }) => hits.push(e.tier));
    const got = (await Promise.all([...Array(20)].map(() => cache.pull('once')))).filter((v) => v !== undefined);
    assert.deepEqual(got, ['token']);
    assert.deepEqual(hits, ['L1'], 'the pull that got it is a hit from L1');
    assert.equal(await cache.get('once'), undefined);
  });

  it('delete(key) removes the value from the deleting instance and from L2', async () => {
    const a = await ctx.open();
    await a.set('gone', 'soon');
    assert.equal(await a.get('gone'), 'soon');
    await a.delete('gone');
    assert.equal(await a.get('gone'), undefined, 'A still returns it');
    assert.equal(a.store.l1?.peek(a.dataKey('gone')), undefined, 'still in A’s L1');
    assert.equal(await ctx.admin.exists(a.dataKey('gone')), 0, 'still in Redis');
    const c = await ctx.open();
    assert.equal(await c.get('gone'), undefined, 'a fresh instance still finds it');
    await a.delete('never-there'); // no error
  });
});

describe('data API: deleteMany', () => {
  const ctx = useRedis();

  it('removes every key on both instances and from Redis, in one invalidation; other keys stay', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    for (const k of ['a', 'b', 'c', 'keep']) await a.set(k, k);
    for (const k of ['a', 'b', 'c', 'keep']) assert.equal(await b.get(k), k, 'B has it in L1');
    const before = a.stats().invalidations;
    assert.deepStrictEqual(await a.deleteMany(['a', 'b', 'c']), { delivered: true });
    assert.equal(a.stats().invalidations - before, 1);
    for (const k of ['a', 'b', 'c']) {
      assert.equal(await a.get(k), undefined, `A still returns ${k}`);
      assert.ok(await eventually(async () => (await b.get(k)) === undefined), `B still returns ${k}`);
    }
    assert.equal(await ctx.admin.exists(a.dataKey('a'), a.dataKey('b'), a.dataKey('c')), 0, 'still in Redis');
    assert.equal(await a.get('keep'), 'keep');
    assert.equal(await b.get('keep'), 'keep');
    assert.deepStrictEqual(await a.deleteMany([]), { delivered: true });
  });

  it('a getOrSet loader that was running when its key was deleted does not store its value', async () => {
    const a = await ctx.open();
    const loading = a.getOrSet('k', async () => {
      await sleep(100);
      return 'old';
    });
    await sleep(20);
    await a.deleteMany(['k', 'other']);
    assert.equal(await loading, 'old');
    assert.equal(await a.get('k'), undefined);
    assert.equal(await ctx.admin.exists(a.dataKey('k')), 0);
  });

  it('deletes 50,000 keys at once on a healthy Redis: delivered, dropped on the other instance at once, Redis never reported down', async function () {
    // Tens of round trips one after the other: on a loaded 2-core machine they took over mocha's 10 s; a hang is what this bounds.
    this.timeout(60_000);
    // 50 UNLINK slices and 50 bump scripts, one after the other: on a loaded 2-core machine one of them passed the
    // 200 ms default (its answer late, Redis busy or this process not scheduled), which is an outage by contract
    // (delivered: false, L2 reported down), not what this test asks. The bound here is a healthy Redis's.
    const a = await ctx.open({ l2: { commandTimeout: HEALTHY_REDIS_MS } });
    const b = await ctx.open({ l2: { commandTimeout: HEALTHY_REDIS_MS } });
    const problems = reportedProblems({ A: a, B: b });
    const keys = Array.from({ length: 50_000 }, (_, i) => `bulk:${i}`);
    const cached = ['bulk:0', 'bulk:24999', 'bulk:49999'];
    for (const k of cached) await a.set(k, k);
    for (const k of cached) assert.equal(await b.get(k), k, 'B has it in L1');
    assert.deepStrictEqual(await a.deleteMany(keys), { delivered: true });
    for (const k of cached) assert.equal(await a.get(k), undefined, `A still returns ${k}`);
    // Delivered means published: B drops them as the messages arrive, not after a replay or an L1 lifetime.
    const gone = async () => (await Promise.all(cached.map((k) => b.get(k)))).every((v) => v === undefined);
    assert.ok(await eventually(gone, AT_ONCE_MS), `B still returns a deleted key ${AT_ONCE_MS} ms after deleteMany resolved`);
    assert.equal(await ctx.admin.exists(...cached.map((k) => a.dataKey(k))), 0, 'still in Redis');
    assert.deepStrictEqual(problems, []);
    assert.equal(a.health().l2, 'ok');
  });

  it("keeps a value another instance set() after hearing of a deleteMany(): the deletion never lands after its message", async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    const keys = Array.from({ length: 5_000 }, (_, i) => `again:${i}`);
    const target = keys[keys.length - 1]!;
    await a.set(target, 'old');
    let setAgain: Promise<void> | undefined;
    // B hears of the deletion (the bus's message), then writes the key anew: a write after the delete.
    b.on('invalidate', () => (setAgain ??= b.set(target, 'new')));
    assert.deepStrictEqual(await a.deleteMany(keys), { delivered: true });
    assert.ok(await eventually(async () => setAgain !== undefined, 1000), 'B never heard of the deletion');
    await setAgain;
    await new Promise((resolve) => setTimeout(resolve, 100));
    const c = await ctx.open();
    assert.equal(await c.get(target), 'new', 'a third instance (L1 empty) reads the value set after the delete from Redis');
  });
});

describe('data API: invalidation and clear', () => {
  const ctx = useRedis();

  it('rejects an invalid argument of every invalidation call with a TypeError, never a synchronous throw: invalidateUser(id).catch(log) catches it', async () => {
    const a = await ctx.open();
    const calls: Record<string, () => Promise<unknown>> = {
      'invalidateUser(undefined)': () => a.invalidateUser(undefined as never),
      'invalidateUser(NaN)': () => a.invalidateUser(NaN),
      'invalidatePrefix("api")': () => a.invalidatePrefix('api'),
      'invalidatePrefix(5n)': () => a.invalidatePrefix(5n as never),
      'invalidateTags("t")': () => a.invalidateTags('t' as never),
      'invalidateKey("")': () => a.invalidateKey(''),
      'deleteMany("k")': () => a.deleteMany('k' as never),
    };
    for (const [name, call] of Object.entries(calls)) {
      let pending: Promise<unknown> | undefined;
      assert.doesNotThrow(() => {
        pending = call();
      }, `${name} threw at once instead of rejecting`);
      await assert.rejects(pending!, TypeError, name);
    }
    assert.equal(a.stats().invalidations, 0, 'nothing was invalidated');
  });

  it('invalidateTags on A makes A miss at once for entries with the tag; others still hit', async () => {
    const a = await ctx.open();
    await a.set('tagged', 'x', { tags: ['movie:7'] });
    await a.set('two-tags', 'xx', { tags: ['other', 'movie:7'] });
    await a.set('other-tag', 'y', { tags: ['movie:8'] });
    await a.set('untagged', 'z');
    assert.equal(await a.get('tagged'), 'x');

    await a.invalidateTags(['movie:7']);
    assert.equal(await a.get('tagged'), undefined);
    assert.equal(await a.get('two-tags'), undefined);
    assert.equal(await a.get('other-tag'), 'y');
    assert.equal(await a.get('untagged'), 'z');
    // And not from L2 either.
    const c = await ctx.open();
    assert.equal(await c.get('tagged'), undefined);
    assert.equal(await c.get('other-tag'), 'y');
  });

  it('after A.invalidateTags, B misses too once the bus message arrives', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('x', 'old', { tags: ['t'] });
    await a.set('y', 'kept', { tags: ['u'] });
    assert.equal(await b.get('x'), 'old');
    assert.equal(await b.get('y'), 'kept');
    const s0 = b.stats();
    assert.equal(await b.get('x'), 'old');
    assert.equal(b.stats().l1.hits - s0.l1.hits, 1, 'B serves x from its L1 before the invalidation');

    await a.invalidateTags(['t']);
    assert.equal(b.health().bus, 'ok');
    const deadline = Date.now() + 1000;
    while ((await b.get('x')) !== undefined && Date.now() < deadline) await sleep(1);
    assert.equal(await b.get('x'), undefined, 'B still serves x from its L1');
    assert.equal(await b.get('y'), 'kept');
    // A new value under the tag works on both.
    await b.set('x', 'new', { tags: ['t'] });
    assert.equal(await a.get('x'), 'new');
  });

  it('invalidateTags of 45,000 tags at once on a healthy Redis: delivered, dropped on the other instance at once, Redis never reported down', async function () {
    // Tens of round trips one after the other: on a loaded 2-core machine they took over mocha's 10 s; a hang is what this bounds.
    this.timeout(60_000);
    // 45 bump scripts one after the other: see the 50,000-key deleteMany for why not the 200 ms default.
    const a = await ctx.open({ l2: { commandTimeout: HEALTHY_REDIS_MS } });
    const b = await ctx.open({ l2: { commandTimeout: HEALTHY_REDIS_MS } });
    const problems = reportedProblems({ A: a, B: b });
    await a.set('first', '1', { tags: ['bulk:0'] });
    await a.set('last', '2', { tags: ['bulk:44999'] });
    await a.set('kept', '3', { tags: ['bulk:45000'] });
    for (const k of ['first', 'last', 'kept']) assert.ok((await b.get(k)) !== undefined, 'B has it in L1');
    const tags = Array.from({ length: 45_000 }, (_, i) => `bulk:${i}`);
    assert.deepStrictEqual(await a.invalidateTags(tags), { delivered: true });
    assert.equal(await a.get('first'), undefined);
    assert.equal(await a.get('last'), undefined);
    const gone = async () => (await b.get('first')) === undefined && (await b.get('last')) === undefined;
    assert.ok(await eventually(gone, AT_ONCE_MS), `B still returns an invalidated entry ${AT_ONCE_MS} ms after invalidateTags resolved`);
    assert.equal(await b.get('kept'), '3');
    assert.deepStrictEqual(problems, []);
  });

  it('a set() with more tags than an entry in Redis records keeps the value in L1 and reports it; one with 1,000 tags reaches every instance', async () => {
    // What is stored and reported is checked here, not time: the 65,535-tag stamp keeps Redis busy long enough, on a
    // loaded machine, for a command of either instance to pass the 200 ms default ('B error (l2): Command timed out').
    const a = await ctx.open({ l2: { commandTimeout: '2s' } });
    const b = await ctx.open({ l2: { commandTimeout: '2s' } });
    const problems = reportedProblems({ A: a, B: b });
    const tags = (n: number) => Array.from({ length: n }, (_, i) => `t${i}`);
    await a.set('many', 'M', { tags: tags(1_000) });
    assert.equal(await b.get('many'), 'M', 'an entry with 1,000 tags is in Redis');
    await a.invalidateTags(['t999']);
    assert.ok(await eventually(async () => (await b.get('many')) === undefined, 200), 'the invalidation of its last tag did not reach B');
    assert.deepStrictEqual(problems, []);

    await a.set('too-many', 'X', { tags: tags(65_535) });
    assert.equal(await a.get('too-many'), 'X', 'A keeps it in L1');
    assert.equal(await b.get('too-many'), undefined, 'not in Redis');
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, new RegExp(`A error \\(l2\\): .*at most ${MAX_ENTRY_TAGS} tags; this one records 65536`));
    assert.equal(a.health().l2, 'ok');
  });

  it('an entry whose fill began before an invalidation of its tag is never served', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    const filled = a.getOrSet(
      'slow',
      async () => {
        await sleep(100);
        return 'stale';
      },
      { tags: ['t'] },
    );
    await sleep(20);
    await b.invalidateTags(['t']);
    assert.equal(await filled, 'stale', 'the caller that waited gets its value');
    assert.equal(await a.get('slow'), undefined);
    assert.equal(await b.get('slow'), undefined);
  });

  // DESIGN §4(3): a loader still running when an invalidation resolves never has its value served afterwards. Its own
  // caller asked before the invalidation and gets what it loaded; a caller that joined its run is served from the
  // cache, as an HTTP request that waited on a fill is (which runs the handler itself in this case).
  const invalidations: Record<string, (cache: TierCache) => Promise<unknown>> = {
    "invalidated the value's tag": (cache) => cache.invalidateTags(['item:1']),
    'deleted its key': (cache) => cache.delete('item'),
    'cleared the namespace': (cache) => cache.clear(),
  };
  for (const [what, invalidate] of Object.entries(invalidations)) {
    for (const by of ['this instance', 'another instance'] as const) {
      it(`a getOrSet() that joined a loader's run is not handed its value when ${by} ${what} while the loader ran: the joiners share one new run`, async () => {
        const a = await ctx.open({ l2: { commandTimeout: HEALTHY_REDIS_MS } });
        const b = await ctx.open({ l2: { commandTimeout: HEALTHY_REDIS_MS } });
        const loader = gatedLoader();
        const first = a.getOrSet('item', loader.load, { tags: ['item:1'] });
        await loader.started;
        const joiners = [a.getOrSet('item', loader.load, { tags: ['item:1'] }), a.getOrSet('item', loader.load, { tags: ['item:1'] })];
        await sleep(20);
        assert.equal(loader.runs, 1, 'the second and third callers joined the run');
        loader.version = 2;
        if (by === 'this instance') assert.deepEqual(await invalidate(a), { delivered: true });
        else {
          const heard = new Promise<void>((resolve) => a.once('invalidate', () => resolve()));
          assert.deepEqual(await invalidate(b), { delivered: true });
          await heard;
        }
        loader.open();
        assert.equal(await first, 'v1', 'the caller whose loader ran gets what it loaded');
        assert.deepEqual(await Promise.all(joiners), ['v2', 'v2'], 'a caller that joined the run was handed the value of a loader an invalidation overtook');
        assert.equal(loader.runs, 2, 'the joiners shared one run of their own');
        assert.equal(await a.get('item'), 'v2');
        assert.equal(await b.get('item'), 'v2');
      });
    }
  }

  it('clear() empties the namespace on both instances but not another namespace on the same Redis', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    const other = await ctx.open({ namespace: `${ctx.ns}-other` });
    await a.set('k1', 1);
    await a.set('k2', 2, { tags: ['t'] });
    await other.set('k1', 'other-1');
    assert.equal(await b.get('k1'), 1);
    assert.equal(await b.get('k2'), 2);

    await a.clear();
    assert.equal(await a.get('k1'), undefined);
    assert.equal(await a.get('k2'), undefined);
    assert.equal(await b.get('k1'), undefined, 'B still serves k1');
    assert.equal(await b.get('k2'), undefined, 'B still serves k2');
    assert.equal(await other.get('k1'), 'other-1', 'the other namespace was cleared too');
    const fresh = await ctx.open({ namespace: `${ctx.ns}-other` });
    assert.equal(await fresh.get('k1'), 'other-1', 'the other namespace lost its L2 entry');

    await a.set('k1', 'after');
    assert.equal(await b.get('k1'), 'after', 'a set after clear() works');
  });

  it("an invalidation in one namespace never reaches another namespace's bus or entries on the same Redis", async () => {
    const a = await ctx.open();
    const other = await ctx.open({ namespace: `${ctx.ns}-other` });
    const otherPeer = await ctx.open({ namespace: `${ctx.ns}-other` });
    await other.set('k', 'kept', { tags: ['t'] });
    assert.equal(await other.get('k'), 'kept');
    await a.invalidateTags(['t']);
    // Sent after A's on the same Redis: once the other namespace's bus has it, it would have had A's too.
    await otherPeer.invalidateTags(['unrelated']);
    const bus = other.bus!;
    for (let i = 0; i < 400 && bus.received < 1; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(bus.received, 1, 'messages heard by the other namespace');
    const hits = other.stats().l1.hits;
    assert.equal(await other.get('k'), 'kept');
    assert.equal(other.stats().l1.hits, hits + 1, "the other namespace's entry tagged 't' is still an L1 hit");
  });

  it('an entry in L1 from before a FLUSHALL that a refused store revealed is checked in Redis: not served, and counted as an L1 miss', async () => {
    const a = await ctx.open();
    await a.set('x', 'old');
    assert.equal(await a.get('x'), 'old');
    // A FLUSHALL while a fill runs: Redis refuses its store (the epoch it recorded is gone), and A forgets the epoch.
    const loaded = await a.getOrSet('y', async () => {
      await ctx.admin.flushall();
      return 'new';
    });
    assert.equal(loaded, 'new');
    assert.equal(a.store.versions.knownEpoch, undefined, 'the refused store did not make A forget the epoch');
    const before = a.stats();
    assert.equal(await a.get('x'), undefined, 'A served an entry from before the FLUSHALL');
    const after = a.stats();
    assert.deepEqual([after.l1.hits - before.l1.hits, after.l1.misses - before.l1.misses], [0, 1]);
  });

  it('FLUSHALL between fills and invalidations never makes an old entry valid again', async function () {
    this.timeout(10_000);
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('x', 'old', { tags: ['t'] });
    assert.equal(await b.get('x'), 'old'); // now in both L1s
    const oldBytes = await ctx.admin.getBuffer(a.dataKey('x'));
    assert.ok(oldBytes);

    await a.invalidateTags(['t']);
    await ctx.admin.flushall();

    for (let round = 0; round < 3; round++) {
      assert.equal(await a.get('x'), undefined, `A returned the old value (round ${round})`);
      assert.equal(await b.get('x'), undefined, `B returned the old value (round ${round})`);
      await sleep(10);
    }
    // The old bytes back in L2 (as if only the counters had been lost) are still not served.
    await ctx.admin.set(a.dataKey('x'), oldBytes);
    const c = await ctx.open();
    assert.equal(await c.get('x'), undefined, 'a fresh instance returned the old entry from L2');
    assert.equal(await b.get('x'), undefined);

    // FLUSHALL again: no message tells anyone, but every instance notices the
    // epoch change within the bus's epoch check, and then a fresh set works everywhere.
    await ctx.admin.flushall();
    await sleep(EPOCH_CHECK_MS * 2 + 100);
    await a.set('x', 'new', { tags: ['t'] });
    assert.equal(await a.get('x'), 'new');
    assert.equal(await b.get('x'), 'new');
    assert.equal(await c.get('x'), 'new');
    // ...and can itself be invalidated (A hears of it through the bus).
    await b.invalidateTags(['t']);
    const deadline = Date.now() + 1000;
    while ((await a.get('x')) !== undefined && Date.now() < deadline) await sleep(1);
    assert.equal(await a.get('x'), undefined);
  });
});

describe('data API: source()', () => {
  const ctx = useRedis();

  /** A tiny "database" with call counters. */
  function database(initial: Record<string, string> = {}) {
    const rows = new Map<string, string>(Object.entries(initial));
    const calls = { load: 0, save: 0, remove: 0 };
    return {
      rows,
      calls,
      source: {
        async load(id: string) {
          calls.load++;
          return rows.get(id);
        },
        async save(id: string, value: string) {
          calls.save++;
          rows.set(id, value);
        },
        async remove(id: string) {
          calls.remove++;
          rows.delete(id);
        },
      },
    };
  }

  it('get() loads once, then hits', async () => {
    const a = await ctx.open();
    const db = database({ '1': 'alice' });
    const users = a.source(db.source, { prefix: 'user:', ttl: '1m' });
    assert.equal(await users.get('1'), 'alice');
    assert.equal(await users.get('1'), 'alice');
    assert.equal(db.calls.load, 1);
    assert.equal(await a.get('user:1'), 'alice', 'cached under prefix + id');
    // Another instance's source reads it from L2 without loading.
    const b = await ctx.open();
    const db2 = database({ '1': 'not this' });
    assert.equal(await b.source(db2.source, { prefix: 'user:' }).get('1'), 'alice');
    assert.equal(db2.calls.load, 0);
  });

  it('set() saves, then the next get() returns the new value without calling load', async () => {
    const a = await ctx.open();
    const db = database({ '1': 'alice' });
    const users = a.source(db.source, { prefix: 'user:' });
    assert.equal(await users.get('1'), 'alice');
    await users.set('1', 'alicia');
    assert.equal(db.calls.save, 1);
    assert.equal(db.rows.get('1'), 'alicia');
    assert.equal(await users.get('1'), 'alicia');
    assert.equal(db.calls.load, 1, 'load was called again');
  });

  it('delete() calls remove and evicts the cached value', async () => {
    const a = await ctx.open();
    const db = database({ '1': 'alice' });
    const users = a.source(db.source, { prefix: 'user:' });
    assert.equal(await users.get('1'), 'alice');
    await users.delete('1');
    assert.equal(db.calls.remove, 1);
    assert.equal(await a.get('user:1'), undefined, 'still cached');
    assert.equal(await ctx.admin.exists(a.dataKey('user:1')), 0, 'still in Redis');
    assert.equal(await users.get('1'), undefined);
    assert.equal(db.calls.load, 2);
  });

  it('a source without save rejects set() with a clear TypeError and leaves the cache alone', async () => {
    const a = await ctx.open();
    const readOnly = a.source({ load: async (id: string) => `value-${id}` });
    assert.equal(await readOnly.get('1'), 'value-1');
    await assert.rejects(readOnly.set('1', 'other'), (err: unknown) => {
      assert.ok(err instanceof TypeError, `expected a TypeError, got ${String(err)}`);
      assert.match(err.message, /save/);
      return true;
    });
    assert.equal(await readOnly.get('1'), 'value-1');
  });

  it('refuses unknown or ill-typed source() options with TierCacheConfigError naming the option: a typo in prefix would read the cache\'s own keys', async () => {
    const a = await ctx.open();
    await a.set('42', 'an unrelated value');
    const load = async (id: string) => ({ id });
    const named = (option: string) => (err: unknown) => err instanceof TierCacheConfigError && err.option === option;
    assert.throws(() => a.source({ load }, { prefx: 'user:' } as never), named('source prefx'));
    assert.throws(() => a.source({ load }, { prefix: 5 } as never), named('source prefix'));
    assert.throws(() => a.source({ load }, { tags: 'user' } as never), named('source tags'));
    assert.throws(() => a.source({ load }, { tags: [''] }), named('source tags'));
    assert.throws(() => a.namespace('v').source({ load }, null as never), named('source options'));
    assert.deepEqual(await a.source({ load }, { prefix: 'user:', tags: (id) => [`user:${id}`] }).get('42'), { id: '42' });
    assert.equal(await a.get('42'), 'an unrelated value');
  });

  it("never hands one id another id's value: an object or array id, whose String() other ids share, is refused with a TypeError; an object with its own toString() (an ObjectId) keys by it", async () => {
    const a = await ctx.open();
    const docs = a.source({ load: async (id: { tenant: string; doc: number } | unknown[]) => ({ loadedFor: JSON.stringify(id) }) });
    // The message names what was given.
    const refused = (what: string) => (err: unknown) => err instanceof TypeError && err.message.includes(`a source() id must be a string, a number or an object with a toString() of its own; got ${what},`);
    // String() makes '[object Object]' of both, and 'a,b,c' of both arrays: one would be served the other's value.
    await assert.rejects(docs.get({ tenant: 'acme', doc: 1 }), refused('a plain object'));
    await assert.rejects(docs.get({ tenant: 'globex', doc: 1 }), refused('a plain object'));
    await assert.rejects(docs.get(['a', 'b,c']), refused('an array'));
    await assert.rejects(docs.get(['a,b', 'c']), refused('an array'));
    assert.equal(a.stats().l1.entries, 0, 'nothing stored under a shared key');
    // An object that names itself (a MongoDB ObjectId, say) is keyed by what it says.
    class ObjectId {
      constructor(private readonly hex: string) {}
      toString() {
        return this.hex;
      }
    }
    const byObjectId = a.source({ load: async (id: ObjectId) => ({ loadedFor: String(id) }) });
    assert.deepEqual(await byObjectId.get(new ObjectId('65a1')), { loadedFor: '65a1' });
    assert.deepEqual(await byObjectId.get(new ObjectId('65a2')), { loadedFor: '65a2' });
  });

  it("never hands one Buffer id another's value: a Buffer that is not UTF-8 text (a BINARY(16) uuid), whose String() other Buffers share, is refused; one that is text keys by it", async () => {
    const a = await ctx.open();
    const rows = a.source({ load: async (id: Buffer) => ({ loadedFor: id.toString('hex') }) });
    const refused = (err: unknown) => err instanceof TypeError && /id/.test(err.message);
    // Both are '\uFFFD' to String(): one would be served the other's row.
    const [first, second] = [Buffer.from('0a80', 'hex'), Buffer.from('0a81', 'hex')];
    await assert.rejects(rows.get(first), refused);
    await assert.rejects(rows.get(second), refused);
    assert.equal(a.stats().l1.entries, 0, 'nothing stored under a shared key');
    assert.deepEqual(await rows.get(Buffer.from('row-7')), { loadedFor: Buffer.from('row-7').toString('hex') });
    assert.deepEqual(await rows.get(Buffer.from('row-8')), { loadedFor: Buffer.from('row-8').toString('hex') });
  });

  it("never hands one Date id another's value: Dates key by the instant to the millisecond, the same on every instance whatever its time zone", async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    const byDate = (cache: TierCache) => cache.source({ load: async (id: Date) => ({ loadedFor: id.getTime() }) });
    // String() of a Date drops the milliseconds: both were 'Thu Jan 01 1970 00:00:01 ...'.
    assert.deepEqual(await byDate(a).get(new Date(1_000)), { loadedFor: 1_000 });
    assert.deepEqual(await byDate(a).get(new Date(1_500)), { loadedFor: 1_500 });
    assert.deepEqual(await byDate(b).get(new Date(1_500)), { loadedFor: 1_500 });
    await assert.rejects(byDate(a).get(new Date(Number.NaN)), (err: unknown) => err instanceof TypeError && /id/.test(err.message));
  });

  it("never hands one Symbol or function id another's value: both are refused with a TypeError, before the data source is read or written", async () => {
    const a = await ctx.open();
    const calls: string[] = [];
    const things = a.source({
      load: async (id: unknown) => (calls.push(`load ${String(id)}`), { loadedFor: String(id) }),
      save: async (id: unknown) => void calls.push(`save ${String(id)}`),
      remove: async (id: unknown) => void calls.push(`remove ${String(id)}`),
    });
    const refused = (err: unknown) => err instanceof TypeError && /id/.test(err.message);
    // String() makes 'Symbol(user)' of both symbols and the same source text of both closures: one would get the other's value.
    const tenant = (name: string) => () => name;
    for (const [first, second] of [
      [Symbol('user'), Symbol('user')],
      [tenant('acme'), tenant('globex')],
      // Boxed, a Symbol is an object whose toString() (Symbol.prototype's) is the same description.
      [Object(Symbol('user')) as object, Object(Symbol('user')) as object],
    ] as const) {
      await assert.rejects(things.get(first), refused);
      await assert.rejects(things.get(second), refused);
      await assert.rejects(things.set(first, { loadedFor: 'new' }), refused);
      await assert.rejects(things.delete(second), refused);
    }
    // The message names what was given: a boxed Symbol is no plain object to the caller.
    await assert.rejects(things.get(Object(Symbol('user')) as object), /got a boxed Symbol,/);
    assert.deepEqual(calls, [], 'the data source was called for an id that is refused');
    assert.equal(a.stats().l1.entries, 0, 'nothing stored under a shared key');
  });

  // The checks compared toString with this realm's Object.prototype.toString and took Dates by instanceof: a plain
  // object made in another realm (a vm context: a sandboxed plugin, a test runner's) passed and was keyed
  // '[object Object]', every such id sharing one value; such a Date was keyed by its String(), to the second.
  it("never hands one id made in another realm (a vm context) another's value: a plain object or boxed Symbol is refused, a Date keyed to the millisecond", async () => {
    const a = await ctx.open();
    let loads = 0;
    const things = a.source({ load: async (id: unknown) => ({ load: ++loads, of: (id as { who?: unknown }).who }) });
    const realm = (code: string) => runInNewContext(code) as object;
    const refused = (err: unknown) => err instanceof TypeError && /got (a plain object|a boxed Symbol),/.test(err.message);
    for (const id of [realm("({ who: 'alice' })"), realm("({ who: 'bob' })"), realm("Object(Symbol('user'))")]) await assert.rejects(things.get(id), refused);
    // An object naming itself by its tag alone ('[object Map]', a class's Symbol.toStringTag), of either realm: every such
    // id's String() is the same, so it is refused as a plain object is.
    for (const id of [new Map([['who', 'alice']]), realm("new Map([['who', 'bob']])"), { [Symbol.toStringTag]: 'User', who: 'carol' }]) await assert.rejects(things.get(id), refused);
    assert.equal(loads, 0, 'the data source was read for an id that is refused');
    const first = await things.get(realm('new Date(1700000000100)'));
    const second = await things.get(realm('new Date(1700000000900)'));
    assert.deepEqual([first, second].map((v) => (v as { load: number }).load), [1, 2], 'two Dates a second apart shared a key');
    assert.equal((await things.get(new Date(1700000000900)) as { load: number }).load, 2, "a Date of this realm is keyed as another realm's");
  });

  it("never keys a null or undefined id as the string 'null' or 'undefined': both are refused with a TypeError, before the data source is read or written", async () => {
    const a = await ctx.open();
    const calls: string[] = [];
    const users = a.source({
      load: async (id: unknown) => (calls.push(`load ${String(id)}`), { loadedFor: String(id) }),
      save: async (id: unknown) => void calls.push(`save ${String(id)}`),
      remove: async (id: unknown) => void calls.push(`remove ${String(id)}`),
    });
    // The user literally named 'undefined' gets their own row; a missing route parameter must not be handed it.
    assert.deepEqual(await users.get('undefined'), { loadedFor: 'undefined' });
    calls.length = 0;
    const refused = (err: unknown) => err instanceof TypeError && /id/.test(err.message);
    for (const id of [undefined, null]) {
      await assert.rejects(users.get(id), refused);
      await assert.rejects(users.set(id, { loadedFor: 'new' }), refused);
      await assert.rejects(users.delete(id), refused);
    }
    assert.deepEqual(calls, [], 'the data source was called for an id that is refused');
    assert.deepEqual(await users.get('undefined'), { loadedFor: 'undefined' }, "the string id's value changed");
  });

  it("refuses an object or array id before set() saves or delete() removes anything: the TypeError means nothing was written", async () => {
    const a = await ctx.open();
    const writes: string[] = [];
    const docs = a.source({
      load: async (id: unknown) => ({ loadedFor: JSON.stringify(id) }),
      save: async (id: unknown) => void writes.push(`save ${JSON.stringify(id)}`),
      remove: async (id: unknown) => void writes.push(`remove ${JSON.stringify(id)}`),
    });
    const refused = (err: unknown) => err instanceof TypeError && /id/.test(err.message);
    await assert.rejects(docs.set({ tenant: 'acme', doc: 1 }, { loadedFor: 'new' }), refused);
    await assert.rejects(docs.set(['a', 'b'], { loadedFor: 'new' }), refused);
    await assert.rejects(docs.delete({ tenant: 'acme', doc: 1 }), refused);
    assert.deepEqual(writes, [], 'the data source was written although the call was refused');
  });

  it('a slow load started before set() of a new value does not overwrite it: get after both returns the new value', async () => {
    const a = await ctx.open();
    const rows = new Map([['1', 'old']]);
    let loads = 0;
    const users = a.source(
      {
        async load(id: string) {
          loads++;
          const seen = rows.get(id); // read at the start, as a slow query would
          if (loads === 1) await sleep(200);
          return seen;
        },
        async save(id: string, value: string) {
          rows.set(id, value);
        },
      },
      { prefix: 'user:' },
    );
    const slow = users.get('1');
    await sleep(30);
    await users.set('1', 'new');
    assert.equal(await slow, 'old', 'the slow caller gets what it loaded');
    assert.equal(await users.get('1'), 'new');
    assert.equal(await a.get('user:1'), 'new');
    const b = await ctx.open();
    assert.equal(await b.get('user:1'), 'new');
  });

  it('a slow load finishing after set() leaves the new value in the cache (the next get needs no load)', async () => {
    const a = await ctx.open();
    const rows = new Map([['1', 'old']]);
    let loads = 0;
    const users = a.source(
      {
        async load(id: string) {
          loads++;
          const seen = rows.get(id);
          if (loads === 1) await sleep(200);
          return seen;
        },
        async save(id: string, value: string) {
          rows.set(id, value);
        },
      },
      { prefix: 'user:' },
    );
    const slow = users.get('1');
    await sleep(30);
    await users.set('1', 'new');
    await slow;
    assert.equal(await users.get('1'), 'new');
    assert.equal(loads, 1, 'the stale fill replaced the value set() stored, so get() had to load again');
  });
});

describe('data API: enabled: false', () => {
  const ctx = useRedis();

  it('get always misses and getOrSet calls the loader every time', async () => {
    const on = await ctx.open();
    const off = await ctx.open({ enabled: false });
    await on.set('shared', 'value');
    assert.equal(await off.get('shared'), undefined, 'a disabled cache read L2');
    assert.equal(await off.pull('shared'), undefined, 'a disabled cache pulled from L2');
    assert.equal(await on.get('shared'), 'value');
    await off.set('mine', 'value');
    assert.equal(await off.get('mine'), undefined);
    assert.equal(await off.has('mine'), false);
    assert.equal(await ctx.admin.exists(off.dataKey('mine')), 0, 'a disabled cache wrote to Redis');
    let runs = 0;
    for (let i = 1; i <= 3; i++) {
      assert.equal(await off.getOrSet('k', () => ++runs), i);
    }
    assert.equal(runs, 3);
  });
});

describe('data API: events', () => {
  const ctx = useRedis();

  it("emits 'miss', 'store', 'hit' (with the tier) and 'invalidate'", async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    const seen: Array<[string, unknown]> = [];
    for (const name of ['hit', 'miss', 'store', 'invalidate'] as const) {
      a.on(name, (e: unknown) => seen.push([name, e]));
      b.on(name, (e: unknown) => seen.push([`b:${name}`, e]));
    }
    assert.equal(await a.get('k'), undefined);
    await a.set('k', 1, { tags: ['t'] });
    assert.equal(await a.get('k'), 1);
    assert.equal(await b.get('k'), 1);
    await a.getOrSet('filled', () => 'v');
    await a.invalidateTags(['t']);
    await a.delete('filled');
    await a.clear();
    const local = seen
      .filter(([, e]) => (e as { remote?: boolean }).remote !== true)
      .map(([name, e]) => {
        if (name !== 'store') return [name, e];
        assert.ok((e as { fillMs: number }).fillMs >= 0);
        return [name, { ...(e as object), fillMs: 0 }];
      });
    const deleted = (local[7]![1] as { tags: string[] }).tags;
    assert.deepStrictEqual(local, [
      ['miss', { key: 'k', route: 'data' }],
      ['store', { key: 'k', route: 'data', tiers: ['L1', 'L2'], bytes: 1, fillMs: 0 }],
      ['hit', { key: 'k', route: 'data', tier: 'L1', stale: false }],
      ['b:hit', { key: 'k', route: 'data', tier: 'L2', stale: false }],
      ['miss', { key: 'filled', route: 'data' }],
      ['store', { key: 'filled', route: 'data', tiers: ['L1', 'L2'], bytes: 3, fillMs: 0 }],
      ['invalidate', { kind: 'tags', tags: ['t'], remote: false, delivered: true }],
      ['invalidate', { kind: 'key', tags: deleted, key: 'filled', remote: false, delivered: true }],
      ['invalidate', { kind: 'clear', tags: [], clear: true, remote: false, delivered: true }],
    ]);
    assert.match(deleted[0]!, /^key:.*filled$/);
  });

  it("a 'hit', 'miss', 'store' or 'invalidate' listener that throws fails no call: get() neither throws nor rejects, getOrSet() returns its value and releases its fill lock at once", async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('k', 'stored');
    for (const event of ['hit', 'miss', 'store', 'invalidate'] as const) a.on(event, () => {
      throw new Error(`a '${event}' listener with a bug`);
    });
    let value: Promise<unknown> | undefined;
    assert.doesNotThrow(() => (value = a.get('k')), 'an L1 hit threw at once');
    assert.equal(await value, 'stored');
    assert.equal(await a.get('absent'), undefined);
    assert.equal(await a.getOrSet('loaded', () => 'by A'), 'by A');
    assert.equal(await ctx.admin.exists(`{${a.dataKey('loaded')}}:lock`), 0, 'the fill lock is still held');
    assert.equal(await b.get('loaded'), 'by A');
    assert.equal(await a.set('other', 1), undefined);
    assert.deepEqual(await a.delete('other'), { delivered: true });
    assert.deepEqual(await a.invalidateTags(['t']), { delivered: true });
    assert.deepEqual(await a.clear(), { delivered: true });
  });
});

describe('data API: Redis where nothing listens', () => {
  const { track } = useCleanup();

  async function deadCache(options: CacheOptions = {}): Promise<TierCache> {
    const port = await freePort();
    return track(createCache({ namespace: nextNamespace(), redis: `redis://127.0.0.1:${port}`, ...options }));
  }

  for (const [label, options] of [['L1 + L2', {}], ['L2 only', { l1: false }]] as const) {
    it(`get and set each resolve within 250 ms (miss / no-op), 5 times, and stats().l2.errors counts them (${label})`, async () => {
      const cache = await deadCache(options);
      const rejections: unknown[] = [];
      const onRejection = (reason: unknown) => rejections.push(reason);
      process.on('unhandledRejection', onRejection);
      try {
        let calls = 0;
        for (let i = 0; i < 5; i++) {
          const got = await timed(() => cache.get(`k${i}`));
          calls++;
          assert.equal(got.value, undefined);
          assert.ok(got.ms < 250, `get #${i + 1} took ${got.ms.toFixed(1)} ms`);
          const stored = await timed(() => cache.set(`k${i}`, { i }));
          calls++;
          assert.equal(stored.value, undefined);
          assert.ok(stored.ms < 250, `set #${i + 1} took ${stored.ms.toFixed(1)} ms`);
        }
        const { l2 } = cache.stats();
        assert.ok(l2.errors >= calls, `stats().l2.errors = ${l2.errors} after ${calls} calls`);
        assert.equal(l2.hits, 0);
        assert.equal(cache.health().l2, 'down');
        await sleep(20);
        assert.deepStrictEqual(rejections, [], 'unhandled rejections');
      } finally {
        process.off('unhandledRejection', onRejection);
      }
    });
  }

  // Redis may still hold an older value of the key, which this instance would serve again once its
  // bus reconnects and flushes L1: the set() becomes a queued delete() (set-while-cut-off.test.ts).
  it('a set() while Redis is unreachable resolves, and its key misses (never an error) until it is loaded', async () => {
    const cache = await deadCache();
    await cache.set('k', { v: 1 });
    assert.equal(await cache.get('k'), undefined);
    assert.equal(await cache.getOrSet('k', () => 'loaded'), 'loaded');
  });

  it('getOrSet runs the loader and returns its value within 250 ms', async () => {
    const cache = await deadCache();
    const got = await timed(() => cache.getOrSet('k', () => 'loaded'));
    assert.equal(got.value, 'loaded');
    assert.ok(got.ms < 250, `took ${got.ms.toFixed(1)} ms`);
  });

  it('ready() resolves (does not reject) within 6 s', async function () {
    this.timeout(10_000);
    const cache = await deadCache();
    const outcome = await Promise.race([
      cache.ready().then(
        () => 'resolved',
        (err: unknown) => `rejected: ${String(err)}`,
      ),
      sleep(6000).then(() => 'still pending after 6 s'),
    ]);
    assert.equal(outcome, 'resolved');
    assert.equal(cache.health().l2, 'down');
  });

  it("reports the failures to an 'error' listener", async () => {
    const cache = await deadCache();
    const errors: unknown[] = [];
    cache.on('error', ({ err }) => errors.push(err));
    await cache.get('a');
    await cache.set('a', 1);
    await cache.get('b');
    await sleep(50);
    assert.ok(cache.stats().l2.errors > 0);
    assert.ok(errors.length > 0, `no 'error' event, while stats().l2.errors = ${cache.stats().l2.errors}`);
    for (const err of errors) assert.ok(err instanceof Error);
  });

  it("invalidateTags applies locally, resolves { delivered: false } and emits a TierCacheError saying it is queued", async () => {
    const cache = await deadCache();
    const errors: unknown[] = [];
    cache.on('error', ({ err }) => errors.push(err));
    await cache.set('k', 1, { tags: ['t'] });
    assert.deepEqual(await cache.invalidateTags(['t']), { delivered: false });
    assert.equal(await cache.get('k'), undefined);
    const queued = errors.find((err) => err instanceof TierCacheError && /queued/.test(err.message));
    assert.ok(queued, `no 'error' event saying the invalidation is queued (got: ${errors.map(String).join('; ')})`);
  });

  it('invalidateTags(tags, { strict: true }) applies locally and rejects with a TierCacheError', async () => {
    const cache = await deadCache();
    cache.on('error', () => undefined);
    await cache.set('k', 1, { tags: ['t'] });
    await assert.rejects(cache.invalidateTags(['t'], { strict: true }), (err: unknown) => {
      assert.ok(err instanceof TierCacheError, String(err));
      assert.match(err.message, /other instances/);
      return true;
    });
    assert.equal(await cache.get('k'), undefined);
  });
});

describe('data API: a frozen Redis', () => {
  const ctx = useRedis();

  const sockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;

  /** Closes `cache` with its Redis frozen: the sockets over `before` still open 500 ms after close() resolved. */
  async function leftByFrozenClose(cache: TierCache, before: number): Promise<number> {
    ctx.redis.freeze();
    try {
      await cache.close();
      let left = sockets() - before;
      for (let i = 0; i < 50 && left > 0; i++) {
        await sleep(10);
        left = sockets() - before;
      }
      return left;
    } finally {
      ctx.redis.thaw();
    }
  }

  // A frozen server never closes its side: ioredis's disconnect() ends the socket and destroys it only after its
  // disconnectTimeout (2 s), so the connections close() had given up on kept the process alive that much longer.
  it('close() leaves none of the sockets it opened once it resolves, the Redis frozen: the process can exit', async () => {
    await ctx.admin.ping();
    const before = sockets();
    const a = createCache({ namespace: ctx.ns, redis: ctx.redis.url });
    a.on('error', () => undefined);
    await a.ready();
    assert.ok(sockets() >= before + 2, 'the cache opened no connection of its own: the test proves nothing');
    const left = await leftByFrozenClose(a, before);
    assert.equal(left, 0, `${left} socket(s) of the closed cache still open 500 ms after close() resolved`);
  });

  it("close() on the caller's client leaves none of the sockets it opened (the bus's subscriber, not made from the caller's options), the Redis frozen", async () => {
    const own = new Redis(ctx.redis.url);
    try {
      await own.ping();
      const before = sockets();
      const a = createCache({ namespace: ctx.ns, redis: own });
      a.on('error', () => undefined);
      await a.ready();
      assert.ok(sockets() >= before + 1, 'the cache opened no connection of its own: the test proves nothing');
      const left = await leftByFrozenClose(a, before);
      assert.equal(left, 0, `${left} socket(s) the closed cache opened still open 500 ms after close() resolved`);
    } finally {
      own.disconnect();
    }
  });

  it('with l2.commandTimeout 100, get resolves undefined within ~300 ms and the next calls fail fast while the breaker is open', async () => {
    const a = await ctx.open({ l2: { commandTimeout: 100 } });
    await a.set('before', 'ok');
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    ctx.redis.freeze();
    try {
      const first = await timed(() => a.get('missing'));
      assert.equal(first.value, undefined);
      assert.ok(first.ms < 300, `first get took ${first.ms.toFixed(1)} ms`);
      assert.ok(first.ms >= 90, `first get took ${first.ms.toFixed(1)} ms: did it reach Redis at all?`);
      assert.equal(a.health().l2, 'down');
      for (let i = 0; i < 5; i++) {
        const got = await timed(() => a.get(`missing-${i}`));
        assert.equal(got.value, undefined);
        assert.ok(got.ms < 50, `get #${i + 2} took ${got.ms.toFixed(1)} ms while the breaker is open`);
        const stored = await timed(() => a.set(`new-${i}`, i));
        assert.ok(stored.ms < 50, `set #${i + 1} took ${stored.ms.toFixed(1)} ms while the breaker is open`);
      }
      assert.ok(a.stats().l2.errors >= 11, `stats().l2.errors = ${a.stats().l2.errors}`);
      await sleep(20);
      assert.deepStrictEqual(rejections, [], 'unhandled rejections');
    } finally {
      ctx.redis.thaw();
      process.off('unhandledRejection', onRejection);
    }
  });

  it("bounds every call by l2.commandTimeout on a caller's client that sets no timeout of its own: get, set, getOrSet, has, delete, invalidateTags, and an HTTP miss", async function () {
    this.timeout(10_000);
    const client = new Redis(ctx.redis.url); // no commandTimeout: tiercache must bound commands itself
    try {
      const a = await ctx.open({ redis: client, l2: { commandTimeout: 150, breakerCooldown: 60_000 } });
      a.on('error', () => undefined);
      const app = express();
      app.use(expressCache(a, { ttl: '1m' }));
      app.get('/x', (_req, res) => void res.send('x'));
      ctx.redis.freeze();
      try {
        const calls: Array<[string, () => Promise<unknown>]> = [
          ['get', () => a.get('k')],
          ['set', () => a.set('k', 1)],
          ['getOrSet', () => a.getOrSet('k2', () => 2)],
          ['has', () => a.has('k')],
          ['delete', () => a.delete('k')],
          ['invalidateTags', () => a.invalidateTags(['t'])],
          ['an HTTP miss', () => request(app).get('/x').then((r) => assert.equal(r.text, 'x'))],
        ];
        for (const [name, call] of calls) {
          // Raced against a deadline: a lost bound fails here, on this assertion, not on mocha's timeout.
          const { value, ms } = await timed(() => Promise.race([call().then(() => 'answered'), sleep(1_000).then(() => 'hung')]));
          assert.equal(value, 'answered', `${name} hung against a frozen Redis`);
          assert.ok(ms < 150 + 250, `${name} took ${ms.toFixed(1)} ms against a frozen Redis (commandTimeout 150)`);
        }
      } finally {
        ctx.redis.thaw();
      }
    } finally {
      client.disconnect();
    }
  });

  it("bounds a call made while an earlier one waits on the frozen Redis by l2.commandTimeout from its own start (getOrSet, an HTTP miss), not by the rest of the earlier one's timeout plus its own", async function () {
    this.timeout(10_000);
    const timeout = 400;
    const a = await ctx.open({ l2: { commandTimeout: timeout } });
    a.on('error', () => undefined);
    const app = express();
    app.use(expressCache(a, { ttl: '1m' }));
    app.get('/x', (_req, res) => void res.send('x'));
    ctx.redis.freeze();
    try {
      const first = a.get('first');
      // The first command is in flight: the client's next batch waits for its answer (or its timeout).
      await sleep(40);
      const [getOrSet, miss] = await Promise.all([
        timed(() => a.getOrSet('k', () => 'loaded')),
        timed(() => request(app).get('/x').then((r) => r.text)),
      ]);
      assert.equal(await first, undefined);
      assert.equal(getOrSet.value, 'loaded');
      assert.equal(miss.value, 'x');
      const took = `getOrSet took ${getOrSet.ms.toFixed(1)} ms, the HTTP miss ${miss.ms.toFixed(1)} ms (commandTimeout ${timeout})`;
      assert.ok(getOrSet.ms < 1.4 * timeout && miss.ms < 1.4 * timeout, took);
    } finally {
      ctx.redis.thaw();
    }
  });

  it("reports the timeout to an 'error' listener", async () => {
    const a = await ctx.open({ l2: { commandTimeout: 100 } });
    const errors: Error[] = [];
    a.on('error', ({ err }) => errors.push(err));
    ctx.redis.freeze();
    try {
      assert.equal(await a.get('k'), undefined);
    } finally {
      ctx.redis.thaw();
    }
    assert.ok(errors.length >= 1, "no 'error' event");
    assert.match(errors[0]!.message, /timed out/i);
  });

  it('while Redis stays frozen no request waits on the breaker probe: after the first timeout every get fails fast, over many cooldowns, and L2 is back after thaw without a request', async function () {
    this.timeout(10_000);
    const a = await ctx.open({ l2: { commandTimeout: 500, breakerCooldown: 100 } });
    a.on('error', () => undefined);
    ctx.redis.freeze();
    let slowest = 0;
    let calls = 0;
    try {
      const first = await timed(() => a.get('k0'));
      assert.ok(first.ms >= 450, `the first get took ${first.ms.toFixed(1)} ms: did it reach Redis at all?`);
      // Ten cooldowns: a probe sent by a request would make one get in each wait the whole 500 ms.
      const until = performance.now() + 1000;
      while (performance.now() < until) {
        const got = await timed(() => a.get(`k${++calls}`));
        slowest = Math.max(slowest, got.ms);
        await sleep(10);
      }
    } finally {
      ctx.redis.thaw();
    }
    assert.ok(slowest < 250, `a get took ${slowest.toFixed(1)} ms while Redis was frozen (of ${calls}): it waited on a probe`);
    assert.ok(await eventually(() => a.health().l2 === 'ok', 3000, 20), 'L2 is not back after thaw without a request');
  });

  it('comes back after thaw once the breaker cooldown has passed', async function () {
    this.timeout(10_000);
    const a = await ctx.open({ l2: { commandTimeout: 100, breakerCooldown: 200 } });
    const b = await ctx.open();
    ctx.redis.freeze();
    try {
      assert.equal(await a.get('k'), undefined);
    } finally {
      ctx.redis.thaw();
    }
    await b.set('k', 'back');
    const back = await eventually(async () => (await a.get('k')) === 'back', 3000, 50);
    assert.ok(back, 'A never read from Redis again after thaw');
    assert.equal(a.health().l2, 'ok');
  });
});

describe('data API: ready() and close()', () => {
  const ctx = useRedis();

  it('ready() resolves at once without Redis (L1 only)', async () => {
    const cache = createCache({ redis: false, namespace: ctx.ns });
    ctx.track(cache);
    const { ms } = await timed(() => cache.ready());
    assert.ok(ms < 20, `took ${ms.toFixed(1)} ms`);
    assert.equal(cache.health().l2, 'disabled');
  });

  it('ready() resolves after the connection with Redis is up', async () => {
    const cache = createCache({ redis: ctx.redis.url, namespace: ctx.ns });
    ctx.track(cache);
    await cache.ready();
    assert.equal(cache.redisClient?.status, 'ready');
    assert.equal(cache.health().l2, 'ok');
    // The namespace epoch exists once ready() resolved.
    assert.ok((await epochOf(ctx.admin, ctx.ns)) > 0);
  });

  it('close() quits a client the cache opened', async () => {
    const cache = createCache({ redis: ctx.redis.url, namespace: ctx.ns });
    await cache.ready();
    const client = cache.redisClient!;
    const name = `tiercache-close-${ctx.ns}`;
    await (client as Redis).client('SETNAME', name);
    const listed = async () => String(await ctx.admin.client('LIST')).includes(`name=${name}`);
    assert.equal(await listed(), true);
    await cache.close();
    assert.ok(await eventually(async () => !(await listed()), 1000), 'the connection is still open on the server');
    assert.ok(await eventually(() => client.status === 'end', 1000), `client status ${client.status} 1 s after close()`);
    await cache.close(); // idempotent
  });

  it('close() waits for a getOrSet loader under way and stores its value in Redis before quitting', async () => {
    const cache = createCache({ redis: ctx.redis.url, namespace: ctx.ns });
    ctx.track(cache);
    await cache.ready();
    const loaded = cache.getOrSet('slow', async () => {
      await sleep(300);
      return 'loaded';
    });
    await sleep(20);
    await cache.close();
    assert.equal(await loaded, 'loaded');
    const raw = await ctx.admin.getBuffer(`${ctx.ns}:d:slow`);
    assert.ok(raw !== null, 'the value of the loader that was running at close() is not in Redis');
  });

  it('close() waits at most about 2 s for a loader that never settles', async function () {
    this.timeout(10_000);
    const cache = createCache({ redis: ctx.redis.url, namespace: ctx.ns });
    ctx.track(cache);
    await cache.ready();
    void cache.getOrSet('never', () => new Promise<string>(() => undefined)).catch(() => undefined);
    await sleep(20);
    const { ms } = await timed(() => cache.close());
    assert.ok(ms < 4000, `close() took ${ms.toFixed(0)} ms`);
    assert.equal(cache.health().l2, 'closed');
  });

  for (const [label, options] of [['L1 + L2', {}], ['L1 only', { redis: false }], ['L2 only', { l1: false }]] as const) {
    it(`after close(), health() says closed and every data-API and invalidation call rejects with TierCacheClosedError (${label})`, async () => {
      const cache = createCache({ redis: ctx.redis.url, namespace: ctx.ns, ...options });
      ctx.track(cache);
      await cache.ready();
      await cache.set('k', 'v');
      await cache.close();
      const health = cache.health();
      assert.ok(Object.values(health).every((v) => v === 'closed' || v === 'disabled'), JSON.stringify(health));
      assert.ok(Object.values(health).includes('closed'), JSON.stringify(health));
      assert.equal(cache.closed, true);
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['get', () => cache.get('k')],
        ['has', () => cache.has('k')],
        ['set', () => cache.set('k', 'w')],
        ['delete', () => cache.delete('k')],
        ['pull', () => cache.pull('k')],
        ['getOrSet', () => cache.getOrSet('k', () => 'loaded')],
        ['invalidateTags', () => cache.invalidateTags(['t'])],
        ['invalidateUser', () => cache.invalidateUser('42')],
        ['invalidatePrefix', () => cache.invalidatePrefix('/api')],
        ['invalidateKey', () => cache.invalidateKey('x')],
        ['clear', () => cache.clear()],
      ];
      for (const [name, call] of calls) {
        await assert.rejects(call(), (err: unknown) => {
          assert.ok(err instanceof TierCacheClosedError, `${name}() after close(): ${String(err)}`);
          assert.equal(err.code, 'TIERCACHE_CLOSED');
          assert.match(err.message, /was called after close\(\)/);
          return true;
        });
      }
      await cache.ready(); // resolves, does not hang
    });
  }

  it('close() leaves a caller-provided ioredis client usable', async () => {
    const given = new Redis(ctx.redis.url);
    try {
      const cache = createCache({ redis: given, namespace: ctx.ns });
      await cache.ready();
      await cache.set('k', 'v');
      assert.equal(await cache.get('k'), 'v');
      await cache.close();
      assert.equal(given.status, 'ready');
      assert.equal(await given.ping(), 'PONG');
      assert.ok(Buffer.isBuffer(await given.getBuffer(cache.dataKey('k'))));
    } finally {
      given.disconnect();
    }
  });
});
