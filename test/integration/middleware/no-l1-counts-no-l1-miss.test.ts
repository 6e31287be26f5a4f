// Why this test exists: with L1 turned off (l1: false) a request still goes
// through the place where the middleware notes an L1 miss before asking L2
// (TieredStore.noteL1Miss). That must count nothing: there is no L1 to miss,
// and stats().l1 of an L2-only cache stays at zero. Nothing checked it, so a
// count taken with or without an L1 went unnoticed. One redis-server, real L2.
import assert from 'node:assert/strict';
import request from 'supertest';
import express from 'express';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

describe('middleware: an L2-only cache (l1: false) counts no L1 misses', function () {
  const redisCaches = useRedisCaches({ prefix: 'no-l1-miss' });

  it('a miss and then an L2 hit leave stats().l1 at zero, and are counted in stats().l2', async () => {
    const cache = await redisCaches.open({ ttl: '1m', namespace: redisCaches.ns, l1: false });
    const app = express();
    app.get('/hi', expressCache(cache), (_req, res) => void res.send('hello'));
    assert.equal((await request(app).get('/hi')).text, 'hello');
    const second = await request(app).get('/hi');
    assert.equal(second.headers['cache-status'], 'tiercache; hit; detail=L2');
    const { l1, l2 } = cache.stats();
    assert.deepEqual([l1.hits, l1.misses], [0, 0]);
    assert.deepEqual([l2.hits, l2.misses], [1, 1]);
  });
});
