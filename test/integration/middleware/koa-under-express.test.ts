// Koa apps mounted in an Express app (expressApp.use('/v1', koa.callback())):
// Koa is handed the mount-relative req.url, and so was the cache, through
// ctx.originalUrl (found by helper-68): /v1/items and /v2/items shared the
// key /items, a `false` rule for /v2/admin was never matched, and the front
// door served /v1's entry for /items, which Express alone answers with 404.
// Keys and the route table take the full target, as under Express itself.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Koa from 'koa';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { koaCache } from '../../../src/koa.js';
import { front } from '../../../src/node.js';
import { useCleanup } from '../../support/cache-context.js';

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
});
