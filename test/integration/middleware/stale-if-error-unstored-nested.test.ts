// stale-if-error for requests whose answer is never stored (a HEAD, a request
// with no-store), under two middlewares: app-wide, and further in on the route.
// The per-route one decides (DESIGN.md, "Settled details"): when it lets a
// request through (its `bypass` said so), the app-wide one must not answer
// the handler's 5xx with a stale entry either. Found by a review: the guard
// that answers these requests did not stand down as a fill's capture does.
import assert from 'node:assert/strict';
import Router from '@koa/router';
import express from 'express';
import Koa from 'koa';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup } from '../../support/cache-context.js';

type Target = Parameters<typeof request>[0];
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const RULE = { ttl: 50, staleIfError: '10s' } as const;
let counter = 0;

function expressApp(cache: TierCache, state: { fail: boolean }): Target {
  const app = express();
  app.use(expressCache(cache));
  app.get('/s', expressCache(cache, { ...RULE, bypass: (req) => req.get('x-admin') === '1' }), (_req, res) => {
    if (state.fail) res.status(503).send('down');
    else res.send('hello');
  });
  return app;
}

function koaApp(cache: TierCache, state: { fail: boolean }): Target {
  const app = new Koa();
  const router = new Router();
  router.get('/s', koaCache(cache, { ...RULE, bypass: (ctx) => ctx.get('x-admin') === '1' }), (ctx) => {
    if (state.fail) {
      ctx.status = 503;
      ctx.body = 'down';
    } else ctx.body = 'hello';
  });
  app.use(koaCache(cache));
  app.use(router.routes());
  return app.callback();
}

describe('middleware: stale-if-error for unstored requests under two middlewares', () => {
  const cleanup = useCleanup();

  for (const [name, build] of [['Express', expressApp], ['Koa', koaApp]] as const) {
    it(`${name}: the per-route middleware lets the request through, so a HEAD and a no-store request get the 503 as a GET does; without the bypass they get the stale answer`, async () => {
      const cache = cleanup.track(createCache({ namespace: `sie-nested-${process.pid}-${++counter}`, redis: false, routes: { '/s': RULE } }));
      const state = { fail: false };
      const app = build(cache, state);
      assert.equal((await request(app).get('/s')).text, 'hello');
      await sleep(120); // stale, within stale-if-error
      state.fail = true;
      assert.equal((await request(app).get('/s').set('x-admin', '1')).status, 503);
      assert.equal((await request(app).head('/s').set('x-admin', '1')).status, 503, 'the app-wide middleware answered a bypassed HEAD with the stale entry');
      assert.equal((await request(app).get('/s').set('x-admin', '1').set('Cache-Control', 'no-store')).status, 503, 'the app-wide middleware answered a bypassed no-store request with the stale entry');
      // Not bypassed: the per-route middleware's own stale-if-error answers them.
      const head = await request(app).head('/s');
      assert.equal(head.status, 200);
      assert.match(String(head.headers['cache-status']), /^tiercache; hit; ttl=-\d+; detail=L1$/);
      const noStore = await request(app).get('/s').set('Cache-Control', 'no-store');
      assert.equal(noStore.text, 'hello');
    });
  }
});
