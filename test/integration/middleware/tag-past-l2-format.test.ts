// A tag the L2 entry format cannot hold (over 64 KiB: its length is a 16-bit
// field) is no reason to stop caching: L1 keeps the entry and serves it, the
// store in L2 is skipped, and the request that filled it gets its answer with
// no error reported. With an L1 only, and beside a real Redis.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { HIT_L1 } from '../../../src/middleware/cache-status.js';
import { useCleanup, useRedisCaches } from '../../support/cache-context.js';

const LONG_TAG = 't'.repeat(70_000);

/** GETs /a three times through an app whose route carries LONG_TAG; returns the replies, the handler's runs and the cache's errors. */
async function threeGets(cache: TierCache): Promise<{ statuses: Array<string | undefined>; bodies: string[]; runs: number; errors: unknown[]; storedTiers: unknown[] }> {
  const errors: unknown[] = [];
  cache.on('error', (err) => errors.push(err));
  const storedTiers: unknown[] = [];
  cache.on('store', (e) => storedTiers.push(e.tiers));
  let runs = 0;
  const app = express();
  app.get('/a', expressCache(cache, { ttl: '1m', tags: () => [LONG_TAG] }), (_req, res) => {
    res.json({ run: ++runs });
  });
  const statuses: Array<string | undefined> = [];
  const bodies: string[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await request(app).get('/a');
    assert.equal(res.status, 200);
    statuses.push(res.headers['cache-status'] as string | undefined);
    bodies.push(res.text);
  }
  return { statuses, bodies, runs, errors, storedTiers };
}

describe('middleware: a tag longer than the L2 entry format holds', () => {
  describe('L1 only', () => {
    const { track } = useCleanup();

    it('is stored in L1 and served from it, with no error reported', async () => {
      const got = await threeGets(track(createCache({ redis: false })));
      assert.equal(got.runs, 1, 'the handler ran again: nothing was stored');
      assert.deepEqual(got.statuses.slice(1), [HIT_L1, HIT_L1]);
      assert.equal(new Set(got.bodies).size, 1);
      assert.deepEqual(got.errors, []);
    });
  });

  describe('with a real Redis', () => {
    const ctx = useRedisCaches({ prefix: 'longtag', flush: true });

    it('is stored in L1 and served from it; L2 holds no entry for it, and the fill released its lock', async () => {
      const cache = await ctx.open();
      const got = await threeGets(cache);
      assert.equal(got.runs, 1, 'the handler ran again: nothing was stored');
      assert.deepEqual(got.statuses.slice(1), [HIT_L1, HIT_L1]);
      assert.equal(new Set(got.bodies).size, 1);
      assert.deepEqual(got.errors, []);
      assert.deepEqual(got.storedTiers, [['L1']], "the 'store' event names a tier the answer is not in");
      const keys = await ctx.admin.keys(`*${ctx.ns}*`);
      assert.ok(keys.length > 0, 'the namespace has keys in Redis (counters)');
      assert.deepEqual(
        keys.filter((k) => k.endsWith(':lock')),
        [],
        'the fill left its lock: another instance would wait on it',
      );
      const values = await Promise.all(keys.map(async (k) => ((await ctx.admin.type(k)) === 'string' ? await ctx.admin.getBuffer(k) : null)));
      assert.ok(!values.some((v) => v !== null && v.subarray(0, 2).toString() === 'TC'), 'an entry of this namespace is in L2');
    });

    it('the counters its L1 copy recorded are renewed, so that copy stays valid: an invalidation of the tag still reaches it', async () => {
      const cache = await ctx.open();
      const got = await threeGets(cache);
      assert.equal(got.runs, 1);
      const counter = (await ctx.admin.keys(`*${ctx.ns}*`)).find((k) => k.includes('{path:/a}'));
      assert.ok(counter !== undefined, 'no counter for the path');
      assert.ok((await ctx.admin.pttl(counter)) > 24 * 3600_000, 'the store step did not renew the counters (they keep the provisional TTL)');
      await cache.invalidateTags([LONG_TAG]);
      const app = express();
      app.get('/a', expressCache(cache, { ttl: '1m', tags: () => [LONG_TAG] }), (_req, res) => {
        res.json({ run: 'after' });
      });
      assert.equal((await request(app).get('/a')).text, JSON.stringify({ run: 'after' }), 'served the invalidated L1 copy');
    });
  });
});
