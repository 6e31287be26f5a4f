// `stored` (Cache-Status), the 'store' event and its `tiers` say what a tier
// really kept (found by helper-66): with Redis down, an answer nothing could
// be hit from (no L1, or an L1 not trusted until the pub/sub connection is
// back) is not stored, and says why; with Redis up, an answer L1 refused is
// stored in L2 alone, and the event says so.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import type { CacheOptions, TierCache, TierCacheEvents } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('stored claims: what a tier really kept', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'claims', serverPerTest: true, defaults: { l2: { commandTimeout: 300 } } });

  const open = async (options: Partial<CacheOptions>) => {
    const cache = await ctx.open(options);
    cache.on('error', () => undefined);
    const stores: Array<TierCacheEvents['store']['tiers']> = [];
    cache.on('store', (e) => stores.push(e.tiers));
    return { cache, stores };
  };
  const appFor = (cache: TierCache, bytes: number) => express().get('/api/x', expressCache(cache, { ttl: '1m' }), (_req, res) => res.type('text').send('x'.repeat(bytes)));
  const redisDown = async (cache: TierCache) => {
    await ctx.redis.stop();
    const deadline = Date.now() + 10_000;
    while (cache.health().l2 !== 'down') {
      if (Date.now() > deadline) throw new Error('L2 never went down');
      await sleep(20);
    }
  };

  it('no L1 and Redis down: not stored, detail=unreachable, no store event', async () => {
    const { cache, stores } = await open({ l1: false });
    const app = appFor(cache, 1000);
    assert.equal((await request(app).get('/api/x?up=1')).headers['cache-status'], 'tiercache; fwd=miss; stored');
    assert.deepEqual(stores, [['L2']]);
    await redisDown(cache);
    for (let i = 0; i < 2; i++) assert.equal((await request(app).get('/api/x?down=1')).headers['cache-status'], 'tiercache; fwd=miss; detail=unreachable');
    assert.deepEqual(stores, [['L2']], 'a store event while nothing could keep the answer');
    assert.equal(cache.stats().fills, 1);
  });

  it('L1 and Redis down: not stored either (L1 is not trusted while the pub/sub connection is down), detail=unreachable', async () => {
    const { cache, stores } = await open({ l1: { maxBytes: 64 * 1024 } });
    await redisDown(cache);
    // Over l1.maxBytes, L1 could not take it in any case: said first.
    for (const [bytes, detail] of [
      [1000, 'unreachable'],
      [200 * 1024, 'too-large'],
    ] as const) {
      const app = appFor(cache, bytes);
      for (let i = 0; i < 2; i++) assert.equal((await request(app).get(`/api/x?down=${bytes}`)).headers['cache-status'], `tiercache; fwd=miss; detail=${detail}`);
    }
    assert.deepEqual(stores, []);
    assert.equal(cache.stats().l1.entries, 0);
  });

  it('Redis up: an answer L1 refused is stored in L2 alone, and the event says so (HTTP and data API)', async () => {
    const { cache, stores } = await open({ l1: { maxBytes: 64 * 1024 } });
    const app = appFor(cache, 200 * 1024);
    assert.equal((await request(app).get('/api/x?big=1')).headers['cache-status'], 'tiercache; fwd=miss; stored');
    assert.equal((await request(app).get('/api/x?big=1')).headers['cache-status'], 'tiercache; hit; detail=L2');
    await cache.set('big', 'y'.repeat(200 * 1024));
    await cache.set('small', 'y');
    assert.deepEqual(stores, [['L2'], ['L2'], ['L1', 'L2']]);
  });
});
