// The front door (tiercache/node) serves only entries marked public: keyed by
// the route table alone and filled by a request without Authorization or
// Cookie. An entry a middleware keyed by its own `key` or `query` option, or
// one a shared route filled for a request with credentials, is left to the app
// (its middleware still answers it from L1), even where the front door would
// compute the very same key. Express 5, L1 only.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createCache } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { front } from '../../src/node.js';
import { useCleanup } from '../support/cache-context.js';

const STORED = 'tiercache; fwd=miss; stored';
const HIT_L1 = 'tiercache; hit; detail=L1';

describe('front door: entries not marked public are left to the app', () => {
  const { track, serve } = useCleanup();

  async function setup() {
    const cache = track(createCache({ redis: false }));
    const counts = { framework: 0 };
    const app = express();
    app.use((_req, _res, next) => {
      counts.framework++;
      next();
    });
    const send = (req: express.Request, res: express.Response) => void res.send(`${req.originalUrl} at ${Date.now()}`);
    app.get('/k', expressCache(cache, { ttl: '1m', key: (req) => req.path }), send);
    app.get('/q', expressCache(cache, { ttl: '1m', query: ['page'] }), send);
    app.get(['/auth', '/cookie'], expressCache(cache, { ttl: '1m', shared: true }), send);
    const server = await serve(front(cache, app));
    return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, counts };
  }

  const cases: ReadonlyArray<readonly [string, string, Record<string, string>]> = [
    ["the middleware's key option", '/k', {}],
    ["the middleware's query option", '/q?page=2', {}],
    ['a shared route filled with Authorization', '/auth', { authorization: 'Bearer x' }],
    ['a shared route filled with a Cookie', '/cookie', { cookie: 'sid=1' }],
  ];
  for (const [what, path, fillHeaders] of cases) {
    it(`${what}: the app answers the repeat request, from L1`, async () => {
      const { base, counts } = await setup();
      const first = await fetch(base + path, { headers: fillHeaders });
      assert.equal(first.headers.get('cache-status'), STORED);
      const body = await first.text();
      assert.equal(counts.framework, 1);
      const again = await fetch(base + path);
      assert.equal(again.headers.get('cache-status'), HIT_L1);
      assert.equal(await again.text(), body);
      assert.equal(counts.framework, 2, 'the front door answered an entry not marked public');
    });
  }
});
