// The first requests after createCache(), before anything awaited ready():
// the invalidation bus's first subscription forgets what was learned before
// it (a message may have been missed), and fills stamped before it were
// refused when they stored: each key's first answer said
// `detail=invalidated` (nothing had been invalidated) and was not stored.
// Fills wait for that subscription now, no longer than a command may take.
import assert from 'node:assert/strict';
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
});
