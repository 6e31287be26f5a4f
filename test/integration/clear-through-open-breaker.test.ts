// clear() is an invalidation like invalidateTags(): rare, and costly to lose
// (every instance keeps serving what was cleared until its L1 TTL), so its
// epoch bump is an urgent command, tried even while the breaker is still open
// after a timeout (often this process's own GC pause) as long as the
// connection is up. The same rule for invalidateTags() is tested in
// invalidation/in-process.test.ts; this one exists for the mutation survivor
// redis-versions.ts bumpEpoch's `l2.run(..., true)` -> false, with which
// clear() was queued instead until the next probe. Real redis-server, frozen
// with SIGSTOP to make one command time out.
import assert from 'node:assert/strict';
import { useRedisCaches } from '../support/cache-context.js';

describe('clear() while the breaker is open after a timeout (Redis answers again, no probe due yet)', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'clearbreaker', flush: true });

  it('is delivered at once: the epoch moves in Redis, nothing is queued', async () => {
    const a = await ctx.open({ l2: { commandTimeout: 100, breakerCooldown: 10_000 } });
    a.on('error', () => undefined);
    await a.set('k', 'v');
    const epochKeys = await ctx.admin.keys('*:epoch');
    assert.equal(epochKeys.length, 1, `the namespace epoch key, among ${JSON.stringify(epochKeys)}`);
    const before = Number(await ctx.admin.get(epochKeys[0]!));
    ctx.redis.freeze();
    try {
      assert.equal(await a.get('anything'), undefined); // times out: the breaker opens
    } finally {
      ctx.redis.thaw();
    }
    assert.equal(a.stats().l2.breaker, 'open', 'the premise: a timeout opened the breaker');
    assert.deepEqual(await a.clear(), { delivered: true });
    assert.equal(a.stats().queuedInvalidations, 0);
    assert.ok(Number(await ctx.admin.get(epochKeys[0]!)) > before, 'the epoch did not move in Redis');
  });
});
