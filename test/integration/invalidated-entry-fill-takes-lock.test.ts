// Why this test exists: a fill's first round trip can find an entry in L2
// that is still fresh by its own dates but was invalidated (a tag bumped; the
// bytes stay in Redis until they expire). The lookup script takes no lock for a
// fresh entry, so TieredStore.lookupForFill must look again, taking the fill
// lock. Otherwise every instance that finds the invalidated entry runs its
// loader at once. No other test had two instances find such an entry at the
// same time. One redis-server, real L2.
import assert from 'node:assert/strict';
import { useRedisCaches } from '../support/cache-context.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a fill that finds an invalidated entry still fresh in L2', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'invalidated-fill-lock' });

  it('takes the fill lock: two instances that find it at once run the loader once, and both get its value', async () => {
    const a = await ctx.open({ ttl: '1m' });
    assert.equal(await a.getOrSet('film', async () => 'old', { tags: ['films'] }), 'old');
    await a.invalidateTags(['films']);

    // Two instances whose L1 never saw the entry: both find it in L2, fresh but invalidated.
    const b = await ctx.open({ ttl: '1m' });
    const c = await ctx.open({ ttl: '1m' });
    let runs = 0;
    const load = async () => {
      runs++;
      await sleep(300);
      return `new ${runs}`;
    };
    const [fromB, fromC] = await Promise.all([b.getOrSet('film', load, { tags: ['films'] }), c.getOrSet('film', load, { tags: ['films'] })]);
    assert.equal(runs, 1, `the loader ran ${runs} times`);
    assert.equal(fromB, 'new 1');
    assert.equal(fromC, 'new 1');
  });
});
