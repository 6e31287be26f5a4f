// A body counts as complete only on a connection still open (capture.ts): a
// handler that destroys its response part-way (an upstream it proxies
// failed) and then still calls end() (a pipe ending, an error path) must not
// have what it wrote stored, or every later request is answered from a body
// the first client never got. The 'close' the cache also listens for comes a
// tick later, too late for an end() in the same tick. Found by mutation
// testing: capture.ts complete()'s `return false` for a destroyed response ->
// `return true` survived (and `this.overflow || this.res.destroyed` -> false,
// once listed as equivalent, fails here too). Express 5, no Redis.
import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import express from 'express';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useCleanup } from '../../support/cache-context.js';

describe('middleware: a response destroyed before its end() is never stored', () => {
  const cleanup = useCleanup();

  for (const [what, length] of [
    ['without a Content-Length', undefined],
    ['with a Content-Length', 100],
  ] as const) {
    it(`${what}: written, destroyed, then ended in the same tick; the next request runs the handler again`, async () => {
      const cache = cleanup.track(createCache({ redis: false }));
      let runs = 0;
      const app = express();
      app.use(expressCache(cache, { ttl: '1m' }));
      app.get('/d', (_req, res) => {
        runs++;
        res.setHeader('content-type', 'text/plain');
        if (length !== undefined) res.setHeader('content-length', String(length));
        if (runs === 1) {
          res.write('partial ');
          res.destroy();
          res.end('rest');
        } else res.end('w'.repeat(length ?? 5));
      });
      const server = await cleanup.serve(app as unknown as RequestListener);
      await assert.rejects(request(server).get('/d'), 'the first client saw its connection cut');
      const second = await request(server).get('/d');
      assert.equal(runs, 2, `the second request was answered "${second.text}" (${second.headers['cache-status']})`);
      assert.equal(second.text, 'w'.repeat(length ?? 5));
    });
  }
});
