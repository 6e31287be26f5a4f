// A `key(req)` option replaces the path and query of a key. A key written as
// a path (`/api/dashboard/${tenant}`, a natural way to write one) was the very
// key a plain middleware builds for a request to that path: an app-wide
// middleware answered GET /api/dashboard/acme, from any client, with the
// dashboard the per-route middleware had stored for tenant acme (and a
// per-route middleware on that path would too). Custom keys now have a key
// space of their own. Found by a hostile review.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { buildRequestKey } from '../../../src/keys/request-key.js';
import { useRedisCaches } from '../../support/cache-context.js';

function dashboardApp(cache: TierCache) {
  const app = express();
  app.use(expressCache(cache));
  app.get('/api/dashboard', expressCache(cache, { key: (req) => `/api/dashboard/${req.get('x-tenant') ?? 'none'}` }), (req, res) => {
    res.json({ secretOf: req.get('x-tenant') ?? 'none' });
  });
  // The public page of a tenant, cached by the app-wide middleware.
  app.get('/api/dashboard/:tenant', (req, res) => void res.json({ publicPageOf: req.params.tenant }));
  return app;
}

describe('middleware: a custom key written as a path', () => {
  const ctx = useRedisCaches({ prefix: 'custom-key-space-' });

  it('never answers a request for that path, on any instance', async () => {
    const a = dashboardApp(await ctx.open({ ttl: '1m' }));
    const b = dashboardApp(await ctx.open({ ttl: '1m' }));
    const secret = await request(a).get('/api/dashboard').set('x-tenant', 'acme');
    assert.deepEqual(secret.body, { secretOf: 'acme' });
    for (const app of [a, b]) {
      const page = await request(app).get('/api/dashboard/acme').set('x-tenant', 'evil');
      assert.deepEqual(page.body, { publicPageOf: 'acme' }, `another tenant's dashboard: ${String(page.headers['cache-status'])}`);
    }
    // Both entries stay cached under their own keys.
    assert.match(String((await request(b).get('/api/dashboard').set('x-tenant', 'acme')).headers['cache-status']), /hit/);
    assert.match(String((await request(a).get('/api/dashboard/acme')).headers['cache-status']), /hit/);
  });

  it('is a key no request target builds', () => {
    const plain = buildRequestKey({ namespace: 'ns', method: 'GET', url: '/api/dashboard/acme' });
    assert.notEqual(buildRequestKey({ namespace: 'ns', method: 'GET', url: '/api/dashboard', customKey: '/api/dashboard/acme' }), plain);
    assert.notEqual(buildRequestKey({ namespace: 'ns', method: 'GET', url: '/x', customKey: '/' }), buildRequestKey({ namespace: 'ns', method: 'GET', url: '/' }));
  });
});
