// A background refresh's lookup takes the fill lock and the stamp without
// reading the entry (skipEntry): it answers no client, so it counts neither an
// L2 hit nor an L2 miss, and the answer the refresh stores is the one served
// next. With the entry read (the lookup's skip flag not '1'), each refresh of a
// stale entry counted an L2 hit that no request had. Express 5, with Redis.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('middleware: what a background refresh counts', function () {
  const ctx = useRedisCaches({ prefix: 'refresh-counts' });

  it('a refresh of a stale entry counts no L2 hit or miss: stats() counts what the requests were answered from', async () => {
    const cache = await ctx.open();
    let runs = 0;
    const app = express();
    app.get('/s', expressCache(cache, { ttl: 100, staleWhileRevalidate: '10s' }), (_req, res) => {
      res.send(`run ${++runs}`);
    });
    const answers: string[] = [];
    const get = async () => {
      const res = await request(app).get('/s');
      answers.push(String(res.headers['cache-status']));
      return res;
    };
    assert.equal((await get()).text, 'run 1');
    await sleep(150);
    const stale = await get();
    assert.equal(stale.text, 'run 1');
    assert.match(String(stale.headers['cache-status']), /^tiercache; hit; ttl=-\d+; detail=L[12]$/, 'premise: a stale hit');
    await eventually(async () => (await get()).text === 'run 2', 'the refresh stored its answer');
    assert.equal(runs, 2);
    const fromL2 = answers.filter((a) => a.endsWith('detail=L2')).length;
    assert.equal(cache.stats().l2.hits, fromL2, `answers: ${answers.join(' | ')}`);
    assert.equal(cache.stats().l2.misses, 1, 'the first request, whose fill stored run 1');
  });
});
