// An app-wide middleware in table mode and, further in, a per-route one with
// `freshness: 'origin'` (RFC 9111). The per-route one decides (DESIGN.md,
// "Settled details"), but the app-wide one found the route's entries first and
// served them by the table's rules: a `no-cache` answer (stored to be
// revalidated on every use) and a `must-revalidate` one past its max-age went
// out stale within the table's stale-while-revalidate window, unvalidated, and a
// request's own `Cache-Control: no-cache` was ignored. An origin-mode entry is
// now served only by a middleware in origin mode. Found by a hostile review.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import type { CacheOptions, TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { REVALIDATED } from '../../../src/middleware/cache-status.js';
import { useRedisCaches } from '../../support/cache-context.js';

function app(cache: TierCache, runs: { n: number }) {
  const a = express();
  a.use(expressCache(cache));
  a.get('/api/doc', expressCache(cache, { freshness: 'origin' }), (req, res) => {
    runs.n++;
    res.set('Cache-Control', 'no-cache').set('ETag', '"v1"');
    if (req.get('if-none-match') === '"v1"') return void res.status(304).end();
    res.send('doc v1');
  });
  a.get('/api/page', expressCache(cache, { freshness: 'origin' }), (_req, res) => {
    runs.n++;
    res.set('Cache-Control', 'max-age=1, must-revalidate').send(`page ${runs.n}`);
  });
  return a;
}

describe('middleware: an origin-mode route inside an app-wide table-mode middleware', () => {
  const ctx = useRedisCaches({ prefix: 'origin-inside-table-' });
  const routes = { '/api': { ttl: '1m', staleWhileRevalidate: '1m' } } satisfies CacheOptions['routes'];

  it('revalidates a no-cache answer on every use, on this instance (L1) and another (L2)', async () => {
    const runs = { n: 0 };
    const a = app(await ctx.open({ routes }), runs);
    const b = app(await ctx.open({ routes }), runs);
    assert.equal((await request(a).get('/api/doc')).headers['cache-status'], 'tiercache; fwd=miss; stored');
    for (const target of [a, b, a]) {
      const before = runs.n;
      const res = await request(target).get('/api/doc');
      assert.equal(res.text, 'doc v1');
      assert.equal(res.headers['cache-status'], REVALIDATED, 'served unvalidated');
      assert.equal(runs.n, before + 1, 'the handler was not asked');
    }
  });

  it("honours a request's Cache-Control: no-cache, and never serves a must-revalidate answer stale", async () => {
    const runs = { n: 0 };
    const a = app(await ctx.open({ routes }), runs);
    assert.equal((await request(a).get('/api/page')).text, 'page 1');
    const forced = await request(a).get('/api/page').set('Cache-Control', 'no-cache');
    assert.doesNotMatch(String(forced.headers['cache-status']), /hit/);
    assert.equal(runs.n, 2);
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    const late = await request(a).get('/api/page');
    assert.doesNotMatch(String(late.headers['cache-status']), /hit/, 'a must-revalidate answer went out stale');
    assert.equal(runs.n, 3);
  });
});
