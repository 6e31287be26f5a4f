// Koa apps mounted in an Express app (expressApp.use('/v1', koa.callback())):
// Koa is handed the mount-relative req.url, and so was the cache, through
// ctx.originalUrl (found by helper-68): /v1/items and /v2/items shared the
// key /items, a `false` rule for /v2/admin was never matched, and the front
// door served /v1's entry for /items, which Express alone answers with 404.
// Keys and the route table take the full target, as under Express itself.
// A request the cache re-sends into the Koa app (a background refresh, the
// unconditional retry of a revalidation) goes with the target Koa was handed,
// and with the full one as req.originalUrl, so it keys as the request did
// (found by helper-88: the full /v1/items was re-sent, which the app answers
// as a path of its own, or with 404).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Koa from 'koa';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { koaCache } from '../../../src/koa.js';
import { front } from '../../../src/node.js';
import { useCleanup } from '../../support/cache-context.js';
import { valuesOf, wireRequest } from '../../support/http-wire.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
// The background-refresh tests' entries: long enough fresh that the request after the refresh's
// store finds it fresh on a loaded machine (at 100 ms a slow request found it stale and ran a third refresh).
const TTL_MS = 500;
const STALE_AFTER_MS = TTL_MS + 50;

describe('middleware: Koa apps mounted in Express', () => {
  const cleanup = useCleanup();

  function build() {
    const cache = cleanup.track(createCache({ namespace: `koa-in-express${process.pid}`, redis: false, routes: { '/': '1m', '/v2/admin': false } }));
    const runs: string[] = [];
    const keys: string[] = [];
    const koaApp = (name: string) => {
      const app = new Koa();
      app.use(koaCache(cache));
      app.use((ctx) => {
        runs.push(`${name}${ctx.path}`);
        keys.push(cache.keyFor(ctx));
        ctx.body = `${name} says ${ctx.path}`;
      });
      return app;
    };
    const app = express();
    app.use('/v1', koaApp('v1').callback());
    app.use('/v2', koaApp('v2').callback());
    return { cache, app, runs, keys };
  }

  it('keys take the full path: two mounted apps never share an entry, and keyFor(ctx) names it', async () => {
    const { app, runs, keys, cache } = build();
    assert.equal((await request(app).get('/v1/items')).text, 'v1 says /items');
    const v2 = await request(app).get('/v2/items');
    assert.equal(v2.text, 'v2 says /items');
    assert.equal(v2.headers['cache-status'], 'tiercache; fwd=miss; stored');
    assert.equal((await request(app).get('/v1/items')).headers['cache-status'], 'tiercache; hit; detail=L1');
    assert.deepEqual(runs, ['v1/items', 'v2/items']);
    assert.notEqual(keys[0], keys[1]);
    // A ctx no middleware marked: its node request's full target, not Koa's relative one.
    assert.equal(keys[1], cache.keyFor({ originalUrl: '/items', req: { method: 'GET', url: '/items', originalUrl: '/v2/items', headers: {} } }));
  });

  it('the route table is matched on the full path: a false rule under a mount holds', async () => {
    const { app, runs } = build();
    for (let i = 0; i < 2; i++) assert.equal((await request(app).get('/v2/admin/x')).headers['cache-status'], undefined);
    assert.deepEqual(runs, ['v2/admin/x', 'v2/admin/x']);
  });

  it('the front door serves a mounted app’s entry at its full path only', async () => {
    const { cache, app } = build();
    const server: Server = cleanup.track(createServer(front(cache, app)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    assert.equal((await request(base).get('/v1/items')).text, 'v1 says /items');
    assert.equal((await request(base).get('/v1/items')).headers['cache-status'], 'tiercache; hit; detail=L1');
    const bare = await request(base).get('/items');
    assert.equal(bare.status, 404, `the front door answered /items with ${bare.status} ${bare.text}`);
  });

  /** An Express app with, under /v1, a Koa app of the cache and `handler`. */
  function mountedAtV1(cache: TierCache, handler: Koa.Middleware) {
    const koa = new Koa();
    koa.use(koaCache(cache));
    koa.use(handler);
    const app = express();
    app.use('/v1', koa.callback());
    return app;
  }

  it('a background refresh re-sends the target the Koa app was handed: the entry of /v1/items gets its answer for /items', async () => {
    const cache = cleanup.track(createCache({ namespace: `koa-in-express-swr${process.pid}`, redis: false, routes: { '/': { ttl: TTL_MS, staleWhileRevalidate: '10s' } } }));
    const runs: string[] = [];
    const app = mountedAtV1(cache, (ctx) => {
      runs.push(ctx.path);
      ctx.body = `run ${runs.length} for ${ctx.path}`;
    });
    assert.equal((await request(app).get('/v1/items')).text, 'run 1 for /items');
    await sleep(STALE_AFTER_MS);
    // The refresh lands a moment after the stale answer. Asked once it is stored: a poll could go on
    // past the refreshed entry's own TTL on a loaded machine, and its stale hit start a third run.
    const stored = new Promise((resolve) => cache.once('store', resolve));
    const stale = await request(app).get('/v1/items');
    assert.match(String(stale.headers['cache-status']), /^tiercache; hit; ttl=-\d+; detail=L1$/);
    await Promise.race([stored, sleep(3000)]);
    const fresh = await request(app).get('/v1/items');
    assert.equal(fresh.headers['cache-status'], 'tiercache; hit; detail=L1', 'no refreshed entry');
    assert.equal(fresh.text, 'run 2 for /items');
    assert.deepEqual(runs, ['/items', '/items']);
  });

  // A target holding a '#' fills nothing (the app reflects it as sent), so its refresh goes without it: as the
  // full target the cache keys, and as the mount-relative one the Koa app is handed (ctx.url).
  it("a background refresh started by a target holding a '#' re-sends it without: the entry gets the answer for /items", async () => {
    const cache = cleanup.track(createCache({ namespace: `koa-in-express-swr-hash${process.pid}`, redis: false, routes: { '/': { ttl: TTL_MS, staleWhileRevalidate: '10s' } } }));
    const runs: string[] = [];
    const app = mountedAtV1(cache, (ctx) => {
      runs.push(ctx.url);
      ctx.body = `run ${runs.length} for ${ctx.url}`;
    });
    const server = await cleanup.serve(app);
    assert.equal((await wireRequest(server, '/v1/items')).body, 'run 1 for /items');
    await sleep(STALE_AFTER_MS);
    const stored = new Promise((resolve) => cache.once('store', resolve));
    const stale = await wireRequest(server, '/v1/items#x');
    assert.match(valuesOf(stale, 'cache-status')[0] ?? '', /^tiercache; hit; ttl=-\d+; detail=L1$/);
    await Promise.race([stored, sleep(1000)]);
    const fresh = await wireRequest(server, '/v1/items');
    assert.deepEqual(valuesOf(fresh, 'cache-status'), ['tiercache; hit; detail=L1'], 'the refresh stored nothing');
    assert.equal(fresh.body, 'run 2 for /items');
    assert.deepEqual(runs, ['/items', '/items']);
  });

  // Express hands the mounted Koa app an absolute-form target with its path made relative (http://host/items):
  // the refresh such a request starts must re-send the origin form, or the Koa app reflects the absolute one
  // (ctx.url, ctx.href, a directory redirect) and that answer is stored under /v1/items for every browser.
  // A plain origin-form target reaches it as sent ('\\' and a raw '<' included: parseurl's fast path), and one
  // whose mount-relative part begins with '//' has no origin form the cache can tell: both are re-sent as Express
  // made them (less a '#'), not as another path.
  for (const [odd, browser] of [
    ['http://shop.example/v1/items?q=<b>', '/v1/items?q=%3Cb%3E'],
    ['/v1/items\\x#', '/v1/items/x'],
    ['/v1/items\\x', '/v1/items\\x'],
    ['/v1/items?q=<b>', '/v1/items?q=<b>'],
    ['/v1//x@y/z#', '/v1//x@y/z'],
  ] as const) {
    it(`a background refresh started by ${odd} re-sends the origin form the entry is keyed by to the Koa app`, async () => {
      const cache = cleanup.track(createCache({ namespace: `koa-in-express-swr-abs${process.pid}-${odd.length}`, redis: false, routes: { '/': { ttl: TTL_MS, staleWhileRevalidate: '10s' } } }));
      const runs: string[] = [];
      const app = mountedAtV1(cache, (ctx) => {
        runs.push(ctx.url);
        ctx.body = `run ${runs.length} for ${ctx.url}`;
      });
      const server = await cleanup.serve(app);
      const host = { Host: 'shop.example' };
      const relative = browser.slice('/v1'.length);
      assert.equal((await wireRequest(server, browser, host)).body, `run 1 for ${relative}`);
      await sleep(STALE_AFTER_MS);
      const stored = new Promise((resolve) => cache.once('store', resolve));
      const stale = await wireRequest(server, odd, host);
      assert.match(valuesOf(stale, 'cache-status')[0] ?? '', /^tiercache; hit; ttl=-\d+; detail=L1$/);
      await Promise.race([stored, sleep(1000)]);
      const fresh = await wireRequest(server, browser, host);
      assert.deepEqual(valuesOf(fresh, 'cache-status'), ['tiercache; hit; detail=L1'], 'the refresh stored nothing');
      assert.equal(fresh.body, `run 2 for ${relative}`, 'the answer made for the odd target was stored for browsers');
    });
  }

  it('origin mode: the retry of a 304 that validated another representation answers the client with the mounted app’s answer for its path', async () => {
    const cache = cleanup.track(createCache({ namespace: `koa-in-express-retry${process.pid}`, redis: false, freshness: 'origin', ttl: '1h' }));
    const runs: string[] = [];
    const app = mountedAtV1(cache, (ctx) => {
      if (ctx.path !== '/items') return; // Koa's 404
      runs.push(ctx.get('if-none-match'));
      ctx.set('cache-control', 'max-age=0'); // stale at once: the next request revalidates
      // The revalidation of "a" is answered with a 304 for "b": it refreshes nothing stored, and the request is re-sent.
      if (ctx.get('if-none-match') === '"a"') {
        ctx.status = 304;
        ctx.set('etag', '"b"');
        return;
      }
      ctx.set('etag', runs.length === 1 ? '"a"' : '"b"');
      ctx.body = `run ${runs.length} for ${ctx.path}`;
    });
    assert.equal((await request(app).get('/v1/items')).text, 'run 1 for /items');
    const retried = await request(app).get('/v1/items');
    assert.equal(retried.status, 200);
    assert.equal(retried.text, 'run 3 for /items');
    assert.deepEqual(runs, ['', '"a"', '']);
  });
});
