// The reason phrase a handler sends (res.statusMessage in Express, ctx.message
// in Koa) is part of what is replayed: the fill sent `200 Custom`, and every
// hit said `200 OK`. Stored only when it is not node's own for the status;
// replayed by L1 and L2 hits, the front door, a request that waited on the
// fill, and a stale-if-error answer. A 304 of the cache's says `Not Modified`.
import assert from 'node:assert/strict';
import { get, type Server } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Koa from 'koa';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import type { TierCache } from '../../../src/index.js';
import { useRedisCaches } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/**
 * How long the stale-if-error routes' answers stay fresh, by the cache's clock: the hits
 * before the stale-if-error answer must find them fresh however slow the machine. A wall
 * clock wait of 100 ms, then 800 ms, was passed on loaded machines (a fresh cache's first
 * fill took ~1 s: the L1 hit that followed found the entry expired and filled again,
 * 'fwd=miss; stored'); the entries go stale by moving the clock instead (clockAhead).
 */
const FRESH_MS = 10 * 60_000;
/** The stale-if-error window: the moved clock lands inside it. */
const STALE_IF_ERROR = '1h';

/**
 * Moves the clock the cache reads (Date.now, through coarseNow) past FRESH_MS until the
 * returned function puts it back: the stored answers are stale at once, with no wait.
 */
async function clockAhead(): Promise<() => void> {
  const real = Date.now;
  Date.now = () => real() + FRESH_MS + 1_000;
  await sleep(5); // coarseNow's last reading (kept at most a millisecond) expires
  return () => {
    Date.now = real;
  };
}

function statusLine(server: Server, headers: Record<string, string> = {}): Promise<{ status: number; reason: string; body: string; cacheStatus: string }> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/s', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, reason: res.statusMessage!, body, cacheStatus: String(res.headers['cache-status']) }));
    }).on('error', reject);
  });
}

const state = { failing: false };

const apps: Record<string, (cache: TierCache) => Parameters<typeof import('node:http').createServer>[1]> = {
  'Express, res.statusMessage': (cache) => {
    const app = express();
    app.get('/s', expressCache(cache, { ttl: FRESH_MS, staleIfError: STALE_IF_ERROR }), (_req, res) => {
      if (state.failing) {
        res.status(503).send('down');
        return;
      }
      res.statusMessage = 'All Good';
      res.send('stored');
    });
    return app;
  },
  'Koa, ctx.message': (cache) => {
    const app = new Koa();
    app.use(koaCache(cache, { ttl: FRESH_MS, staleIfError: STALE_IF_ERROR }));
    app.use((ctx) => {
      if (state.failing) {
        ctx.status = 503;
        ctx.body = 'down';
        return;
      }
      ctx.body = 'stored';
      ctx.message = 'All Good';
    });
    return app.callback();
  },
};

