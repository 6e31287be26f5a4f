// Why this test exists: a 5xx whose stale entry local state cannot vouch for
// is held while Redis is asked (CaptureHooks.hold). A handler that gives up
// on its response during the hold (a partial 5xx, then res.destroy(); Koa's
// onerror for a streamed body that failed does the same) marked the response
// destroyed at once, while the socket's destroy waited: once Redis vouched for
// the stale entry, its head went out and its body did not (node writes
// nothing on a destroyed response): a 200 declaring 11 bytes, with none, and
// the connection closed. Without the hold (the bus connected) the stand-in
// goes out whole before the destroy. The response's destroy() now waits for
// the held calls as the socket's does. Found by a hostile review (h83).
// Express, on an instance whose bus never subscribes (SUBSCRIBE denied by an ACL).
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { openDeafCache } from '../../support/deaf-cache.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('stale-if-error hold: the handler destroys its response during the hold', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'sie-hold-destroy', flush: true });

  const deafB = (): Promise<TierCache> => openDeafCache(ctx);

  it('a partial 5xx then res.destroy(), nothing invalidated: the stale entry stands in whole', async () => {
    const a = await ctx.open();
    const b = await deafB();
    const state = { failing: false };
    const app = (cache: TierCache) => {
      const e = express();
      e.get('/item/:id', expressCache(cache, { ttl: 200, staleIfError: '1h', tags: (req) => [`item:${req.params['id']}`] }), (_req, res) => {
        if (!state.failing) return void res.json({ v: 'OLD' });
        res.status(500);
        res.write('partial');
        res.destroy();
      });
      return e;
    };
    assert.deepEqual((await request(app(a)).get('/item/1')).body, { v: 'OLD' });
    await sleep(250);
    state.failing = true;
    const server = http.createServer(app(b));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const answer = await new Promise<{ status: number; body: string; error?: string }>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '/item/1', agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
          res.on('error', (err) => resolve({ status: res.statusCode!, body, error: err.message }));
        });
        req.on('error', (err) => resolve({ status: 0, body: '', error: err.message }));
      });
      assert.deepEqual(answer, { status: 200, body: '{"v":"OLD"}' });
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
