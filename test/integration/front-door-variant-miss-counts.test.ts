// Why this test exists: the front door looks up a varied entry in two steps
// (the Vary manifest, then the variant the request selects) and must count
// neither step's miss itself: the middleware behind it looks again and counts.
// A variant L1 does not hold yet was counted as two L1 misses when the second
// lookup counted (mutation testing found no test for it).
import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createCache, type TierCache } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { front } from '../../src/node.js';
import { useCleanup } from '../support/cache-context.js';

const { track, serve } = useCleanup();

async function listen(handler: RequestListener): Promise<string> {
  const server = await serve(handler);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** An Express app caching /api/movies, whose answer varies on Accept-Language; behind the front door or not. */
async function moviesApp(fronted: boolean): Promise<{ cache: TierCache; get: (language: string) => Promise<string> }> {
  const cache = track(createCache({ redis: false, routes: { '/api/movies': '5m' } }));
  const app = express();
  app.use(expressCache(cache));
  app.get('/api/movies', (req, res) => {
    res.set('Vary', 'Accept-Language').send(`movies in ${req.header('accept-language')}`);
  });
  const base = await listen(fronted ? front(cache, app) : app);
  const get = async (language: string) => (await fetch(`${base}/api/movies`, { headers: { 'accept-language': language } })).text();
  return { cache, get };
}

describe('front door (tiercache/node): L1 counters for a varied entry', () => {
  it('counts a request for a variant L1 does not hold as one L1 miss, as without the front door', async () => {
    const counts: Array<[number, number]> = [];
    for (const fronted of [false, true]) {
      const { cache, get } = await moviesApp(fronted);
      assert.equal(await get('fr'), 'movies in fr');
      const before = cache.stats().l1.misses;
      // The manifest is in L1, the 'de' variant is not.
      assert.equal(await get('de'), 'movies in de');
      counts.push([before, cache.stats().l1.misses - before]);
    }
    assert.deepEqual(counts[1], counts[0], 'L1 misses [before, added by the de request]: with the front door vs without');
    assert.equal(counts[1]![1], 1, 'the de request added one L1 miss');
  });
});
