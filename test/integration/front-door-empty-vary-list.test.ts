// Why this test exists: a route may be given `vary: []` (no request header to
// vary on). The middleware then keys without vary values, while the front door
// and cache.keyFor() pass the route's list as it is, empty: an empty list must
// key like no list, or the front door never finds what the middleware stored
// and keyFor() names a key nothing is stored under (found by mutation testing).
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

describe('a route with an empty vary list (vary: [])', () => {
  it('is answered from L1 by the front door, and keyFor() names the key the middleware used', async () => {
    const cache = track(createCache({ redis: false, routes: { '/api/movies': { ttl: '5m', vary: [] } } }));
    const reached = { n: 0 };
    const usedKeys: string[] = [];
    const app = express();
    app.use(expressCache(cache));
    app.get('/api/movies', (req, res) => {
      reached.n++;
      usedKeys.push(cache.keyFor(req));
      res.json({ run: reached.n });
    });
    const base = await listen(front(cache, app));
    assert.deepEqual(await (await fetch(`${base}/api/movies`)).json(), { run: 1 });
    assert.deepEqual(await (await fetch(`${base}/api/movies`)).json(), { run: 1 });
    assert.equal(reached.n, 1, 'the repeat GET reached Express: the front door missed the entry');
    // A request no middleware handled: keyFor() computes the key from the route table.
    assert.equal(cache.keyFor({ method: 'GET', url: '/api/movies', headers: {} }), usedKeys[0]);
  });
});
