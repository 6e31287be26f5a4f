// The front door looks up a varied entry in two steps (the Vary manifest,
// then the variant the request selects) and counts nothing until it serves:
// a request it passes on reaches the middleware, which looks again and counts.
// Found by mutation testing: a variant L1 did not hold yet was counted as two
// L1 misses when the second lookup counted (no test for it), and as one L1
// hit too many, the manifest counted by both (a bug, fixed).
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

describe('front door (tiercache/node): L1 counters', () => {
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

  it('counts the same L1 hits for a request for a variant L1 does not hold as without the front door', async () => {
    const hits: number[] = [];
    for (const fronted of [false, true]) {
      const { cache, get } = await moviesApp(fronted);
      await get('fr');
      const before = cache.stats().l1.hits;
      await get('de');
      hits.push(cache.stats().l1.hits - before);
    }
    // Before the fix: 1 without the front door, 2 with it.
    assert.deepEqual(hits, [1, 1], 'L1 hits added by the de request: without, with the front door');
  });

  it('counts the requests it answers itself as the middleware does (a manifest and a variant: two L1 hits each)', async () => {
    const hits: number[] = [];
    for (const fronted of [false, true]) {
      const { cache, get } = await moviesApp(fronted);
      for (let i = 0; i < 3; i++) assert.equal(await get('fr'), 'movies in fr');
      hits.push(cache.stats().l1.hits);
    }
    assert.deepEqual(hits, [4, 4], 'L1 hits after a fill and two hits: without, with the front door');
  });

  it('counts one L1 hit for each request it answers itself for an entry without Vary', async () => {
    const cache = track(createCache({ redis: false, routes: { '/api/genres': '5m' } }));
    const app = express();
    app.use(expressCache(cache));
    app.get('/api/genres', (_req, res) => {
      res.send('genres');
    });
    const base = await listen(front(cache, app));
    for (let i = 0; i < 3; i++) assert.equal(await (await fetch(`${base}/api/genres`)).text(), 'genres');
    assert.equal(cache.stats().l1.hits, 2);
  });
});
