// A route moved out of origin mode (or out of `user` scoping) by a config
// change or a rolling deploy: the entries the old config stored stay in L2,
// shared by every instance, for as long as they live (an origin's max-age can
// be a year). A middleware not of their kind passes such entries over (see
// nested-user-scope and origin-route-inside-table-app: they belong to a
// middleware further in), and with no such middleware left the route went
// uncached, without Cache-Status, until they expired. Now an entry passed
// over while no middleware of its kind sees a GET the route answers as it
// does when it works is removed (on every instance, as invalidateKey removes
// it), and the route fills again; nesting keeps its entries, and an answer
// with another status than the entry's (a guard's 401/403/429, a redirect) or
// a HEAD removes nothing. Found by a hostile review (helper-102);
// the edges by attacking the fix (helper-104).
import assert from 'node:assert/strict';
import Router from '@koa/router';
import express, { type RequestHandler } from 'express';
import Koa from 'koa';
import request from 'supertest';
import { createCache, type CacheOptions, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { front } from '../../../src/node.js';
import { HIT_L1, MISS_STORED } from '../../../src/middleware/cache-status.js';
import { useCleanup, useRedisCaches } from '../../support/cache-context.js';
import { express4, Koa2 } from './apps.js';

type Target = Parameters<typeof request>[0];
type Options = NonNullable<Parameters<typeof expressCache<express.Request>>[1]>;

const YEAR = 'public, max-age=31536000';

/** An Express app whose /api/doc answers with the handler's run count; `options` are its per-route middleware's, if any. */
function expressApp(cache: TierCache, runs: { n: number }, options?: Options, appWide = options === undefined, between?: RequestHandler, make: typeof express = express): Target {
  const app = make();
  if (appWide) app.use(expressCache(cache));
  if (between !== undefined) app.use(between);
  const handler: RequestHandler = (req, res) => {
    runs.n++;
    res.set('Cache-Control', YEAR).json({ doc: runs.n, user: req.get('x-user') ?? null });
  };
  if (options === undefined) app.get('/api/doc', handler);
  else app.get('/api/doc', expressCache(cache, options), handler);
  return app;
}

/** The same in Koa (@koa/router), served on a port. */
async function koaApp(ctx: ReturnType<typeof useRedisCaches>, cache: TierCache, runs: { n: number }, options?: Parameters<typeof koaCache<Koa.Context>>[1], appWide = options === undefined, K: typeof Koa = Koa): Promise<Target> {
  const app = new K();
  const router = new Router();
  const handler = (c: Koa.Context) => {
    runs.n++;
    c.set('Cache-Control', YEAR);
    c.body = { doc: runs.n, user: c.get('x-user') || null };
  };
  if (options === undefined) router.get('/api/doc', handler);
  else router.get('/api/doc', koaCache(cache, options), handler);
  if (appWide) app.use(koaCache(cache));
  app.use(router.routes());
  return ctx.serve(app.callback());
}

/** Cache-Status of each of `n` GETs of /api/doc (undefined: none), after checking each body against the run that answered it. */
async function statuses(target: Target, n: number, runs: { n: number }): Promise<Array<string | undefined>> {
  const out: Array<string | undefined> = [];
  for (let i = 0; i < n; i++) {
    const before = runs.n;
    const res = await request(target).get('/api/doc');
    assert.equal(res.status, 200);
    const body = res.body as { doc: number; user: string | null };
    assert.equal(body.user, null);
    // A hit replays a run made before this request; anything else ran the handler for it.
    if (String(res.headers['cache-status']).includes('hit')) assert.ok(body.doc <= before, 'a hit ran the handler');
    else assert.equal(runs.n, before + 1, 'not answered from the cache, yet the handler did not run');
    out.push(res.headers['cache-status'] as string | undefined);
  }
  return out;
}

/** Counts the removals `caches` make themselves (an 'invalidate' event each, once Redis has it; not those they hear of). */
function countRemovals(caches: TierCache[]): { n: number } {
  const removals = { n: 0 };
  for (const cache of caches) cache.on('invalidate', (e: { remote: boolean }) => void (e.remote ? undefined : removals.n++));
  return removals;
}

/** After at most one request passed over (removing the old entry): stored, then hits. */
function assertRecovers(seen: Array<string | undefined>): void {
  assert.deepEqual(seen, [undefined, MISS_STORED, HIT_L1, HIT_L1], `still passed over: ${JSON.stringify(seen)}`);
}

describe('middleware: entries a former config of the route stored (origin mode, `user` scoping)', () => {
  const ctx = useRedisCaches({ prefix: 'former-config-', flush: true });
  const routes = { '/api': '5m' } satisfies CacheOptions['routes'];

  describe('instance A still runs the old config and stores; instance B runs the new one', () => {
    it('Express, per-route freshness: origin -> table: B removes the origin-mode entry, then fills and hits', async () => {
      const runs = { n: 0 };
      const a = expressApp(await ctx.open({ routes }), runs, { freshness: 'origin' });
      const b = expressApp(await ctx.open({ routes }), runs, { ttl: '5m' });
      assert.equal((await request(a).get('/api/doc')).headers['cache-status'], MISS_STORED);
      assertRecovers(await statuses(b, 4, runs));
    });

    // L1 off, nested: the app-wide layer reads the entry from L2 and leaves its read on the request for the per-route
    // one (passedWithoutL1): an entry neither layer owns must not be served by the per-route one from that read.
    it('Express, L1 off, nested on B: the origin-mode entry is not served by the per-route layer from the read the app-wide one passed over', async () => {
      const runs = { n: 0 };
      const a = expressApp(await ctx.open({ routes }), runs, { freshness: 'origin' });
      const b = expressApp(await ctx.open({ routes, l1: false }), runs, { ttl: '5m' }, true);
      assert.equal((await request(a).get('/api/doc')).headers['cache-status'], MISS_STORED);
      const [first] = await statuses(b, 1, runs);
      assert.ok(!String(first).includes('hit'), `the entry A's config stored was served on B: ${String(first)}`);
    });

    // The same read, origin mode: the per-route layer serves it only as RFC 9111 lets this request use it (a client's
    // no-cache asks the origin first), not by its freshness alone.
    it('Express, L1 off, nested, origin mode: a request with Cache-Control: no-cache is not answered from the read the app-wide layer passed over', async () => {
      const runs = { n: 0 };
      const b = expressApp(await ctx.open({ routes, l1: false }), runs, { freshness: 'origin' }, true);
      assert.equal((await request(b).get('/api/doc')).headers['cache-status'], MISS_STORED);
      const again = await request(b).get('/api/doc').set('Cache-Control', 'no-cache');
      assert.equal(runs.n, 2, `a no-cache request was answered from the cache: ${String(again.headers['cache-status'])}`);
      const hit = await request(b).get('/api/doc');
      assert.match(String(hit.headers['cache-status']), /hit/, 'a plain request after it is no hit');
    });

    it('Express, a table rule with freshness: origin -> a plain rule, app-wide: the same', async () => {
      const runs = { n: 0 };
      const a = expressApp(await ctx.open({ routes: { '/api': { ttl: '5m', freshness: 'origin' } } }), runs);
      const b = expressApp(await ctx.open({ routes }), runs);
      assert.equal((await request(a).get('/api/doc')).headers['cache-status'], MISS_STORED);
      assertRecovers(await statuses(b, 4, runs));
    });

    it('Koa, per-route freshness: origin -> table: the same', async () => {
      const runs = { n: 0 };
      const a = await koaApp(ctx, await ctx.open({ routes }), runs, { freshness: 'origin' });
      const b = await koaApp(ctx, await ctx.open({ routes }), runs, { ttl: '5m' });
      assert.equal((await request(a).get('/api/doc')).headers['cache-status'], MISS_STORED);
      assertRecovers(await statuses(b, 4, runs));
    });

    it('Express, a per-route `user` dropped: B removes the scoped anonymous entry, then fills and hits', async () => {
      const runs = { n: 0 };
      const a = expressApp(await ctx.open({ routes }), runs, { user: (req) => req.get('x-user') });
      const b = expressApp(await ctx.open({ routes }), runs, {});
      assert.equal((await request(a).get('/api/doc')).headers['cache-status'], MISS_STORED);
      assertRecovers(await statuses(b, 4, runs));
    });

    it('Koa, a per-route `user` dropped: the same', async () => {
      const runs = { n: 0 };
      const a = await koaApp(ctx, await ctx.open({ routes }), runs, { user: (c: Koa.Context) => c.get('x-user') || undefined });
      const b = await koaApp(ctx, await ctx.open({ routes }), runs, {});
      assert.equal((await request(a).get('/api/doc')).headers['cache-status'], MISS_STORED);
      assertRecovers(await statuses(b, 4, runs));
    });
  });

  describe('Express 4 and Koa 2', () => {
    it('Express 4: an origin-mode orphan is removed, and nesting keeps its entries', async () => {
      const runs = { n: 0 };
      const a = expressApp(await ctx.open({ routes }), runs, { freshness: 'origin' }, false, undefined, express4);
      const b = expressApp(await ctx.open({ routes }), runs, { ttl: '5m' }, true, undefined, express4);
      assert.equal((await request(a).get('/api/doc')).headers['cache-status'], MISS_STORED);
      assertRecovers(await statuses(b, 4, runs));
      await ctx.admin.flushall();
      const nested = expressApp(await ctx.open({ routes }), runs, { user: (req) => req.get('x-user') }, true, undefined, express4);
      assert.deepEqual(await statuses(nested, 3, runs), [MISS_STORED, HIT_L1, HIT_L1]);
    });

    it('Koa 2: a `user` orphan is removed, and nesting keeps its entries', async () => {
      const runs = { n: 0 };
      const user = (c: Koa.Context) => c.get('x-user') || undefined;
      const a = await koaApp(ctx, await ctx.open({ routes }), runs, { user }, false, Koa2);
      const b = await koaApp(ctx, await ctx.open({ routes }), runs, {}, true, Koa2);
      assert.equal((await request(a).get('/api/doc')).headers['cache-status'], MISS_STORED);
      assertRecovers(await statuses(b, 4, runs));
      await ctx.admin.flushall();
      const nested = await koaApp(ctx, await ctx.open({ routes }), runs, { user }, true, Koa2);
      assert.deepEqual(await statuses(nested, 3, runs), [MISS_STORED, HIT_L1, HIT_L1]);
    });
  });

  describe('edges of a removal', () => {
    const cleanup = useCleanup();
    it('an orphan this instance holds in L1 (the app rebuilt on the same cache, as a hot reload does) is removed as well', async () => {
      const runs = { n: 0 };
      const cache = await ctx.open({ routes });
      const before = expressApp(cache, runs, { freshness: 'origin' });
      assert.deepEqual(await statuses(before, 2, runs), [MISS_STORED, HIT_L1]);
      assertRecovers(await statuses(expressApp(cache, runs, { ttl: '5m' }), 4, runs));
    });

    it('without Redis (L1 alone), an orphan the app rebuilt on the same cache passes over is removed as well', async () => {
      const runs = { n: 0 };
      const cache = cleanup.track(createCache({ namespace: `former-config-l1-${process.pid}`, redis: false, routes }));
      assert.deepEqual(await statuses(expressApp(cache, runs, { freshness: 'origin' }), 2, runs), [MISS_STORED, HIT_L1]);
      assertRecovers(await statuses(expressApp(cache, runs, { ttl: '5m' }), 4, runs));
    });

    it('an orphan this instance holds in L1, marked seen by the nesting the app had before it was rebuilt, is removed as well', async () => {
      const runs = { n: 0 };
      const cache = await ctx.open({ routes });
      const nested = expressApp(cache, runs, { freshness: 'origin' }, true);
      // Stored, then hits through the app-wide middleware, which marks the entry its per-route middleware's.
      assert.deepEqual(await statuses(nested, 3, runs), [MISS_STORED, HIT_L1, HIT_L1]);
      assertRecovers(await statuses(expressApp(cache, runs, { ttl: '5m' }, true), 4, runs));
    });

    it('removes every variant of a Vary entry with the one passed over', async () => {
      const runs = { n: 0 };
      const varied = (cache: TierCache, options: Options) => {
        const app = express();
        app.get('/api/doc', expressCache(cache, options), (req, res) => {
          runs.n++;
          res.set('Cache-Control', YEAR).set('Vary', 'Accept-Language').json({ doc: runs.n, lang: req.get('accept-language') });
        });
        return app;
      };
      const a = varied(await ctx.open({ routes }), { freshness: 'origin' });
      const b = varied(await ctx.open({ routes }), { ttl: '5m' });
      for (const lang of ['en', 'fr']) assert.equal((await request(a).get('/api/doc').set('Accept-Language', lang)).headers['cache-status'], MISS_STORED);
      const seen = async (lang: string) => {
        const res = await request(b).get('/api/doc').set('Accept-Language', lang);
        assert.equal((res.body as { lang: string }).lang, lang);
        return res.headers['cache-status'] as string | undefined;
      };
      assert.deepEqual([await seen('en'), await seen('en'), await seen('en')], [undefined, MISS_STORED, HIT_L1]);
      assert.deepEqual([await seen('fr'), await seen('fr')], [MISS_STORED, HIT_L1], 'the other variant was left behind');
    });

    it('a HEAD removes nothing (an app.head handler may answer it past the route middleware); the next GET removes an orphan', async () => {
      const runs = { n: 0 };
      const cache = await ctx.open({ routes });
      const removals = countRemovals([cache]);
      const app = express();
      app.use(expressCache(cache));
      app.head('/api/doc', (_req, res) => void res.status(200).set('x-head', 'own').end());
      app.get('/api/doc', expressCache(cache, { freshness: 'origin' }), (_req, res) => {
        runs.n++;
        res.set('Cache-Control', YEAR).json({ doc: runs.n, user: null });
      });
      assert.deepEqual(await statuses(app, 1, runs), [MISS_STORED]);
      for (let i = 0; i < 3; i++) assert.equal((await request(app).head('/api/doc')).headers['x-head'], 'own');
      assert.deepEqual(await statuses(app, 1, runs), [HIT_L1]);
      assert.equal(removals.n, 0);
      // The same entry on an instance where the route is in table mode: HEADs pass it over, a GET removes it.
      const runsB = { n: 0 };
      const b = expressApp(await ctx.open({ routes }), runsB, { ttl: '5m' });
      for (let i = 0; i < 2; i++) assert.equal((await request(b).head('/api/doc')).headers['cache-status'], undefined);
      assert.deepEqual(await statuses(b, 3, runsB), [undefined, MISS_STORED, HIT_L1]);
    });

    it('a 304 the route gives a conditional request removes it too (clients that revalidate)', async () => {
      const runs = { n: 0 };
      const a = expressApp(await ctx.open({ routes }), runs, { freshness: 'origin' });
      const b = expressApp(await ctx.open({ routes }), runs, { ttl: '5m' });
      await request(a).get('/api/doc');
      // Any representation the client holds (Express's own freshness check answers it).
      const conditional = await request(b).get('/api/doc').set('If-None-Match', '*');
      assert.equal(conditional.status, 304);
      assert.equal(conditional.headers['cache-status'], undefined);
      assertRecovers([undefined, ...(await statuses(b, 3, runs))]);
    });

    it('behind the front door: the orphan is removed from L1 too, and the front door serves the new entry', async () => {
      const runs = { n: 0 };
      const a = expressApp(await ctx.open({ routes }), runs, { freshness: 'origin' });
      const cache = await ctx.open({ routes });
      const b = await ctx.serve(front(cache, expressApp(cache, runs, { ttl: '5m' }) as never));
      await request(a).get('/api/doc');
      assertRecovers(await statuses(b, 4, runs));
    });

    it('many requests at once on two instances: each instance removes it at most once, and nothing is served wrong', async () => {
      const runs = { n: 0 };
      const a = expressApp(await ctx.open({ routes }), runs, { freshness: 'origin' });
      const caches = [await ctx.open({ routes }), await ctx.open({ routes })];
      const removals = countRemovals(caches);
      const [b1, b2] = caches.map((cache) => expressApp(cache, runs, { ttl: '5m' }));
      await request(a).get('/api/doc');
      const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => request(i % 2 === 0 ? b1! : b2!).get('/api/doc')));
      for (const res of burst) assert.equal(res.status, 200);
      // Settled: each instance fills once at most, then hits.
      await statuses(b1!, 1, runs);
      await statuses(b2!, 1, runs);
      assert.ok(removals.n >= 1 && removals.n <= 2, `${removals.n} removals`);
      assert.deepEqual([...(await statuses(b1!, 2, runs)), ...(await statuses(b2!, 2, runs))].map((st) => /hit/.test(String(st))), [true, true, true, true]);
    });
  });

  describe('nesting keeps its entries: a middleware of their kind further in serves them', () => {
    const inners: Array<[string, Options, Parameters<typeof koaCache<Koa.Context>>[1]]> = [
      ['origin mode', { freshness: 'origin' }, { freshness: 'origin' }],
      ['`user`', { user: (req) => req.get('x-user') }, { user: (c: Koa.Context) => c.get('x-user') || undefined }],
    ];
    // An async step between the layers: next() returns before the per-route one has run.
    const later: RequestHandler = (_req, _res, next) => void setTimeout(next, 5);
    for (const [what, expressInner, koaInner] of inners) {
      const variants: Array<[string, (cache: TierCache, runs: { n: number }) => Promise<Target>]> = [
        ['Express', async (cache, runs) => expressApp(cache, runs, expressInner, true)],
        ['Express, an async step between the layers', async (cache, runs) => expressApp(cache, runs, expressInner, true, later)],
        ['Koa', (cache, runs) => koaApp(ctx, cache, runs, koaInner, true)],
      ];
      for (const [how, make] of variants) {
        it(`${how}, per route in ${what} inside an app-wide table-mode one: its entry is served on both instances, never removed`, async () => {
          const runs = { n: 0 };
          const caches = [await ctx.open({ routes }), await ctx.open({ routes })];
          const removals = countRemovals(caches);
          const [a, b] = [await make(caches[0]!, runs), await make(caches[1]!, runs)];
          assert.deepEqual(await statuses(a!, 3, runs), [MISS_STORED, HIT_L1, HIT_L1]);
          const onB = await statuses(b!, 3, runs);
          assert.deepEqual(onB.map((st) => /hit/.test(String(st))), [true, true, true], JSON.stringify(onB));
          assert.equal(removals.n, 0, 'an entry of the per-route middleware was removed');
          assert.equal(runs.n, 1);
        });
      }
    }

    it('once its middleware has been seen serving it, the app-wide one passes its entry over without watching (the hit path costs a flag read)', async () => {
      const runs = { n: 0 };
      const watched: boolean[] = [];
      // Between the layers: whether the app-wide one left a watch on this request.
      const probe: RequestHandler = (req, _res, next) => {
        watched.push(Object.getOwnPropertySymbols(req).some((s) => s.description === 'tiercache.passedOver' && (req as unknown as Record<symbol, unknown>)[s] !== undefined));
        next();
      };
      const app = expressApp(await ctx.open({ routes }), runs, { freshness: 'origin' }, true, probe);
      assert.deepEqual(await statuses(app, 4, runs), [MISS_STORED, HIT_L1, HIT_L1, HIT_L1]);
      assert.deepEqual(watched, [false, true, false, false]);
    });

    it("a request the per-route middleware's own bypass() lets through removes nothing: that middleware is there", async () => {
      const runs = { n: 0 };
      const cache = await ctx.open({ routes });
      const removals = countRemovals([cache]);
      const app = expressApp(cache, runs, { freshness: 'origin', bypass: (req) => req.get('x-preview') === '1' }, true);
      assert.deepEqual(await statuses(app, 1, runs), [MISS_STORED]);
      for (let i = 0; i < 3; i++) {
        const res = await request(app).get('/api/doc').set('x-preview', '1');
        assert.equal((res.body as { doc: number }).doc, runs.n, 'a preview is answered by the handler');
      }
      assert.deepEqual(await statuses(app, 2, runs), [HIT_L1, HIT_L1]);
      assert.equal(removals.n, 0);
    });

    it('two caches on one namespace, the app-wide one and the per-route one in origin mode: its entry is never removed', async () => {
      const runs = { n: 0 };
      const [outer, inner] = [await ctx.open({ routes }), await ctx.open({ routes })];
      const removals = countRemovals([outer, inner]);
      const app = express();
      app.use(expressCache(outer));
      app.get('/api/doc', expressCache(inner, { freshness: 'origin' }), (_req, res) => {
        runs.n++;
        res.set('Cache-Control', YEAR).json({ doc: runs.n, user: null });
      });
      assert.deepEqual(await statuses(app, 4, runs), [MISS_STORED, HIT_L1, HIT_L1, HIT_L1]);
      assert.equal(removals.n, 0);
    });

    it("two app-wide layers (an app's cache and a module's, one namespace) in front of the per-route one: both pass its entry over, neither removes it", async () => {
      const runs = { n: 0 };
      const [app1, module1, inner] = [await ctx.open({ routes }), await ctx.open({ routes }), await ctx.open({ routes })];
      const removals = countRemovals([app1, module1, inner]);
      const app = express();
      app.use(expressCache(app1));
      app.use(expressCache(module1));
      app.get('/api/doc', expressCache(inner, { freshness: 'origin' }), (_req, res) => {
        runs.n++;
        res.set('Cache-Control', YEAR).json({ doc: runs.n, user: null });
      });
      assert.deepEqual(await statuses(app, 4, runs), [MISS_STORED, HIT_L1, HIT_L1, HIT_L1]);
      assert.equal(removals.n, 0);
    });

    /** App-wide middleware, then on /api/doc a guard answering `status` to requests with x-guard, then an origin-mode per-route middleware. */
    function guardedApp(cache: TierCache, runs: { n: number }, status: number): { app: Target; guarded: () => Promise<void> } {
      const app = express();
      app.use(expressCache(cache));
      const guard: RequestHandler = (req, res, next) => (req.get('x-guard') === undefined ? next() : void res.status(status).json({ guard: true }));
      app.get('/api/doc', guard, expressCache(cache, { freshness: 'origin' }), (_req, res) => {
        runs.n++;
        res.set('Cache-Control', YEAR).json({ doc: runs.n, user: null });
      });
      const guarded = async () => {
        const res = await request(app).get('/api/doc').set('x-guard', '1');
        assert.equal(res.status, status);
        assert.deepEqual(res.body, { guard: true });
      };
      return { app, guarded };
    }

    // 301/308: a redirect by a header the key does not hold (X-Forwarded-Proto to https, a host's canonical name);
    // 404, 410: a guard hiding the route; none is the entry's own answer (hostile review of 7bd7758, session 29).
    for (const status of [401, 403, 429, 301, 308, 404, 410]) {
      it(`a ${status} from a guard in front of the per-route middleware removes nothing, before that middleware is seen or after`, async () => {
        const runs = { n: 0 };
        const cache = await ctx.open({ routes });
        const removals = countRemovals([cache]);
        const { app, guarded } = guardedApp(cache, runs, status);
        assert.deepEqual(await statuses(app, 1, runs), [MISS_STORED]);
        for (let i = 0; i < 3; i++) await guarded();
        assert.deepEqual(await statuses(app, 2, runs), [HIT_L1, HIT_L1]);
        for (let i = 0; i < 3; i++) await guarded();
        assert.deepEqual(await statuses(app, 1, runs), [HIT_L1]);
        assert.equal(removals.n, 0);
      });
    }

    it('a 200 from a guard in front of the per-route middleware (routing by an unkeyed header) removes its entry only until that middleware is seen', async () => {
      const runs = { n: 0 };
      const cache = await ctx.open({ routes });
      const removals = countRemovals([cache]);
      const { app, guarded } = guardedApp(cache, runs, 200);
      assert.deepEqual(await statuses(app, 1, runs), [MISS_STORED]);
      // Before any request reached the per-route middleware here: taken for an orphan, removed (one refill).
      await guarded();
      assert.deepEqual(await statuses(app, 2, runs), [MISS_STORED, HIT_L1]);
      assert.equal(removals.n, 1);
      // That hit was watched and seen served by its middleware: guarded requests remove nothing from now on.
      for (let i = 0; i < 3; i++) await guarded();
      assert.deepEqual(await statuses(app, 2, runs), [HIT_L1, HIT_L1]);
      assert.equal(removals.n, 1);
    });
  });
});
