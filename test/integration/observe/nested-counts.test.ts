// With the cache app-wide and on a route (DESIGN §3: the per-route one
// decides, the outer one stands down), one request is one outcome in the
// events and stats() (found by helper-66: the outer layer counted its miss,
// L1 miss or bypass before the route's layer stood it down, and the route's
// counted again: 14 outcomes for 8 requests). Compared with each answer's
// Cache-Status, with the route's layer alone as the reference.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Counts {
  results: Record<string, number>;
  runs: number;
  statuses: string[];
  /** stats().l1.misses after each step. */
  l1Misses: number[];
}

async function drive(cache: TierCache, both: boolean): Promise<Counts> {
  const results: Record<string, number> = {};
  const count = (name: string) => (results[name] = (results[name] ?? 0) + 1);
  cache.on('hit', () => count('hit'));
  cache.on('miss', (e) => count(e.collapsed === true ? 'collapsed' : 'miss'));
  cache.on('bypass', (e) => count(`bypass:${e.reason}`));
  const app = express();
  if (both) app.use(expressCache(cache));
  let runs = 0;
  app.get('/api/x', expressCache(cache, { ttl: '1m' }), async (_req, res) => {
    runs++;
    await sleep(150);
    res.json({ n: runs });
  });
  const statuses: string[] = [];
  const l1Misses: number[] = [];
  const ask = async (path: string, headers: Record<string, string> = {}, method: 'get' | 'head' = 'get') => {
    const res = await request(app)[method](path).set(headers);
    statuses.push(String(res.headers['cache-status']));
  };
  const steps = [
    () => ask('/api/x'), // a miss, stored
    () => ask('/api/x'), // a hit
    () => ask('/api/x', {}, 'head'), // a hit (HEAD from the GET entry)
    () => ask('/api/x', { authorization: 'Bearer a' }), // a bypass
    () => ask('/api/x', {}, 'head'), // still a hit
    () => ask('/api/x?h=1', {}, 'head'), // a miss that stores nothing (HEAD)
    () => ask('/api/x?n=1', { 'cache-control': 'no-store' }), // a miss that stores nothing
    () => Promise.all([1, 2, 3, 4].map(() => ask('/api/x?c=1'))), // one miss, three collapsed
  ];
  for (const step of steps) {
    await step();
    l1Misses.push(cache.stats().l1.misses);
  }
  return { results, runs, statuses, l1Misses };
}

describe('events and stats(): one outcome per request with the cache app-wide and on the route', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'nested-counts' });

  for (const tiers of ['L1', 'L1+L2'] as const) {
    it(`${tiers}: the same counts as the route's layer alone`, async () => {
      const open = (suffix: string) => ctx.open({ namespace: `${ctx.ns}-${suffix}`, routes: { '/api': '1m' }, ...(tiers === 'L1' ? { redis: false } : {}) });
      const alone = await open('alone');
      const nested = await open('nested');
      const reference = await drive(alone, false);
      const seen = await drive(nested, true);
      assert.deepEqual(seen.statuses.slice(0, 7), reference.statuses.slice(0, 7));
      assert.deepEqual(seen.statuses.slice(7).sort(), reference.statuses.slice(7).sort());
      assert.deepEqual(reference.results, { miss: 4, hit: 3, 'bypass:authorization': 1, collapsed: 3 });
      assert.deepEqual(seen.results, reference.results);
      assert.equal(seen.runs, reference.runs);
      const [a, b] = [alone.stats(), nested.stats()];
      assert.deepEqual({ coalesced: b.coalesced, bypasses: b.bypasses, fills: b.fills }, { coalesced: a.coalesced, bypasses: a.bypasses, fills: a.fills });
      // With Redis, a HEAD, a no-store request and a waiter look L1 up in the outer layer (not as a fill
      // does) before the route's layer counts them again: that layer's L1 miss is taken back too (it was
      // counted twice: 12 for 7). Step by step, so a difference names the request. l2 counts every Redis
      // lookup: both layers make theirs.
      assert.deepEqual(seen.l1Misses, reference.l1Misses);
      assert.equal(b.l1.misses, a.l1.misses);
    });
  }

  it("a 'miss' or 'bypass' listener that throws is reported; the request is answered once, by its handler (found by helper-71)", async () => {
    const cache = await ctx.open({ namespace: `${ctx.ns}-throwing`, redis: false, routes: { '/api': '1m' } });
    const errors: string[] = [];
    cache.on('error', (e) => errors.push(`${e.where}: ${e.err.message}`));
    cache.on('miss', () => {
      throw new Error('miss listener bug');
    });
    cache.on('bypass', () => {
      throw new Error('bypass listener bug');
    });
    const app = express();
    app.use(expressCache(cache));
    let runs = 0;
    let afterAnswer = 0;
    app.get('/api/x', async (_req, res) => {
      runs++;
      await sleep(20);
      if (res.headersSent) afterAnswer++;
      else res.json({ ok: true });
    });
    app.use((_err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => void res.status(500).end('error handler'));
    for (const headers of [{}, { authorization: 'Bearer a' }]) {
      const res = await request(app).get('/api/x').set(headers);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { ok: true });
    }
    await sleep(50);
    assert.equal(runs, 2);
    assert.equal(afterAnswer, 0, 'the handler found its request answered already');
    assert.deepEqual(errors, ['middleware: miss listener bug', 'middleware: bypass listener bug']);
  });
});
