// A fill past its deadline no longer holds later requests (fill-past-deadline.test.ts),
// also where the later request found a stale entry and so reaches fill() by
// way of serveOrFill, not fillLocally: it runs and stores a fill of its own
// instead of joining the late one and running the handler uncached ("waited").
// Written for http-cache.ts fill()'s `running.deadline > coarseNow()` (-> true).
// Waits past one deadline (3 s and a little more). Express, L1 only.
import assert from 'node:assert/strict';
import request from 'supertest';
import express from 'express';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { COALESCE_WAIT_MS } from '../../../src/middleware/http-cache.js';
import { useRedisCaches } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('middleware: a fill past its deadline, with a stale entry', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'fill-past-deadline-stale' });

  it('the request after the deadline fills and stores, it does not wait on the late fill', async () => {
    const cache = ctx.track(createCache({ namespace: `${ctx.ns}-1`, redis: false }));
    let runs = 0;
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const app = express();
    app.get('/r', expressCache(cache, { ttl: 100, staleIfError: '1m' }), async (_req, res) => {
      const run = ++runs;
      if (run === 2) await held; // the first refill runs past its deadline
      res.send(`run ${run}`);
    });
    const server = await ctx.serve(app);
    assert.equal((await request(server).get('/r')).text, 'run 1');
    await sleep(150); // stale now, within stale-if-error
    const late = request(server).get('/r').then((r) => r);
    for (let i = 0; i < 200 && runs < 2; i++) await sleep(5);
    await sleep(COALESCE_WAIT_MS + 150);
    const after = await request(server).get('/r');
    assert.equal(after.text, 'run 3');
    assert.doesNotMatch(String(after.headers['cache-status']), /waited/);
    const again = await request(server).get('/r');
    assert.equal(again.text, 'run 3', 'the request after the deadline stored nothing');
    release();
    await late;
  });
});

describe('middleware: a request that may not be stored, with a stale entry', () => {
  const ctx = useRedisCaches({ prefix: 'no-store-stale' });

  it("says why it stored nothing: the request's no-store, not HEAD", async () => {
    // Written for http-cache.ts fill()'s `req.method === 'HEAD' ? 'head' : 'request-no-store'` (-> always 'head'):
    // with a stale entry the request reaches fill() by way of serveOrFill.
    const cache = ctx.track(createCache({ namespace: `${ctx.ns}-1`, redis: false }));
    let runs = 0;
    const app = express();
    app.get('/r', expressCache(cache, { ttl: 100, staleIfError: '1m' }), (_req, res) => {
      res.send(`run ${++runs}`);
    });
    const server = await ctx.serve(app);
    assert.equal((await request(server).get('/r')).text, 'run 1');
    await sleep(150);
    const r = await request(server).get('/r').set('Cache-Control', 'no-store');
    assert.equal(r.text, 'run 2');
    assert.match(String(r.headers['cache-status']), /detail=request-no-store/);
  });
});
