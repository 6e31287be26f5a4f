// One middleware mounted twice on a request's way (app-wide and again on the
// route, or twice app-wide): its second pass must take the fill over from its
// first, as a different middleware further in does. It used to skip standing
// down its own first capture, then found that capture's fill of the same key
// under way and waited on it until COALESCE_WAIT_MS (3 s) ran out, before
// running the handler unstored. Found by mutation testing (http-cache.ts,
// the stand-down guard).
import assert from 'node:assert/strict';
import Router from '@koa/router';
import express from 'express';
import Koa from 'koa';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup } from '../../support/cache-context.js';

/** Well under COALESCE_WAIT_MS (3 s): only a request that waited on its own fill takes longer. */
const BOUND_MS = 1_500;
let counter = 0;

describe('middleware: one middleware mounted twice', () => {
  const cleanup = useCleanup();
  const newCache = () => cleanup.track(createCache({ namespace: `double-mount${process.pid}-${++counter}`, redis: false, ttl: '1m' }));

  async function firstThenSecond(target: Parameters<typeof request>[0], runs: () => number): Promise<void> {
    const started = Date.now();
    const first = await request(target).get('/x');
    const took = Date.now() - started;
    assert.ok(took < BOUND_MS, `the first request took ${took} ms: it waited on its own fill`);
    assert.equal(first.text, 'x');
    assert.equal(first.headers['cache-status'], 'tiercache; fwd=miss; stored');
    const second = await request(target).get('/x');
    assert.equal(second.text, 'x');
    assert.equal(second.headers['cache-status'], 'tiercache; hit; detail=L1');
    assert.equal(runs(), 1);
  }

  it('Express: app-wide and on the route, the first request is answered at once and stored', async () => {
    const mw = expressCache(newCache());
    const app = express();
    let runs = 0;
    app.use(mw);
    app.get('/x', mw, (_req, res) => void (runs++, res.send('x')));
    await firstThenSecond(app, () => runs);
  });

  it('Koa: app-wide and on a router route, the first request is answered at once and stored', async () => {
    const mw = koaCache(newCache());
    const app = new Koa();
    const router = new Router();
    let runs = 0;
    router.get('/x', mw, (ctx) => {
      runs++;
      ctx.body = 'x';
    });
    app.use(mw);
    app.use(router.routes());
    const server = await cleanup.serve(app.callback());
    await firstThenSecond(server, () => runs);
  });
});
