// A stale-if-error answer replaces the handler's 5xx, status line included:
// Koa (ctx.throw) and Express's final handler set the reason phrase of the
// error, and the stale 200 went out as `HTTP/1.1 200 Service Unavailable`.
// Found by a hostile review.
import assert from 'node:assert/strict';
import { get } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Koa from 'koa';
import type { Server } from 'node:http';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function statusLine(server: Server): Promise<{ status: number; reason: string; body: string }> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/s' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, reason: res.statusMessage!, body }));
    }).on('error', reject);
  });
}

describe('middleware: the status line of a stale-if-error answer', () => {
  const cleanup = useCleanup();
  let failing = false;

  const apps = {
    'Koa, ctx.throw(503)': (cache: ReturnType<typeof createCache>) => {
      const app = new Koa();
      app.silent = true;
      app.use(koaCache(cache, { ttl: 100, staleIfError: '1m' }));
      app.use((ctx) => {
        if (failing) ctx.throw(503);
        ctx.body = 'stored once';
      });
      return app.callback();
    },
    "Express, an error passed to Express's final handler": (cache: ReturnType<typeof createCache>) => {
      const app = express();
      app.get('/s', expressCache(cache, { ttl: 100, staleIfError: '1m' }), (_req, res, next) => {
        if (failing) return next(Object.assign(new Error('down'), { status: 500, expose: false }));
        res.send('stored once');
      });
      app.set('env', 'test'); // the final handler logs errors in any other env
      return app;
    },
  };

  for (const [name, build] of Object.entries(apps)) {
    it(`${name}: 200 OK with the stale body, not the error's reason phrase`, async () => {
      failing = false;
      const cache = cleanup.track(createCache({ namespace: `sie-line-${name.length}-${process.pid}`, redis: false }));
      const server = await cleanup.serve(build(cache));
      assert.deepEqual(await statusLine(server), { status: 200, reason: 'OK', body: 'stored once' });
      await sleep(150);
      failing = true;
      assert.deepEqual(await statusLine(server), { status: 200, reason: 'OK', body: 'stored once' });
    });
  }
  it("Koa: a fill answered 304 for the client's If-None-Match says Not Modified, not the OK Koa's body setter put there", async () => {
    const cache = cleanup.track(createCache({ namespace: `inm-line-${process.pid}`, redis: false }));
    const app = new Koa();
    app.use(koaCache(cache, { ttl: '1m' }));
    app.use((ctx) => {
      ctx.set('etag', '"v1"');
      ctx.body = 'body';
    });
    const server = await cleanup.serve(app.callback());
    const { port } = server.address() as AddressInfo;
    const line = await new Promise<{ status: number; reason: string }>((resolve, reject) => {
      get({ host: '127.0.0.1', port, path: '/c', headers: { 'if-none-match': '"v1"' } }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, reason: res.statusMessage! }));
      }).on('error', reject);
    });
    assert.deepEqual(line, { status: 304, reason: 'Not Modified' });
  });
});
