// How the middleware tells per-route from app-wide mounting (DESIGN.md section
// 2: with no TTL source, per-route mounting caches for 60 s and app-wide
// mounting passes the request through untouched). It is decided from where the
// middleware sits, not from route facts an earlier router left on the request
// (Express `req.route`, @koa/router `ctx._matchedRoute`). And what the cache
// never lets out: the Cache-Groups header, on routes it does not cache too.
import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import Router from '@koa/router';
import express5 from 'express';
import Koa3 from 'koa';
import { createRequire } from 'node:module';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp, express4, Koa2 } from './apps.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

let counter = 0;
/** The `router` package (Express 5's own router) used without Express: untyped here. */
const plainRouter = createRequire(import.meta.url)('router') as () => Any;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** An app-wide cache mounted after a catch-all route layer that calls next(). */
function expressAfterCatchAll(express: typeof express5, catchAll: string, cache: TierCache, runs: { n: number }): RequestListener {
  const app = express();
  app.all(catchAll, (_req, _res, next) => next());
  app.use(expressCache(cache));
  app.get('/plain', (_req, res) => void res.send(`run ${++runs.n}`));
  return app as unknown as RequestListener;
}

function koaAfterMatchedRouter(Koa: typeof Koa3, cache: TierCache, runs: { n: number }): RequestListener {
  const app = new Koa();
  const first = new Router();
  first.all('/{*any}', (_ctx: Any, next: Any) => next());
  const second = new Router();
  second.get('/plain', (ctx: Any) => void (ctx.body = `run ${++runs.n}`));
  app.use(first.routes() as Any);
  app.use(koaCache(cache) as Any);
  app.use(second.routes() as Any);
  return app.callback() as RequestListener;
}

const LEFTOVER: ReadonlyArray<readonly [string, (cache: TierCache, runs: { n: number }) => RequestListener]> = [
  ['Express 5', (cache, runs) => expressAfterCatchAll(express5, '/*splat', cache, runs)],
  ['Express 4', (cache, runs) => expressAfterCatchAll(express4, '*', cache, runs)],
  ['Koa 3', (cache, runs) => koaAfterMatchedRouter(Koa3, cache, runs)],
  ['Koa 2', (cache, runs) => koaAfterMatchedRouter(Koa2, cache, runs)],
];

describe('middleware: mounting', function () {
  const cleanup = useCleanup();
  const open = (options: Parameters<typeof createCache>[0] = {}) => cleanup.track(createCache({ namespace: `mount${process.pid}-${++counter}`, redis: false, ...options }));

  for (const [name, build] of LEFTOVER) {
    it(`${name}: an app-wide cache after a route layer that called next() still passes routes outside the table through`, async () => {
      const runs = { n: 0 };
      const app = build(open(), runs);
      for (let i = 1; i <= 2; i++) {
        const res = await request(app).get('/plain');
        assert.equal(res.text, `run ${i}`, 'a route outside the table was cached');
        assert.equal(res.headers['cache-status'], undefined);
      }
    });
  }

  for (const [name, Koa] of [['Koa 3', Koa3], ['Koa 2', Koa2]] as const) {
    it(`${name}: a cache mounted with router.use() is app-wide (its layer matches every method): a route outside the table passes through`, async () => {
      let runs = 0;
      const app = new Koa();
      const router = new Router();
      router.use(koaCache(open()) as Any);
      router.get('/plain', (ctx: Any) => void (ctx.body = `run ${++runs}`));
      app.use(router.routes() as Any);
      for (let i = 1; i <= 2; i++) {
        const res = await request(app.callback()).get('/plain');
        assert.equal(res.text, `run ${i}`, 'router.use() mounting was taken for a per-route one');
        assert.equal(res.headers['cache-status'], undefined);
      }
    });
  }

  it('Express middleware in a plain router (no Express app to refresh through): a stale entry in its stale-while-revalidate window is filled again in the request', async () => {
    let runs = 0;
    const router = plainRouter();
    router.get('/swr', expressCache(open(), { ttl: 100, staleWhileRevalidate: '10s' }), (_req: Any, res: Any) => {
      res.setHeader('content-type', 'text/plain');
      res.end(`run ${++runs}`);
    });
    const app: RequestListener = (req, res) =>
      router(req, res, (err: unknown) => {
        res.statusCode = err === undefined ? 404 : 500;
        res.end(String(err ?? 'not found'));
      });
    assert.equal((await request(app).get('/swr')).text, 'run 1');
    await sleep(150);
    const stale = await request(app).get('/swr');
    assert.equal(stale.status, 200, stale.text);
    assert.equal(stale.text, 'run 2', 'no app to refresh through: the request itself fills again');
  });

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      it('never sends Cache-Groups to the client from a route the table leaves uncached or marks false', async () => {
        const cache = open({ routes: { '/admin': false } });
        const app = buildApp(adapter, cache, {
          appLevel: true,
          routes: [
            { path: '/admin', handler: (io) => (io.set('Cache-Groups', '"admin"'), io.send('admin')) },
            { path: '/other', handler: (io) => (io.set('Cache-Groups', '"other"'), io.send('other')) },
          ],
        });
        for (const path of ['/admin', '/other']) {
          const res = await request(app.target).get(path);
          assert.equal(res.headers['cache-groups'], undefined, `${path} leaked its Cache-Groups`);
          assert.equal(res.headers['cache-status'], undefined);
        }
      });

      it('says fwd=miss, not stored, for an answer invalidated while its handler ran, and stores nothing', async () => {
        const cache = open();
        const app = buildApp(adapter, cache, {
          routes: [
            {
              path: '/movie',
              mw: { tags: () => ['movie:7'] },
              handler: async (io) => {
                await cache.invalidateTags(['movie:7']); // a write elsewhere, while this answer was being built
                io.send('old movie');
              },
            },
          ],
        });
        const res = await request(app.target).get('/movie');
        assert.equal(res.headers['cache-status'], 'tiercache; fwd=miss; detail=invalidated');
        assert.equal((await request(app.target).get('/movie')).headers['cache-status'], 'tiercache; fwd=miss; detail=invalidated');
        assert.equal(app.runs('/movie'), 2);
      });
    });
  }
});
