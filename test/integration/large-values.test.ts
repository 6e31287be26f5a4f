// Large values in L2 (fill-protocol.ts, STORE): a payload of
// STAGED_PAYLOAD_BYTES or more is SET under a staging key in the same round
// trip as the store script, which renames it onto the entry, instead of
// riding in the script's arguments, where Redis copied it into Lua and back
// on its one thread (27 ms of Redis for a 1 MiB set(), 121 ms for 5 MiB,
// every other client waiting). Byte-exact round trips through the data API and
// an HTTP fill; every guarantee of the store step with a staged payload (a
// refused store leaves nothing, a set() records its moved version); and the
// script's own bytes, counted through MONITOR, never carry the payload.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import request from 'supertest';
import type { TierCache } from '../../src/index.js';
import { EntryKind, type StoredEntry } from '../../src/store/entry.js';
import { STAGED_PAYLOAD_BYTES, stagingKey } from '../../src/store/fill-protocol.js';
import { keySlot } from '../../src/store/hash-slot.js';
import { blobApp, collectBytes } from '../support/blob-app.js';
import { useRedisCaches } from '../support/cache-context.js';

const MiB = 1024 * 1024;

/** Keys a staged store could have left behind. */
async function stagingKeys(admin: Redis): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', '*:tiercache:stage:*', 'COUNT', 1000);
    found.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return found;
}

function entryFor(stamp: { epoch: number; tags: readonly string[]; versions: readonly number[] }, body: Buffer): StoredEntry {
  const now = Date.now();
  return { kind: EntryKind.Bytes, createdAt: now, freshUntil: now + 60_000, staleUntil: now + 60_000, epoch: stamp.epoch, tags: stamp.tags, versions: stamp.versions, head: Buffer.alloc(0), body };
}

/** What Redis was asked while `run` ran: each command's name and the bytes of its arguments (MONITOR). */
async function monitored(admin: Redis, run: () => Promise<void>): Promise<Array<{ name: string; bytes: number }>> {
  const seen: Array<{ name: string; bytes: number }> = [];
  const monitor = await admin.monitor();
  monitor.on('monitor', (_time: string, args: string[]) => seen.push({ name: String(args[0]).toLowerCase(), bytes: args.slice(1).reduce((n, a) => n + Buffer.byteLength(a), 0) }));
  try {
    await run();
    await admin.ping(); // every command of `run` has been echoed once an admin's PING has
    await new Promise<void>((resolve) => setTimeout(resolve, 20));
  } finally {
    monitor.disconnect();
  }
  return seen;
}

