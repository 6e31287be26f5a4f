// Why this test exists: once a delivery has failed and L2 is still down, a
// further invalidation is queued and answered at once; L2 coming back replays
// the queue. When L2 is down because a command timed out (Redis frozen, the
// connection still up), the invalidation's own commands would pass the open
// breaker (they are urgent) and wait out another command timeout each: a
// write route that awaits invalidateTags would stall that long on every call
// during the outage. Only a "does not hang" bound is asserted: half the
// command timeout, where the immediate answer takes a few milliseconds.
import assert from 'node:assert/strict';
import { useRedisCaches } from '../../support/cache-context.js';

const COMMAND_TIMEOUT_MS = 2000;

/** Resolves with `promise`'s value and how long it took. */
async function timed<T>(promise: Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await promise;
  return { value, ms: performance.now() - start };
}

describe('the invalidation queue while a frozen Redis keeps timing out (standalone Redis, SIGSTOP)', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'qnw', flush: true });

  it('after the first invalidation timed out, the next ones are queued at once instead of each waiting for Redis again', async () => {
    const a = await ctx.open({ l2: { commandTimeout: COMMAND_TIMEOUT_MS, breakerCooldown: 60_000 } });
    a.on('error', () => undefined);
    ctx.redis.freeze();
    try {
      const first = await timed(a.invalidateTags(['x']));
      assert.deepEqual(first.value, { delivered: false });
      assert.equal(a.stats().l2.breaker, 'open', 'the premise: the first invalidation timed out and opened the breaker');
      for (const tag of ['y', 'z']) {
        const next = await timed(a.invalidateTags([tag]));
        assert.deepEqual(next.value, { delivered: false });
        assert.ok(next.ms < COMMAND_TIMEOUT_MS / 2, `invalidateTags(['${tag}']) waited ${next.ms.toFixed(0)} ms on a Redis known to be down`);
      }
      assert.equal(a.stats().queuedInvalidations, 3);
    } finally {
      ctx.redis.thaw();
    }
  });
});
