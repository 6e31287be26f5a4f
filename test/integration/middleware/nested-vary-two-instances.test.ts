// Nested layers (an app-wide middleware and a per-route one on the same
// cache), a Vary entry, two instances on one Redis. The app-wide layer reads
// the per-route layer's stale variant from L2 and passes the request on with
// what it read (passOver's readAt); the per-route layer then takes its fill
// lock and stamp without reading again (startFill's `readAt ?? plan.key`).
// That lock must be the variant's, the key every other fill of the variant
// locks: under the base key an instance whose L1 holds the stale variant
// (and so locks the variant's key) fills it at the same time.
import assert from 'node:assert/strict';
import request from 'supertest';
import express from 'express';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('middleware: nested layers, a Vary entry, two instances', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'nested-vary' });

  it('a stale variant the app-wide layer read from L2 is filled once: the per-route layer locks the variant, as the other instance does', async () => {
    let runs = 0;
    const app = (cache: TierCache) => {
      const a = express();
      a.use(expressCache(cache));
      a.get('/api/doc', expressCache(cache, { ttl: 800, staleWhileRevalidate: 0, staleIfError: '1m' }), async (req, res) => {
        const run = ++runs;
        if (run > 1) await sleep(150); // b asks meanwhile; well within the TTL, so that the entry is fresh when it lands
        res.set('vary', 'accept-language').send(`doc ${run} ${req.headers['accept-language']}`);
      });
      return a;
    };
    const open = () => ctx.open({ namespace: ctx.ns, routes: { '/api': '1m' }, l2: { lockTimeout: 3_000 } });
    const a = await ctx.serve(app(await open()));
    const b = await ctx.serve(app(await open()));
    // b fills the variant: its L1 holds it; a's has nothing, so a's app-wide layer reads it from L2.
    assert.equal((await request(b).get('/api/doc').set('accept-language', 'en')).text, 'doc 1 en');
    await sleep(850);
    const fromA = request(a).get('/api/doc').set('accept-language', 'en').then((r) => r.text);
    for (let i = 0; i < 400 && runs < 2; i++) await sleep(5);
    assert.equal(runs, 2, "a's fill did not start");
    const fromB = await request(b).get('/api/doc').set('accept-language', 'en');
    assert.equal(await fromA, 'doc 2 en');
    assert.equal(fromB.text, 'doc 2 en', `b filled the variant a was filling: ${String(fromB.headers['cache-status'])}`);
    assert.equal(runs, 2);
  });
});
