// A store Redis refuses (a counter the fill recorded moved, or is gone from
// Redis) makes the instance read those counters again: it forgot every tag
// of the refused entry, and the epoch. It also forgot what it knew to be newer
// than what the refused fill recorded: an invalidation it had made itself
// (or learned from the bus) a moment before. With the tag unknown, a fill that
// began before that invalidation looked current again to requests on this
// instance that wait on it instead of running their own (getOrSet callers,
// the middleware's collapsed misses), and they got the old value after the
// invalidation had resolved (found by the h92 stress harness on a Cluster: a
// collapsed miss 5.6 ms after invalidatePrefix, on the invalidating instance).
import assert from 'node:assert/strict';
import { useRedisCaches } from '../../support/cache-context.js';

describe('a store Redis refuses, right after an invalidation on this instance', function () {
  const ctx = useRedisCaches({ prefix: 'refused-store-own-inval' });

  for (const kind of ['invalidateTags', 'clear'] as const) {
    it(`${kind}(): a getOrSet after it does not join a loader run that began before it`, async () => {
      const cache = await ctx.open({ l2: { commandTimeout: 2000 } });
      // Tags t and u known here (their counters read and stored with an entry).
      assert.equal(await cache.getOrSet('two', () => 'x', { tags: ['t', 'u'] }), 'x');
      assert.equal(await ctx.admin.exists(`${ctx.ns}:d:two`), 1);

      let release!: () => void;
      let reached!: () => void;
      const loading = new Promise<void>((resolve) => (reached = resolve));
      const first = cache.getOrSet(
        'one',
        async () => {
          reached();
          await new Promise<void>((resolve) => (release = resolve));
          return 'old';
        },
        { tags: ['t'] },
      );
      await loading;
      // The write, then its invalidation, resolved.
      assert.deepEqual(kind === 'clear' ? await cache.clear() : await cache.invalidateTags(['t']), { delivered: true });

      // Another fill, of `three`, whose store Redis refuses: a counter it recorded is gone from Redis
      // meanwhile (evicted): `u`'s, or after clear() the epoch (then the store finds the epoch moved).
      await ctx.admin.del(kind === 'clear' ? `{${ctx.ns}}:epoch` : `${ctx.ns}:v:{u}`);
      assert.equal(await cache.getOrSet('three', () => 'y', { tags: ['t', 'u'] }), 'y');
      assert.equal(await ctx.admin.exists(`${ctx.ns}:d:three`), 0, 'the store of three was refused');

      // Asked now, after the invalidation resolved: the run that began before it is no answer.
      const later = cache.getOrSet('one', () => 'new', { tags: ['t'] });
      release();
      assert.equal(await first, 'old');
      assert.equal(await later, 'new');
    });
  }
});
