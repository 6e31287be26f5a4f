// A stale entry that this instance still has in L1, with Redis (L2) beside it:
// the L1 look found it (an L1 hit, not a miss), a request that starts no fill
// (HEAD) does not look it up again, and when Redis no longer has the entry the
// stale L1 copy is still what stale-if-error falls back on. Also: a request
// whose answer is not stored says nothing in Cache-Status with cacheStatus:
// false, and a failed lookup is logged with what failed. Each was left
// unchecked by the other tests (mutation testing: http-cache.ts serveOrFill,
// unstored). Express, real redis-server.
import assert from 'node:assert/strict';
import request from 'supertest';
import express from 'express';
import { createCache, type CacheOptions, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import type { ExpressCacheOptions } from '../../../src/middleware/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
let counter = 0;

describe('middleware: a stale entry in L1, with Redis', function () {
  const ctx = useRedisCaches({ prefix: 'stale-l1-redis' });

  /** Route /r: fresh for 100 ms, kept a minute for stale-if-error; `fail(run)` answers 500. */
  function app(cache: TierCache, fail: (run: number) => boolean = () => false, options: ExpressCacheOptions = {}) {
    const a = express();
    let runs = 0;
    a.get('/r', expressCache(cache, { ttl: 100, staleIfError: '1m', ...options }), (_req, res) => {
      runs++;
      if (fail(runs)) res.status(500).send('failed');
      else res.send(`run ${runs}`);
    });
    return { app: a, runs: () => runs };
  }
  const open = (options: CacheOptions = {}) => ctx.open({ namespace: ctx.ns, ...options });

  it('a GET that finds the stale L1 entry counts an L1 hit, and no L1 miss (and reports no error)', async () => {
    const cache = await open();
    const errors: string[] = [];
    cache.on('error', ({ err, where }) => errors.push(`${where}: ${err.message}`));
    const { app: a, runs } = app(cache);
    assert.equal((await request(a).get('/r')).text, 'run 1');
    assert.equal(cache.stats().l1.misses, 1);
    await sleep(150);
    assert.equal((await request(a).get('/r')).text, 'run 2');
    assert.equal(runs(), 2);
    assert.deepEqual([cache.stats().l1.hits, cache.stats().l1.misses], [1, 1], 'the stale L1 entry was counted as an L1 miss too');
    assert.deepEqual(errors, []);
  });

  it('a HEAD that finds the stale L1 entry looks it up once (one L1 hit)', async () => {
    const cache = await open();
    const { app: a, runs } = app(cache);
    assert.equal((await request(a).get('/r')).text, 'run 1');
    await sleep(150);
    assert.equal((await request(a).head('/r')).status, 200);
    assert.equal(runs(), 2);
    assert.equal(cache.stats().l1.hits, 1, 'the stale L1 entry was looked up twice');
  });

  it('with the entry gone from Redis, stale-if-error still answers a 5xx with the stale L1 copy', async () => {
    const cache = await open();
    const { app: a, runs } = app(cache, (run) => run > 1);
    assert.equal((await request(a).get('/r')).text, 'run 1');
    const keys = (await ctx.admin.keys(`${ctx.ns}*`)).filter((k) => k.includes('/r'));
    assert.ok(keys.length > 0, 'no entry in Redis');
    await ctx.admin.del(...keys);
    await sleep(150);
    const r = await request(a).get('/r');
    assert.equal(runs(), 2);
    assert.equal(r.status, 200, `answered ${r.status} ${r.text}`);
    assert.equal(r.text, 'run 1');
    assert.equal(r.headers['cache-status'], 'tiercache; hit; ttl=-1; detail=L1');
  });

  it('with cacheStatus: false, an answer the cache does not store (HEAD) carries no Cache-Status', async () => {
    const cache = ctx.track(createCache({ namespace: `${ctx.ns}-${++counter}`, redis: false }));
    const quiet = app(cache, () => false, { cacheStatus: false });
    const r = await request(quiet.app).head('/r');
    assert.equal(r.status, 200);
    assert.equal(r.headers['cache-status'], undefined);
    const said = app(cache);
    assert.equal((await request(said.app).head('/r')).headers['cache-status'], 'tiercache; fwd=miss; detail=head');
  });

  it("a lookup that fails (the tags option throws) is logged as the lookup's failure", async () => {
    const warnings: string[] = [];
    const logger = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (_o: object, msg?: string) => void warnings.push(String(msg)) };
    const cache = await open({ logger });
    const { app: a, runs } = app(cache, () => false, {
      tags: () => {
        throw new Error('tags failed');
      },
    });
    assert.equal((await request(a).get('/r')).text, 'run 1');
    assert.equal(runs(), 1);
    assert.ok(warnings.includes('tiercache: cache lookup failed; running the handler'), JSON.stringify(warnings));
  });
});
