// Why this test exists: every second the bus compares the namespace epoch with
// Redis (a FLUSHALL sends no message). It must start over (flush L1, forget
// every version) only when the epoch moved; an epoch check that finds the same
// Redis process and the epoch it knows must change nothing. A bus that flushed
// L1 on every check passed every other test (they last less than a check
// interval, or look only at checks that find the epoch moved), while it would
// empty every instance's L1 once a second. Real redis-server; the check is
// run by hand, as the bus's timer would.
import assert from 'node:assert/strict';
import type { TierCache } from '../../../src/index.js';
import type { ServerEpoch } from '../../../src/store/tag-versions.js';
import { useRedisCaches } from '../../support/cache-context.js';

/** What this test reaches inside a cache (private there). */
interface BusInternals {
  readonly epochTimer: NodeJS.Timeout;
  readonly flushes: number;
  checkEpoch(): void;
}
interface VersionsInternals {
  readonly knownEpoch: number | undefined;
  serverEpoch(...args: unknown[]): Promise<ServerEpoch>;
}

const busOf = (cache: TierCache) => cache.bus as unknown as BusInternals;
const versionsOf = (cache: TierCache) => (cache as unknown as { store: { versions: VersionsInternals } }).store.versions;

describe('the epoch check of the invalidation bus when the epoch did not move (standalone Redis)', function () {
  const ctx = useRedisCaches({ prefix: 'becs', flush: true });

  it('changes nothing: no flush counted, L1 keeps its entries and the epoch known stays', async () => {
    const cache = await ctx.open();
    const bus = busOf(cache);
    const versions = versionsOf(cache);
    // Only the checks run below: none of the timer's.
    clearInterval(bus.epochTimer);
    /** Runs one epoch check and resolves with what Redis answered, once the bus has acted on it. */
    const check = async (): Promise<ServerEpoch> => {
      const serverEpoch = versions.serverEpoch;
      let answer: Promise<ServerEpoch> | undefined;
      versions.serverEpoch = (...args) => (answer = serverEpoch.apply(versions, args));
      try {
        bus.checkEpoch();
      } finally {
        versions.serverEpoch = serverEpoch;
      }
      assert.ok(answer, 'the epoch check did not ask Redis');
      // The bus's own handler was attached first: it has run once this resolves.
      return answer;
    };

    await cache.set('k', 'v', { tags: ['t'] });
    assert.equal(await cache.get('k'), 'v');
    const epoch = versions.knownEpoch;
    assert.notEqual(epoch, undefined, 'the premise: the epoch is known');
    const flushes = bus.flushes;

    for (let i = 0; i < 3; i++) {
      const answer = await check();
      assert.deepEqual({ epoch: answer.epoch, previous: answer.previous }, { epoch, previous: 'same' }, 'the premise: Redis has the same epoch, from the same process');
    }
    assert.equal(bus.flushes, flushes, 'an epoch check that found the same epoch flushed local state');
    assert.equal(versions.knownEpoch, epoch);
    assert.equal(cache.stats().l1.entries, 1, 'an epoch check that found the same epoch emptied L1');
    const hits = cache.stats().l1.hits;
    assert.equal(await cache.get('k'), 'v');
    assert.equal(cache.stats().l1.hits, hits + 1, 'the entry was not served from L1 after the checks');

    // The control: a check that finds the epoch gone (FLUSHALL) does start over.
    await ctx.admin.flushall();
    const moved = await check();
    assert.notEqual(moved.previous, 'same', 'the premise: the FLUSHALL moved the epoch');
    assert.equal(bus.flushes, flushes + 1, 'the check that found the epoch moved did not flush');
    assert.equal(cache.stats().l1.entries, 0);
  });
});
