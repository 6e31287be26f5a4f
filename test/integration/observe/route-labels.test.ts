// The `route` of events (and so of metrics and the status page) under Express
// routers and sub-apps: the patterns they were mounted at, never the text
// that matched them (req.baseUrl: a user id under '/users/:uid', the
// client's case under '/shop'), so the labels stay bounded whatever clients send.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useCleanup } from '../../support/cache-context.js';
import { express4 } from '../middleware/apps.js';

let counter = 0;

/** Every route label the cache reported, over misses and hits. */
function labels(cache: TierCache): Set<string> {
  const seen = new Set<string>();
  cache.on('miss', (e) => seen.add(e.route));
  cache.on('hit', (e) => seen.add(e.route));
  return seen;
}

describe('route labels under Express mounts', () => {
  const cleanup = useCleanup();
  const open = () => cleanup.track(createCache({ namespace: `labels${process.pid}-${++counter}`, redis: false }));

  for (const [name, framework] of [
    ['express5', express],
    ['express4', express4],
  ] as const) {
    describe(name, () => {
      it('a router mounted under a parameter gives its pattern, not the user id in the URL', async () => {
        const cache = open();
        const seen = labels(cache);
        const app = framework();
        const users = framework.Router({ mergeParams: true });
        users.get('/profile', expressCache(cache, { ttl: '1m' }), (req, res) => res.json({ uid: (req.params as Record<string, string>)['uid'] }));
        app.use('/users/:uid', users);
        for (const id of ['42', 'alice%40example.com', '42']) await request(app).get(`/users/${id}/profile`).expect(200);
        // Express 4 keeps no pattern text for a mount: the route's own path, which names no user.
        assert.deepEqual([...seen], [name === 'express5' ? '/users/:uid/profile' : '/profile']);
      });

      it('a router under a literal path gives one label whatever case the client sends', async () => {
        const cache = open();
        const seen = labels(cache);
        const app = framework();
        const shop = framework.Router();
        shop.get('/items/:id', expressCache(cache, { ttl: '1m' }), (req, res) => res.json({ id: req.params['id'] }));
        app.use('/shop', shop);
        for (const path of ['/shop/items/1', '/SHOP/items/2', '/sHoP/items/1']) await request(app).get(path).expect(200);
        assert.deepEqual([...seen], ['/shop/items/:id']);
      });

      it('a sub-app mounted under a parameter gives its mount path, and routers within it theirs', async () => {
        const cache = open();
        const seen = labels(cache);
        const app = framework();
        const tenant = framework();
        const reports = framework.Router();
        reports.get('/:year', expressCache(cache, { ttl: '1m' }), (req, res) => res.json({ year: req.params['year'] }));
        tenant.use('/reports', reports);
        tenant.get('/home', expressCache(cache, { ttl: '1m' }), (_req, res) => res.json({ home: true }));
        app.use('/t/:tenant', tenant);
        for (const path of ['/t/acme/reports/2025', '/t/initech/reports/2026', '/t/acme/home', '/t/initech/HOME']) await request(app).get(path).expect(200);
        // Express 4: a sub-app keeps its mount path, a router none (so its route's path alone, under a parameter).
        assert.deepEqual([...seen].sort(), name === 'express5' ? ['/t/:tenant/home', '/t/:tenant/reports/:year'] : ['/:year', '/t/:tenant/home']);
      });

      it('a router mounted at two paths gives its own path alone (no one mount says which)', async () => {
        const cache = open();
        const seen = labels(cache);
        const app = framework();
        const shared = framework.Router();
        shared.get('/list', expressCache(cache, { ttl: '1m' }), (_req, res) => res.json([]));
        app.use('/a', shared);
        app.use('/b', shared);
        for (const path of ['/a/list', '/b/list']) await request(app).get(path).expect(200);
        assert.deepEqual([...seen], ['/list']);
      });

      it('a router mounted at a RegExp gives its own path alone, never the text that matched (found by helper-69)', async () => {
        const cache = open();
        const seen = labels(cache);
        const app = framework();
        const users = framework.Router();
        users.get('/profile', expressCache(cache, { ttl: '1m' }), (_req, res) => res.json({}));
        app.use(/^\/u\/\d+/, users);
        for (const id of ['1', '22', '333']) await request(app).get(`/u/${id}/profile`).expect(200);
        assert.deepEqual([...seen], ['/profile']);
      });

      it('a route on the app itself gives its path', async () => {
        const cache = open();
        const seen = labels(cache);
        const app = framework();
        app.get('/p/:id', expressCache(cache, { ttl: '1m' }), (req, res) => res.json({ id: req.params['id'] }));
        for (const id of ['1', '2']) await request(app).get(`/p/${id}`).expect(200);
        assert.deepEqual([...seen], ['/p/:id']);
      });
    });
  }
});
