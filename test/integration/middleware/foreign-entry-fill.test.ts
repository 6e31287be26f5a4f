// A fresh entry in Redis that is no HTTP answer the middleware can use (a
// foreign or damaged head) under a request's key: the fill that follows drops
// it from Redis even when it stores nothing itself, holds the fill lock while
// its handler runs (like any other miss, so other instances wait on it rather
// than run their handlers too), and counts one L2 lookup for the request, not
// a hit and a miss. Express 5, one redis-server.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import express from 'express';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { EntryKind } from '../../../src/store/entry.js';
import { encodeEntry } from '../../../src/store/entry-codec.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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
  // One with a TTL (another program's key, a list given an EXPIRE) held off every miss of its key for the whole
  // lockTimeout, again and again until it expired.
  const foreignLocks = [
    ['a string without a TTL', (key: string) => ctx.admin.set(key, 'not-a-token')],
    ['a list', (key: string) => ctx.admin.rpush(key, 'x')],
    ['a string with a TTL', (key: string) => ctx.admin.set(key, 'not-a-token', 'PX', 60_000)],
    ['a hash with a TTL', (key: string) => ctx.admin.multi().hset(key, 'f', 'v').pexpire(key, 60_000).exec()],
    // A lock's token (randomUUID) with no TTL never expires (a restore, a PERSIST): no lock, whatever its shape.
    ['a token-shaped string without a TTL', (key: string) => ctx.admin.set(key, randomUUID())],
    // Only a whole token is one: a string holding one among other text, or of its shape but not hex, is foreign.
    ['a string that ends with a token, with a TTL', (key: string) => ctx.admin.set(key, `session:${randomUUID()}`, 'PX', 60_000)],
    ['a string that begins with a token, with a TTL', (key: string) => ctx.admin.set(key, `${randomUUID()}:session`, 'PX', 60_000)],
    ['a string of a token\'s shape but not hex, with a TTL', (key: string) => ctx.admin.set(key, 'zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz', 'PX', 60_000)],
  ] as const;
  for (const [what, plant] of foreignLocks) {
    it(`takes over a fill lock key that holds ${what}: the miss fills at once, stores, and the key is gone after`, async function () {
      this.timeout(15_000);
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

  for (const [what, plant] of foreignLocks) {
    it(`takes over a data-API fill lock key that holds ${what}: getOrSet loads at once, with no error, and stores`, async function () {
      this.timeout(15_000);
      const cache = await ctx.open({ l2: { lockTimeout: 10_000, commandTimeout: '3s' } });
      const errors: string[] = [];
      cache.on('error', ({ err }) => errors.push(err.message));
      const lockKey = `{${cache.prefix}:d:k}:lock`;
      await plant(lockKey);
      const started = performance.now();
      assert.equal(await cache.getOrSet('k', () => 'loaded', { ttl: '1m' }), 'loaded');
      // A generous bound: the wait this replaces was the whole lockTimeout (10 s).
      assert.ok(performance.now() - started < 5_000, `getOrSet waited ${Math.round(performance.now() - started)} ms on the foreign lock`);
      assert.equal(await ctx.admin.exists(lockKey), 0, 'the lock key is still there after the fill');
      assert.deepEqual(errors, []);
      const other = await ctx.open({ l1: false, l2: { commandTimeout: '3s' } });
      assert.equal(await other.get('k'), 'loaded', 'the value was not stored in Redis');
    });
  }

  it("waits on another instance's lock (its token, with a TTL), and loads once it is released with nothing stored", async () => {
    const [a, b] = [await ctx.open({ l2: { commandTimeout: '3s' } }), await ctx.open({ l2: { commandTimeout: '3s' } })];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const first = a.getOrSet('k', async (ctx) => {
      started();
      await held;
      ctx.skip();
      return 'a';
    });
    await running;
    let bLoads = 0;
    const second = b.getOrSet('k', () => {
      bLoads++;
      return 'b';
    });
    await sleep(300);
    assert.equal(bLoads, 0, "B loaded while A's lock was held");
    release();
    assert.equal(await first, 'a');
    assert.equal(await second, 'b');
    assert.equal(bLoads, 1);
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
