// Large entries read from L2 (fill-protocol.ts LARGE_ENTRY_BYTES): the lookup
// script (getOrSet() hits, HTTP L2 hits, a fill's first step, get() with its
// counters, pull()'s claim) judges an entry that size by its first 20 bytes
// and the bytes come from a plain GET after it, instead of through a Lua
// string, where Redis copied them on its one thread (a 5 MiB getOrSet() hit
// held every other client 12-59 ms). What the script decides, and what the
// served bytes are checked against, must not change: the GET is not atomic
// with the script, so the races between them are forced here (the GET held
// while another instance writes), and what may be served is each time the
// bytes' own versions against the counters the script read.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import express from 'express';
import request from 'supertest';
import { createCache, type TierCache } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { LARGE_ENTRY_BYTES } from '../../src/store/fill-protocol.js';
import { blobApp, collectBytes } from '../support/blob-app.js';
import { watch } from '../support/script-watch.js';
import { useRedisCaches } from '../support/cache-context.js';
import { eventually } from '../support/eventually.js';
import { openDeafCache } from '../support/deaf-cache.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

const MiB = 1024 * 1024;

const blob = (bytes: number) => randomBytes(Math.ceil((bytes * 3) / 4)).toString('base64').slice(0, bytes);

describe('large entries read from L2 through a plain GET', function () {
  this.timeout(30_000);
  // Bytes and decisions are checked here, not time (bench/large-values.ts measures it): room for a loaded machine.
  const ctx = useRedisCaches({ prefix: 'large-reads', flush: true, defaults: { l2: { commandTimeout: '2s' } } });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  const failing = (): never => {
    throw new Error('the loader ran on a hit');
  };

  it('getOrSet() hits, get()s and pull()s of values from the threshold to 5 MiB read back byte-exact on another instance, and no script replies with them', async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    const watched = watch(b);
    const sizes = [LARGE_ENTRY_BYTES, MiB, 5 * MiB];
    for (const [i, size] of sizes.entries()) {
      const value = blob(size);
      for (const key of [`g${i}`, `r${i}`, `p${i}`]) await a.set(key, value);
      assert.ok((await b.getOrSet(`g${i}`, failing)) === value, `getOrSet() hit of ${size} bytes`);
      assert.ok((await b.get(`r${i}`)) === value, `get() of ${size} bytes`);
      assert.ok((await b.pull(`p${i}`)) === value, `pull() of ${size} bytes`);
      assert.equal(await ctx.admin.exists(a.dataKey(`p${i}`)), 0, 'the pulled value is still in Redis');
    }
    assert.ok(watched.largestScriptReply() < 4096, `a script replied ${watched.largestScriptReply()} bytes`);
    assert.ok(watched.gets() >= 3 * sizes.length, `${watched.gets()} plain GETs`);
    assert.equal(b.stats().l2.errors, 0);
  });

  it('an HTTP L2 hit of a body just under maxBodyBytes is served byte-exact, and no script replies with it', async () => {
    const body = randomBytes(MiB - 64);
    const app = (cache: TierCache) => blobApp(cache, body);
    const a = await ctx.open({ l1: false, routes: { '/api': '1m' } });
    const b = await ctx.open({ l1: false, routes: { '/api': '1m' }, namespace: ctx.ns });
    const watched = watch(b);
    assert.equal((await request(app(a)).get('/api/blob')).headers['cache-status'], 'tiercache; fwd=miss; stored');
    const hit = await request(app(b)).get('/api/blob').buffer(true).parse(collectBytes);
    assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L2');
    assert.ok(Buffer.compare(hit.body as Buffer, body) === 0, 'the body read from L2 differs');
    assert.ok(watched.largestScriptReply() < 4096, `a script replied ${watched.largestScriptReply()} bytes`);
  });

  it('of three instances pulling large values at once, each value goes to exactly one caller, whole', async () => {
    const [a, b, c] = [await ctx.open({ l1: false }), await ctx.open({ namespace: ctx.ns }), await ctx.open({ l1: false, namespace: ctx.ns })];
    const values = [0, 1, 2, 3].map(() => blob(256 * 1024));
    for (const [i, v] of values.entries()) await a.set(`once${i}`, v);
    const pulls = values.flatMap((_, i) => [a, b, c, a, b, c].map((cache) => cache.pull(`once${i}`).then((got) => ({ i, got }))));
    const got = (await Promise.all(pulls)).filter((p) => p.got !== undefined);
    assert.deepEqual(
      got.map((p) => p.i).sort(),
      [0, 1, 2, 3],
      `values handed out: ${got.map((p) => p.i).join(' ')}`,
    );
    for (const p of got) assert.ok(p.got === values[p.i], `value ${p.i} was not handed out whole`);
    for (const i of values.keys()) assert.equal(await ctx.admin.exists(a.dataKey(`once${i}`)), 0);
  });

  it('a large entry put back between the script and the GET, recording a tag version invalidated since, is never served: the fill runs, under its lock', async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    const key = a.dataKey('tagged');
    await a.set('tagged', blob(MiB), { tags: ['movies'] });
    const old = await ctx.admin.getBuffer(key);
    await a.invalidateTags(['movies']);
    const fresh = blob(MiB);
    await a.set('tagged', fresh, { tags: ['movies'] });
    // The script judges the current entry; then the old bytes come back (a restore, a lagging writer) before its GET.
    const watched = watch(b);
    watched.beforeGet(async () => void (await ctx.admin.set(key, old!, 'KEEPTTL')));
    let lockHeld = -1;
    const got = await b.getOrSet('tagged', async () => {
      lockHeld = await ctx.admin.exists(`{${key}}:lock`);
      return 'loaded';
    }, { tags: ['movies'] });
    assert.equal(got, 'loaded', 'the bytes invalidated before the read were served');
    assert.equal(lockHeld, 1, 'the fill ran without the lock');
    // The same for a get(): the bytes read are judged by the versions they record.
    watched.beforeGet(async () => void (await ctx.admin.set(key, old!, 'KEEPTTL')));
    assert.equal(await b.get('tagged'), undefined, 'get() served bytes invalidated before the read');
    assert.equal(watched.hooked(), 2, 'the premise: each read went through a plain GET after its script');
  });

  it('a large entry replaced between the script and the GET by a newer set() on another instance: the newer value, whole, with no fill; deleted: the fill runs under its lock', async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    const watched = watch(b);
    await a.set('swap', blob(MiB));
    const newer = blob(2 * MiB);
    watched.beforeGet(async () => void (await a.set('swap', newer)));
    assert.ok((await b.getOrSet('swap', failing)) === newer, 'not the newer value, whole');
    assert.equal(await ctx.admin.exists(`{${a.dataKey('swap')}}:lock`), 0);
    watched.beforeGet(async () => void (await a.delete('swap')));
    let lockHeld = -1;
    assert.equal(await b.getOrSet('swap', async () => ((lockHeld = await ctx.admin.exists(`{${a.dataKey('swap')}}:lock`)), 'loaded')), 'loaded');
    assert.equal(lockHeld, 1, 'the fill ran without the lock');
    // A pull: the value in Redis when it reads is the one it takes, and it is gone.
    await a.set('swap', blob(MiB));
    const last = blob(MiB + 1);
    watched.beforeGet(async () => void (await a.set('swap', last)));
    assert.ok((await b.pull('swap')) === last, 'the pull did not get the value it took');
    assert.equal(await a.get('swap'), undefined);
    assert.equal(watched.hooked(), 3, 'the premise: each read went through a plain GET after its script');
    assert.equal(b.stats().l2.errors, 0);
  });

  it('a large entry gone stale between the script and the GET (still servable stale, no longer fresh): the fill steps are taken, under the lock', async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    const watched = watch(b);
    const key = a.dataKey('aging');
    await a.set('aging', blob(MiB), { ttl: '1m' });
    // The script found it fresh and took no lock; by the GET its freshUntil (byte 13 on) has passed, its staleUntil not.
    const past = Buffer.alloc(8);
    past.writeDoubleBE(Date.now() - 1000);
    watched.beforeGet(async () => void (await ctx.admin.setrange(key, 12, past)));
    let lockHeld = -1;
    const got = await b.getOrSet('aging', async () => ((lockHeld = await ctx.admin.exists(`{${key}}:lock`)), 'loaded'));
    assert.equal(got, 'loaded');
    assert.equal(lockHeld, 1, 'the fill ran without the lock');
    assert.equal(watched.hooked(), 1, 'the premise: the read went through a plain GET after its script');
  });

  it('Redis cut between the script and the GET of a large entry: a miss, never an error (getOrSet() runs its loader, an HTTP hit becomes a fill, pull() takes nothing)', async () => {
    const a = await ctx.open({ l1: false, routes: { '/api': '1m' } });
    proxy = await startTcpProxy(ctx.redis.port);
    const b = await ctx.open({ l1: false, redis: proxy.url, routes: { '/api': '1m' }, namespace: ctx.ns, l2: { commandTimeout: 300 } });
    b.on('error', () => undefined);
    const watched = watch(b);
    await a.set('cut', blob(MiB));
    watched.beforeGet(async () => proxy!.cut('refuse'));
    assert.equal(await b.getOrSet('cut', () => 'loaded'), 'loaded');
    proxy.heal();
    await waitUp(b);
    const body = randomBytes(MiB / 2);
    const app = (cache: TierCache) => {
      const server = express();
      server.use(expressCache(cache));
      server.get('/api/cut', (_req, res) => void res.type('application/octet-stream').send(body));
      return server;
    };
    await request(app(a)).get('/api/cut').expect(200);
    watched.beforeGet(async () => proxy!.cut('refuse'));
    const res = await request(app(b)).get('/api/cut').buffer(true).parse(collectBytes);
    assert.equal(res.status, 200);
    assert.ok(Buffer.compare(res.body as Buffer, body) === 0);
    proxy.heal();
    await waitUp(b);
    await a.set('cut-pull', blob(MiB));
    watched.beforeGet(async () => proxy!.cut('refuse'));
    assert.equal(await b.pull('cut-pull'), undefined);
    proxy.heal();
    await waitUp(b);
    assert.equal(await ctx.admin.exists(a.dataKey('cut-pull')), 1, 'the value nobody got was deleted');
    // Its claim let go, or expired (one command timeout): the next pull gets it.
    let got: unknown;
    for (let i = 0; i < 50 && got === undefined; i++) {
      got = await b.pull('cut-pull');
      if (got === undefined) await new Promise<void>((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(typeof got, 'string');
    assert.equal(watched.hooked(), 3, 'the premise: each read went through a plain GET after its script');
  });

  it('a large value that is not a whole entry (foreign bytes, an entry cut short) is a miss, deleted, and a fill of it runs under its lock', async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    await a.set('whole', blob(MiB));
    const entry = (await ctx.admin.getBuffer(a.dataKey('whole')))!;
    for (const [name, bytes] of [['foreign', randomBytes(MiB)], ['cut short', entry.subarray(0, entry.length - 1000)]] as const) {
      const key = a.dataKey(name);
      await ctx.admin.set(key, bytes, 'PX', 60_000);
      assert.equal(await b.get(name), undefined, `get() of ${name} bytes`);
      await eventually(async () => (await ctx.admin.exists(key)) === 0, `the ${name} bytes are deleted`, 2_000);
      await ctx.admin.set(key, bytes, 'PX', 60_000);
      let lockHeld = -1;
      assert.equal(await b.getOrSet(name, async () => ((lockHeld = await ctx.admin.exists(`{${key}}:lock`)), 'loaded')), 'loaded', `getOrSet() of ${name} bytes`);
      assert.equal(lockHeld, 1, `the fill of ${name} bytes ran without the lock`);
      await ctx.admin.set(key, bytes, 'PX', 60_000);
      assert.equal(await b.pull(name), undefined, `pull() of ${name} bytes`);
    }
    assert.equal(b.stats().l2.errors, 0);
  });

  // A failed GET after a script that found the entry stale (and took the fill's lock) counted an L2 miss on top of
  // L2Store's error; after a fresh one's, and after a failed script, the error alone: one failure, two counts.
  it('a GET that fails after the script counts one L2 error and no miss, whether the script found the entry fresh or stale (and took the lock)', async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    b.on('error', () => undefined);
    const watched = watch(b);
    const past = Buffer.alloc(8);
    past.writeDoubleBE(Date.now() - 1000);
    for (const stale of [false, true]) {
      const name = stale ? 'failing-stale' : 'failing-fresh';
      await a.set(name, blob(MiB), { ttl: '1m' });
      // freshUntil (byte 13 on) past, staleUntil not: the script takes the fill steps.
      if (stale) await ctx.admin.setrange(a.dataKey(name), 12, past);
      watched.beforeGet(async () => {
        throw new Error('the GET failed (test)');
      });
      const before = b.stats().l2;
      assert.equal(await b.getOrSet(name, () => 'loaded'), 'loaded');
      const after = b.stats().l2;
      assert.deepEqual({ misses: after.misses - before.misses, errors: after.errors - before.errors }, { misses: 0, errors: 1 }, name);
    }
    assert.equal(watched.hooked(), 2, 'the premise: each read went through a plain GET after its script');
  });

  // The GET of a key whose type changed since the script (a list now) failed with WRONGTYPE, taken for a Redis that did
  // not answer: a fill's lookup said `unanswered` (no miss counted, the loader run without the lock, HTTP's outage
  // stand-in looked for) and the key stayed, for the next read to fail on. Foreign data is a miss, as a small entry's is.
  it('a key of another type put under a large entry between the script and the GET is a miss, deleted: a fill of it runs under its lock', async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    b.on('error', () => undefined); // the GET's WRONGTYPE is reported, as a plain get()'s is
    const watched = watch(b);
    const key = a.dataKey('swapped');
    const swap = async (k: string) => {
      await ctx.admin.del(k);
      await ctx.admin.rpush(k, 'not an entry');
    };
    await a.set('swapped', blob(MiB));
    watched.beforeGet(swap);
    const before = b.stats().l2.misses;
    let lockHeld = -1;
    assert.equal(await b.getOrSet('swapped', async () => ((lockHeld = await ctx.admin.exists(`{${key}}:lock`)), 'loaded')), 'loaded');
    assert.equal(lockHeld, 1, 'the fill ran without the lock');
    assert.equal(b.stats().l2.misses - before, 1, 'L2 misses counted');
    await a.set('swapped-pull', blob(MiB));
    watched.beforeGet(swap);
    assert.equal(await b.pull('swapped-pull'), undefined);
    await eventually(async () => (await ctx.admin.exists(a.dataKey('swapped-pull'))) === 0, 'the list is deleted', 2_000);
    assert.equal(b.stats().l2.misses - before, 2, 'L2 misses counted');
    assert.equal(watched.hooked(), 2, 'the premise: each read went through a plain GET after its script');
  });

  it('a large read whose script Redis no longer knows (SCRIPT FLUSH: NOSCRIPT, then EVAL) still reads the bytes by a plain GET', async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    const watched = watch(b);
    const value = blob(MiB);
    await a.set('flushed', value);
    await ctx.admin.script('FLUSH');
    await ctx.admin.config('RESETSTAT');
    assert.ok((await b.getOrSet('flushed', failing)) === value);
    assert.match(String(await ctx.admin.info('commandstats')), /cmdstat_eval:calls=[1-9]/, 'the premise: the lookup fell back to EVAL');
    assert.ok(watched.largestScriptReply() < 4096, `a script replied ${watched.largestScriptReply()} bytes`);
    assert.equal(b.stats().l2.errors, 0);
  });

  for (const denied of ['strlen', 'getrange']) {
    it(`a Redis user whose ACL denies ${denied.toUpperCase()} still reads a large entry (whole, through the script): a hit, no loader, no error`, async () => {
      const a = await ctx.open({ l1: false });
      await ctx.admin.acl('SETUSER', `tc-no-${denied}`, 'reset', 'on', '>pw', '~*', '&*', '+@all', `-${denied}`);
      const url = new URL(ctx.redis.url);
      url.username = `tc-no-${denied}`;
      url.password = 'pw';
      const b = ctx.track(createCache({ namespace: ctx.ns, redis: url.toString(), l1: false }));
      const errors: unknown[] = [];
      b.on('error', (e) => errors.push(e));
      await b.ready();
      const value = blob(LARGE_ENTRY_BYTES + 1024);
      await a.set('acl', value);
      assert.ok((await b.getOrSet('acl', failing)) === value, 'getOrSet() hit');
      assert.ok((await b.get('acl')) === value, 'get()');
      assert.deepEqual(errors, []);
      assert.equal(b.stats().l2.hits, 2);
      // A value found invalid is dropped (DROP reads its head with GETRANGE; denied, it deletes as before).
      await a.set('invalid', value, { tags: ['t'] });
      await a.invalidateTags(['t']);
      assert.equal(await b.get('invalid'), undefined);
      await eventually(async () => (await ctx.admin.exists(b.dataKey('invalid'))) === 0, 'the invalid value stayed in Redis');
      assert.deepEqual(errors, []);
    });
  }

  it('a large entry gone stale, within staleWhileRevalidate, is served stale from L2 on another instance, byte-exact, and refreshed once, under the lock', async () => {
    let version = 0;
    let runs = 0;
    const appFor = (cache: TierCache) =>
      express()
        .use(expressCache(cache, { ttl: 100, staleWhileRevalidate: '1m' }))
        .get('/api/blob', (_req, res) => {
          runs++;
          res.type('application/octet-stream').send(Buffer.alloc(LARGE_ENTRY_BYTES, version));
        });
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    await request(appFor(a)).get('/api/blob').expect(200);
    await new Promise((resolve) => setTimeout(resolve, 150));
    version = 1;
    const watched = watch(b);
    const res = await request(appFor(b)).get('/api/blob').buffer(true).parse(collectBytes);
    const status = String(res.headers['cache-status']);
    assert.match(status, /^tiercache; hit; ttl=-\d+; detail=L2/, 'not served stale from L2');
    assert.ok(Buffer.compare(res.body as Buffer, Buffer.alloc(LARGE_ENTRY_BYTES, 0)) === 0, 'not the stale body, whole');
    assert.equal(watched.gets(), 1, 'the premise: its bytes came by a plain GET');
    await eventually(() => runs === 2, 'the stale body refreshed in the background');
    const after = await request(appFor(b)).get('/api/blob').buffer(true).parse(collectBytes);
    assert.equal((after.body as Buffer)[0], 1, 'the refreshed body');
    assert.equal(runs, 2, 'the handler ran more than once for the refresh');
  });

  it('an entry of exactly LARGE_ENTRY_BYTES bytes in Redis is read by the plain GET after the script; one byte shorter, by the script alone', async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    const sizes = { at: LARGE_ENTRY_BYTES, under: LARGE_ENTRY_BYTES - 1 };
    for (const [key, size] of Object.entries(sizes)) {
      // A value's entry is its bytes and a header of fixed size for one key (its tag names it): measured, then sized to the byte.
      await a.set(key, blob(size));
      const value = blob(2 * size - (await ctx.admin.strlen(a.dataKey(key))));
      await a.set(key, value);
      assert.equal(await ctx.admin.strlen(a.dataKey(key)), size, 'the premise: the entry is that size');
      const watched = watch(b);
      assert.ok((await b.getOrSet(key, failing)) === value, `getOrSet() hit of an entry of ${size} bytes`);
      assert.equal(watched.gets(), key === 'at' ? 1 : 0, `plain GETs reading an entry of ${size} bytes`);
    }
  });

  it('a large entry gone between the script and the GET is one L2 miss, and a pull() lets its claim go at once; a GET that fails is an error, not a miss', async () => {
    const a = await ctx.open({ l1: false });
    // A command timeout of a minute: a claim left behind would hold off the next pull that long.
    const b = await ctx.open({ l1: false, namespace: ctx.ns, l2: { commandTimeout: '1m' } });
    b.on('error', () => undefined);
    const watched = watch(b);
    for (const key of ['gone-get', 'gone-pull', 'swapped']) await a.set(key, blob(MiB));
    watched.beforeGet(async (key) => void (await ctx.admin.del(key)));
    assert.equal(await b.get('gone-get'), undefined);
    assert.deepEqual([b.stats().l2.hits, b.stats().l2.misses, b.stats().l2.errors], [0, 1, 0], 'hits, misses, errors of a get() that found it gone');
    watched.beforeGet(async (key) => void (await ctx.admin.del(key)));
    assert.equal(await b.pull('gone-pull'), undefined);
    const value = blob(MiB);
    await a.set('gone-pull', value);
    assert.ok((await b.pull('gone-pull')) === value, 'the claim of the pull that found nothing held off the next one');
    // A failure of the GET itself (a key of another type swapped in is foreign data instead: a miss, see above).
    watched.beforeGet(async () => {
      throw new Error('the GET failed (test)');
    });
    const before = b.stats().l2;
    assert.equal(await b.get('swapped'), undefined);
    assert.deepEqual([b.stats().l2.misses - before.misses, b.stats().l2.errors - before.errors], [0, 1], 'misses, errors of a get() whose GET failed');
    assert.equal(watched.hooked(), 3, 'the premise: each read went through a plain GET after its script');
  });

  it("a fill's large entry gone between the script and the GET is one L2 miss; a GET that fails is an error alone, and a lock the script took is released", async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    b.on('error', () => undefined);
    const watched = watch(b);
    const fail = async () => {
      throw new Error('the GET failed (test)');
    };
    for (const key of ['gone', 'swapped']) await a.set(key, blob(MiB));
    let stats = b.stats().l2;
    watched.beforeGet(async (key) => void (await ctx.admin.del(key)));
    assert.equal(await b.getOrSet('gone', () => 'loaded'), 'loaded');
    assert.deepEqual([b.stats().l2.misses - stats.misses, b.stats().l2.errors - stats.errors], [1, 0], 'misses, errors of a fill whose entry was gone');
    stats = b.stats().l2;
    watched.beforeGet(fail);
    assert.equal(await b.getOrSet('swapped', () => 'loaded'), 'loaded');
    assert.deepEqual([b.stats().l2.misses - stats.misses, b.stats().l2.errors - stats.errors], [0, 1], 'misses, errors of a fill whose GET failed');
    // A stale body: the script took the fill lock; the GET then fails. The fill runs and lets the lock go.
    let version = 0;
    const appFor = (cache: TierCache) =>
      express()
        .use(expressCache(cache, { ttl: 100, staleWhileRevalidate: '1m' }))
        .get('/api/blob', (_req, res) => void res.type('application/octet-stream').send(Buffer.alloc(LARGE_ENTRY_BYTES, version)));
    await request(appFor(a)).get('/api/blob').expect(200);
    await new Promise((resolve) => setTimeout(resolve, 150));
    version = 1;
    let locks: string[] = [];
    watched.beforeGet(async (key) => {
      locks = await ctx.admin.keys(`{${key}}:lock`);
      await fail();
    });
    const res = await request(appFor(b)).get('/api/blob').buffer(true).parse(collectBytes);
    assert.equal((res.body as Buffer)[0], 1, 'not the body the handler answered');
    assert.equal(locks.length, 1, 'the premise: the script took the lock');
    await eventually(async () => (await ctx.admin.exists(locks[0]!)) === 0, 'the lock released');
    assert.equal(watched.hooked(), 3, 'the premise: each read went through a plain GET after its script');
  });

  // A failed GET after a script that took the fill steps was no 'unanswered' lookup: an instance whose bus is down
  // (its L1 copy only Redis can vouch for, passed over) found nothing to stand in for the handler's 5xx, where a
  // failed script, or a small entry's script alone, gave it one.
  it("a stale large body whose GET fails after the script took the lock, on an instance whose bus is down: the handler's 500 finds its stale-if-error stand-in", async () => {
    let failing = false;
    const body = Buffer.alloc(LARGE_ENTRY_BYTES, 7);
    const b = await openDeafCache(ctx);
    const app = express()
      .use(expressCache(b, { ttl: 100, staleIfError: '1h' }))
      .get('/api/blob', (_req, res) => void (failing ? res.status(500).send('upstream failed') : res.type('application/octet-stream').send(body)));
    assert.match(String((await request(app).get('/api/blob').expect(200)).headers['cache-status']), /stored/);
    await new Promise((resolve) => setTimeout(resolve, 150));
    failing = true;
    const watched = watch(b);
    watched.beforeGet(async () => {
      throw new Error('the GET failed (test)');
    });
    const res = await request(app).get('/api/blob').buffer(true).parse(collectBytes);
    assert.equal(res.status, 200, `answered ${res.status} [${String(res.headers['cache-status'])}]: no stand-in for the 500`);
    assert.ok(Buffer.compare(res.body as Buffer, body) === 0, 'not the stale body');
    assert.equal(watched.hooked(), 1, 'the premise: the read went through a plain GET after its script');
  });

  it('a fill that asks no lock (l2.lockTimeout 0): a missing entry is one L2 miss, a large one another instance stored one L2 hit', async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns, l2: { lockTimeout: 0 } });
    assert.equal(await b.getOrSet('none', () => 'loaded'), 'loaded');
    assert.deepEqual([b.stats().l2.hits, b.stats().l2.misses], [0, 1], 'hits, misses of a fill of a missing entry');
    const value = blob(MiB);
    await a.set('big', value);
    assert.ok((await b.getOrSet('big', failing)) === value);
    assert.deepEqual([b.stats().l2.hits, b.stats().l2.misses], [1, 1], 'hits, misses after a large hit');
  });

  it('a stale large body invalidated since: the fill that took the lock runs at once, not after waiting for its own lock', async () => {
    let version = 0;
    const appFor = (cache: TierCache) =>
      express()
        .use(expressCache(cache, { ttl: 100, staleWhileRevalidate: '1m' }))
        .get('/api/blob', (_req, res) => void res.type('application/octet-stream').send(Buffer.alloc(LARGE_ENTRY_BYTES, version)));
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns, l2: { lockTimeout: '20s' } });
    await request(appFor(a)).get('/api/blob').expect(200);
    await new Promise((resolve) => setTimeout(resolve, 150));
    await a.invalidatePrefix('/api');
    version = 1;
    const started = Date.now();
    const res = await request(appFor(b)).get('/api/blob').buffer(true).parse(collectBytes);
    assert.equal((res.body as Buffer)[0], 1, 'not the body the handler answered');
    assert.ok(Date.now() - started < 5000, `answered after ${Date.now() - started} ms`);
  });

  it("a short value beginning with an entry's magic (TC) put under a large entry between the script and the GET is a miss, never a throw", async () => {
    const a = await ctx.open({ l1: false });
    const b = await ctx.open({ l1: false, namespace: ctx.ns });
    const watched = watch(b);
    for (const length of [12, 19]) {
      await a.set('short', blob(MiB));
      watched.beforeGet(async (key) => void (await ctx.admin.set(key, 'TC'.padEnd(length, '\x7f'))));
      assert.equal(await b.getOrSet('short', () => 'loaded'), 'loaded', `${length} bytes`);
    }
    assert.equal(watched.hooked(), 2, 'the premise: each read went through a plain GET after its script');
  });
});

async function waitUp(cache: TierCache): Promise<void> {
  for (let i = 0; i < 500 && cache.health().l2 !== 'ok'; i++) await new Promise<void>((resolve) => setTimeout(resolve, 20));
  assert.equal(cache.health().l2, 'ok', 'Redis did not come back');
}

