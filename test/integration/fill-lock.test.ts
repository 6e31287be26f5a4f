// The cross-instance fill lock: concurrent misses for one key on several
// instances run the handler once; when that fill stores nothing, the waiting
// instances run the handler themselves without sitting out the lock's lifetime.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import type { CacheOptions } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { useRedisCaches } from '../support/cache-context.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('cross-instance fill lock', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'lock' });

  /** `count` instances on this test's namespace, each an app with one slow route. */
  async function instances(count: number, options: CacheOptions = {}) {
    const runs = { ok: 0, fail: 0 };
    const state = { failNext: false };
    const apps = [];
    for (let i = 0; i < count; i++) {
      const cache = await ctx.open(options);
      const app = express();
      app.get('/slow', expressCache(cache, { ttl: '1m' }), async (_req, res) => {
        await sleep(300);
        if (state.failNext) {
          state.failNext = false;
          runs.fail++;
          res.status(500).send('failed');
          return;
        }
        runs.ok++;
        res.send(`body ${runs.ok}`);
      });
      apps.push(app);
    }
    return { apps, runs, state };
  }

  it('runs the handler once for concurrent misses on three instances', async () => {
    const { apps, runs } = await instances(3);
    const responses = await Promise.all(apps.flatMap((app) => Array.from({ length: 8 }, () => request(app).get('/slow'))));
    assert.equal(runs.ok, 1, `handler runs: ${runs.ok}`);
    for (const r of responses) {
      assert.equal(r.status, 200);
      assert.equal(r.text, 'body 1');
    }
    const statuses = responses.map((r) => r.headers['cache-status']);
    assert.equal(statuses.filter((s) => s === 'tiercache; fwd=miss; stored').length, 1);
    assert.equal(statuses.filter((s) => s === 'tiercache; fwd=miss; collapsed').length, 23);
  });

  it('lets the other instances run the handler soon after a fill that stored nothing', async () => {
    const { apps, runs, state } = await instances(2);
    state.failNext = true;
    const started = Date.now();
    const [a, b] = await Promise.all([request(apps[0]!).get('/slow'), sleep(50).then(() => request(apps[1]!).get('/slow'))]);
    const elapsed = Date.now() - started;
    assert.equal(a.status, 500);
    assert.equal(b.status, 200);
    assert.equal(runs.fail, 1);
    assert.equal(runs.ok, 1);
    // Far less than the 3 s lock lifetime: B noticed the lock was released.
    assert.ok(elapsed < 2000, `took ${elapsed} ms`);
  });

  it('can be turned off with l2.lockTimeout: 0', async () => {
    const { apps, runs } = await instances(2, { l2: { lockTimeout: 0 } });
    await Promise.all([request(apps[0]!).get('/slow'), request(apps[1]!).get('/slow')]);
    assert.equal(runs.ok, 2);
  });
});
