// An app-wide middleware with a `query` allow-list and, further in, a per-route
// one that keys every parameter. A key built with the list dropped `q` and was
// the very key the per-route middleware builds for the request without `q`:
// the app-wide one answered /api/search?page=1&q=dogs, before the per-route one
// ran, with the results it had stored for /api/search?page=1 (and /api/search?q=cats
// with those of /api/search). Keys built with an allow-list now say so. Found by a
// hostile review.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

function searchApp(cache: TierCache) {
  const app = express();
  app.use(expressCache(cache, { query: ['page'] }));
  app.get('/api/search', expressCache(cache, { ttl: '1m' }), (req, res) => {
    res.json({ q: req.query.q ?? null, page: req.query.page ?? null });
  });
  return app;
}

describe('middleware: an app-wide allow-list of query parameters, a per-route middleware keying them all', () => {
  const ctx = useRedisCaches({ prefix: 'query-allow-nested-' });

  it('answers each query with its own results, on this instance (L1) and another (L2)', async () => {
    const a = searchApp(await ctx.open({ routes: { '/api': '1m' } }));
    const b = searchApp(await ctx.open({ routes: { '/api': '1m' } }));
    assert.deepEqual((await request(a).get('/api/search?page=1')).body, { q: null, page: '1' });
    assert.deepEqual((await request(a).get('/api/search')).body, { q: null, page: null });
    for (const app of [a, b]) {
      assert.deepEqual((await request(app).get('/api/search?page=1&q=dogs')).body, { q: 'dogs', page: '1' });
      assert.deepEqual((await request(app).get('/api/search?q=cats')).body, { q: 'cats', page: null });
    }
    // Still cached, by the per-route middleware.
    assert.match(String((await request(b).get('/api/search?page=1')).headers['cache-status']), /hit/);
    assert.match(String((await request(a).get('/api/search?q=cats&page=1')).headers['cache-status']), /fwd=miss; stored/);
  });
});
