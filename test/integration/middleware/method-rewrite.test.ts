// A request whose method an earlier middleware rewrote (the `method-override`
// package sets req.originalMethod and changes req.method, here from a query
// parameter, so no override header gives it away) bypasses the cache: a POST
// turned into a GET is neither served from nor stored as the GET's entry.
// Express 5 and 4; Koa 3 and 2 with what `koa-methodoverride` does (its port of
// method-override keeps the method on ctx.request.originalMethod; found by
// helper-95: the Koa adapter did not read it, and a POST rewritten to GET was
// stored and served as the GET's entry).
import assert from 'node:assert/strict';
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import Koa from 'koa';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup } from '../../support/cache-context.js';
import { express4, Koa2 } from './apps.js';

let counter = 0;

/** What `method-override` does with a getter reading `?_method=`: originalMethod is set on every request, rewritten or not. */
function methodFromQuery(req: Request, _res: Response, next: NextFunction): void {
  const r = req as Request & { originalMethod?: string };
  r.originalMethod ??= req.method;
  const wanted = typeof req.query._method === 'string' ? req.query._method.toUpperCase() : undefined;
  if (wanted !== undefined) req.method = wanted;
  next();
}

/** What `koa-methodoverride('_method')` does: ctx.request.originalMethod on every request, the method from the query. */
function koaMethodFromQuery(ctx: Koa.Context, next: Koa.Next): Promise<unknown> {
  const r = ctx.request as Koa.Request & { originalMethod?: string };
  r.originalMethod ??= r.method;
  const wanted = ctx.query._method;
  if (r.originalMethod === 'POST' && typeof wanted === 'string') r.method = wanted.toUpperCase();
  return next();
}

describe('middleware: a method rewritten by an earlier middleware', () => {
  const cleanup = useCleanup();

  for (const [name, factory] of [['Express 5', express], ['Express 4', express4]] as const) {
    it(`${name}: a POST rewritten to GET bypasses the cache (method-override), a plain GET is cached`, async () => {
      const cache = cleanup.track(createCache({ namespace: `rewrite${process.pid}-${++counter}`, redis: false }));
      let runs = 0;
      const app = factory();
      app.use(methodFromQuery as express.RequestHandler);
      app.use(expressCache(cache, { ttl: '1m' }));
      app.get('/m', (_req, res) => {
        runs++;
        res.send(`run ${runs}`);
      });
      for (let i = 1; i <= 2; i++) {
        const res = await request(app).post('/m?_method=GET');
        assert.equal(res.status, 200);
        assert.equal(res.text, `run ${i}`);
        assert.equal(res.headers['cache-status'], 'tiercache; fwd=bypass; detail=method-override');
      }
      // originalMethod is there, and the same as the method: not a rewrite.
      const get = await request(app).get('/m?_method=GET');
      assert.equal(get.headers['cache-status'], 'tiercache; fwd=miss; stored', 'nothing was stored by the rewritten requests');
      assert.equal((await request(app).get('/m?_method=GET')).headers['cache-status'], 'tiercache; hit; detail=L1');
      assert.equal(runs, 3);
    });
  }

  for (const [name, Framework] of [['Koa 3', Koa], ['Koa 2', Koa2]] as const) {
    it(`${name}: a POST rewritten to GET bypasses the cache (koa-methodoverride), a plain GET is cached`, async () => {
      const cache = cleanup.track(createCache({ namespace: `rewrite${process.pid}-${++counter}`, redis: false }));
      let runs = 0;
      const app = new (Framework as typeof Koa)();
      app.use(koaMethodFromQuery);
      app.use(koaCache(cache, { ttl: '1m' }) as Koa.Middleware);
      app.use((ctx) => {
        if (ctx.method !== 'GET' || ctx.path !== '/m') return;
        runs++;
        ctx.body = `run ${runs}`;
      });
      const target = app.callback();
      await request(target).get('/m').expect(200, 'run 1');
      for (let i = 2; i <= 3; i++) {
        const res = await request(target).post('/m?_method=GET');
        assert.equal(res.status, 200);
        assert.equal(res.text, `run ${i}`, 'a POST was answered from the GET entry');
        assert.equal(res.headers['cache-status'], 'tiercache; fwd=bypass; detail=method-override');
      }
      const get = await request(target).get('/m?_method=GET');
      assert.equal(get.headers['cache-status'], 'tiercache; fwd=miss; stored', 'nothing was stored by the rewritten requests');
      assert.equal(get.text, 'run 4');
      assert.equal(runs, 4);
    });
  }
});
