// What the HTTP middleware stores and how it replays it (DESIGN.md sections 2
// and 3), run against Express 5, Express 4, Koa 3 and Koa 2 with one test body
// each: mounting styles and the TTL table, L1 / L2 hits, canonical queries,
// every storage rule, 304 answers, invalidation from inside a handler, and
// bodies of every shape replayed byte for byte. Each test checks the
// Cache-Status header and whether the handler ran again.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import computeEtag from 'etag';
import request from 'supertest';
import { createCache, TierCacheConfigError, type CacheOptions, type TierCache } from '../../../src/index.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { binaryParser } from '../../support/http-bytes.js';
import { adapters, buildApp, headerOf, paramsOf, type Adapter, type AppSpec, type HandlerIO, type TestApp } from './apps.js';

const HIT_L1 = 'tiercache; hit; detail=L1';
const HIT_L2 = 'tiercache; hit; detail=L2';
const STORED = 'tiercache; fwd=miss; stored';
const MISS = 'tiercache; fwd=miss';
const BYPASS = 'tiercache; fwd=bypass';
const miss = (reason: string) => `${MISS}; detail=${reason}`;
const bypass = (reason: string) => `${BYPASS}; detail=${reason}`;

const MINUTE = 60_000;

interface Answer {
  status: number;
  headers: Record<string, string | undefined>;
  body: Buffer;
  text: string;
}

interface CallInit {
  method?: 'GET' | 'HEAD' | 'POST';
  headers?: Record<string, string>;
  /** A request body (sent with Content-Length). */
  body?: string;
}

async function call(app: TestApp, path: string, init: CallInit = {}): Promise<Answer> {
  const agent = request(app.target);
  const method = init.method ?? 'GET';
  let test = method === 'GET' ? agent.get(path) : method === 'HEAD' ? agent.head(path) : agent.post(path);
  for (const [name, value] of Object.entries(init.headers ?? {})) test = test.set(name, value);
  if (init.body !== undefined) test = test.set('Content-Type', 'text/plain').send(init.body);
  const res = await test.buffer(true).parse(binaryParser);
  const body = Buffer.isBuffer(res.body) ? res.body : Buffer.alloc(0);
  return { status: res.status, headers: res.headers as Record<string, string | undefined>, body, text: body.toString('utf8') };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let namespaceCounter = 0;
const nextNamespace = () => `mw${process.pid}-${++namespaceCounter}`;

/** The key the middleware used for this request, read from node's req (independent of keyFor's ctx handling). */
function usedKey(cache: TierCache, io: HandlerIO): string {
  return cache.keyFor(io.native.framework === 'koa' ? io.native.ctx.req : io.native.req);
}

/** Fresh lifetime (ms) of the L1 entry under `key`, or undefined when none is stored. */
function lifetimeOf(cache: TierCache, key: string): number | undefined {
  const entry = cache.store.l1?.peek(key);
  return entry === undefined ? undefined : entry.freshUntil - entry.createdAt;
}

describe('middleware storage rules (Express 5 / 4, Koa 3 / 2)', function () {
  const redisCaches = useRedisCaches({ prefix: 'mwr', flush: true });

  /** An L1-only cache (redis: false), closed after the test. */
  function open(options: CacheOptions = {}): TierCache {
    return redisCaches.track(createCache({ namespace: nextNamespace(), redis: false, ...options }));
  }

  /** A cache on the file's redis-server, ready, closed after the test. */
  const openWithRedis = (options: CacheOptions) => redisCaches.open(options);

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      const build = (cache: TierCache, spec: AppSpec) => buildApp(adapter, cache, spec);
      registerTests(adapter, build, open, openWithRedis);
    });
  }
});

