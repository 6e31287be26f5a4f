// A handler that throws after it answered, with L2: the answer waits for the
// store, headersSent is already true, and Express's final handler destroyed
// the socket: the client got no bytes at all (the entry was stored). Found by
// a hostile review. A destroy() without an error now waits for the answer.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

describe('middleware: a handler that fails after answering, with Redis', () => {
  const ctx = useRedisCaches({ prefix: 'errafter', flush: true });

  for (const how of ['throws', 'calls next(err)'] as const) {
    it(`Express: one that ${how} after res.json() still gets its answer to the client, and it is stored`, async () => {
      const cache = await ctx.open({ routes: { '/x': '1m' } });
      const app = express();
      app.set('env', 'test'); // the final handler logs errors in any other env
      app.use(expressCache(cache));
      let runs = 0;
      app.get('/x', (_req, res, next) => {
        runs++;
        res.json({ ok: true });
        if (how === 'throws') throw new Error('a bug after the answer');
        next(new Error('a late error'));
      });
      const first = await request(app).get('/x');
      assert.equal(first.status, 200);
      assert.deepEqual(first.body, { ok: true });
      const second = await request(app).get('/x');
      assert.deepEqual(second.body, { ok: true });
      assert.equal(second.headers['cache-status'], 'tiercache; hit; detail=L1');
      assert.equal(runs, 1);
    });
  }
});
