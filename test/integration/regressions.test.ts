// Regression tests for the findings of the code review fixed in 9287460
// ("Fixes from review: ..."). One `it` per finding (1-12), each named for the
// behaviour it pins down; every one of them failed before that commit. 1b is
// a related defect found while writing 1, not fixed by that commit. Real
// redis-servers (test/support/redis-server.ts) where Redis matters.
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingHttpHeaders, type RequestListener } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import Router from '@koa/router';
import compression from 'compression';
import express from 'express';
import { Redis } from 'ioredis';
import Koa from 'koa';
import request from 'supertest';
import { createCache, type CacheOptions, type TierCache } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { koaCache } from '../../src/koa.js';
import { front } from '../../src/node.js';
import { EntryKind } from '../../src/store/entry.js';
import { decodeEntry, encodeEntry } from '../../src/store/entry-codec.js';
import { useRedisCaches } from '../support/cache-context.js';
import { fetchRaw, GZIP_MAGIC } from '../support/http-bytes.js';
import { startRedisServer } from '../support/redis-server.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

const HIT_L1 = 'tiercache; hit; detail=L1';
const HIT_L2 = 'tiercache; hit; detail=L2';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// Root-level hooks, as this file always had: one redis-server for its tests.
const redisCaches = useRedisCaches({ prefix: 'reg' });
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

let nsCounter = 0;
/** An L1-only cache unless `options` say otherwise, in a namespace of its own, closed after the test (not ready()-ed). */
function newCache(options: CacheOptions = {}): TierCache {
  return redisCaches.track(createCache({ namespace: `reg${process.pid}-${Date.now()}-${++nsCounter}`, redis: false, ...options }));
}

async function listen(handler: RequestListener): Promise<{ base: string; port: number }> {
  const server = await redisCaches.serve(handler);
  const port = (server.address() as AddressInfo).port;
  return { base: `http://127.0.0.1:${port}`, port };
}

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

/** A GET on a fresh connection (no keep-alive reuse), the body as text. Rejects on a reset or an aborted body. */
function get(base: string, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(base + path, { agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('response aborted')));
    });
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error(`GET ${path}: no answer within 5 s`)));
    req.end();
  });
}

/** Settles within `ms` or rejects naming `what`. */
async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, bound]);
  } finally {
    clearTimeout(timer);
  }
}

/** Records process-level 'uncaughtException' / 'unhandledRejection' while a test runs. */
function processSpy(): { readonly uncaught: unknown[]; readonly unhandled: unknown[] } {
  const uncaught: unknown[] = [];
  const unhandled: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);
  const onUnhandled = (err: unknown) => unhandled.push(err);
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUnhandled);
  cleanups.push(() => {
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUnhandled);
  });
  return { uncaught, unhandled };
}

function describeErrors(errors: readonly unknown[]): string {
  return errors.map((e) => (e instanceof Error ? `${(e as { code?: string }).code ?? e.name}: ${e.message}` : String(e))).join('; ');
}

/**
 * Sends `head` (request line and headers, CRLF-terminated, no body) on a raw
 * connection with Connection: close and parses the answer. Absolute-form
 * request targets can only be sent this way.
 */
function rawRequest(port: number, head: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(head));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.setTimeout(5_000, () => socket.destroy(new Error('raw request: no answer within 5 s')));
    socket.on('end', () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      if (split === -1) return reject(new Error(`raw request: no complete answer: ${JSON.stringify(all.toString())}`));
      const [statusLine, ...lines] = all.subarray(0, split).toString('latin1').split('\r\n');
      const headers: IncomingHttpHeaders = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      let body = all.subarray(split + 4);
      if (headers['transfer-encoding'] === 'chunked') {
        const parts: Buffer[] = [];
        for (let at = 0; ; ) {
          const eol = body.indexOf('\r\n', at);
          const size = parseInt(body.subarray(at, eol).toString(), 16);
          if (!(size > 0)) break;
          parts.push(body.subarray(eol + 2, eol + 2 + size));
          at = eol + 2 + size + 2;
        }
        body = Buffer.concat(parts);
      }
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, text: body.toString() });
    });
  });
}

