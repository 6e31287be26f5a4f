// DESIGN §3: when an app-wide and a per-route middleware both see a request,
// the innermost (per-route) one decides. Fills already worked so; hits did
// not: the app-wide middleware found the per-route one's entry first and
// served it by its own options. A preview request the route's bypass() lets
// through got the cached answer; a table rule's stale-while-revalidate served
// the entry of a route that allows none an hour stale. (helper-99's review,
// left open last session.) An entry a per-route middleware stored is now its
// own to serve: the app-wide one passes it over, as it does a `user` or
// origin-mode middleware's (passed-over.ts).
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache, type CacheOptions, type TierCache } from '../../../src/index.js';
import { HIT_L1, HIT_L2, MISS_STORED } from '../../../src/middleware/cache-status.js';
import { useCleanup, useRedisCaches } from '../../support/cache-context.js';
import express from 'express';
import Koa from 'koa';
import Router, { type RouterMiddleware } from '@koa/router';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { adapters, buildApp, headerOf, type AnyMiddlewareOptions, type HandlerIO, type RouteSpec } from './apps.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
let counter = 0;

/** An app with `cache` app-wide (its own table) and on /api/doc with `route`; the handler answers its run count. */
function nested(adapter: (typeof adapters)[number], cache: TierCache, route: AnyMiddlewareOptions) {
  let served = 0;
  return buildApp(adapter, cache, {
    appLevel: true,
    routes: [{ path: '/api/doc', mw: route, handler: (io) => io.send(`doc ${++served}`) }],
  });
}

describe('middleware: the per-route middleware decides over an app-wide one (DESIGN §3)', () => {
  const cleanup = useCleanup();
  const newCache = (routes: NonNullable<CacheOptions['routes']>) => cleanup.track(createCache({ namespace: `per-route-${process.pid}-${++counter}`, redis: false, routes }));

  for (const adapter of adapters) {
    it(`${adapter.name}: a request the route's bypass() lets through is not answered from cache by the app-wide middleware`, async () => {
      const app = nested(adapter, newCache({ '/api': '1m' }), { ttl: '1m', bypass: (arg: unknown) => headerOf(arg, 'x-preview') === '1' });
      assert.equal((await request(app.target).get('/api/doc')).headers['cache-status'], MISS_STORED);
      const hit = await request(app.target).get('/api/doc');
      assert.deepEqual([hit.text, hit.headers['cache-status']], ['doc 1', HIT_L1], 'the route\'s own entry is still served by it');
      const preview = await request(app.target).get('/api/doc').set('x-preview', '1');
      assert.equal(preview.text, 'doc 2', 'a preview request got the cached answer the route said to bypass');
      assert.equal(app.runs('/api/doc'), 2);
      assert.equal((await request(app.target).get('/api/doc')).text, 'doc 1', 'the stored answer is served again after the preview');
    });

    // The route keeps its entry an hour for stale-if-error (a 5xx may get it), never to answer a request stale.
    it(`${adapter.name}: a table rule's stale-while-revalidate does not serve stale the entry of a route that allows none`, async () => {
      const app = nested(adapter, newCache({ '/api': { ttl: '1m', staleWhileRevalidate: '1h' } }), { ttl: 200, staleWhileRevalidate: 0, staleIfError: '1h' });
      assert.equal((await request(app.target).get('/api/doc')).text, 'doc 1');
      await sleep(450);
      const after = await request(app.target).get('/api/doc');
      assert.equal(after.text, 'doc 2', `served stale past the route's own TTL: ${String(after.headers['cache-status'])}`);
      assert.equal(after.headers['cache-status'], MISS_STORED);
    });
  }
});