function registerTests(
  adapter: Adapter,
  build: (cache: TierCache, spec: AppSpec) => TestApp,
  open: (options?: CacheOptions) => TierCache,
  openWithRedis: (options: CacheOptions) => Promise<TierCache>,
): void {
  describe('mounting', () => {
    it('app-level: caches a route the TTL table names, for the table TTL', async () => {
      const cache = open({ routes: { '/api/movies': '5m' } });
      let key: string | undefined;
      const app = build(cache, {
        appLevel: true,
        routes: [{ path: '/api/movies', handler: (io) => ((key = usedKey(cache, io)), io.send('movies')) }],
      });
      const first = await call(app, '/api/movies');
      assert.equal(first.headers['cache-status'], STORED);
      const second = await call(app, '/api/movies');
      assert.equal(second.headers['cache-status'], HIT_L1);
      assert.equal(second.text, 'movies');
      assert.equal(app.runs('/api/movies'), 1);
      assert.equal(lifetimeOf(cache, key!), 5 * MINUTE);
    });

    it('app-level: passes a route with no rule and no cache ttl through untouched', async () => {
      const cache = open({ routes: { '/api/movies': '5m' } });
      const app = build(cache, { appLevel: true, routes: [{ path: '/other', handler: (io) => io.send('other') }] });
      for (let i = 0; i < 2; i++) {
        const res = await call(app, '/other');
        assert.equal(res.status, 200);
        assert.equal(res.text, 'other');
        assert.equal(res.headers['cache-status'], undefined);
        assert.equal(res.headers['age'], undefined);
      }
      assert.equal(app.runs('/other'), 2);
    });

    it('app-level: never caches a route whose rule is false', async () => {
      const cache = open({ routes: { '/api': '5m', '/api/admin': false } });
      const app = build(cache, { appLevel: true, routes: [{ path: '/api/admin', handler: (io) => io.send('admin') }] });
      for (let i = 0; i < 2; i++) {
        const res = await call(app, '/api/admin');
        assert.equal(res.text, 'admin');
        assert.equal(res.headers['cache-status'], undefined);
      }
      assert.equal(app.runs('/api/admin'), 2);
    });

    it('per route: caches for 60 s when neither the route, the table nor the cache sets a TTL', async () => {
      const cache = open();
      let key: string | undefined;
      const app = build(cache, {
        routes: [{ path: '/thing', mw: {}, handler: (io) => ((key = usedKey(cache, io)), io.send('thing')) }],
      });
      assert.equal((await call(app, '/thing')).headers['cache-status'], STORED);
      const hit = await call(app, '/thing');
      assert.equal(hit.headers['cache-status'], HIT_L1);
      assert.equal(hit.text, 'thing');
      assert.equal(app.runs('/thing'), 1);
      assert.equal(lifetimeOf(cache, key!), 60_000);
    });

    it('mounted under /api: keys and table lookups use the full request path', async () => {
      const cache = open({ routes: { '/api/movies': '5m', '/api/admin': false } });
      let key: string | undefined;
      const app = build(cache, {
        appLevel: true,
        mount: '/api',
        routes: [
          { path: '/api/movies', handler: (io) => ((key = usedKey(cache, io)), io.send('movies')) },
          { path: '/api/admin', handler: (io) => io.send('admin') },
        ],
      });
      assert.equal((await call(app, '/api/movies')).headers['cache-status'], STORED);
      assert.equal((await call(app, '/api/movies')).headers['cache-status'], HIT_L1);
      assert.equal(app.runs('/api/movies'), 1);
      assert.ok(key !== undefined && key.includes('/api/movies'), `key ${key} should hold the full path`);
      assert.equal(lifetimeOf(cache, key), 5 * MINUTE, 'the /api/movies table rule applies');
      for (let i = 0; i < 2; i++) assert.equal((await call(app, '/api/admin')).headers['cache-status'], undefined);
      assert.equal(app.runs('/api/admin'), 2, "the '/api/admin': false rule applies");
    });
  });

  describe('serving', () => {
    it('answers the first GET with fwd=miss; stored and serves the repeat from L1 without running the handler, with Age', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/a', mw: {}, handler: (io) => (io.set('X-Answer', 'yes'), io.send('hello')) }] });
      const first = await call(app, '/a');
      assert.equal(first.status, 200);
      assert.equal(first.headers['cache-status'], STORED);
      const second = await call(app, '/a');
      assert.equal(second.status, 200);
      assert.equal(second.headers['cache-status'], HIT_L1);
      assert.match(second.headers['age'] ?? '', /^\d+$/);
      assert.equal(second.headers['x-answer'], 'yes');
      assert.equal(second.text, 'hello');
      assert.equal(app.runs('/a'), 1);
    });

    it('shares one entry between ?a=1&b=2 and ?b=2&a=1', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/q', mw: {}, handler: (io) => io.send(`url=${io.url}`) }] });
      assert.equal((await call(app, '/q?a=1&b=2')).headers['cache-status'], STORED);
      const swapped = await call(app, '/q?b=2&a=1');
      assert.equal(swapped.headers['cache-status'], HIT_L1);
      assert.equal(swapped.text, 'url=/q?a=1&b=2');
      assert.equal(app.runs('/q'), 1);
    });

    it('keeps ?id=1&id=2, ?id=2&id=1 and ?id=1 as three entries', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/q', mw: {}, handler: (io) => io.send(`id=${JSON.stringify(io.query('id'))}`) }] });
      const urls = ['/q?id=1&id=2', '/q?id=2&id=1', '/q?id=1'];
      const bodies = ['id=["1","2"]', 'id=["2","1"]', 'id="1"'];
      for (const url of urls) assert.equal((await call(app, url)).headers['cache-status'], STORED, url);
      assert.equal(app.runs('/q'), 3);
      for (let i = 0; i < urls.length; i++) {
        const hit = await call(app, urls[i]!);
        assert.equal(hit.headers['cache-status'], HIT_L1, urls[i]);
        assert.equal(hit.text, bodies[i]);
      }
      assert.equal(app.runs('/q'), 3);
    });
  });

  describe('methods', () => {
    it('passes POST through and never stores its answer', async () => {
      const cache = open({ routes: { '/api/items': '1m' } });
      const app = build(cache, {
        appLevel: true,
        routes: [
          { path: '/api/items', method: 'post', handler: (io) => io.send('created') },
          { path: '/api/items', handler: (io) => io.send('list') },
        ],
      });
      for (let i = 0; i < 2; i++) {
        const res = await call(app, '/api/items', { method: 'POST' });
        assert.equal(res.text, 'created');
        assert.equal(res.headers['cache-status'], undefined);
      }
      assert.equal(app.runs('/api/items', 'post'), 2);
      const get = await call(app, '/api/items');
      assert.equal(get.headers['cache-status'], STORED, 'the GET after the POSTs found nothing stored');
      assert.equal(get.text, 'list');
    });

    it('answers HEAD after a GET from the entry: headers, no body, no handler run', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/h', mw: {}, handler: (io) => (io.set('X-Answer', 'yes'), io.send('hello head')) }] });
      const get = await call(app, '/h');
      assert.equal(get.headers['cache-status'], STORED);
      const head = await call(app, '/h', { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers['cache-status'], HIT_L1);
      assert.equal(head.headers['x-answer'], 'yes');
      assert.equal(head.headers['content-type'], get.headers['content-type']);
      assert.equal(head.body.length, 0);
      assert.equal(app.runs('/h'), 1);
    });

    it('never creates an entry from a HEAD: the following GET is a miss', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/h', mw: {}, handler: (io) => io.send('hello head') }] });
      const head = await call(app, '/h', { method: 'HEAD' });
      assert.equal(head.headers['cache-status'], miss('head'));
      assert.equal(head.body.length, 0);
      const get = await call(app, '/h');
      assert.equal(get.headers['cache-status'], STORED);
      assert.equal(get.text, 'hello head');
      assert.equal(app.runs('/h'), 2);
      assert.equal((await call(app, '/h')).headers['cache-status'], HIT_L1);
    });

    it('bypasses a GET carrying X-HTTP-Method-Override', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/m', mw: {}, handler: (io) => io.send('m') }] });
      for (let i = 0; i < 2; i++) {
        const res = await call(app, '/m', { headers: { 'X-HTTP-Method-Override': 'POST' } });
        assert.equal(res.headers['cache-status'], bypass('method-override'));
      }
      assert.equal(app.runs('/m'), 2);
      assert.equal((await call(app, '/m')).headers['cache-status'], STORED, 'nothing was stored by the overridden requests');
    });

    it('bypasses a GET with a body (Content-Length > 0)', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/b', mw: {}, handler: (io) => io.send(`len=${io.header('content-length')}`) }] });
      for (let i = 0; i < 2; i++) {
        const res = await call(app, '/b', { body: 'payload' });
        assert.equal(res.text, 'len=7', 'the request really carried a body');
        assert.equal(res.headers['cache-status'], bypass('body'));
      }
      assert.equal(app.runs('/b'), 2);
    });
  });

  describe('status', () => {
    const statusRoute = (io: HandlerIO) => {
      const status = Number(io.query('s'));
      io.status(status);
      if (status >= 300 && status < 400) io.set('Location', '/elsewhere');
      io.send(status === 204 ? '' : `status ${status}`);
    };

    it('stores 200, 203, 204, 300, 301 and 308', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/s', mw: {}, handler: statusRoute }] });
      const statuses = [200, 203, 204, 300, 301, 308];
      for (const s of statuses) {
        const first = await call(app, `/s?s=${s}`);
        assert.equal(first.status, s);
        assert.equal(first.headers['cache-status'], STORED, `status ${s}`);
        if (s === 204) assert.equal(first.headers['content-length'], undefined, 'the 204 that filled: Content-Length');
        const second = await call(app, `/s?s=${s}`);
        assert.equal(second.status, s);
        assert.equal(second.headers['cache-status'], HIT_L1, `status ${s}`);
        assert.deepEqual(second.body, first.body, `status ${s}`);
        // RFC 9110 §8.6: no Content-Length on a 204; the others say their stored body's length.
        assert.equal(second.headers['content-length'], s === 204 ? undefined : String(Buffer.byteLength(`status ${s}`)), `status ${s}: Content-Length`);
      }
      assert.equal(app.runs('/s'), statuses.length);
    });

    it('does not store a 404 when the route sets no negativeTtl', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/s', mw: {}, handler: statusRoute }] });
      for (let i = 0; i < 2; i++) {
        const res = await call(app, '/s?s=404');
        assert.equal(res.status, 404);
        assert.equal(res.headers['cache-status'], miss('status'));
      }
      assert.equal(app.runs('/s'), 2);
    });

    it('stores a 404 for negativeTtl when the route sets one', async () => {
      const cache = open();
      let key: string | undefined;
      const app = build(cache, {
        routes: [{ path: '/s', mw: { ttl: '5m', negativeTtl: '30s' }, handler: (io) => ((key = usedKey(cache, io)), statusRoute(io)) }],
      });
      assert.equal((await call(app, '/s?s=404')).headers['cache-status'], STORED);
      const hit = await call(app, '/s?s=404');
      assert.equal(hit.status, 404);
      assert.equal(hit.headers['cache-status'], HIT_L1);
      assert.equal(hit.text, 'status 404');
      assert.equal(app.runs('/s'), 1);
      assert.equal(lifetimeOf(cache, key!), 30_000);
    });

    it('a 404 stored for negativeTtl answers the filling request\'s If-None-Match: * with the 404, never a 304', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/s', mw: { ttl: '5m', negativeTtl: '30s' }, handler: statusRoute }] });
      const filling = await call(app, '/s?s=404', { headers: { 'If-None-Match': '*' } });
      assert.deepEqual([filling.status, filling.headers['cache-status'], filling.text], [404, STORED, 'status 404']);
    });

    it('never stores a 500, even with negativeTtl', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/s', mw: { negativeTtl: '30s' }, handler: statusRoute }] });
      for (let i = 0; i < 2; i++) {
        const res = await call(app, '/s?s=500');
        assert.equal(res.status, 500);
        assert.equal(res.headers['cache-status'], miss('status'));
      }
      assert.equal(app.runs('/s'), 2);
    });
  });

  describe('Cache-Control', () => {
    it('does not store a response with Cache-Control: no-store', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/c', mw: {}, handler: (io) => (io.set('Cache-Control', 'no-store'), io.send('c')) }] });
      for (let i = 0; i < 2; i++) assert.equal((await call(app, '/c')).headers['cache-status'], miss('no-store'));
      assert.equal(app.runs('/c'), 2);
    });

    it('reads a quoted directive value holding commas as one value: ext="a, no-store" does not forbid storing', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/q', mw: {}, handler: (io) => (io.set('Cache-Control', 'public, max-age=60, ext="a,no-store,b"'), io.send('q')) }] });
      assert.equal((await call(app, '/q')).headers['cache-status'], STORED);
      assert.equal((await call(app, '/q')).headers['cache-status'], HIT_L1);
      assert.equal(app.runs('/q'), 1);
    });

    it('does not store a private response on a route that is not user-scoped', async () => {
      const cache = open({ routes: { '/c': '1m' } });
      const app = build(cache, { appLevel: true, routes: [{ path: '/c', handler: (io) => (io.set('Cache-Control', 'private, max-age=60'), io.send('c')) }] });
      for (let i = 0; i < 2; i++) assert.equal((await call(app, '/c')).headers['cache-status'], miss('private'));
      assert.equal(app.runs('/c'), 2);
    });

    it('stores a private response on a user-scoped route', async () => {
      const cache = open();
      const app = build(cache, {
        routes: [{ path: '/me', mw: { user: (r) => headerOf(r, 'x-user') }, handler: (io) => (io.set('Cache-Control', 'private, max-age=60'), io.send(`me=${io.header('x-user')}`)) }],
      });
      assert.equal((await call(app, '/me', { headers: { 'X-User': 'u1' } })).headers['cache-status'], STORED);
      const hit = await call(app, '/me', { headers: { 'X-User': 'u1' } });
      assert.equal(hit.headers['cache-status'], HIT_L1);
      assert.equal(hit.text, 'me=u1');
      assert.equal(app.runs('/me'), 1);
    });

    it('does not store the answer to a request with Cache-Control: no-store', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/c', mw: {}, handler: (io) => io.send('c') }] });
      const first = await call(app, '/c', { headers: { 'Cache-Control': 'no-store' } });
      assert.equal(first.headers['cache-status'], miss('request-no-store'));
      const next = await call(app, '/c');
      assert.equal(next.headers['cache-status'], STORED, 'the no-store request left nothing stored');
      assert.equal(app.runs('/c'), 2);
    });
  });

  describe('response and request headers', () => {
    it('does not store a response that sets a cookie', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/k', mw: {}, handler: (io) => (io.set('Set-Cookie', 'sid=1; Path=/'), io.send('k')) }] });
      for (let i = 0; i < 2; i++) {
        const res = await call(app, '/k');
        assert.equal(res.headers['cache-status'], miss('set-cookie'));
        assert.ok(res.headers['set-cookie'], 'the cookie reached the client');
      }
      assert.equal(app.runs('/k'), 2);
    });

    it('does not store a response with Vary: *', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/v', mw: {}, handler: (io) => (io.set('Vary', '*'), io.send('v')) }] });
      for (let i = 0; i < 2; i++) assert.equal((await call(app, '/v')).headers['cache-status'], miss('vary-star'));
      assert.equal(app.runs('/v'), 2);
    });

    it('bypasses a request with Authorization', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/p', mw: {}, handler: (io) => io.send('p') }] });
      for (let i = 0; i < 2; i++) assert.equal((await call(app, '/p', { headers: { Authorization: 'Bearer t' } })).headers['cache-status'], bypass('authorization'));
      assert.equal(app.runs('/p'), 2);
      assert.equal((await call(app, '/p')).headers['cache-status'], STORED, 'nothing was stored by the credentialed requests');
    });

    it('bypasses a request with Cookie', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/p', mw: {}, handler: (io) => io.send('p') }] });
      for (let i = 0; i < 2; i++) assert.equal((await call(app, '/p', { headers: { Cookie: 'sid=1' } })).headers['cache-status'], bypass('cookie'));
      assert.equal(app.runs('/p'), 2);
    });

    it('bypasses a request with access_token in its query (RFC 6750 §2.3), in every spelling the parsers read as that name', async () => {
      const cache = open();
      const urls: string[] = [];
      // A 'bypass' listener (and the debug log, which is one) reads the request target: the token must not be in it.
      cache.on('bypass', (e) => urls.push(e.url));
      const app = build(cache, { routes: [{ path: '/p', mw: {}, handler: (io) => io.send(`p ${io.query('access_token') ?? ''}`) }] });
      for (const url of ['/p?access_token=secret', '/p?page=1&access%5Ftoken=secret', '/p?access_token[]=secret']) {
        for (let i = 0; i < 2; i++) assert.equal((await call(app, url)).headers['cache-status'], bypass('access-token'), url);
      }
      assert.equal(app.runs('/p'), 6);
      assert.deepEqual([...new Set(urls)], ['/p?access_token=redacted', '/p?page=1&access%5Ftoken=redacted', '/p?access_token[]=redacted']);
      assert.equal((await call(app, '/p')).headers['cache-status'], STORED, 'nothing was stored by the credentialed requests');
    });

    it('stores answers to requests with access_token on a user-scoped or shared route, keyed by the token even past a query allow-list', async () => {
      const cache = open();
      const app = build(cache, {
        routes: [
          { path: '/me', mw: { user: (r) => headerOf(r, 'x-user') }, handler: (io) => io.send(`me=${io.header('x-user')}`) },
          { path: '/feed', mw: { shared: true, query: ['page'] }, handler: (io) => io.send(`feed for ${io.query('access_token') ?? 'nobody'}`) },
        ],
      });
      const me = { 'X-User': 'u1' };
      assert.equal((await call(app, '/me?access_token=t1', { headers: me })).headers['cache-status'], STORED);
      assert.equal((await call(app, '/me?access_token=t1', { headers: me })).headers['cache-status'], HIT_L1);
      for (const token of ['A', 'B']) {
        const res = await call(app, `/feed?page=1&access_token=${token}`);
        assert.deepEqual([res.headers['cache-status'], res.text], [STORED, `feed for ${token}`], `token ${token} got another token's entry`);
      }
      const hit = await call(app, '/feed?access_token=A&page=1&utm=x');
      assert.deepEqual([hit.headers['cache-status'], hit.text], [HIT_L1, 'feed for A']);
      const none = await call(app, '/feed?page=1');
      assert.deepEqual([none.headers['cache-status'], none.text], [STORED, 'feed for nobody'], 'a request without a token got a token-bearing entry');
    });

    it('stores answers to requests with Authorization on a user-scoped route', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/me', mw: { user: (r) => headerOf(r, 'x-user') }, handler: (io) => io.send(`me=${io.header('x-user')}`) }] });
      const headers = { Authorization: 'Bearer t', 'X-User': 'u1' };
      assert.equal((await call(app, '/me', { headers })).headers['cache-status'], STORED);
      const hit = await call(app, '/me', { headers });
      assert.equal(hit.headers['cache-status'], HIT_L1);
      assert.equal(hit.text, 'me=u1');
      assert.equal(app.runs('/me'), 1);
    });

    it('stores answers to requests with Authorization or Cookie on a route declared shared: true', async () => {
      const cache = open();
      const app = build(cache, {
        routes: [
          { path: '/auth', mw: { shared: true }, handler: (io) => io.send('auth') },
          { path: '/cookie', mw: { shared: true }, handler: (io) => io.send('cookie') },
        ],
      });
      for (const [path, headers] of [['/auth', { Authorization: 'Bearer t' }], ['/cookie', { Cookie: 'sid=1' }]] as const) {
        assert.equal((await call(app, path, { headers })).headers['cache-status'], STORED, path);
        assert.equal((await call(app, path, { headers })).headers['cache-status'], HIT_L1, path);
        assert.equal(app.runs(path), 1, path);
      }
    });

    it('never stores hop-by-hop headers: Keep-Alive and the fields Connection lists are absent on a hit', async () => {
      const cache = open();
      const app = build(cache, {
        routes: [{
          path: '/hop',
          mw: {},
          handler: (io) => {
            io.set('Keep-Alive', 'timeout=99');
            io.set('X-Custom', 'listed');
            io.set('Connection', 'X-Custom');
            io.set('X-Kept', 'end-to-end');
            io.send('hop');
          },
        }],
      });
      // Connection: close, so node adds no Keep-Alive of its own to either answer.
      const headers = { Connection: 'close' };
      const miss = await call(app, '/hop', { headers });
      assert.equal(miss.headers['cache-status'], STORED);
      assert.equal(miss.headers['x-custom'], 'listed', 'the handler did send X-Custom');
      const hit = await call(app, '/hop', { headers });
      assert.equal(hit.headers['cache-status'], HIT_L1);
      assert.equal(hit.headers['x-kept'], 'end-to-end');
      assert.equal(hit.headers['x-custom'], undefined);
      assert.equal(hit.headers['keep-alive'], undefined);
      assert.equal(hit.text, 'hop');
      assert.equal(app.runs('/hop'), 1);
    });

    it('honours a response Vary: one variant per Accept-Language value', async () => {
      const cache = open();
      const app = build(cache, {
        routes: [{ path: '/lang', mw: {}, handler: (io) => (io.set('Vary', 'Accept-Language'), io.send(`lang=${io.header('accept-language')}`)) }],
      });
      const en = { 'Accept-Language': 'en' };
      const fr = { 'Accept-Language': 'fr' };
      const a = await call(app, '/lang', { headers: en });
      assert.deepEqual([a.headers['cache-status'], a.text], [STORED, 'lang=en']);
      const b = await call(app, '/lang', { headers: fr });
      assert.deepEqual([b.headers['cache-status'], b.text], [STORED, 'lang=fr']);
      const c = await call(app, '/lang', { headers: en });
      assert.deepEqual([c.headers['cache-status'], c.text], [HIT_L1, 'lang=en']);
      const d = await call(app, '/lang', { headers: fr });
      assert.deepEqual([d.headers['cache-status'], d.text], [HIT_L1, 'lang=fr']);
      assert.equal(app.runs('/lang'), 2);
    });

    it('reads Cache-Groups into tags and never sends it to the client', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/g', mw: {}, handler: (io) => (io.set('Cache-Groups', '"a", "b"'), io.send('g')) }] });
      const miss = await call(app, '/g');
      assert.equal(miss.headers['cache-status'], STORED);
      assert.equal(miss.headers['cache-groups'], undefined);
      const hit = await call(app, '/g');
      assert.equal(hit.headers['cache-status'], HIT_L1);
      assert.equal(hit.headers['cache-groups'], undefined);
      await cache.invalidateTags(['c']);
      assert.equal((await call(app, '/g')).headers['cache-status'], HIT_L1, 'an unrelated group leaves the entry');
      await cache.invalidateTags(['a']);
      assert.equal((await call(app, '/g')).headers['cache-status'], STORED, "invalidateTags(['a']) dropped the entry");
      assert.equal(app.runs('/g'), 2);
    });

    it('reads a Cache-Groups string holding a comma or an escape as one group ("movies, tv" is one tag)', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/g', mw: {}, handler: (io) => (io.set('Cache-Groups', '"movies, tv", "say \\"hi\\""'), io.send('g')) }] });
      assert.equal((await call(app, '/g')).headers['cache-status'], STORED);
      await cache.invalidateTags(['"movies', 'tv"', 'movies', 'tv']);
      assert.equal((await call(app, '/g')).headers['cache-status'], HIT_L1, 'the pieces of a split string are no groups of the entry');
      await cache.invalidateTags(['movies, tv']);
      assert.equal((await call(app, '/g')).headers['cache-status'], STORED, "invalidateTags(['movies, tv']) dropped the entry");
      await cache.invalidateTags(['say "hi"']);
      assert.equal((await call(app, '/g')).headers['cache-status'], STORED, 'the escaped quotes are undone in the group');
      assert.equal(app.runs('/g'), 3);
    });

    it('reads a bare token in Cache-Groups as the group it names, without its parameters', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/g', mw: {}, handler: (io) => (io.set('Cache-Groups', 'films ; scope=all, "q"'), io.send('g')) }] });
      assert.equal((await call(app, '/g')).headers['cache-status'], STORED);
      await cache.invalidateTags(['films ; scope=all', 'films ', 'f']);
      assert.equal((await call(app, '/g')).headers['cache-status'], HIT_L1, 'the parameters and spaces are no part of the group');
      await cache.invalidateTags(['films']);
      assert.equal((await call(app, '/g')).headers['cache-status'], STORED, "invalidateTags(['films']) dropped the entry");
      await cache.invalidateTags(['q']);
      assert.equal((await call(app, '/g')).headers['cache-status'], STORED, 'the quoted group after it counts too');
      assert.equal(app.runs('/g'), 3);
    });
  });

  describe('ETag and If-None-Match', () => {
    const body = 'conditional body';
    /** Raw end(): neither framework adds an ETag of its own. */
    const conditionalRoute = (io: HandlerIO) => {
      io.set('Content-Type', 'text/plain');
      io.set('Cache-Control', 'public, max-age=60');
      io.set('Vary', 'Accept-Language');
      io.end(body);
    };

    it('computes an ETag when the handler set none, and hits carry the same one', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/e', mw: {}, handler: conditionalRoute }] });
      const miss = await call(app, '/e');
      assert.equal(miss.headers['cache-status'], STORED);
      assert.equal(miss.headers['etag'], computeEtag(Buffer.from(body)));
      const hit = await call(app, '/e');
      assert.equal(hit.headers['cache-status'], HIT_L1);
      assert.equal(hit.headers['etag'], miss.headers['etag']);
      assert.equal(app.runs('/e'), 1);
    });

    it('answers a matching If-None-Match on a hit with 304: ETag, Cache-Control, Vary, Date, no body', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/e', mw: {}, handler: conditionalRoute }] });
      const headers = { 'Accept-Language': 'en' };
      const fill = await call(app, '/e', { headers });
      const etag = fill.headers['etag']!;
      assert.ok(etag);
      const res = await call(app, '/e', { headers: { ...headers, 'If-None-Match': etag } });
      assert.equal(res.status, 304);
      assert.equal(res.headers['cache-status'], HIT_L1);
      assert.equal(res.headers['etag'], etag);
      assert.equal(res.headers['cache-control'], 'public, max-age=60');
      assert.equal(res.headers['vary']?.toLowerCase(), 'accept-language');
      assert.ok(res.headers['date']);
      assert.equal(res.body.length, 0);
      assert.equal(app.runs('/e'), 1);
    });

    it('answers a matching If-None-Match on the filling request with 304 and stores the full answer', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/e', mw: {}, handler: conditionalRoute }] });
      const etag = (await call(app, '/e')).headers['etag']!;
      assert.ok(etag);
      await cache.clear();
      const res = await call(app, '/e', { headers: { 'If-None-Match': etag } });
      assert.equal(res.status, 304);
      assert.equal(res.headers['cache-status'], STORED);
      assert.equal(res.headers['etag'], etag);
      assert.equal(res.headers['cache-control'], 'public, max-age=60');
      assert.equal(res.headers['vary']?.toLowerCase(), 'accept-language');
      assert.ok(res.headers['date']);
      assert.equal(res.body.length, 0);
      assert.equal(app.runs('/e'), 2, 'the handler ran for the fill');
      const next = await call(app, '/e');
      assert.equal(next.status, 200);
      assert.equal(next.headers['cache-status'], HIT_L1);
      assert.equal(next.text, body);
      assert.equal(app.runs('/e'), 2);
    });

    it('answers a matching If-None-Match on the filling request with 304 when the handler sends the framework way', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/f', mw: {}, handler: (io) => (io.set('Cache-Control', 'public, max-age=60'), io.send('framework body')) }] });
      const etag = (await call(app, '/f')).headers['etag']!;
      assert.ok(etag);
      await cache.clear();
      const res = await call(app, '/f', { headers: { 'If-None-Match': etag } });
      assert.deepEqual([res.status, res.headers['cache-status'], res.headers['etag'], res.body.length], [304, STORED, etag, 0]);
      assert.equal(app.runs('/f'), 2);
      const next = await call(app, '/f');
      assert.deepEqual([next.status, next.headers['cache-status'], next.text], [200, HIT_L1, 'framework body']);
    });

    it('the filling request runs without its If-Modified-Since: a handler that answers conditionals itself gives the full answer to store, the client its 304', async () => {
      const cache = open();
      const seen: Array<string | undefined> = [];
      const handler = (io: HandlerIO) => {
        const since = io.header('if-modified-since');
        seen.push(since);
        io.set('Last-Modified', 'Tue, 01 Dec 2026 10:00:00 GMT');
        io.set('Cache-Control', 'public, max-age=60');
        if (since !== undefined) return (io.status(304), io.send(''));
        io.send('dated body');
      };
      const app = build(cache, { routes: [{ path: '/d', mw: {}, handler }] });
      const res = await call(app, '/d', { headers: { 'If-Modified-Since': 'Wed, 02 Dec 2026 10:00:00 GMT' } });
      assert.deepEqual([res.status, res.headers['cache-status']], [304, STORED]);
      assert.deepEqual(seen, [undefined], 'the handler saw the conditional');
      const next = await call(app, '/d');
      assert.deepEqual([next.status, next.headers['cache-status'], next.text], [200, HIT_L1, 'dated body']);
    });

    it("table mode: a fill with a stale entry at hand never sends the handler that entry's validators", async () => {
      const cache = open();
      const seen: Array<string | undefined> = [];
      const handler = (io: HandlerIO) => {
        seen.push(io.header('if-none-match'));
        io.set('ETag', '"v"');
        io.send(`run ${seen.length}`);
      };
      const app = build(cache, { routes: [{ path: '/v', mw: { ttl: 100, staleIfError: '1m' }, handler }] });
      assert.equal((await call(app, '/v')).text, 'run 1');
      await new Promise((resolve) => setTimeout(resolve, 150));
      const refilled = await call(app, '/v');
      assert.deepEqual([refilled.status, refilled.text], [200, 'run 2']);
      assert.deepEqual(seen, [undefined, undefined]);
    });

    it('compares weakly: W/"v1" matches "v1" and "v2" matches W/"v2"', async () => {
      const cache = open();
      const app = build(cache, {
        routes: [
          { path: '/strong', mw: {}, handler: (io) => (io.set('ETag', '"v1"'), io.send('strong')) },
          { path: '/weak', mw: {}, handler: (io) => (io.set('ETag', 'W/"v2"'), io.send('weak')) },
        ],
      });
      await call(app, '/strong');
      await call(app, '/weak');
      const a = await call(app, '/strong', { headers: { 'If-None-Match': 'W/"v1"' } });
      assert.deepEqual([a.status, a.headers['cache-status'], a.headers['etag'], a.body.length], [304, HIT_L1, '"v1"', 0]);
      const b = await call(app, '/weak', { headers: { 'If-None-Match': '"v2"' } });
      assert.deepEqual([b.status, b.headers['cache-status'], b.headers['etag'], b.body.length], [304, HIT_L1, 'W/"v2"', 0]);
      assert.equal(app.runs('/strong') + app.runs('/weak'), 2);
    });

    it('matches an If-None-Match list that contains the ETag, and not one that lacks it', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/l', mw: {}, handler: (io) => (io.set('ETag', '"v1"'), io.send('listed')) }] });
      await call(app, '/l');
      const listed = await call(app, '/l', { headers: { 'If-None-Match': '"nope", "v1"' } });
      assert.equal(listed.status, 304);
      assert.equal(listed.body.length, 0);
      const other = await call(app, '/l', { headers: { 'If-None-Match': '"nope", "other"' } });
      assert.equal(other.status, 200);
      assert.equal(other.headers['cache-status'], HIT_L1);
      assert.equal(other.text, 'listed');
      assert.equal(app.runs('/l'), 1);
    });

    it('matches an ETag holding a comma ("v1,gz"), alone or in a list, and not its halves', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/c', mw: {}, handler: (io) => (io.set('ETag', '"v1,gz"'), io.send('comma')) }] });
      await call(app, '/c');
      for (const ifNoneMatch of ['"v1,gz"', '"nope", "v1,gz"', 'W/"v1,gz" , "x"']) {
        const res = await call(app, '/c', { headers: { 'If-None-Match': ifNoneMatch } });
        assert.deepEqual([res.status, res.headers['cache-status'], res.headers['etag'], res.body.length], [304, HIT_L1, '"v1,gz"', 0], ifNoneMatch);
      }
      const halves = await call(app, '/c', { headers: { 'If-None-Match': '"v1", "gz"' } });
      assert.deepEqual([halves.status, halves.text], [200, 'comma']);
      assert.equal(app.runs('/c'), 1);
    });

    it('answers If-None-Match: * with 304', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/star', mw: {}, handler: (io) => io.send('star') }] });
      await call(app, '/star');
      const res = await call(app, '/star', { headers: { 'If-None-Match': '*' } });
      assert.equal(res.status, 304);
      assert.equal(res.headers['cache-status'], HIT_L1);
      assert.equal(res.body.length, 0);
      assert.equal(app.runs('/star'), 1);
    });
  });

  describe('options and invalidation', () => {
    it('sends no Cache-Status with cacheStatus: false, and still caches', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/n', mw: { cacheStatus: false }, handler: (io) => io.send('n') }] });
      const miss = await call(app, '/n');
      const hit = await call(app, '/n');
      assert.equal(miss.headers['cache-status'], undefined);
      assert.equal(hit.headers['cache-status'], undefined);
      assert.match(hit.headers['age'] ?? '', /^\d+$/, 'the second answer came from the cache');
      assert.equal(app.runs('/n'), 1);
    });

    it('sends no Cache-Status with cacheStatus: false on an answer it does not store either', async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/ns', mw: { cacheStatus: false }, handler: (io) => (io.set('Cache-Control', 'no-store'), io.send('ns')) }] });
      for (let i = 1; i <= 2; i++) {
        assert.equal((await call(app, '/ns')).headers['cache-status'], undefined);
        assert.equal(app.runs('/ns'), i);
      }
    });

    it('cache.keyFor(req|ctx) in a handler gives the key invalidateKey() drops', async () => {
      const cache = open();
      let key: string | undefined;
      const app = build(cache, { routes: [{ path: '/key', mw: {}, handler: (io) => ((key = cache.keyFor(io.arg)), io.send('key')) }] });
      assert.equal((await call(app, '/key?x=1')).headers['cache-status'], STORED);
      assert.equal((await call(app, '/key?x=1')).headers['cache-status'], HIT_L1);
      assert.ok(key);
      await cache.invalidateKey(key);
      assert.equal((await call(app, '/key?x=1')).headers['cache-status'], STORED, 'the entry under keyFor() was dropped');
      assert.equal(app.runs('/key'), 2);
    });

    it('cache.keyFor(req|ctx) on a user-scoped route gives the scoped key invalidateKey() drops', async () => {
      const cache = open();
      let key: string | undefined;
      const app = build(cache, {
        routes: [{ path: '/me', mw: { user: (r) => headerOf(r, 'x-user') }, handler: (io) => ((key = cache.keyFor(io.arg)), io.send('me')) }],
      });
      const headers = { 'X-User': 'u1' };
      assert.equal((await call(app, '/me', { headers })).headers['cache-status'], STORED);
      assert.ok(key);
      await cache.invalidateKey(key);
      assert.equal((await call(app, '/me', { headers })).headers['cache-status'], STORED, 'the entry under keyFor() was dropped');
      assert.equal(app.runs('/me'), 2);
    });

    it("drops entries tagged by the tags option on invalidateTags(['movie:7']), and only those", async () => {
      const cache = open();
      const app = build(cache, {
        routes: [{ path: '/api/movies/:id', mw: { tags: (r) => [`movie:${paramsOf(r).id}`] }, handler: (io) => io.send(`movie ${io.params.id}`) }],
      });
      await call(app, '/api/movies/7');
      await call(app, '/api/movies/8');
      assert.equal((await call(app, '/api/movies/7')).headers['cache-status'], HIT_L1);
      await cache.invalidateTags(['movie:7']);
      const seven = await call(app, '/api/movies/7');
      assert.deepEqual([seven.headers['cache-status'], seven.text], [STORED, 'movie 7']);
      assert.equal((await call(app, '/api/movies/8')).headers['cache-status'], HIT_L1);
      assert.equal(app.runs('/api/movies/:id'), 3);
    });

    it("invalidatePrefix('/api/movies') drops /api/movies/7 but not /api/moviesX", async () => {
      const cache = open({ routes: { '/api': '1m' } });
      const app = build(cache, {
        appLevel: true,
        routes: [
          { path: '/api/movies/:id', handler: (io) => io.send(`movie ${io.params.id}`) },
          { path: '/api/moviesX', handler: (io) => io.send('moviesX') },
        ],
      });
      assert.equal((await call(app, '/api/movies/7')).headers['cache-status'], STORED);
      assert.equal((await call(app, '/api/moviesX')).headers['cache-status'], STORED);
      await cache.invalidatePrefix('/api/movies');
      assert.equal((await call(app, '/api/movies/7')).headers['cache-status'], STORED);
      assert.equal((await call(app, '/api/moviesX')).headers['cache-status'], HIT_L1);
      assert.equal(app.runs('/api/movies/:id'), 2);
      assert.equal(app.runs('/api/moviesX'), 1);
    });

    it('invalidatePrefix(`/api/users/${req.params.id}`) with the decoded id drops the entries of john%20doe, jos%C3%A9, 100%25 and %2541', async () => {
      const cache = open({ routes: { '/api': '1m' } });
      const app = build(cache, {
        appLevel: true,
        routes: [
          { path: '/api/users/:id', handler: (io) => io.send(`user ${io.params.id}`) },
          { path: '/api/users/:id/posts', handler: (io) => io.send(`posts of ${io.params.id}`) },
          // The README's pattern: the write handler names the prefix with the id as the router decoded it.
          { path: '/admin/users/:id', method: 'post', handler: async (io) => (await cache.invalidatePrefix(`/api/users/${io.params.id}`), io.send('ok')) },
        ],
      });
      const sent = ['john%20doe', 'jos%C3%A9', '100%25', '%2541'];
      for (const id of [...sent, 'bob']) {
        assert.equal((await call(app, `/api/users/${id}`)).headers['cache-status'], STORED, id);
        assert.equal((await call(app, `/api/users/${id}/posts`)).headers['cache-status'], STORED, id);
      }
      for (const id of sent) {
        assert.equal((await call(app, `/admin/users/${id}`, { method: 'POST' })).text, 'ok');
        const user = await call(app, `/api/users/${id}`);
        assert.deepEqual([user.headers['cache-status'], user.text], [STORED, `user ${decodeURIComponent(id)}`], `${id} was not invalidated`);
        assert.equal((await call(app, `/api/users/${id}/posts`)).headers['cache-status'], STORED, `${id}/posts was not invalidated`);
      }
      assert.equal((await call(app, '/api/users/bob')).headers['cache-status'], HIT_L1, 'another user was invalidated');
    });

    it("invalidateUser('u1') drops u1's entries but not u2's", async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/me', mw: { user: (r) => headerOf(r, 'x-user') }, handler: (io) => io.send(`me=${io.header('x-user')}`) }] });
      const u1 = { 'X-User': 'u1' };
      const u2 = { 'X-User': 'u2' };
      await call(app, '/me', { headers: u1 });
      await call(app, '/me', { headers: u2 });
      await cache.invalidateUser('u1');
      const one = await call(app, '/me', { headers: u1 });
      assert.deepEqual([one.headers['cache-status'], one.text], [STORED, 'me=u1']);
      const two = await call(app, '/me', { headers: u2 });
      assert.deepEqual([two.headers['cache-status'], two.text], [HIT_L1, 'me=u2']);
      assert.equal(app.runs('/me'), 3);
    });

    it("invalidateUser(42) drops the entries of a route whose user() returns the number 42", async () => {
      const cache = open();
      const app = build(cache, { routes: [{ path: '/me', mw: { user: (r) => Number(headerOf(r, 'x-user')) }, handler: (io) => io.send(`me=${io.header('x-user')}`) }] });
      const headers = { 'X-User': '42' };
      assert.equal((await call(app, '/me', { headers })).headers['cache-status'], STORED);
      assert.equal((await call(app, '/me', { headers })).headers['cache-status'], HIT_L1);
      await cache.invalidateUser(42);
      assert.equal((await call(app, '/me', { headers })).headers['cache-status'], STORED, "user 42's entry was dropped");
      assert.equal(app.runs('/me'), 2);
    });

    it('bypass(req|ctx) returning true: the handler answers, nothing is served from or stored in the cache, Cache-Status says fwd=bypass, a bypass event tells why', async () => {
      const cache = open();
      const bypassed: unknown[] = [];
      cache.on('bypass', (e) => bypassed.push(e));
      const app = build(cache, {
        routes: [{ path: '/page', mw: { bypass: (r) => headerOf(r, 'x-preview') === '1' }, handler: (io) => io.send(`page ${io.header('x-preview') ?? '-'}`) }],
      });
      assert.equal((await call(app, '/page')).headers['cache-status'], STORED);
      const preview = { 'X-Preview': '1' };
      for (let i = 0; i < 2; i++) {
        const res = await call(app, '/page', { headers: preview });
        assert.deepEqual([res.headers['cache-status'], res.text, res.headers['age']], [bypass('app'), 'page 1', undefined], 'not served from the stored entry');
      }
      const after = await call(app, '/page');
      assert.deepEqual([after.headers['cache-status'], after.text], [HIT_L1, 'page -'], 'the bypassed answers stored nothing over the entry');
      assert.equal(app.runs('/page'), 3);
      assert.deepEqual(bypassed, [
        { route: '/page', url: '/page', reason: 'app' },
        { route: '/page', url: '/page', reason: 'app' },
      ]);
    });

    it("jitter: lifetimes of entries filled together spread below the TTL, never above it, from the cache's, a rule's or the route's jitter", async () => {
      const setups: Array<[string, CacheOptions, AppSpec['routes'][number]['mw']]> = [
        ['cache', { ttl: '1m', jitter: '50%' }, {}],
        ['rule', { routes: { '/j': { ttl: '1m', jitter: '50%' } } }, {}],
        ['route', { jitter: '1%' }, { ttl: '1m', jitter: '50%' }],
      ];
      for (const [where, options, mw] of setups) {
        const cache = open(options);
        const keys: string[] = [];
        const app = build(cache, { appLevel: where === 'route' ? undefined : true, routes: [{ path: '/j/:n', mw: where === 'route' ? mw : undefined, handler: (io) => (keys.push(usedKey(cache, io)), io.send('j')) }] });
        for (let n = 0; n < 20; n++) assert.equal((await call(app, `/j/${n}`)).headers['cache-status'], STORED);
        const lifetimes = keys.map((k) => lifetimeOf(cache, k)!);
        for (const ms of lifetimes) assert.ok(ms > 0.5 * MINUTE && ms <= MINUTE, `${where}: a lifetime of ${ms} ms is outside (30 s, 60 s]`);
        assert.ok(new Set(lifetimes).size >= 10, `${where}: 20 entries filled together got ${new Set(lifetimes).size} distinct lifetimes`);
      }
    });

    it('throws TierCacheConfigError at creation for an unknown option', () => {
      const cache = open();
      assert.throws(
        () => adapter.middleware(cache, { ttl: '1m', tll: '1m' } as never),
        (err: unknown) => err instanceof TierCacheConfigError && /tll/.test(err.message),
      );
    });

    it('throws TierCacheConfigError at creation for options that are not an object', () => {
      const cache = open();
      for (const options of ['1m', 60_000, [{ ttl: '1m' }]]) {
        assert.throws(
          () => adapter.middleware(cache, options as never),
          (err: unknown) => err instanceof TierCacheConfigError && /options must be an object/.test(err.message),
          JSON.stringify(options),
        );
      }
    });

    it('takes methods as a non-empty array of method names in any case, and refuses anything else', async () => {
      const cache = open();
      for (const bad of [[], ['GET', 5], ['GET', 'NOT A METHOD'], ['GET', '']]) {
        assert.throws(
          () => adapter.middleware(cache, { methods: bad } as never),
          (err: unknown) => err instanceof TierCacheConfigError && err.message.includes('methods') && /non-empty array of HTTP method names/.test(err.message),
          JSON.stringify(bad),
        );
      }
      // Writes are never reads: their answers are keyed without their bodies, and they invalidate (RFC 9111 §4.4).
      for (const write of [['GET', 'POST'], ['put'], ['GET', 'PATCH', 'DELETE']]) {
        assert.throws(
          () => adapter.middleware(cache, { methods: write }),
          (err: unknown) => err instanceof TierCacheConfigError && err.message.includes('.methods') && err.message.includes(`must not name ${write.filter((m) => m.toUpperCase() !== 'GET').map((m) => m.toUpperCase()).join(', ')}: a write's answer is not reused`),
          JSON.stringify(write),
        );
      }
      const app = build(cache, { routes: [{ path: '/lc', mw: { methods: ['get'] }, handler: (io) => io.send('lower-case get') }] });
      assert.equal((await call(app, '/lc')).headers['cache-status'], STORED);
      assert.equal((await call(app, '/lc')).headers['cache-status'], HIT_L1);
      assert.equal(app.runs('/lc'), 1);
    });

    it('throws TierCacheConfigError at creation for ill-typed options', () => {
      const cache = open();
      const bad: Array<[string, unknown]> = [
        ['ttl', 'soon'],
        ['ttl', -5],
        ['maxBodyBytes', -1],
        ['maxBodyBytes', '1mb'],
        ['tags', ['movie:7']],
        ['user', 'u1'],
        ['vary', 'accept-language'],
        ['shared', 'yes'],
        ['cacheStatus', 0],
        ['methods', 'GET'],
        ['negativeTtl', 'never'],
        // A TTL of 0 would report answers as stored and never serve one.
        ['ttl', 0],
        ['ttl', '0s'],
        ['negativeTtl', 0],
        ['bypass', true],
        ['jitter', '10'],
        ['jitter', '100%'],
        ['jitter', 0.1],
      ];
      for (const [name, value] of bad) {
        assert.throws(
          () => adapter.middleware(cache, { [name]: value } as never),
          (err: unknown) => err instanceof TierCacheConfigError && err.message.includes(name),
          `${name}: ${JSON.stringify(value)}`,
        );
      }
    });
  });

  describe('bodies', () => {
    /**
     * First request fills, second hits; both answers are returned. A body
     * written before end() is not complete when the headers go out, so its
     * miss may only say `fwd=miss` (`streamed`); the hit proves it was stored.
     */
    async function fillAndHit(app: TestApp, path: string, streamed = false): Promise<[Answer, Answer]> {
      const miss = await call(app, path);
      if (streamed) assert.ok([STORED, MISS].includes(miss.headers['cache-status'] ?? ''), `miss Cache-Status: ${miss.headers['cache-status']}`);
      else assert.equal(miss.headers['cache-status'], STORED);
      const hit = await call(app, path);
      assert.equal(hit.headers['cache-status'], HIT_L1);
      assert.equal(app.runs(path), 1);
      assert.ok(hit.body.equals(miss.body), 'the hit is byte-identical to the miss');
      return [miss, hit];
    }

    it('replays a string written with a latin1 encoding byte for byte', async () => {
      const cache = open();
      const text = 'café crème, ñandú, ÿ';
      const app = build(cache, {
        routes: [{ path: '/latin1', mw: {}, handler: (io) => (io.set('Content-Type', 'text/plain; charset=latin1'), io.end(text, 'latin1')) }],
      });
      const [miss] = await fillAndHit(app, '/latin1');
      assert.ok(miss.body.equals(Buffer.from(text, 'latin1')));
    });

    it('replays a Buffer body byte for byte', async () => {
      const cache = open();
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const app = build(cache, { routes: [{ path: '/buf', mw: {}, handler: (io) => io.send(bytes) }] });
      const [miss] = await fillAndHit(app, '/buf');
      assert.ok(miss.body.equals(bytes));
    });

    it('replays a string body sent the framework way byte for byte', async () => {
      const cache = open();
      const text = 'naïve – ☃ – 漢字';
      const app = build(cache, { routes: [{ path: '/str', mw: {}, handler: (io) => io.send(text) }] });
      const [miss] = await fillAndHit(app, '/str');
      assert.equal(miss.text, text);
    });

    it('replays a JSON body byte for byte', async () => {
      const cache = open();
      const value = { id: 7, title: 'Amélie', tags: ['a', 'b'], nested: { n: null } };
      const app = build(cache, { routes: [{ path: '/json', mw: {}, handler: (io) => io.json(value) }] });
      const [miss, hit] = await fillAndHit(app, '/json');
      assert.deepEqual(JSON.parse(miss.text), value);
      assert.match(hit.headers['content-type'] ?? '', /application\/json/);
    });

    it(adapter.framework === 'express' ? 'replays a piped Readable byte for byte' : 'replays a Readable stream body (ctx.body = stream) byte for byte', async () => {
      const cache = open();
      const chunks = [randomBytes(1000), Buffer.from('middle'), randomBytes(5000)];
      const app = build(cache, { routes: [{ path: '/stream', mw: {}, handler: (io) => (io.set('Content-Type', 'application/octet-stream'), io.stream(chunks)) }] });
      const [miss] = await fillAndHit(app, '/stream', true);
      assert.ok(miss.body.equals(Buffer.concat(chunks)));
    });

    if (adapter.framework === 'express') {
      it('replays res.write chunks followed by res.end byte for byte', async () => {
        const cache = open();
        const app = build(cache, {
          routes: [{
            path: '/chunks',
            mw: {},
            handler: ({ native }) => {
              if (native.framework !== 'express') throw new Error('express only');
              native.res.set('Content-Type', 'application/octet-stream');
              native.res.write('first,');
              native.res.write(Buffer.from([0, 1, 2, 255]));
              native.res.write('é', 'latin1');
              native.res.end('last');
            },
          }],
        });
        const [miss] = await fillAndHit(app, '/chunks', true);
        assert.ok(miss.body.equals(Buffer.concat([Buffer.from('first,'), Buffer.from([0, 1, 2, 255]), Buffer.from('é', 'latin1'), Buffer.from('last')])));
      });

      it('replays writeHead(status, headersObject) with its headers', async () => {
        const cache = open();
        const app = build(cache, {
          routes: [{
            path: '/wh-object',
            mw: {},
            handler: ({ native }) => {
              if (native.framework !== 'express') throw new Error('express only');
              native.res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Head': 'object' });
              native.res.end('from writeHead');
            },
          }],
        });
        const [miss, hit] = await fillAndHit(app, '/wh-object', true);
        assert.equal(miss.text, 'from writeHead');
        assert.equal(hit.headers['x-head'], 'object');
        assert.equal(hit.headers['content-type'], 'text/plain');
      });

      it('replays writeHead(status, flatArray) with its headers', async () => {
        const cache = open();
        const app = build(cache, {
          routes: [{
            path: '/wh-array',
            mw: {},
            handler: ({ native }) => {
              if (native.framework !== 'express') throw new Error('express only');
              native.res.writeHead(200, ['Content-Type', 'text/plain', 'X-Head', 'array']);
              native.res.end('from writeHead');
            },
          }],
        });
        const [miss, hit] = await fillAndHit(app, '/wh-array', true);
        assert.equal(miss.text, 'from writeHead');
        assert.equal(hit.headers['x-head'], 'array');
        assert.equal(hit.headers['content-type'], 'text/plain');
      });

      it('replays res.sendFile of a file byte for byte', async () => {
        const cache = open();
        const dir = mkdtempSync(join(tmpdir(), 'tiercache-sendfile-'));
        const file = join(dir, 'blob.bin');
        const bytes = randomBytes(20_000);
        writeFileSync(file, bytes);
        try {
          const app = build(cache, {
            routes: [{
              path: '/file',
              mw: {},
              handler: ({ native }) => {
                if (native.framework !== 'express') throw new Error('express only');
                native.res.sendFile(file);
              },
            }],
          });
          const [miss, hit] = await fillAndHit(app, '/file', true);
          assert.ok(miss.body.equals(bytes));
          assert.equal(hit.headers['content-length'], String(bytes.length));
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }

    it('replays a 100 KB binary body byte for byte from L1 and from L2', async () => {
      const namespace = nextNamespace();
      const bytes = randomBytes(100 * 1024);
      const cacheA = await openWithRedis({ namespace });
      const cacheB = await openWithRedis({ namespace });
      const spec: AppSpec = {
        routes: [{ path: '/blob', mw: {}, handler: (io) => (io.set('Content-Type', 'application/octet-stream'), io.send(bytes)) }],
      };
      const appA = build(cacheA, spec);
      const appB = build(cacheB, spec);
      const fill = await call(appA, '/blob');
      assert.equal(fill.headers['cache-status'], STORED);
      assert.ok(fill.body.equals(bytes));
      const l1 = await call(appA, '/blob');
      assert.equal(l1.headers['cache-status'], HIT_L1);
      assert.ok(l1.body.equals(bytes), 'L1 hit is byte-identical');
      const l2 = await call(appB, '/blob');
      assert.equal(l2.headers['cache-status'], HIT_L2);
      assert.ok(l2.body.equals(bytes), 'L2 hit is byte-identical');
      const warmed = await call(appB, '/blob');
      assert.equal(warmed.headers['cache-status'], HIT_L1, 'the L2 hit warmed L1 on the second instance');
      assert.ok(warmed.body.equals(bytes));
      assert.equal(appA.runs('/blob'), 1);
      assert.equal(appB.runs('/blob'), 0);
    });

    it('streams a 5 MB body to the client intact and does not store it (default maxBodyBytes 1 MiB)', async function () {
      this.timeout(30_000);
      const cache = open();
      const chunks = Array.from({ length: 80 }, () => randomBytes(64 * 1024));
      const expected = sha256(Buffer.concat(chunks));
      const app = build(cache, { routes: [{ path: '/big', mw: {}, handler: (io) => (io.set('Content-Type', 'application/octet-stream'), io.stream(chunks)) }] });
      const first = await call(app, '/big');
      assert.equal(first.body.length, 80 * 64 * 1024);
      assert.equal(sha256(first.body), expected);
      assert.equal(first.headers['cache-status'], MISS);
      const second = await call(app, '/big');
      assert.equal(second.headers['cache-status'], MISS, 'not stored: the handler answered again');
      assert.equal(sha256(second.body), expected);
      assert.equal(app.runs('/big'), 2);
    });
  });
}