describe('review regressions (9287460)', () => {
  it('1. res.send() then res.end() answers the whole body once, never crashes, and is a hit next time; an error handler after a send does not crash', async () => {
    const spy = processSpy();
    const cache = newCache({ ttl: '1m' });
    let runs = 0;
    const app = express();
    app.set('env', 'test'); // finalhandler would log the 'late' error
    app.use(expressCache(cache));
    app.get('/x', (_req, res) => {
      runs++;
      res.send('hello world');
      res.end();
    });
    app.get('/late', (_req, res, next) => {
      res.send('late body');
      next(new Error('late'));
    });
    app.use((err: unknown, _req: Any, res: Any, next: Any) => {
      if (res.headersSent) return next(err);
      res.status(500).send('error page');
    });
    const { base } = await listen(app);

    const first = await get(base, '/x');
    assert.equal(first.status, 200);
    assert.equal(first.text, 'hello world');
    assert.equal(first.headers['content-length'], String(Buffer.byteLength('hello world')));
    await sleep(50); // anything the second end() would still set off
    assert.deepEqual(spy.uncaught, [], `uncaught: ${describeErrors(spy.uncaught)}`);

    const second = await get(base, '/x');
    assert.equal(second.headers['cache-status'], HIT_L1);
    assert.equal(second.text, 'hello world');
    assert.equal(second.headers['content-length'], String(Buffer.byteLength('hello world')));
    assert.equal(runs, 1);

    // The error handler runs after the send. What the client gets is test 1b's
    // business; here: the process survives and the key is not stuck.
    await within(3_000, 'request to /late', get(base, '/late').catch((err: unknown) => err));
    await sleep(50);
    assert.deepEqual(spy.uncaught, [], `uncaught: ${describeErrors(spy.uncaught)}`);
    const lateAgain = await within(3_000, 'second request to /late', get(base, '/late'));
    assert.equal(lateAgain.text, 'late body');
    assert.deepEqual(spy.uncaught, [], `uncaught: ${describeErrors(spy.uncaught)}`);
    assert.deepEqual(spy.unhandled, [], `unhandled rejections: ${describeErrors(spy.unhandled)}`);
  });

  it('1b. an error handler that checks res.headersSent after a send leaves the response that was sent intact', async () => {
    // Found while writing test 1 (still broken after 9287460): while the first
    // end() waits for the store, res.headersSent is still false, so the
    // conventional error handler (`if (res.headersSent) return next(err)`)
    // answers again; its end() is swallowed, but its status and headers are
    // not, and go out with the first body: 500, Content-Type text/html,
    // Content-Length 10 ('error page') with the 9 bytes of 'late body'. Without
    // the cache the client gets 200 'late body'.
    const spy = processSpy();
    const cache = newCache({ ttl: '1m' });
    const app = express();
    app.set('env', 'test');
    app.use(expressCache(cache));
    app.get('/late', (_req, res, next) => {
      res.send('late body');
      next(new Error('late'));
    });
    app.use((err: unknown, _req: Any, res: Any, next: Any) => {
      if (res.headersSent) return next(err);
      res.status(500).send('error page');
    });
    const { base } = await listen(app);

    const late = await get(base, '/late');
    assert.equal(late.status, 200);
    assert.equal(late.text, 'late body');
    assert.equal(late.headers['content-length'], String(Buffer.byteLength('late body')));
    const again = await get(base, '/late');
    assert.equal(again.status, 200);
    assert.equal(again.text, 'late body');
    assert.deepEqual(spy.uncaught, [], `uncaught: ${describeErrors(spy.uncaught)}`);
  });

  it('2. absolute-form request targets: a POST does not crash, table rules apply, and the key is the origin-form one', async () => {
    const spy = processSpy();
    const cache = newCache({ ttl: '1m', routes: { '/api/admin': false } });
    const runs = { admin: 0, movie: 0, post: 0 };
    const app = express();
    app.use(expressCache(cache));
    app.post('/api/movies', (_req, res) => {
      runs.post++;
      res.status(201).json({ ok: true });
    });
    app.get('/api/admin', (_req, res) => {
      runs.admin++;
      res.send(`admin secret ${runs.admin}`);
    });
    app.get('/api/movies/:id', (req, res) => {
      runs.movie++;
      res.send(`movie ${req.params.id} run ${runs.movie}`);
    });
    const { base, port } = await listen(app);
    const host = `127.0.0.1:${port}`;
    const raw = (method: string, path: string, extra = '') =>
      rawRequest(port, `${method} http://${host}${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n${extra}\r\n`);

    const posted = await raw('POST', '/api/movies', 'Content-Length: 0\r\n');
    assert.equal(posted.status, 201);
    assert.deepEqual(JSON.parse(posted.text), { ok: true });
    assert.equal(runs.post, 1);
    await sleep(50);
    assert.deepEqual(spy.uncaught, [], `uncaught: ${describeErrors(spy.uncaught)}`);

    // '/api/admin': false holds for the absolute form too: never stored, never served.
    const admin1 = await raw('GET', '/api/admin');
    const admin2 = await raw('GET', '/api/admin');
    assert.equal(admin1.text, 'admin secret 1');
    assert.equal(admin2.text, 'admin secret 2');
    assert.notEqual(admin2.headers['cache-status'], HIT_L1);
    const adminOrigin = await request(base).get('/api/admin');
    assert.equal(adminOrigin.text, 'admin secret 3');
    assert.equal(runs.admin, 3);

    // Keyed like '/api/movies/7': the absolute form hits what an origin-form request filled (it fills nothing itself).
    const movie = await request(base).get('/api/movies/7');
    assert.equal(movie.status, 200);
    assert.equal(movie.text, 'movie 7 run 1');
    const hit = await raw('GET', '/api/movies/7');
    assert.equal(hit.headers['cache-status'], HIT_L1);
    assert.equal(hit.text, 'movie 7 run 1');
    assert.equal(runs.movie, 1);
    assert.deepEqual(spy.uncaught, [], `uncaught: ${describeErrors(spy.uncaught)}`);
  });

  it('3. an app-wide middleware stands down for a per-route one: user scope and tags of the route hold, through the front door too (Express and Koa)', async () => {
    // Express: app-wide under /api with a cache-wide ttl, per-route options inside.
    {
      const cache = newCache({ ttl: '1m' });
      let version = 1;
      const app = express();
      app.use('/api', expressCache(cache));
      app.get('/api/me', expressCache(cache, { user: (req) => req.header('x-user') }), (req, res) => {
        res.json({ me: req.header('x-user') });
      });
      app.get('/api/movies/:id', expressCache(cache, { tags: (req) => [`movie:${req.params.id}`] }), (req, res) => {
        res.json({ id: req.params.id, version });
      });
      const { base } = await listen(front(cache, app as unknown as RequestListener));
      for (let round = 0; round < 3; round++) {
        for (const user of ['1', '2']) {
          const r = await request(base).get('/api/me').set('x-user', user);
          assert.equal(r.status, 200);
          assert.deepEqual(r.body, { me: user }, `Express round ${round}: user ${user} got ${r.text} (${r.headers['cache-status']})`);
          if (round > 0) assert.match(String(r.headers['cache-status']), /^tiercache; hit/, `Express round ${round}: user ${user} was not cached for that user`);
        }
      }
      const movie1 = await request(base).get('/api/movies/7');
      assert.deepEqual(movie1.body, { id: '7', version: 1 });
      const movieHit = await request(base).get('/api/movies/7');
      assert.deepEqual(movieHit.body, { id: '7', version: 1 });
      assert.equal(movieHit.headers['cache-status'], HIT_L1);
      version = 2;
      await cache.invalidateTags(['movie:7']);
      const afterInvalidation = await request(base).get('/api/movies/7');
      assert.deepEqual(afterInvalidation.body, { id: '7', version: 2 }, `after invalidateTags: ${afterInvalidation.headers['cache-status']}`);
      assert.notEqual(afterInvalidation.headers['cache-status'], HIT_L1);
      const again = await request(base).get('/api/movies/7');
      assert.deepEqual(again.body, { id: '7', version: 2 });
    }
    // Koa: app.use(koaCache(cache)) plus a per-route koaCache with a user scope.
    {
      const cache = newCache({ ttl: '1m' });
      const app = new Koa();
      app.silent = true;
      const router = new Router();
      router.get('/api/me', koaCache(cache, { user: (ctx) => ctx.get('x-user') || undefined }) as Any, (ctx: Any) => {
        ctx.body = { me: ctx.get('x-user') };
      });
      app.use(koaCache(cache) as Any);
      app.use(router.routes() as Any);
      const { base } = await listen(front(cache, app.callback()));
      for (let round = 0; round < 3; round++) {
        for (const user of ['1', '2']) {
          const r = await request(base).get('/api/me').set('x-user', user);
          assert.equal(r.status, 200);
          assert.deepEqual(r.body, { me: user }, `Koa round ${round}: user ${user} got ${r.text} (${r.headers['cache-status']})`);
          if (round > 0) assert.match(String(r.headers['cache-status']), /^tiercache; hit/, `Koa round ${round}: user ${user} was not cached for that user`);
        }
      }
    }
  });

  it('4. compression() in front of the cache with a streamed body: the hit is decodable and equals the miss, for gzip and identity clients', async () => {
    const cache = newCache({ redis: redisCaches.redis.url, ttl: '1m' });
    await cache.ready();
    let runs = 0;
    const app = express();
    app.use(compression({ threshold: 0 }));
    app.use(expressCache(cache));
    app.get('/doc', (_req, res) => {
      runs++;
      res.type('text/plain');
      res.write('hello ');
      res.end('world');
    });
    const { base } = await listen(app);

    /** The bytes are what Content-Encoding says they are. */
    const checkEncoding = (what: string, r: { headers: Record<string, string | undefined>; bytes: Buffer }) => {
      const gz = r.bytes.subarray(0, 2).equals(GZIP_MAGIC);
      if (r.headers['content-encoding'] === 'gzip') assert.ok(gz, `${what}: Content-Encoding gzip but the bytes are ${JSON.stringify(r.bytes.toString())}`);
      else assert.ok(!gz, `${what}: gzip bytes without Content-Encoding: gzip (${r.headers['content-encoding']})`);
    };

    for (const acceptEncoding of ['gzip', 'identity']) {
      const miss = await request(base).get('/doc').set('Accept-Encoding', acceptEncoding);
      assert.equal(miss.text, 'hello world', `${acceptEncoding} miss`);
      const rawHit = await fetchRaw(base, '/doc', acceptEncoding);
      assert.equal(rawHit.status, 200);
      assert.ok(String(rawHit.headers['cache-status']).startsWith('tiercache; hit'), `${acceptEncoding}: ${rawHit.headers['cache-status']}`);
      checkEncoding(`${acceptEncoding} hit`, rawHit);
      if (acceptEncoding === 'identity') assert.equal(rawHit.bytes.toString(), 'hello world');
      // supertest inflates gzip: the decoded hit is the decoded miss.
      const hit = await request(base).get('/doc').set('Accept-Encoding', acceptEncoding);
      assert.ok(String(hit.headers['cache-status']).startsWith('tiercache; hit'), `${acceptEncoding}: ${hit.headers['cache-status']}`);
      assert.equal(hit.text, miss.text, `${acceptEncoding} hit (${hit.headers['cache-status']})`);
    }
    assert.ok(runs >= 1 && runs <= 2, `handler runs: ${runs}`);
  });

  it('5. an invalidation while a fill runs outdates it: invalidateKey (L1 and Redis), clear() (L1 only), delete() during getOrSet, source().set() during a load', async function () {
    this.timeout(30_000);
    const slow = async () => sleep(300);

    // HTTP: invalidateKey / clear() while a 300 ms handler runs.
    for (const [label, redisUrl, how] of [
      ['L1 only, invalidateKey', undefined, 'key'],
      ['Redis, invalidateKey', 'redis', 'key'],
      ['L1 only, clear()', undefined, 'clear'],
    ] as const) {
      const cache = newCache(redisUrl === undefined ? { ttl: '1m' } : { redis: redisCaches.redis.url, ttl: '1m' });
      await cache.ready();
      let version = 1;
      let started!: () => void;
      const handlerStarted = new Promise<void>((resolve) => (started = resolve));
      const app = express();
      app.get('/item', expressCache(cache), async (_req, res) => {
        const v = version;
        started();
        await slow();
        res.send(`v${v}`);
      });
      const { base } = await listen(app);
      const key = cache.keyFor({ method: 'GET', url: '/item', headers: {} });
      assert.equal(key, `${cache.prefix}:GET:/item`);

      const first = get(base, '/item');
      // Into the handler (not a fixed delay: a loaded machine may take longer to get there).
      await handlerStarted;
      await sleep(50);
      version = 2;
      if (how === 'key') await cache.invalidateKey(key);
      else await cache.clear();
      const waiter = await get(base, '/item'); // sent after the invalidation resolved
      assert.equal(waiter.text, 'v2', `${label}: request after the invalidation got ${waiter.text} (${waiter.headers['cache-status']})`);
      assert.equal((await first).text, 'v1');
      const later = await get(base, '/item');
      assert.equal(later.text, 'v2', `${label}: later request got ${later.text} (${later.headers['cache-status']})`);
    }

    // Data API, L1 only and with Redis.
    for (const redisUrl of [undefined, redisCaches.redis.url]) {
      const label = redisUrl === undefined ? 'L1 only' : 'Redis';
      const cache = newCache(redisUrl === undefined ? {} : { redis: redisUrl });
      await cache.ready();
      let loads = 0;
      const running = cache.getOrSet('k', async () => {
        loads++;
        await slow();
        return 'v1';
      });
      await sleep(50);
      await cache.delete('k');
      const afterDelete = await cache.getOrSet('k', async () => {
        loads++;
        return 'v2';
      });
      assert.equal(afterDelete, 'v2', `${label}: getOrSet after delete() resolved returned the stale in-flight value`);
      assert.equal(loads, 2);
      assert.equal(await cache.get('k'), 'v2');
      assert.equal(await running, 'v1');
      await sleep(20);
      assert.equal(await cache.get('k'), 'v2', `${label}: the outdated load landed after it finished`);

      let db = 'A';
      const users = cache.source<number, string>({
        load: async () => {
          const v = db;
          await slow();
          return v;
        },
        save: async (_id, v) => {
          db = v;
        },
      });
      const loading = users.get(1); // slow load of 'A'
      await sleep(50);
      await users.set(1, 'B');
      assert.equal(await users.get(1), 'B', `${label}: users.get(1) after users.set(1, 'B') resolved`);
      await loading;
      await sleep(20);
      assert.equal(await users.get(1), 'B', `${label}: users.get(1) after the old load finished`);
    }
  });

  it('6. invalidateKey(keyFor(req)) for a response that varies drops every variant', async () => {
    for (const redisUrl of [undefined, redisCaches.redis.url]) {
      const label = redisUrl === undefined ? 'L1 only' : 'Redis';
      const cache = newCache(redisUrl === undefined ? { ttl: '1m' } : { redis: redisUrl, ttl: '1m' });
      await cache.ready();
      let version = 1;
      let enKey: string | undefined;
      const app = express();
      app.use(expressCache(cache));
      app.get('/greet', (req, res) => {
        res.set('Vary', 'Accept-Language');
        res.send(`v${version} ${req.header('accept-language')}`);
      });
      const { base } = await listen((req, res) => {
        res.on('finish', () => {
          if (req.headers['accept-language'] === 'en' && enKey === undefined) enKey = cache.keyFor(req);
        });
        (app as unknown as RequestListener)(req, res);
      });
      const en = { 'accept-language': 'en' };
      const fr = { 'accept-language': 'fr' };
      assert.equal((await get(base, '/greet', en)).text, 'v1 en');
      assert.equal((await get(base, '/greet', fr)).text, 'v1 fr');
      assert.equal((await get(base, '/greet', en)).headers['cache-status'], HIT_L1);
      assert.equal((await get(base, '/greet', fr)).headers['cache-status'], HIT_L1);
      assert.ok(enKey !== undefined);

      version = 2;
      await cache.invalidateKey(enKey);
      for (const [lang, headers] of [['fr', fr], ['en', en], ['fr', fr], ['en', en]] as const) {
        const r = await get(base, '/greet', headers);
        assert.equal(r.text, `v2 ${lang}`, `${label}: ${lang} after invalidateKey got ${r.text} (${r.headers['cache-status']})`);
      }
    }
  });

  it('7. when Redis dies during a fill, an invalidateTags queued for lack of Redis still keeps the invalidating instance from serving the old response', async function () {
    this.timeout(20_000);
    const own = await startRedisServer();
    cleanups.push(() => own.stop());
    const cache = newCache({ redis: own.url, ttl: '1m' });
    cache.on('error', () => undefined);
    await cache.ready();
    let version = 1;
    const app = express();
    app.get('/movies/:id', expressCache(cache, { tags: (req) => [`movie:${req.params.id}`] }), async (_req, res) => {
      const v = version;
      await sleep(300);
      res.send(`v${v}`);
    });
    const { base } = await listen(app);

    const first = get(base, '/movies/7');
    await sleep(100);
    await own.stop();
    version = 2;
    assert.deepEqual(await cache.invalidateTags(['movie:7']), { delivered: false });
    assert.equal((await first).text, 'v1');
    for (let i = 0; i < 2; i++) {
      const after = await get(base, '/movies/7');
      assert.equal(after.status, 200);
      assert.equal(after.text, 'v2', `request ${i + 1} after the invalidation got ${after.text} (${after.headers['cache-status']})`);
    }
  });

  it('8. res.end() with a bad encoding or a number neither sticks the key nor leaks a rejection', async function () {
    this.timeout(15_000);
    const spy = processSpy();
    const cache = newCache({ ttl: '1m' });
    let bad = true;
    let numberRuns = 0;
    const app = express();
    app.set('env', 'test');
    app.get('/x', expressCache(cache), (_req, res) => {
      if (bad) {
        bad = false;
        res.end('x', 'bad-encoding' as BufferEncoding);
      } else res.send('ok');
    });
    app.get('/n', expressCache(cache), (_req, res) => {
      numberRuns++;
      res.end(12345 as unknown as string);
    });
    const { base } = await listen(app);

    // Whatever node makes of it (an error answer or a closed connection), it ends.
    await within(3_000, 'bad encoding request', get(base, '/x').catch((err: unknown) => err));
    const started = Date.now();
    const good = await within(3_000, 'second request', get(base, '/x'));
    const took = Date.now() - started;
    assert.equal(good.status, 200);
    assert.equal(good.text, 'ok');
    assert.ok(took < 1_000, `the second request took ${took} ms: it waited on the failed fill`);
    const hit = await get(base, '/x');
    assert.equal(hit.headers['cache-status'], HIT_L1);
    assert.equal(hit.text, 'ok');

    for (let i = 1; i <= 2; i++) {
      const r = await within(3_000, `res.end(12345) request ${i}`, get(base, '/n').catch((err: unknown) => err));
      if (!(r instanceof Error)) assert.notEqual((r as Reply).headers['cache-status'], HIT_L1);
    }
    assert.equal(numberRuns, 2, 'res.end(12345) was stored');
    await sleep(50);
    assert.deepEqual(spy.unhandled, [], `unhandled rejections: ${describeErrors(spy.unhandled)}`);
    assert.deepEqual(spy.uncaught, [], `uncaught: ${describeErrors(spy.uncaught)}`);
  });

  it('9. stale-while-revalidate in an Express sub-app refreshes the entry', async () => {
    const cache = newCache();
    let runs = 0;
    const app = express();
    const sub = express();
    app.use('/sub', sub);
    sub.get('/x', expressCache(cache, { ttl: 100, staleWhileRevalidate: '5s' }), (_req, res) => {
      runs++;
      res.send(`run ${runs}`);
    });
    const { base } = await listen(app);

    assert.equal((await request(base).get('/sub/x')).text, 'run 1');
    await sleep(150);
    const stale = await request(base).get('/sub/x');
    assert.equal(stale.text, 'run 1');
    assert.match(String(stale.headers['cache-status']), /^tiercache; hit; ttl=-\d+/);
    const deadline = Date.now() + 1_000;
    let last: request.Response | undefined;
    while (Date.now() < deadline) {
      last = await request(base).get('/sub/x');
      if (last.text === 'run 2' && last.headers['cache-status'] === HIT_L1) break;
      await sleep(20);
    }
    assert.equal(last?.text, 'run 2', `not refreshed within 1 s (last: ${last?.text}, ${last?.headers['cache-status']}; handler runs: ${runs})`);
    assert.equal(last?.headers['cache-status'], HIT_L1);
  });

  it('10. a POST answered 303 Location: / does not clear the cache; a POST invalidates its own path (every query variant) and nothing below it', async () => {
    const cache = newCache({ ttl: '1m' });
    const runs = new Map<string, number>();
    const app = express();
    app.use(expressCache(cache));
    app.get(['/api/movies', '/api/movies/:id'], (req, res) => {
      const n = (runs.get(req.originalUrl) ?? 0) + 1;
      runs.set(req.originalUrl, n);
      res.send(`${req.originalUrl} run ${n}`);
    });
    app.post('/login', (_req, res) => res.redirect(303, '/'));
    app.post('/api/movies', (_req, res) => res.status(201).json({ ok: true }));
    const { base } = await listen(app);

    for (const path of ['/api/movies', '/api/movies?x=1', '/api/movies/7']) {
      await request(base).get(path);
      assert.equal((await request(base).get(path)).headers['cache-status'], HIT_L1);
    }
    const invalidated = new Promise((resolve) => cache.once('invalidate', resolve));
    const login = await request(base).post('/login');
    assert.equal(login.status, 303);
    assert.equal(login.headers.location, '/');
    await Promise.race([invalidated, sleep(200)]);
    const movies = await request(base).get('/api/movies');
    assert.equal(movies.headers['cache-status'], HIT_L1, 'POST /login → 303 Location: / emptied the cache');
    assert.equal(movies.text, '/api/movies run 1');

    const invalidatedAgain = new Promise((resolve) => cache.once('invalidate', resolve));
    assert.equal((await request(base).post('/api/movies')).status, 201);
    await within(1_000, 'invalidation after POST /api/movies', invalidatedAgain);
    for (const path of ['/api/movies?x=1', '/api/movies']) {
      const r = await request(base).get(path);
      assert.equal(r.text, `${path} run 2`, `${path} after POST /api/movies: ${r.headers['cache-status']}`);
    }
    const below = await request(base).get('/api/movies/7');
    assert.equal(below.text, '/api/movies/7 run 1', `a POST to /api/movies must not invalidate /api/movies/7: ${below.headers['cache-status']}`);
  });

  it('11. a foreign L2 entry whose head node cannot write (header with a newline, status 1000) is a miss and is replaced, never a 500', async () => {
    const admin = new Redis(redisCaches.redis.url);
    cleanups.push(() => admin.disconnect());
    const cache = newCache({ redis: redisCaches.redis.url, ttl: '1m' });
    await cache.ready();
    let runs = 0;
    const app = express();
    app.get(['/a', '/b'], expressCache(cache), (_req, res) => {
      runs++;
      res.send('fresh');
    });
    const { base } = await listen(app);
    const epoch = Number(await admin.get(`{${cache.prefix}}:epoch`));
    assert.ok(Number.isFinite(epoch) && epoch > 0, `no epoch in Redis: ${epoch}`);

    const heads = { '/a': { s: 200, h: [['x', 'a\nb']] }, '/b': { s: 1000, h: [] } } as const;
    for (const [path, head] of Object.entries(heads)) {
      const key = cache.keyFor({ method: 'GET', url: path, headers: {} });
      const now = Date.now();
      await admin.set(
        key,
        encodeEntry({
          kind: EntryKind.Http,
          createdAt: now,
          freshUntil: now + 60_000,
          staleUntil: now + 60_000,
          epoch,
          tags: [],
          versions: [],
          head: Buffer.from(JSON.stringify(head)),
          body: Buffer.from('foreign'),
        }),
        'PX',
        60_000,
      );
      const before = runs;
      const r = await get(base, path);
      assert.equal(r.status, 200, `${JSON.stringify(head)}: ${r.status} ${r.text}`);
      assert.equal(r.text, 'fresh');
      assert.equal(runs, before + 1, 'the handler did not run');
      const stored = await admin.getBuffer(key);
      assert.ok(stored !== null, `${path}: nothing in Redis after the fill`);
      assert.equal(decodeEntry(stored).body.toString(), 'fresh', `${path}: the foreign entry was not replaced`);
      const hit = await get(base, path);
      assert.equal(hit.status, 200);
      assert.equal(hit.text, 'fresh');
    }
    // A second instance (empty L1) reads the replacement from L2.
    const other = newCache({ redis: redisCaches.redis.url, ttl: '1m', namespace: cache.prefix });
    await other.ready();
    const otherApp = express();
    otherApp.get(['/a', '/b'], expressCache(other), (_req, res) => res.send('other'));
    const { base: otherBase } = await listen(otherApp);
    for (const path of ['/a', '/b']) {
      const r = await get(otherBase, path);
      assert.equal(r.text, 'fresh');
      assert.equal(r.headers['cache-status'], HIT_L2);
    }
  });

  it('12. a caller-provided ioredis client with lazyConnect: true is used (set on one instance, L2 hit on another)', async () => {
    const client = new Redis(redisCaches.redis.url, { lazyConnect: true });
    cleanups.push(() => client.disconnect());
    const writer = newCache({ redis: client });
    await writer.ready();
    await writer.set('a', { value: 1 });
    const reader = newCache({ redis: redisCaches.redis.url, namespace: writer.prefix });
    await reader.ready();
    assert.deepEqual(await reader.get('a'), { value: 1 });
    assert.equal(reader.stats().l2.hits, 1);
    assert.equal(writer.stats().l2.errors, 0);
  });
});
