// Why this test exists: tag invalidations queued behind one on its way are
// merged into one bump and one message, and each caller is told whether its
// own invalidation reached Redis. The merge carries the answers of the
// invalidations it took in, and of no other: an invalidation queued behind
// the merge (here a clear()) that Redis then refuses must be reported as not
// delivered, even though the merge before it went through. Redis refuses the
// clear() because the instance's user may not touch the epoch key (an ACL
// that allows the tag counters only); everything else it may do.
import assert from 'node:assert/strict';
import { useRedisCaches } from '../../support/cache-context.js';

describe('the invalidation queue: each caller hears its own delivery (standalone Redis, an ACL)', function () {
  const ctx = useRedisCaches({ prefix: 'qmd', flush: true });

  it('tag invalidations merged behind the first are delivered; a clear() queued behind them that Redis refuses is reported not delivered', async () => {
    const user = `qmd-${ctx.ns}`;
    // The tag counters ({ns}:v:...) only: not the namespace's epoch key ({ns}}:epoch).
    await ctx.admin.call('ACL', 'SETUSER', user, 'on', '>pw', `~${ctx.ns}:v:*`, '&*', '+@all');
    const a = await ctx.open({ redis: `redis://${user}:pw@127.0.0.1:${ctx.redis.port}` });
    a.on('error', () => undefined);
    assert.equal(a.health().bus, 'ok');
    // The first goes out alone; y and z wait behind it and are merged; the clear() cannot merge.
    const results = await Promise.all([a.invalidateTags(['x']), a.invalidateTags(['y']), a.invalidateTags(['z']), a.clear()]);
    assert.deepEqual(
      results.map((r) => r.delivered),
      [true, true, true, false],
      'a caller was told the wrong outcome of its own invalidation',
    );
    assert.equal(a.stats().queuedInvalidations, 1, 'the refused clear() waits in the queue');
  });
});
