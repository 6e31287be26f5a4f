// An Express sub-app mounted through a Router (router.use('/v1', sub);
// app.use('/api', router)) has no `parent` (only app.use sets it), so the
// background refresh, which walked req.app's parents to the top, re-sent the
// full target /api/v1/items into the sub-app itself, which routes /items
// (found by helper-88): a catch-all sub-app stored its answer for a path of its
// own under the entry of /api/v1/items, served to everyone; a route answered
// 404 and the entry was never refreshed. The refresh now goes where the request
// came in: the server's own handler, which routes the full target as it did.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useCleanup } from '../../support/cache-context.js';
import { express4 } from './apps.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const FRESH = 'tiercache; hit; detail=L1';

describe('middleware: background refresh of an Express sub-app mounted through a Router', () => {
  const cleanup = useCleanup();

  for (const [name, framework] of [
    ['express5', express],
    ['express4', express4],
  ] as const) {
    for (const mounting of ['route', 'catch-all'] as const) {
      it(`${name}, ${mounting}: the entry of /api/v1/items is refreshed with the sub-app's answer for /items`, async () => {
        const cache = cleanup.track(createCache({ namespace: `subapp-refresh${process.pid}`, redis: false }));
        const runs: string[] = [];
        const sub = framework();
        const cached = expressCache(cache, { ttl: 100, staleWhileRevalidate: '10s' });
        const handler = (req: express.Request, res: express.Response) => {
          runs.push(req.path);
          res.send(`run ${runs.length} for ${req.path}`);
        };
        if (mounting === 'route') sub.get('/items', cached, handler);
        else sub.use(cached, handler);
        const router = framework.Router();
        router.use('/v1', sub);
        const app = framework();
        app.use('/api', router);
        const server = cleanup.track(createServer(app));
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        assert.equal((await request(base).get('/api/v1/items')).text, 'run 1 for /items');
        await sleep(150);
        assert.match(String((await request(base).get('/api/v1/items')).headers['cache-status']), /^tiercache; hit; ttl=-\d+; detail=L1$/);
        // The refresh lands a moment after the stale answer: poll until the entry is fresh again.
        const deadline = Date.now() + 3000;
        let fresh = await request(base).get('/api/v1/items');
        while (fresh.headers['cache-status'] !== FRESH && Date.now() < deadline) {
          await sleep(5);
          fresh = await request(base).get('/api/v1/items');
        }
        assert.equal(fresh.headers['cache-status'], FRESH, 'no refreshed entry');
        assert.equal(fresh.text, 'run 2 for /items');
        assert.deepEqual(runs, ['/items', '/items']);
      });
    }
  }
});
