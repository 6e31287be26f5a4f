// A fresh entry in Redis that is no HTTP answer the middleware can use (a
// foreign or damaged head) under a request's key: the fill that follows drops
// it from Redis even when it stores nothing itself, holds the fill lock while
// its handler runs (like any other miss, so other instances wait on it rather
// than run their handlers too), and counts one L2 lookup for the request, not
// a hit and a miss. Express 5, one redis-server.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { EntryKind } from '../../../src/store/entry.js';
import { encodeEntry } from '../../../src/store/entry-codec.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';

describe('middleware: a fill over a foreign L2 entry', function () {
  const ctx = useRedisCaches({ prefix: 'foreign' });

  /** Plants, under the key of GET `path`, a fresh entry whose head no HTTP answer has (status 1000). */
  async function plantForeign(cache: TierCache, path: string): Promise<string> {
    const key = cache.keyFor({ method: 'GET', url: path, headers: {} });
    const epoch = Number(await ctx.admin.get(`{${cache.prefix}}:epoch`));
    assert.ok(Number.isFinite(epoch) && epoch > 0, `no epoch in Redis: ${epoch}`);
    const now = Date.now();
    const entry = encodeEntry({
      kind: EntryKind.Http,
      createdAt: now,
      freshUntil: now + 60_000,
      staleUntil: now + 60_000,
      epoch,
      tags: [],
      versions: [],
      head: Buffer.from(JSON.stringify({ s: 1000, h: [] })),
      body: Buffer.from('foreign'),
    });
    await ctx.admin.set(key, entry, 'PX', 60_000);
    return key;
  }

  it('drops the foreign entry from Redis although the handler answers 500 (nothing stored), and holds the fill lock while the handler runs', async () => {
    const cache = await ctx.open({ ttl: '1m' });
    const key = await plantForeign(cache, '/doc');
    let lockHeld: number | undefined;
    const app = express();
    app.get('/doc', expressCache(cache), async (_req, res) => {
      lockHeld = await ctx.admin.exists(`{${key}}:lock`);
      res.status(500).send('upstream failed');
    });
    const r = await request(app).get('/doc');
    assert.equal(r.status, 500);
    assert.equal(r.text, 'upstream failed');
    assert.equal(lockHeld, 1, 'the fill lock was not held while the handler ran');
    await eventually(async () => (await ctx.admin.exists(key)) === 0, 'the foreign entry is gone from Redis');
    await eventually(async () => (await ctx.admin.exists(`{${key}}:lock`)) === 0, 'the lock is released after the fill');
  });

  it('drops a key of another type (a list) under the request key from Redis although the handler stores nothing, holds the fill lock meanwhile, and reports no error', async () => {
    const cache = await ctx.open({ ttl: '1m' });
    const errors: string[] = [];
    cache.on('error', ({ err }) => errors.push(err.message));
    const key = cache.keyFor({ method: 'GET', url: '/doc', headers: {} });
    await ctx.admin.rpush(key, 'a', 'b');
    let lockHeld: number | undefined;
    const app = express();
    app.get('/doc', expressCache(cache), async (_req, res) => {
      lockHeld = await ctx.admin.exists(`{${key}}:lock`);
      res.status(500).send('upstream failed');
    });
    const r = await request(app).get('/doc');
    assert.equal(r.status, 500);
    assert.equal(lockHeld, 1, 'the fill lock was not held while the handler ran');
    await eventually(async () => (await ctx.admin.exists(key)) === 0, 'the list is still in Redis');
    assert.deepEqual(errors, []);
  });

  // A lock key without a TTL (foreign data, a restore) was never taken over: every miss of its
  // key waited the whole lockTimeout, for good (found by a hostile review).
  for (const [what, plant] of [
    ['a string without a TTL', (key: string) => ctx.admin.set(key, 'not-a-token')],
    ['a list', (key: string) => ctx.admin.rpush(key, 'x')],
  ] as const) {
    it(`takes over a fill lock key that holds ${what}: the miss fills at once, stores, and the key is gone after`, async () => {
      const cache = await ctx.open({ ttl: '1m', l2: { lockTimeout: 10_000 } });
      const key = cache.keyFor({ method: 'GET', url: '/doc', headers: {} });
      await plant(`{${key}}:lock`);
      let runs = 0;
      const app = express();
      app.get('/doc', expressCache(cache), (_req, res) => void res.send(`fresh ${++runs}`));
      const started = performance.now();
      const r = await request(app).get('/doc');
      // A generous bound: the wait this replaces was the whole lockTimeout (10 s).
      assert.ok(performance.now() - started < 5_000, `the miss waited ${Math.round(performance.now() - started)} ms on the foreign lock`);
      assert.equal(r.text, 'fresh 1');
      assert.match(String(r.headers['cache-status']), /stored/);
      await eventually(async () => (await ctx.admin.exists(`{${key}}:lock`)) === 0, 'the lock key is released after the fill');
    });
  }

  it('takes over a data-API fill lock without a TTL: getOrSet loads at once', async () => {
    const cache = await ctx.open({ l2: { lockTimeout: 10_000 } });
    await ctx.admin.set(`{${cache.prefix}:d:k}:lock`, 'stale');
    const started = performance.now();
    assert.equal(await cache.getOrSet('k', () => 'loaded', { ttl: '1m' }), 'loaded');
    assert.ok(performance.now() - started < 5_000, `getOrSet waited ${Math.round(performance.now() - started)} ms on the foreign lock`);
    assert.equal(await ctx.admin.exists(`{${cache.prefix}:d:k}:lock`), 0);
  });

  it('counts one L2 lookup for the request that found the foreign entry (a hit of the store, never also a miss)', async () => {
    const cache = await ctx.open({ ttl: '1m' });
    await plantForeign(cache, '/doc');
    const app = express();
    app.get('/doc', expressCache(cache), (_req, res) => void res.send('fresh'));
    const r = await request(app).get('/doc');
    assert.equal(r.text, 'fresh');
    const { hits, misses } = cache.stats().l2;
    assert.equal(hits + misses, 1, `one request, one L2 lookup: ${hits} hits, ${misses} misses`);
  });
});
