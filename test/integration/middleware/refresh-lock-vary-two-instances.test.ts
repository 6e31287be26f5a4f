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

  /** Per path: handler runs, how many run at once and the most that did. */
  const counts = new Map<string, { runs: number; active: number; peak: number }>();
  const of = (path: string) => counts.get(path) ?? counts.set(path, { runs: 0, active: 0, peak: 0 }).get(path)!;
  beforeEach(() => counts.clear());
  /** /doc... vary on Accept-Language, /plain does not; runs past `firstRuns` (the refreshes) take `slowMs`. */
  function route(cache: TierCache, mw: Parameters<typeof expressCache>[1], firstRuns: number, slowMs: number, cacheControl?: string) {
    const app = express();
    for (const path of ['/doc', '/doc-head-l1', '/doc-head-l2', '/plain']) {
      app.get(path, expressCache(cache, mw), async (req, res) => {
        const c = of(path);
        const run = ++c.runs;
        c.active++;
        c.peak = Math.max(c.peak, c.active);
        if (run > firstRuns) await sleep(slowMs);
        c.active--;
        if (cacheControl !== undefined) res.set('cache-control', cacheControl);
        if (path.startsWith('/doc')) res.set('vary', 'accept-language');
        res.send(`doc ${run} ${req.headers['accept-language']}`);
      });
    }
    return app;
  }
  const until = async (done: () => boolean) => {
    for (let i = 0; i < 400 && !done(); i++) await sleep(5);
  };

  // Beside /doc: the stale variant found by a HEAD (which starts no fill) in x's L1 (/doc-head-l1) or in L2 only
  // (/doc-head-l2, filled by y), and /plain, an entry without Vary: its refresh must go on locking its own key.
  it('origin mode: a no-cache request on one instance waits for the refresh running on the other, of its variant or of an entry without Vary', async () => {
    const open = () => ctx.open({ namespace: ctx.ns, freshness: 'origin', ttl: '1h', l2: { lockTimeout: 3_000 } });
    const cc = 'max-age=1, stale-while-revalidate=60';
    const x = await ctx.serve(route(await open(), {}, 1, 400, cc));
    const y = await ctx.serve(route(await open(), {}, 1, 400, cc));
    const paths = ['/doc', '/doc-head-l1', '/doc-head-l2', '/plain'];
    for (const path of paths) assert.equal((await request(path === '/doc-head-l2' ? y : x).get(path).set('accept-language', 'en')).text, 'doc 1 en');
    await sleep(1_100);
    // Stale; refreshed in the background.
    for (const path of paths) {
      const stale = path.includes('head') ? request(x).head(path) : request(x).get(path);
      assert.match(String((await stale.set('accept-language', 'en')).headers['cache-status']), /hit; ttl=-/);
    }
    await until(() => paths.every((path) => of(path).runs >= 2));
    const fromY = await Promise.all(paths.map((path) => request(y).get(path).set('accept-language', 'en').set('cache-control', 'no-cache')));
    await until(() => paths.every((path) => of(path).active === 0));
    for (const [i, path] of paths.entries()) {
      assert.equal(of(path).runs, 2, `${path}: y filled what x was refreshing: ${String(fromY[i]!.headers['cache-status'])}`);
      assert.equal(fromY[i]!.text, 'doc 2 en');
    }
  });

  it('two instances serving the same stale variant refresh it once', async () => {
    const open = () => ctx.open({ namespace: ctx.ns, l2: { lockTimeout: 3_000 } });
    const mw = { ttl: 300, staleWhileRevalidate: '1m' as const };
    const x = await ctx.serve(route(await open(), mw, 1, 300));
    const y = await ctx.serve(route(await open(), mw, 1, 300));
    assert.equal((await request(x).get('/doc').set('accept-language', 'en')).text, 'doc 1 en');
    await sleep(350);
    assert.equal((await request(x).get('/doc').set('accept-language', 'en')).text, 'doc 1 en');
    await until(() => of('/doc').runs >= 2);
    assert.equal((await request(y).get('/doc').set('accept-language', 'en')).text, 'doc 1 en');
    await sleep(100);
    await until(() => of('/doc').active === 0);
    assert.equal(of('/doc').runs, 2, 'both instances refreshed the same variant');
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
    await until(() => of('/doc').runs >= 4 && of('/doc').active === 0);
    assert.equal(of('/doc').runs, 4);
    assert.equal(of('/doc').peak, 2, "the refresh of one variant waited for the other's");
  });
});
