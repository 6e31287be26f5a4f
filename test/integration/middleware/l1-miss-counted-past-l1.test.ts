// Why this test exists: a request that looks past L1 without starting a fill
// (a HEAD, or a request that says no-store) goes through find(), whose L1
// lookup is the one that counts the L1 miss (lookupL1's countMiss defaults to
// true). Nothing else checked that count on this path, so a lookup that no
// longer counted its misses went unnoticed: stats().l1.misses would stay 0
// while every such request missed L1. One redis-server, real L2.
import assert from 'node:assert/strict';
import request from 'supertest';
import express from 'express';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

describe('middleware: an L1 miss of a lookup that starts no fill is counted', function () {
  const redisCaches = useRedisCaches({ prefix: 'l1-miss-past-l1' });

  async function instance() {
    const cache = await redisCaches.open({ ttl: '1m', namespace: redisCaches.ns });
    const app = express();
    let runs = 0;
    app.get('/hi', expressCache(cache), (_req, res) => {
      runs++;
      res.send('hello');
    });
    return { cache, app, runs: () => runs };
  }

  it('a HEAD that finds nothing in L1 (nor in L2) counts one L1 miss', async () => {
    const { cache, app, runs } = await instance();
    const r = await request(app).head('/hi');
    assert.equal(r.status, 200);
    assert.equal(runs(), 1);
    assert.equal(cache.stats().l1.hits, 0);
    assert.equal(cache.stats().l1.misses, 1);
  });

  it('a no-store request served from L2 on an instance whose L1 never saw it counts one L1 miss and one L2 hit', async () => {
    const a = await instance();
    const b = await instance();
    assert.equal((await request(a.app).get('/hi')).text, 'hello');
    const r = await request(b.app).get('/hi').set('Cache-Control', 'no-store');
    assert.equal(r.text, 'hello');
    assert.equal(b.runs(), 0);
    assert.deepEqual([b.cache.stats().l1.misses, b.cache.stats().l2.hits], [1, 1]);
  });
});