describe('large values in L2', function () {
  this.timeout(20_000);
  // Bytes, not time, are checked here (bench/large-values.ts measures the time): on a loaded 2-core machine moving
  // megabytes, and reading them back through the lookup script (which still copies them through Lua), can outlast 200 ms.
  const ctx = useRedisCaches({ prefix: 'large', flush: true, defaults: { l2: { commandTimeout: '2s' } } });
  const counterOf = (tag: string, cache: TierCache) => (tag.startsWith('key:') ? `{${tag.slice(4)}}:v` : `${cache.prefix}:v:{${tag}}`);

  it('a staging key lands in its entry key\'s Cluster slot, whatever braces the key holds, and is never the same twice', () => {
    for (const key of ['ns:d:plain', 'ns:d:a{b', 'ns:d:{x}y', 'a}b{c}d', '{}', 'x{}y{z}', 'ns:GET:/p?q=%7B']) {
      const a = stagingKey(key);
      const b = stagingKey(key);
      assert.equal(keySlot(a), keySlot(key), `${a} is not in ${key}'s slot`);
      assert.notEqual(a, b);
      assert.notEqual(a, key);
    }
    // Nor after many: the sequence never runs out (a count that overflowed named every later key alike).
    assert.equal(new Set(Array.from({ length: 100 }, () => stagingKey('ns:d:plain'))).size, 100);
  });

  it('set() and getOrSet() of values from just over the threshold to 5 MiB read back byte-exact on another instance, and the script never carries them', async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    const sizes = [STAGED_PAYLOAD_BYTES, 1 * MiB, 5 * MiB];
    const values = sizes.map((n) => randomBytes(Math.ceil((n * 3) / 4)).toString('base64'));
    const store = async (i: number) => {
      await a.set(`s${i}`, { blob: values[i] });
      assert.deepEqual(await a.getOrSet(`g${i}`, () => ({ blob: values[i] })), { blob: values[i] });
    };
    // MONITOR copies every payload to its client, escaped: Redis is watched over the smaller ones only.
    const watched = sizes.filter((n) => n <= MiB).length;
    const commands = await monitored(ctx.admin, async () => {
      for (let i = 0; i < watched; i++) await store(i);
    });
    for (let i = watched; i < sizes.length; i++) await store(i);
    for (let i = 0; i < sizes.length; i++) {
      assert.ok(((await b.get(`s${i}`)) as { blob: string } | undefined)?.blob === values[i], `set() of ${sizes[i]} bytes`);
      assert.ok(((await b.get(`g${i}`)) as { blob: string } | undefined)?.blob === values[i], `getOrSet() of ${sizes[i]} bytes`);
    }
    const scripts = commands.filter((c) => c.name === 'evalsha' || c.name === 'eval');
    assert.ok(scripts.length >= 2 * watched, `${scripts.length} scripts seen`);
    assert.ok(scripts.every((c) => c.bytes < 4096), `a script carried ${Math.max(...scripts.map((c) => c.bytes))} bytes`);
    assert.equal(commands.filter((c) => c.name === 'set' && c.bytes > STAGED_PAYLOAD_BYTES).length, 2 * watched, 'one staging SET per store');
    assert.deepEqual(await stagingKeys(ctx.admin), [], 'a staging key was left behind');
    assert.equal(a.stats().l2.errors, 0);
  });

  it('an HTTP fill of a body just under maxBodyBytes is stored through a staging key and served byte-exact from L2 by another instance', async () => {
    const body = randomBytes(1 * MiB - 64);
    const app = (cache: TierCache) => blobApp(cache, body);
    const a = await ctx.open({ l1: false, routes: { '/api': '1m' } });
    const b = await ctx.open({ l1: false, routes: { '/api': '1m' }, namespace: ctx.ns });
    let first: request.Response | undefined;
    const commands = await monitored(ctx.admin, async () => {
      first = await request(app(a)).get('/api/blob').buffer(true).parse(collectBytes);
    });
    assert.equal(first!.headers['cache-status'], 'tiercache; fwd=miss; stored');
    const hit = await request(app(b)).get('/api/blob').buffer(true).parse(collectBytes);
    assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L2');
    assert.ok(Buffer.compare(hit.body as Buffer, body) === 0, 'the body read from L2 differs');
    const scripts = commands.filter((c) => c.name === 'evalsha' || c.name === 'eval');
    assert.ok(scripts.every((c) => c.bytes < 4096), `a script carried ${Math.max(...scripts.map((c) => c.bytes))} bytes`);
    assert.deepEqual(await stagingKeys(ctx.admin), []);
  });

  it('a large store refused because its tag moved after the lookup stores nothing, leaves no staging key, and releases its lock', async () => {
    const cache = await ctx.open({ l1: false });
    const store = cache.store;
    const key = `${cache.prefix}:big`;
    const fill = await store.lookupForFill(key, [`key:${key}`, 'movies'], cache.fillLock?.request(key));
    assert.equal(fill.lock, 'ours');
    await ctx.admin.incr(counterOf('movies', cache)); // another instance's invalidation, not heard here yet
    const entry = entryFor(fill.stamp!, randomBytes(2 * MiB));
    assert.equal(await store.storeFill([{ key, entry, l1Entry: entry }], fill.ticket), false);
    assert.equal(await ctx.admin.exists(key), 0, 'the refused fill was stored');
    assert.deepEqual(await stagingKeys(ctx.admin), [], 'the refused fill left its staging key');
    assert.equal(await ctx.admin.exists(`{${key}}:lock`), 0, 'the refused fill left its lock');
    assert.equal(cache.stats().l2.errors, 0);
  });

  it("a large set() records its key counter's moved version in the stored bytes (patched in place), the entry gets its own TTL, and a fill stamped before is refused", async () => {
    const cache = await ctx.open({ l1: false });
    const store = cache.store;
    const key = `${cache.prefix}:bigset`;
    const fill = await store.lookupForFill(key, [`key:${key}`], cache.fillLock?.request(key));
    const before = fill.stamp!.versions[0]!;
    const body = randomBytes(3 * MiB);
    assert.equal(await store.set(key, entryFor(await store.versions.stamp([`key:${key}`]), body)), true);
    const moved = Number(await ctx.admin.get(counterOf(`key:${key}`, cache)));
    assert.ok(moved > before, `the key counter did not move on (${before} -> ${moved})`);
    const stored = await store.get(key);
    assert.deepEqual(stored?.entry.versions, [moved], 'the stored entry does not record the moved version');
    assert.ok(Buffer.compare(stored!.entry.body, body) === 0, 'the stored body differs');
    const ttl = await ctx.admin.pttl(key);
    assert.ok(ttl > 50_000 && ttl <= 60_000, `the entry lives ${ttl} ms, not its own TTL`);
    const older = entryFor(fill.stamp!, randomBytes(2 * MiB));
    assert.equal(await store.storeFill([{ key, entry: older, l1Entry: older }], fill.ticket), false, 'the fill stamped before the set() was stored');
    assert.ok(Buffer.compare((await store.get(key))!.entry.body, body) === 0, "the older fill replaced the set()'s value");
    assert.deepEqual(await stagingKeys(ctx.admin), []);
    assert.equal(await ctx.admin.exists(`{${key}}:lock`), 0);
  });

  it("a staged payload Redis refuses (OOM under maxmemory) stores nothing, moves no counter, releases the fill's lock, and is reported as an L2 error (the set() then becomes a delete(), as when Redis cannot be reached)", async () => {
    const a = await ctx.open({ l1: false });
    const reported: Error[] = [];
    a.on('error', (e) => reported.push(e.err));
    await a.set('k', 'small before');
    const key = `${ctx.ns}:d:k`;
    const counterBefore = await ctx.admin.get(`{${key}}:v`);
    const used = Number(/used_memory:(\d+)/.exec(await ctx.admin.info('memory'))![1]);
    await ctx.admin.config('SET', 'maxmemory', String(used + 256 * 1024));
    try {
      await a.set('k', randomBytes(MiB).toString('base64'));
      assert.equal(await a.getOrSet('g', () => randomBytes(MiB).toString('base64'), { ttl: '1m' }) !== undefined, true);
    } finally {
      await ctx.admin.config('SET', 'maxmemory', '0');
    }
    assert.ok(a.stats().l2.errors >= 2, `l2 errors: ${a.stats().l2.errors}`);
    // The staged SET's own refusal is what the store reports (not only that the payload was gone).
    const messages = reported.map((e) => e.message);
    assert.ok(messages.some((m) => /^OOM /.test(m) && !m.includes('script:')) && !messages.some((m) => m.includes('staged payload was gone')), `reported: ${messages.join('; ')}`);
    assert.equal(await ctx.admin.get(`{${key}}:v`), counterBefore, "the refused set() moved its key's counter");
    assert.equal(await ctx.admin.exists(`${ctx.ns}:d:g`), 0);
    assert.equal(await ctx.admin.exists(`{${ctx.ns}:d:g}:lock`), 0, "the refused fill left its lock");
    assert.deepEqual(await stagingKeys(ctx.admin), []);
  });

  it("a staged payload gone when its script runs (STORE's -2) stores no entry of the step, deletes the step's other staging keys, releases the fill's lock, and is reported as an L2 error", async () => {
    const cache = await ctx.open({ l1: false });
    const reported: Error[] = [];
    cache.on('error', (e) => reported.push(e.err));
    const store = cache.store;
    const key = `${cache.prefix}:gone`;
    const fill = await store.lookupForFill(key, [`key:${key}`], cache.fillLock?.request(key));
    assert.equal(fill.lock, 'ours');
    // The second entry's payload never reaches Redis, as one expired waiting for a NOSCRIPT's EVAL.
    const client = store.l2!.client as unknown as { set: (...args: unknown[]) => Promise<unknown> };
    const set = client.set;
    let staged = 0;
    client.set = function (this: unknown, ...args: unknown[]) {
      if (String(args[0]).includes(':tiercache:stage:') && ++staged === 2) return Promise.resolve('OK');
      return set.apply(this, args);
    };
    const errors = cache.stats().l2.errors;
    try {
      const first = entryFor(fill.stamp!, randomBytes(STAGED_PAYLOAD_BYTES));
      const second = entryFor(fill.stamp!, randomBytes(STAGED_PAYLOAD_BYTES));
      assert.equal(await store.storeFill([{ key, entry: first, l1Entry: first }, { key: `${key}:head`, entry: second, l1Entry: second }], fill.ticket), false);
    } finally {
      client.set = set;
    }
    assert.equal(staged, 2);
    assert.equal(await ctx.admin.exists(key, `${key}:head`), 0, 'an entry of the step was stored');
    assert.deepEqual(await stagingKeys(ctx.admin), [], "the first entry's staging key was left");
    assert.equal(await ctx.admin.exists(`{${key}}:lock`), 0, "the fill's lock was left");
    assert.equal(cache.stats().l2.errors, errors + 1);
    assert.match(String(reported[0]?.message), /staged payload was gone/);
    // A lock that is no longer this fill's (it expired, another instance took it) is left to its holder.
    const later = await store.lookupForFill(`${key}:2`, [`key:${key}:2`], cache.fillLock?.request(`${key}:2`));
    assert.equal(later.lock, 'ours');
    await ctx.admin.set(`{${key}:2}:lock`, 'another instance', 'PX', 60_000);
    staged = 1;
    client.set = function (this: unknown, ...args: unknown[]) {
      if (String(args[0]).includes(':tiercache:stage:') && ++staged === 2) return Promise.resolve('OK');
      return set.apply(this, args);
    };
    try {
      const entry = entryFor(later.stamp!, randomBytes(STAGED_PAYLOAD_BYTES));
      assert.equal(await store.storeFill([{ key: `${key}:2`, entry, l1Entry: entry }], later.ticket), false);
    } finally {
      client.set = set;
    }
    assert.equal(await ctx.admin.get(`{${key}:2}:lock`), 'another instance', "another instance's lock was deleted");
  });

  it("a large store whose script Redis no longer knows (SCRIPT FLUSH: NOSCRIPT, then EVAL a round trip later) still finds its staged payload and stores it", async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    await ctx.admin.script('FLUSH');
    await ctx.admin.config('RESETSTAT');
    const value = randomBytes(MiB).toString('base64');
    await a.set('flushed', value);
    assert.ok((await b.get('flushed')) === value, 'the value was not stored');
    assert.match(String(await ctx.admin.info('commandstats')), /cmdstat_eval:calls=[1-9]/, 'the premise: the store fell back to EVAL');
    assert.deepEqual(await stagingKeys(ctx.admin), []);
    assert.equal(a.stats().l2.errors, 0);
  });

  it('two large stores of one key at once each use a staging key of their own: the key ends holding one of them whole (or, one having timed out, nothing)', async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    const values = [randomBytes(MiB).toString('base64'), randomBytes(MiB).toString('base64')];
    await Promise.all([a.set('same', values[0]), b.set('same', values[1]), a.set('same', values[1])]);
    const read = await (await ctx.open({ l1: false, namespace: ctx.ns })).get('same');
    // Nothing at all is a possible end too: a set() whose store timed out on a loaded machine becomes a delete() of the key.
    assert.ok(read === undefined || values.includes(read as string), 'the key holds neither value whole');
    assert.deepEqual(await stagingKeys(ctx.admin), []);
  });
});

