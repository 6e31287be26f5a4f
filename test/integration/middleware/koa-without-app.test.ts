// koaCache's middleware takes any context with req, res and originalUrl
// (KoaRuntimeContext: `app` is optional), so it can run outside a Koa
// application (koa-compose in another server, a test harness). A background
// refresh needs a Koa application to re-enter; without one (no ctx.app, null,
// or an object that is no Koa application) a stale entry in its
// stale-while-revalidate window must be filled again in the request, as the
// Express middleware does in a plain router (mounting.test.ts), not fail with
// a TypeError. Found by mutation testing: every mutant of koa.ts koaDispatch's
// guard survived (the tests only ever passed a real Koa app). No Redis.
import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('middleware: koaCache run with a context that has no Koa application', () => {
  const cleanup = useCleanup();

  for (const [what, app] of [
    ['no ctx.app', undefined],
    ['ctx.app null', null],
    ['ctx.app an object that is no Koa application', { name: 'not koa' }],
  ] as const) {
    it(`${what}: a stale entry in its stale-while-revalidate window is filled again in the request`, async () => {
      const cache = cleanup.track(createCache({ redis: false }));
      const middleware = koaCache(cache, { ttl: 100, staleWhileRevalidate: '10s' });
      let runs = 0;
      const listener: RequestListener = (req, res) => {
        const ctx = app === undefined ? { req, res, originalUrl: req.url! } : { app, req, res, originalUrl: req.url! };
        middleware(ctx, async () => {
          res.setHeader('content-type', 'text/plain');
          res.end(`run ${++runs}`);
        }).catch((err: unknown) => {
          res.statusCode = 500;
          res.end(String(err));
        });
      };
      const server = await cleanup.serve(listener);
      assert.equal((await request(server).get('/swr')).text, 'run 1');
      await sleep(150);
      const stale = await request(server).get('/swr');
      assert.equal(stale.status, 200, stale.text);
      assert.equal(stale.text, 'run 2', 'no app to refresh through: the request itself fills again');
    });
  }
});
