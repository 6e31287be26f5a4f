// Origin mode (freshness: 'origin') past the first L1 look: which tier a
// fresh entry is said to come from, what a miss event says, a forced refresh
// over its rate limit, only-if-cached with and without Cache-Status,
// stale-while-revalidate from the response, and stale-if-error for an entry
// without validators. Each case was left unchecked by the other origin tests
// (mutation testing: http-cache.ts handle() / serveOrFill() / serveOrigin()).
// Express, its ETag off so that the handler decides whether there are validators.
import assert from 'node:assert/strict';
import request from 'supertest';
import express from 'express';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import type { ExpressCacheOptions } from '../../../src/middleware/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

const HIT_L1 = 'tiercache; hit; detail=L1';
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
let counter = 0;

describe('middleware: origin-mode paths past the first L1 look', function () {
  const ctx = useRedisCaches({ prefix: 'origin-paths' });

  /** One route /r in origin mode; `reply(run)` sets the response's fields and status, the body is `run N`. */
  function app(cache: TierCache, reply: (res: express.Response, run: number) => void, options: ExpressCacheOptions = {}) {
    const a = express();
    a.set('etag', false);
    let runs = 0;
    a.get('/r', expressCache(cache, { ttl: '1m', freshness: 'origin', ...options }), (_req, res) => {
      runs++;
      reply(res, runs);
      if (res.statusCode === 200) res.send(`run ${runs}`);
      else res.send('failed');
    });
    return { app: a, runs: () => runs };
  }
  const l1Only = () => ctx.track(createCache({ namespace: `${ctx.ns}-${++counter}`, redis: false }));

  it('with Redis, a fresh entry in L1 is an L1 hit: Redis is not asked', async () => {
    const cache = await ctx.open({ namespace: ctx.ns });
    const { app: a, runs } = app(cache, (res) => res.set('Cache-Control', 'max-age=600'));
    assert.equal((await request(a).get('/r')).text, 'run 1');
    const hit = await request(a).get('/r');
    assert.equal(hit.text, 'run 1');
    assert.equal(hit.headers['cache-status'], HIT_L1);
    assert.equal(runs(), 1);
    assert.equal(cache.stats().l2.hits, 0, 'the fresh L1 entry was looked up in Redis too');
  });

  it('with Redis, the miss event of a first request does not say collapsed (it waited on no other fill)', async () => {
    const cache = await ctx.open({ namespace: ctx.ns });
    const misses: unknown[] = [];
    cache.on('miss', (e) => misses.push(e));
    const { app: a } = app(cache, (res) => res.set('Cache-Control', 'max-age=600'));
    assert.equal((await request(a).get('/r')).text, 'run 1');
    assert.equal(misses.length, 1);
    assert.equal((misses[0] as { collapsed?: boolean }).collapsed, undefined, JSON.stringify(misses[0]));
  });

  it('a forced refresh (request no-cache) over the rate limit is answered from L1 as a hit', async () => {
    const cache = l1Only();
    const { app: a, runs } = app(cache, (res) => res.set('Cache-Control', 'max-age=600'), { requestDirectives: { forcedRefreshInterval: '1m' } });
    assert.equal((await request(a).get('/r')).text, 'run 1');
    assert.equal((await request(a).get('/r').set('Cache-Control', 'no-cache')).text, 'run 2', 'the first forced refresh runs the handler');
    const limited = await request(a).get('/r').set('Cache-Control', 'no-cache');
    assert.equal(limited.text, 'run 2');
    assert.equal(limited.headers['cache-status'], HIT_L1);
    assert.equal(runs(), 2);
  });

  it('with Redis, a forced refresh over the rate limit is an L1 hit too: Redis is not asked', async () => {
    const cache = await ctx.open({ namespace: ctx.ns, l2: { commandTimeout: '3s' } });
    const { app: a, runs } = app(cache, (res) => res.set('Cache-Control', 'max-age=600'), { requestDirectives: { forcedRefreshInterval: '1m' } });
    assert.equal((await request(a).get('/r')).text, 'run 1');
    assert.equal((await request(a).get('/r').set('Cache-Control', 'no-cache')).text, 'run 2', 'the first forced refresh runs the handler');
    const before = cache.stats().l2;
    // Each used to look the key up in Redis, taking its fill lock, only to be answered with the entry L1 held.
    for (const cc of ['no-cache', 'max-age=0', 'min-fresh=3600']) {
      const limited = await request(a).get('/r').set('Cache-Control', cc);
      assert.equal(limited.text, 'run 2');
      assert.equal(limited.headers['cache-status'], HIT_L1, cc);
    }
    const after = cache.stats().l2;
    assert.equal(after.hits + after.misses, before.hits + before.misses, 'a refresh the limit refused asked Redis');
    assert.equal(runs(), 2);
  });

  it('only-if-cached with nothing stored: 504, Cache-Status says why, and says nothing with cacheStatus: false', async () => {
    const cache = l1Only();
    const said = app(cache, (res) => res.set('Cache-Control', 'max-age=600'));
    const r = await request(said.app).get('/r').set('Cache-Control', 'only-if-cached');
    assert.equal(r.status, 504);
    // Nothing went forward (RFC 9211 §2.2: no fwd), nor was anything served from the cache (no hit).
    assert.equal(r.headers['cache-status'], 'tiercache; detail=only-if-cached');
    const quiet = app(cache, (res) => res.set('Cache-Control', 'max-age=600'), { cacheStatus: false });
    const q = await request(quiet.app).get('/r').set('Cache-Control', 'only-if-cached');
    assert.equal(q.status, 504);
    assert.equal(q.headers['cache-status'], undefined);
    assert.equal(said.runs() + quiet.runs(), 0);
  });

  it("the response's stale-while-revalidate: a stale entry is served at once and refreshed in the background", async () => {
    const cache = l1Only();
    const { app: a, runs } = app(cache, (res) => res.set('Cache-Control', 'max-age=0, stale-while-revalidate=60'));
    assert.equal((await request(a).get('/r')).text, 'run 1');
    await sleep(20);
    const stale = await request(a).get('/r');
    assert.equal(stale.text, 'run 1');
    assert.equal(stale.headers['cache-status'], 'tiercache; hit; ttl=-1; detail=L1');
    for (let i = 0; i < 200 && runs() < 2; i++) await sleep(10);
    assert.equal(runs(), 2, 'the background refresh did not run');
  });

  it("the response's stale-if-error without validators: a 5xx within the window is answered with the stale entry", async () => {
    const cache = l1Only();
    const { app: a, runs } = app(cache, (res, run) => {
      if (run === 1) res.set('Cache-Control', 'max-age=0, stale-if-error=60');
      else res.status(500);
    });
    assert.equal((await request(a).get('/r')).text, 'run 1');
    await sleep(20);
    const r = await request(a).get('/r');
    assert.equal(r.status, 200);
    assert.equal(r.text, 'run 1');
    assert.match(String(r.headers['cache-status']), /^tiercache; hit; ttl=-1; detail=L1$/);
    assert.equal(runs(), 2);
  });
});
