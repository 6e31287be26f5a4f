// A background refresh (stale-while-revalidate) of a Vary entry, two instances
// on one Redis. A foreground fill of a variant locks the variant's key (the
// manifest followed in startFill); the refresh took its lock on the base key,
// the one every variant of the URL shares. So a refresh and a foreground fill
// of the same variant each held a lock of their own and both ran the handler,
// while refreshes of two different variants took the same lock and ran one
// after the other. The refresh now locks the key of the variant it refreshes.
import assert from 'node:assert/strict';
import request from 'supertest';
import express from 'express';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('middleware: a background refresh of a Vary entry locks the variant across instances', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'refresh-lock-vary' });

  /** Handler runs, how many run at once (and the most that did), on a route whose refreshes (runs past `firstRuns`) take `slowMs`. */
  function route(cache: TierCache, mw: Parameters<typeof expressCache>[1], firstRuns: number, slowMs: number, cacheControl?: string) {
    const app = express();
    app.get('/doc', expressCache(cache, mw), async (req, res) => {
      const run = ++counts.runs;
      counts.active++;
      counts.peak = Math.max(counts.peak, counts.active);
      if (run > firstRuns) await sleep(slowMs);
      counts.active--;
      if (cacheControl !== undefined) res.set('cache-control', cacheControl);
      res.set('vary', 'accept-language').send(`doc ${run} ${req.headers['accept-language']}`);
    });
    return app;
  }
  const counts = { runs: 0, active: 0, peak: 0 };
  beforeEach(() => {
    counts.runs = 0;
    counts.active = 0;
    counts.peak = 0;
  });
  const until = async (done: () => boolean) => {
    for (let i = 0; i < 400 && !done(); i++) await sleep(5);
  };

  it('origin mode: a no-cache request on one instance waits for the refresh of its variant running on the other', async () => {
    const open = () => ctx.open({ namespace: ctx.ns, freshness: 'origin', ttl: '1h', l2: { lockTimeout: 3_000 } });
    const cc = 'max-age=1, stale-while-revalidate=60';
    const x = await ctx.serve(route(await open(), {}, 1, 400, cc));
    const y = await ctx.serve(route(await open(), {}, 1, 400, cc));
    assert.equal((await request(x).get('/doc').set('accept-language', 'en')).text, 'doc 1 en');
    await sleep(1_100);
    assert.equal((await request(x).get('/doc').set('accept-language', 'en')).text, 'doc 1 en'); // stale; refreshed in the background
    await until(() => counts.runs >= 2);
    assert.equal(counts.runs, 2, "x's refresh did not start");
    const fromY = await request(y).get('/doc').set('accept-language', 'en').set('cache-control', 'no-cache');
    await until(() => counts.active === 0);
    assert.equal(counts.runs, 2, `y filled the variant x was refreshing: ${String(fromY.headers['cache-status'])}`);
    assert.equal(fromY.text, 'doc 2 en');
  });

  it('two instances serving the same stale variant refresh it once', async () => {
    const open = () => ctx.open({ namespace: ctx.ns, l2: { lockTimeout: 3_000 } });
    const mw = { ttl: 300, staleWhileRevalidate: '1m' as const };
    const x = await ctx.serve(route(await open(), mw, 1, 300));
    const y = await ctx.serve(route(await open(), mw, 1, 300));
    assert.equal((await request(x).get('/doc').set('accept-language', 'en')).text, 'doc 1 en');
    await sleep(350);
    assert.equal((await request(x).get('/doc').set('accept-language', 'en')).text, 'doc 1 en');
    await until(() => counts.runs >= 2);
    assert.equal((await request(y).get('/doc').set('accept-language', 'en')).text, 'doc 1 en');
    await sleep(100);
    await until(() => counts.active === 0);
    assert.equal(counts.runs, 2, 'both instances refreshed the same variant');
  });

  it('two instances refresh two variants of one URL at the same time', async () => {
    const open = () => ctx.open({ namespace: ctx.ns, l2: { lockTimeout: 3_000 } });
    const mw = { ttl: 300, staleWhileRevalidate: '1m' as const };
    const x = await ctx.serve(route(await open(), mw, 2, 300));
    const y = await ctx.serve(route(await open(), mw, 2, 300));
    assert.equal((await request(x).get('/doc').set('accept-language', 'en')).text, 'doc 1 en');
    assert.equal((await request(x).get('/doc').set('accept-language', 'fr')).text, 'doc 2 fr');
    await sleep(350);
    assert.equal((await request(x).get('/doc').set('accept-language', 'en')).text, 'doc 1 en');
    assert.equal((await request(y).get('/doc').set('accept-language', 'fr')).text, 'doc 2 fr');
    await until(() => counts.runs >= 4 && counts.active === 0);
    assert.equal(counts.runs, 4);
    assert.equal(counts.peak, 2, "the refresh of one variant waited for the other's");
  });
});
