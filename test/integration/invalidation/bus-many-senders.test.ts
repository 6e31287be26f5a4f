// The bus remembers the last sequence number of at most 1,000 senders, so a
// fleet that churns instances cannot grow it without bound. At the bound a
// new sender pushes out the one heard from longest ago; a sender already
// known pushes out nobody, so a gap in its numbers is still noticed.
import assert from 'node:assert/strict';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';

const BOUND_MS = 5000;
const MAX_SENDERS = 1_000;

interface BusInternals {
  readonly gaps: number;
  readonly received: number;
  readonly channel: string;
  readonly lastSeq: ReadonlyMap<string, number>;
}

describe('the invalidation bus with many senders (standalone Redis)', function () {
  const ctx = useRedisCaches({ prefix: 'bms', flush: true });

  it('at the bound of 1,000 senders, a known sender forgets nobody: a later gap of the oldest is counted; a new sender forgets only the oldest', async () => {
    const cache = await ctx.open();
    const bus = cache.bus as unknown as BusInternals;
    const message = (i: string, s: number) => JSON.stringify({ i, s });
    const deliver = async (payloads: string[]) => {
      const received = bus.received;
      const pipeline = ctx.admin.pipeline();
      for (const p of payloads) pipeline.publish(bus.channel, p);
      await pipeline.exec();
      await eventually(() => bus.received >= received + payloads.length, 'the messages arrive', BOUND_MS);
    };
    await deliver(Array.from({ length: MAX_SENDERS }, (_, n) => message(`s${n}`, 1)));
    assert.equal(bus.lastSeq.size, MAX_SENDERS);
    // The newest sender again, in sequence: nobody is forgotten.
    await deliver([message(`s${MAX_SENDERS - 1}`, 2)]);
    assert.equal(bus.lastSeq.size, MAX_SENDERS, 'a known sender pushed another one out');
    // The oldest sender skips a number: a gap, because it is still remembered.
    await deliver([message('s0', 3)]);
    assert.equal(bus.gaps, 1, "the oldest sender's skipped number was not noticed");
    // A new sender pushes out the one heard from longest ago (s1 now), and only it.
    await deliver([message('new', 1)]);
    assert.equal(bus.lastSeq.size, MAX_SENDERS);
    assert.equal(bus.lastSeq.has('s1'), false, 'the sender heard from longest ago is still remembered');
    assert.equal(bus.lastSeq.has('s2'), true);
    assert.equal(bus.gaps, 1);
  });
});