describe('middleware: the reason phrase of a stored answer', () => {
  // Redis is healthy here: on a loaded 2-core machine a command passed the 200 ms default as a cache came up, its L2
  // was down when it filled (stored in L1 alone, unchecked, never served by the middleware: the next request filled
  // again, 'fwd=miss; stored'), which is an outage's behaviour, not what these tests ask.
  const ctx = useRedisCaches({ prefix: 'reason', flush: true, defaults: { l2: { commandTimeout: '3s' } } });

  it("Express: a fill answered with the cache's own 304 (the client's condition matched) still stores the handler's reason phrase", async () => {
    const app = express();
    app.get('/s', expressCache(await ctx.open(), { ttl: '1m' }), (_req, res) => {
      res.statusMessage = 'All Good';
      res.set('ETag', '"e1"');
      res.send('stored');
    });
    const server = await ctx.serve(app);
    const fill = await statusLine(server, { 'if-none-match': '"e1"' });
    assert.deepEqual([fill.status, fill.reason], [304, 'Not Modified']);
    assert.match(fill.cacheStatus, /stored/);
    const hit = await statusLine(server);
    assert.deepEqual([hit.status, hit.reason, hit.body], [200, 'All Good', 'stored']);
  });

  it("Express: an empty reason phrase set before the answer is no reason (node sends the status's own): a fill answered with the cache's 304 stores none, and hits say 'OK'", async () => {
    const app = express();
    app.get('/s', expressCache(await ctx.open(), { ttl: '1m' }), (_req, res) => {
      res.statusMessage = '';
      res.set('ETag', '"e2"');
      res.send('stored');
    });
    const server = await ctx.serve(app);
    const fill = await statusLine(server, { 'if-none-match': '"e2"' });
    assert.deepEqual([fill.status, fill.reason], [304, 'Not Modified']);
    assert.match(fill.cacheStatus, /stored/);
    const hit = await statusLine(server);
    assert.match(hit.cacheStatus, /hit/);
    assert.deepEqual([hit.status, hit.reason, hit.body], [200, 'OK', 'stored'], "the handler's answer says '200 OK'; so must its hits");
  });

  it("Express: a reason phrase given to writeHead (set only as the head goes out) is stored and replayed", async () => {
    const app = express();
    app.get('/s', expressCache(await ctx.open(), { ttl: '1m' }), (_req, res) => {
      res.writeHead(200, 'All Good', { 'content-type': 'text/plain' });
      res.end('stored');
    });
    const server = await ctx.serve(app);
    const fill = await statusLine(server);
    assert.deepEqual([fill.status, fill.reason], [200, 'All Good']);
    const hit = await statusLine(server);
    assert.match(hit.cacheStatus, /hit; detail=L1/);
    assert.deepEqual([hit.status, hit.reason, hit.body], [200, 'All Good', 'stored']);
  });

  it("Express: an empty reason phrase given to writeHead goes out empty (`200 `), and so do the hits", async () => {
    const app = express();
    app.get('/s', expressCache(await ctx.open(), { ttl: '1m' }), (_req, res) => {
      res.writeHead(200, '', { 'content-type': 'text/plain' });
      res.end('stored');
    });
    const server = await ctx.serve(app);
    const fill = await statusLine(server);
    assert.deepEqual([fill.status, fill.reason], [200, '']);
    const hit = await statusLine(server);
    assert.match(hit.cacheStatus, /hit; detail=L1/);
    assert.deepEqual([hit.status, hit.reason, hit.body], [200, '', 'stored'], "the handler's answer said '200 ' (no phrase); its hit must too");
  });

  it("Koa over HTTP/2: the cache never reads or sets a reason phrase there (HTTP/2 has none; node warns at either): a hit of an HTTP/1 fill, a fill, the cache's 304, a stale-if-error answer", async () => {
    const cache = await ctx.open();
    let failing = false;
    const app = new Koa();
    app.use(koaCache(cache, { ttl: FRESH_MS, staleIfError: STALE_IF_ERROR }));
    app.use((c) => {
      if (failing) {
        c.status = 503;
        c.body = 'down';
        return;
      }
      c.set('ETag', `"${c.path}"`);
      c.body = 'stored';
      if (c.req.httpVersionMajor < 2) c.message = 'All Good';
    });
    const h1 = await ctx.serve(app.callback() as never);
    const { port: h1Port } = h1.address() as AddressInfo;
    assert.equal((await new Promise<string>((resolve) => get({ host: '127.0.0.1', port: h1Port, path: '/s' }, (r) => (r.resume(), resolve(r.statusMessage!))))), 'All Good');
    // Node warns once per process; counting what touches the accessor sees every use.
    const proto = http2.Http2ServerResponse.prototype;
    const original = Object.getOwnPropertyDescriptor(proto, 'statusMessage')!;
    let touched = 0;
    Object.defineProperty(proto, 'statusMessage', { ...original, get() { touched++; return original.get!.call(this); }, set(v: string) { touched++; original.set!.call(this, v); } });
    const h2 = http2.createServer(app.callback() as never);
    const sessions = new Set<http2.ServerHttp2Session>();
    h2.on('session', (session) => sessions.add(session));
    await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
    const client = http2.connect(`http://127.0.0.1:${(h2.address() as AddressInfo).port}`);
    const h2get = (path: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; body: string; cacheStatus: string }>((resolve, reject) => {
        const stream = client.request({ ':path': path, ...headers });
        let body = '';
        let head: http2.IncomingHttpHeaders = {};
        stream.on('response', (h) => (head = h));
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => (body += chunk));
        stream.on('end', () => resolve({ status: Number(head[':status']), body, cacheStatus: String(head['cache-status']) }));
        stream.on('error', reject);
      });
    try {
      const hit = await h2get('/s');
      assert.deepEqual([hit.status, hit.body], [200, 'stored']);
      assert.match(hit.cacheStatus, /hit; detail=L1/);
      const fill = await h2get('/u');
      assert.deepEqual([fill.status, fill.body], [200, 'stored']);
      assert.match(fill.cacheStatus, /stored/);
      const notModified = await h2get('/t', { 'if-none-match': '"/t"' });
      assert.equal(notModified.status, 304);
      assert.match(notModified.cacheStatus, /stored/);
      const restoreClock = await clockAhead();
      failing = true;
      let stale;
      try {
        stale = await h2get('/t');
      } finally {
        restoreClock();
      }
      assert.deepEqual([stale.status, stale.body], [200, 'stored']);
      assert.match(stale.cacheStatus, /hit; ttl=-/);
      assert.equal(touched, 0, `the cache touched statusMessage ${touched} times over HTTP/2`);
    } finally {
      Object.defineProperty(proto, 'statusMessage', original);
      client.destroy();
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => h2.close(() => resolve()));
    }
  });

  it("Koa over HTTP/2: an L1 hit, the cache's 304 to a conditional hit and a stale-if-error answer of an entry with its own reason phrase (filled over HTTP/1.1) give node's writeHead none", async () => {
    const cache = await ctx.open();
    let failing = false;
    const app = new Koa();
    app.use(koaCache(cache, { ttl: FRESH_MS, staleIfError: STALE_IF_ERROR }));
    app.use((c) => {
      if (failing) {
        c.status = 503;
        c.body = 'down';
        return;
      }
      c.set('ETag', '"s1"');
      c.body = 'stored';
      if (c.req.httpVersionMajor < 2) c.message = 'All Good';
    });
    const h1 = await ctx.serve(app.callback() as never);
    const { port: h1Port } = h1.address() as AddressInfo;
    assert.equal((await new Promise<string>((resolve) => get({ host: '127.0.0.1', port: h1Port, path: '/s' }, (r) => (r.resume(), resolve(r.statusMessage!))))), 'All Good');
    // node would only warn (once per process) at a reason phrase given to an HTTP/2 response: what writeHead is given is counted.
    const proto = http2.Http2ServerResponse.prototype;
    const writeHead = proto.writeHead;
    const reasons: unknown[] = [];
    proto.writeHead = function (this: http2.Http2ServerResponse, status: number, ...rest: unknown[]) {
      if (typeof rest[0] === 'string') reasons.push(rest[0]);
      return (writeHead as (...a: unknown[]) => http2.Http2ServerResponse).call(this, status, ...rest);
    } as typeof proto.writeHead;
    const h2 = http2.createServer(app.callback() as never);
    const sessions = new Set<http2.ServerHttp2Session>();
    h2.on('session', (session) => sessions.add(session));
    await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
    const client = http2.connect(`http://127.0.0.1:${(h2.address() as AddressInfo).port}`);
    const h2get = (path: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; body: string; cacheStatus: string }>((resolve, reject) => {
        const stream = client.request({ ':path': path, ...headers });
        let body = '';
        let head: http2.IncomingHttpHeaders = {};
        stream.on('response', (h) => (head = h));
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => (body += chunk));
        stream.on('end', () => resolve({ status: Number(head[':status']), body, cacheStatus: String(head['cache-status']) }));
        stream.on('error', reject);
      });
    try {
      const hit = await h2get('/s');
      assert.deepEqual([hit.status, hit.body], [200, 'stored']);
      assert.match(hit.cacheStatus, /hit; detail=L1/);
      const notModified = await h2get('/s', { 'if-none-match': '"s1"' });
      assert.deepEqual([notModified.status, notModified.body], [304, '']);
      assert.match(notModified.cacheStatus, /hit; detail=L1/);
      const restoreClock = await clockAhead();
      failing = true;
      let stale;
      try {
        stale = await h2get('/s');
      } finally {
        restoreClock();
      }
      assert.deepEqual([stale.status, stale.body], [200, 'stored']);
      assert.match(stale.cacheStatus, /hit; ttl=-/);
      assert.deepEqual(reasons, [], 'a reason phrase was given to an HTTP/2 response');
    } finally {
      proto.writeHead = writeHead;
      client.destroy();
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => h2.close(() => resolve()));
    }
  });

  for (const [name, build] of Object.entries(apps)) {
    it(`${name}: the fill, an L1 hit, an L2 hit on another instance and a stale-if-error answer all say '200 All Good'; a 304 says 'Not Modified'`, async () => {
      state.failing = false;
      const a = await ctx.serve(build(await ctx.open()) as never);
      const b = await ctx.serve(build(await ctx.open()) as never);
      const fill = await statusLine(a);
      assert.deepEqual([fill.status, fill.reason, fill.body], [200, 'All Good', 'stored']);
      const l1 = await statusLine(a);
      assert.match(l1.cacheStatus, /hit; detail=L1/);
      assert.equal(l1.reason, 'All Good', 'an L1 hit');
      const l2 = await statusLine(b);
      assert.match(l2.cacheStatus, /hit; detail=L2/);
      assert.equal(l2.reason, 'All Good', 'an L2 hit');
      const etag = (await new Promise<string>((resolve) => get({ host: '127.0.0.1', port: (a.address() as AddressInfo).port, path: '/s' }, (res) => (res.resume(), resolve(String(res.headers.etag))))));
      const notModified = await statusLine(a, { 'if-none-match': etag });
      assert.deepEqual([notModified.status, notModified.reason], [304, 'Not Modified']);
      const restoreClock = await clockAhead();
      state.failing = true;
      let stale;
      try {
        stale = await statusLine(a);
      } finally {
        restoreClock();
      }
      assert.match(stale.cacheStatus, /hit; ttl=-\d+/);
      assert.deepEqual([stale.status, stale.reason, stale.body], [200, 'All Good', 'stored'], 'a stale-if-error answer');
    });
  }
});