describe('middleware: the per-route middleware decides, two instances on one Redis', () => {
  const ctx = useRedisCaches({ prefix: 'per-route' });

  it('an instance whose app-wide middleware finds the per-route entry in L2 leaves it to the per-route one, which serves it', async () => {
    const a = nested(adapters[0]!, await ctx.open({ routes: { '/api': '1m' } }), { ttl: '1m', bypass: (arg: unknown) => headerOf(arg, 'x-preview') === '1' });
    const b = nested(adapters[0]!, await ctx.open({ routes: { '/api': '1m' } }), { ttl: '1m', bypass: (arg: unknown) => headerOf(arg, 'x-preview') === '1' });
    assert.equal((await request(a.target).get('/api/doc')).text, 'doc 1');
    const fromL2 = await request(b.target).get('/api/doc');
    assert.deepEqual([fromL2.text, fromL2.headers['cache-status']], ['doc 1', HIT_L2]);
    assert.equal((await request(b.target).get('/api/doc').set('x-preview', '1')).text, 'doc 1', "b's own handler answers the preview");
    assert.equal(b.runs('/api/doc'), 1);
    assert.equal((await request(b.target).get('/api/doc')).headers['cache-status'], HIT_L1);
  });

  // The app-wide middleware's read of L2 puts the entry in L1 before it passes the request on: the per-route one
  // then finds it there, and said detail=L1 and counted an L1 hit for what this request read from Redis.
  for (const adapter of adapters) {
    it(`${adapter.name}: an entry the app-wide middleware read from L2 and passed on is reported and counted as an L2 hit, once`, async () => {
      const route: AnyMiddlewareOptions = { ttl: '1m' };
      const a = nested(adapter, await ctx.open({ routes: { '/api': '1m' } }), route);
      const cacheB = await ctx.open({ routes: { '/api': '1m' } });
      const tiers: string[] = [];
      cacheB.on('hit', (e) => tiers.push(e.tier));
      const b = nested(adapter, cacheB, route);
      assert.equal((await request(a.target).get('/api/doc')).headers['cache-status'], MISS_STORED);
      const first = await request(b.target).get('/api/doc');
      assert.deepEqual([first.text, first.headers['cache-status']], ['doc 1', HIT_L2]);
      assert.deepEqual(tiers, ['L2'], "the 'hit' event's tier");
      const counts = () => { const s = cacheB.stats(); return { l1Hits: s.l1!.hits, l1Misses: s.l1!.misses, l2Hits: s.l2!.hits }; };
      assert.deepEqual(counts(), { l1Hits: 0, l1Misses: 1, l2Hits: 1 });
      const second = await request(b.target).get('/api/doc');
      assert.deepEqual([second.text, second.headers['cache-status']], ['doc 1', HIT_L1]);
      assert.deepEqual(counts(), { l1Hits: 1, l1Misses: 1, l2Hits: 1 });
      assert.equal(b.runs('/api/doc'), 0);
    });
  }

  // That read also found a stale entry: the per-route middleware read it from L2 a second time (its lookup for the
  // fill's lock), two reads of the entry for one request, two L2 hits counted. It now takes its lock and stamp alone.
  // (The core's path, the same under every major: one of each framework.)
  for (const adapter of [adapters[0]!, adapters[2]!]) {
    it(`${adapter.name}: a stale entry the app-wide middleware read from L2 is not read from L2 again by the per-route one (stale-while-revalidate, stale-if-error)`, async () => {
      const ns = ctx.ns;
      let served = 0;
      const routes: RouteSpec[] = [
        { path: '/api/swr', mw: { ttl: 100, staleWhileRevalidate: '1m' }, handler: (io: HandlerIO) => io.send(`swr ${++served}`) },
        { path: '/api/sie', mw: { ttl: 100, staleIfError: '1m' }, handler: (io: HandlerIO) => io.send(`sie ${++served}`) },
      ];
      const a = buildApp(adapter, await ctx.open({ namespace: ns, routes: { '/api': '1m' } }), { appLevel: true, routes });
      const cacheB = await ctx.open({ namespace: ns, routes: { '/api': '1m' } });
      const hits: string[] = [];
      cacheB.on('hit', (e) => hits.push(`${e.tier}${e.stale ? ' stale' : ''}`));
      const b = buildApp(adapter, cacheB, { appLevel: true, routes });
      assert.equal((await request(a.target).get('/api/swr')).text, 'swr 1');
      assert.equal((await request(a.target).get('/api/sie')).text, 'sie 2');
      await sleep(200);
      // The lookup script reads an entry with STRLEN (then GET); MONITOR shows a script's commands too.
      const reads: string[] = [];
      const monitor = await ctx.admin.monitor();
      monitor.on('monitor', (_time: string, args: string[]) => {
        if (String(args[0]).toLowerCase() === 'strlen') reads.push(String(args[1]).replace(/.*\/api\//, ''));
      });
      try {
        const swr = await request(b.target).get('/api/swr');
        assert.equal(swr.text, 'swr 1');
        assert.match(String(swr.headers['cache-status']), /^tiercache; hit; ttl=-\d+; detail=L2$/);
        const sie = await request(b.target).get('/api/sie');
        // Past its freshness, with no stale-while-revalidate: the handler answers (the refresh of /api/swr ran once too).
        assert.deepEqual([sie.text, sie.headers['cache-status']], ['sie 4', MISS_STORED]);
        await ctx.admin.ping();
        await sleep(20);
      } finally {
        monitor.disconnect();
      }
      assert.deepEqual(reads, ['swr', 'sie'], 'the entry reads in Redis');
      assert.deepEqual(hits, ['L2 stale'], "the 'hit' events");
      assert.equal(cacheB.stats().l2!.hits, 2, 'L2 hits counted: one per request');
    });
  }

  // With L1 off, no L1 keeps what the app-wide middleware read: the per-route one read it from Redis again, fresh
  // or stale, and the hit was counted twice.
  for (const adapter of [adapters[0]!, adapters[2]!]) {
    it(`${adapter.name}, L1 off: an entry the app-wide middleware read from L2, fresh or stale, is not read from L2 again by the per-route one`, async () => {
      const ns = ctx.ns;
      let served = 0;
      const routes: RouteSpec[] = [
        { path: '/api/fresh', mw: { ttl: '1m' }, handler: (io: HandlerIO) => io.send(`fresh ${++served}`) },
        { path: '/api/stale', mw: { ttl: 100, staleWhileRevalidate: '1m' }, handler: (io: HandlerIO) => io.send(`stale ${++served}`) },
      ];
      const a = buildApp(adapter, await ctx.open({ namespace: ns, l1: false, routes: { '/api': '1m' } }), { appLevel: true, routes });
      const cacheB = await ctx.open({ namespace: ns, l1: false, routes: { '/api': '1m' } });
      const hits: string[] = [];
      cacheB.on('hit', (e) => hits.push(`${e.tier}${e.stale ? ' stale' : ''}`));
      const b = buildApp(adapter, cacheB, { appLevel: true, routes });
      assert.equal((await request(a.target).get('/api/stale')).text, 'stale 1');
      await sleep(200);
      assert.equal((await request(a.target).get('/api/fresh')).text, 'fresh 2');
      const reads: string[] = [];
      const monitor = await ctx.admin.monitor();
      monitor.on('monitor', (_time: string, args: string[]) => {
        if (String(args[0]).toLowerCase() === 'strlen') reads.push(String(args[1]).replace(/.*\/api\//, ''));
      });
      try {
        const fresh = await request(b.target).get('/api/fresh');
        assert.deepEqual([fresh.text, fresh.headers['cache-status']], ['fresh 2', HIT_L2]);
        const stale = await request(b.target).get('/api/stale');
        assert.equal(stale.text, 'stale 1');
        assert.match(String(stale.headers['cache-status']), /^tiercache; hit; ttl=-\d+; detail=L2$/);
        await ctx.admin.ping();
        await sleep(20);
      } finally {
        monitor.disconnect();
      }
      assert.deepEqual(reads, ['fresh', 'stale'], 'the entry reads in Redis');
      assert.deepEqual(hits, ['L2', 'L2 stale'], "the 'hit' events");
      assert.equal(cacheB.stats().l2!.hits, 2, 'L2 hits counted: one per request');
      assert.equal(b.runs('/api/fresh'), 0);
    });
  }

  // L1 off: the per-route layer took the entry the app-wide one read without choosing the variant itself. A
  // middleware between them that sets a varied header (here the tenant, from the API key, whatever the client
  // sent) made the app-wide layer read the client's choice of variant, and the per-route one served it: another
  // tenant's answer. With L1 on, the per-route layer looks its own variant up in L1 (the entry must be the same).
  for (const framework of ['express', 'koa'] as const) {
    it(`${framework}, L1 off: a variant the app-wide middleware read for headers a later middleware changed is not served by the per-route one`, async () => {
      const cache = await ctx.open({ l1: false, routes: { '/api': '1m' } });
      const errors: string[] = [];
      cache.on('error', ({ err, where }) => errors.push(`${where}: ${err.message}`));
      const tenantOf = (apiKey: unknown) => (apiKey === 'bob-key' ? 'bobco' : 'acme');
      let target: Parameters<typeof request>[0];
      if (framework === 'express') {
        const app = express();
        app.use(expressCache(cache));
        app.use((req, _res, next) => {
          req.headers['x-tenant'] = tenantOf(req.headers['x-api-key']);
          next();
        });
        app.get('/api/report', expressCache(cache, { ttl: '1m' }), (req, res) => void res.set('Vary', 'X-Tenant').send(`report of ${String(req.headers['x-tenant'])}`));
        target = app;
      } else {
        const app = new Koa();
        const router = new Router();
        app.use(koaCache(cache) as Koa.Middleware);
        app.use(async (c, next) => {
          c.req.headers['x-tenant'] = tenantOf(c.get('x-api-key'));
          await next();
        });
        router.get('/api/report', koaCache(cache, { ttl: '1m' }) as RouterMiddleware, (c) => {
          c.set('Vary', 'X-Tenant');
          c.body = `report of ${String(c.req.headers['x-tenant'])}`;
        });
        app.use(router.routes() as Koa.Middleware);
        target = app.callback();
      }
      assert.equal((await request(target).get('/api/report').set('x-api-key', 'alice-key')).text, 'report of acme');
      assert.equal((await request(target).get('/api/report').set('x-api-key', 'bob-key')).text, 'report of bobco');
      const forged = await request(target).get('/api/report').set('x-api-key', 'bob-key').set('x-tenant', 'acme');
      assert.equal(forged.text, 'report of bobco', `bob got acme's report: ${String(forged.headers['cache-status'])}`);
      assert.deepEqual(errors, []);
    });
  }

  // L1 off: the per-route layer served what the app-wide one had read, though an invalidation covering it had
  // completed in between (a middleware awaited it here; a concurrent write's would do the same). L1 drops such an
  // entry, so with L1 on the per-route layer read Redis again.
  for (const framework of ['express', 'koa'] as const) {
    it(`${framework}, L1 off: an entry the app-wide middleware read is not served by the per-route one after an invalidation completed in between`, async () => {
      const cache = await ctx.open({ l1: false, routes: { '/api': '1m' } });
      const errors: string[] = [];
      cache.on('error', ({ err, where }) => errors.push(`${where}: ${err.message}`));
      let served = 0;
      let invalidate: (() => Promise<unknown>) | undefined;
      let target: Parameters<typeof request>[0];
      if (framework === 'express') {
        const app = express();
        app.use(expressCache(cache));
        app.use((_req, _res, next) => void (invalidate?.() ?? Promise.resolve()).then(() => next(), next));
        app.get('/api/doc', expressCache(cache, { ttl: '1m', tags: () => ['docs'] }), (_req, res) => void res.send(`doc ${++served}`));
        target = app;
      } else {
        const app = new Koa();
        const router = new Router();
        app.use(koaCache(cache) as Koa.Middleware);
        app.use(async (_c, next) => {
          await invalidate?.();
          await next();
        });
        router.get('/api/doc', koaCache(cache, { ttl: '1m', tags: () => ['docs'] }) as RouterMiddleware, (c) => {
          c.body = `doc ${++served}`;
        });
        app.use(router.routes() as Koa.Middleware);
        target = app.callback();
      }
      assert.equal((await request(target).get('/api/doc')).text, 'doc 1');
      invalidate = () => cache.invalidatePrefix('/api');
      const afterPrefix = await request(target).get('/api/doc');
      assert.deepEqual([afterPrefix.text, afterPrefix.headers['cache-status']], ['doc 2', MISS_STORED], 'after invalidatePrefix');
      invalidate = () => cache.invalidateTags(['docs']);
      const afterTag = await request(target).get('/api/doc');
      assert.deepEqual([afterTag.text, afterTag.headers['cache-status']], ['doc 3', MISS_STORED], 'after invalidateTags');
      assert.deepEqual(errors, []);
    });
  }

  it('a route whose per-route middleware was taken out (a config change) fills again: its old entry is removed', async () => {
    const old = nested(adapters[0]!, await ctx.open({ routes: { '/api': '1m' } }), { ttl: '1h' });
    assert.equal((await request(old.target).get('/api/doc')).headers['cache-status'], MISS_STORED);
    let served = 0;
    const now = buildApp(adapters[0]!, await ctx.open({ routes: { '/api': '1m' } }), { appLevel: true, routes: [{ path: '/api/doc', handler: (io) => io.send(`new ${++served}`) }] });
    const seen: Array<string | undefined> = [];
    for (let i = 0; i < 4; i++) {
      const res = await request(now.target).get('/api/doc');
      seen.push(res.headers['cache-status']);
      await sleep(50);
    }
    assert.deepEqual(seen, [undefined, MISS_STORED, HIT_L1, HIT_L1]);
  });
});
