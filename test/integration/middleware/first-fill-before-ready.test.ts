// The first requests after createCache(), before anything awaited ready():
// the invalidation bus's first subscription forgets what was learned before
// it (a message may have been missed), and fills stamped before it were
// refused when they stored: each key's first answer said
// `detail=invalidated` (nothing had been invalidated) and was not stored.
// Fills wait for that subscription now, no longer than a command may take.
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import express from 'express';
import Koa from 'koa';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useRedisCaches } from '../../support/cache-context.js';

describe('middleware: the first fills right after createCache() (no ready() awaited)', () => {
  const ctx = useRedisCaches({ prefix: 'first-fill', flush: true });
  const fresh = () => ctx.track(createCache({ namespace: ctx.ns, redis: ctx.redis.url, routes: { '/api': '1m' } }));

  it('Express: the first answer is stored and says so; the second is a hit', async () => {
    const cache = fresh();
    const app = express();
    app.use(expressCache(cache));
    app.get('/api/items', (_req, res) => void res.json({ items: [1, 2] }));
    const first = await request(app).get('/api/items');
    assert.equal(first.headers['cache-status'], 'tiercache; fwd=miss; stored');
    assert.match(String((await request(app).get('/api/items')).headers['cache-status']), /^tiercache; hit/);
  });

  it('Koa: the first answer is stored and says so; the second is a hit', async () => {
    const cache = fresh();
    const app = new Koa();
    app.use(koaCache(cache));
    app.use((c) => {
      c.body = { items: [1, 2] };
    });
    const server = app.callback();
    assert.equal((await request(server).get('/api/items')).headers['cache-status'], 'tiercache; fwd=miss; stored');
    assert.match(String((await request(server).get('/api/items')).headers['cache-status']), /^tiercache; hit/);
  });

  it('data API: the first getOrSet() stores its value; the next call does not load', async () => {
    const cache = fresh();
    let loads = 0;
    const load = async () => ++loads;
    assert.equal(await cache.getOrSet('k', load), 1);
    assert.equal(await cache.getOrSet('k', load), 1);
    assert.equal(loads, 1, 'the first load was not stored');
  });

  it('a subscription that comes up after Redis answers (slower than the data connection): the first fill waits for it too, and is stored', async () => {
    // A proxy that holds the subscriber's SUBSCRIBE (and what follows on its connection) for 300 ms.
    const sockets = new Set<Socket>();
    const proxy = createServer((client) => {
      const upstream = connect(ctx.redis.port, '127.0.0.1');
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => undefined);
      }
      let releaseAt = 0;
      client.on('data', (d: Buffer) => {
        if (releaseAt === 0 && /subscribe/i.test(d.toString('latin1'))) releaseAt = Date.now() + 300;
        const wait = releaseAt - Date.now();
        if (wait > 0) setTimeout(() => upstream.write(d), wait);
        else upstream.write(d);
      });
      upstream.on('data', (d) => client.write(d));
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const cache = ctx.track(createCache({ namespace: ctx.ns, redis: `redis://127.0.0.1:${(proxy.address() as AddressInfo).port}`, routes: { '/api': '1m' }, l2: { commandTimeout: 2_000 } }));
      const app = express();
      app.use(expressCache(cache));
      // Slower than the subscription's delay: a fill stamped before it would be refused when it stores.
      app.get('/api/items', (_req, res) => void setTimeout(() => res.json({ items: [1, 2] }), 400));
      const first = await request(app).get('/api/items');
      assert.equal(first.headers['cache-status'], 'tiercache; fwd=miss; stored');
      assert.match(String((await request(app).get('/api/items')).headers['cache-status']), /^tiercache; hit/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });
});
