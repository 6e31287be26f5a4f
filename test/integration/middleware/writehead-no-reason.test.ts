// res.writeHead(status, undefined, headers): node keeps the headers when the
// reason is undefined or null. The capture read the reason's place as the
// headers and dropped them, on the filling answer and on every hit. Found by
// a hostile review.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useCleanup } from '../../support/cache-context.js';

describe('middleware: writeHead with no reason phrase and headers after it', () => {
  const cleanup = useCleanup();

  for (const reason of [undefined, null]) {
    it(`writeHead(200, ${String(reason)}, headers): the headers go out on the fill and on the hit`, async () => {
      const cache = cleanup.track(createCache({ namespace: `writehead-${String(reason)}-${process.pid}`, redis: false, ttl: '1m' }));
      const app = express();
      app.use(expressCache(cache));
      app.get('/x', (_req, res) => {
        res.writeHead(200, reason as unknown as string, { 'Content-Type': 'application/json', 'X-Api-Version': '7' });
        res.end('{"a":1}');
      });
      // The head goes out before the body (writeHead, then end): the fill says just fwd=miss, and is stored.
      for (const expected of ['tiercache; fwd=miss', 'tiercache; hit; detail=L1']) {
        const res = await request(app).get('/x');
        assert.equal(res.headers['cache-status'], expected);
        assert.equal(res.headers['content-type'], 'application/json');
        assert.equal(res.headers['x-api-version'], '7');
        assert.equal(res.text, '{"a":1}');
      }
    });
  }
});
