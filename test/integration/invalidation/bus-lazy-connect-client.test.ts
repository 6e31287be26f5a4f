// Why this test exists: the bus subscribes on a duplicate of the caller's
// ioredis client, made with settings of its own. A caller's client made with
// lazyConnect: true connects only on a first command; L2 sends it one, but a
// duplicate that kept lazyConnect would never connect (the bus sends nothing
// before 'ready'), so the instance would stay deaf to every other instance
// and distrust its L1 for good. The regression test for such a client only
// checked the data path (and passed, slowly, with a bus that never came up).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { createCache } from '../../../src/index.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';

/** A "does not hang" bound. */
const BOUND_MS = 5000;

describe("the invalidation bus on a caller's client made with lazyConnect (standalone Redis)", function () {
  const ctx = useRedisCaches({ prefix: 'blc', flush: true });

  it('subscribes anyway: the bus comes up, and an invalidation from another instance drops the L1 copy', async () => {
    const client = new Redis(ctx.redis.url, { lazyConnect: true });
    try {
      const a = ctx.track(createCache({ namespace: ctx.ns, redis: client }));
      await eventually(() => a.health().bus === 'ok', "the bus of a lazyConnect client's cache comes up", BOUND_MS);
      const b = await ctx.open();
      await a.set('k', 'old', { tags: ['t'] });
      assert.equal(await a.get('k'), 'old');
      const heard = once(a, 'invalidate');
      await b.invalidateTags(['t']);
      await Promise.race([heard, new Promise((_, reject) => setTimeout(() => reject(new Error('A heard nothing')), BOUND_MS).unref())]);
      assert.equal(await a.get('k'), undefined);
    } finally {
      client.disconnect();
    }
  });
});
