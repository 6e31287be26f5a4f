// The front door looks entries up in L1 without counting them: a request it
// passes on (here: the variant it selects is not in L1 yet) reaches the
// middleware, which finds the same Vary manifest and counts it. Counting in
// both places gave one L1 hit too many per such request. Found by mutation
// testing (a survivor in node.ts's lookups).
import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createCache } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { front } from '../../src/node.js';
import { useCleanup } from '../support/cache-context.js';

const { track, serve } = useCleanup();

async function listen(handler: RequestListener): Promise<string> {
  const server = await serve(handler);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('front door (tiercache/node): L1 hit counts', () => {
  it('counts the same L1 hits for a request for a variant L1 does not hold as without the front door', async () => {
    const stats: Array<{ hits: number; misses: number }> = [];
    for (const fronted of [false, true]) {
      const cache = track(createCache({ redis: false, routes: { '/api/movies': '5m' } }));
      const app = express();
      app.use(expressCache(cache));
      app.get('/api/movies', (req, res) => {
        res.set('Vary', 'Accept-Language').send(`movies in ${req.header('accept-language')}`);
      });
      const base = await listen(fronted ? front(cache, app) : app);
      for (const language of ['fr', 'de']) await (await fetch(`${base}/api/movies`, { headers: { 'accept-language': language } })).text();
      const { hits, misses } = cache.stats().l1;
      stats.push({ hits, misses });
    }
    // Before the fix: without { hits: 1, misses: 2 }, with the front door { hits: 2, misses: 2 }.
    assert.deepEqual(stats[1], stats[0]);
  });

  it('counts one L1 hit for each request it answers itself', async () => {
    const cache = track(createCache({ redis: false, routes: { '/api/movies': '5m' } }));
    const app = express();
    app.use(expressCache(cache));
    app.get('/api/movies', (_req, res) => {
      res.send('movies');
    });
    const base = await listen(front(cache, app));
    for (let i = 0; i < 3; i++) assert.equal(await (await fetch(`${base}/api/movies`)).text(), 'movies');
    assert.deepEqual(cache.stats().l1.hits, 2);
    assert.deepEqual(cache.stats().l1.misses, 1);
  });
});
