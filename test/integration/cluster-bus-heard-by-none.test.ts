// A sharded SPUBLISH answers how many subscribers of the channel's master took
// the message, and the publishing instance is one of them whenever its own
// subscription is where the channel is. Zero means it is not (the channel's
// master was just replaced and the subscriber still waits on the old one), and
// the others' messages, published where the channel is now, are being missed:
// before, the bus kept trusting L1 until its heartbeat noticed, two epoch
// checks later. Here the subscription is taken away on a healthy Cluster
// (SUNSUBSCRIBE on the subscriber's own connection, which stays up): the same
// state, without a failover's timing.
import assert from 'node:assert/strict';
import type { TierCache } from '../../src/index.js';
import { clusterCaches } from '../support/cluster-caches.js';
import { eventually } from '../support/eventually.js';

interface BusView {
  readonly channel: string;
  readonly flushes: number;
  readonly subscriber: { sunsubscribe(channel: string): Promise<unknown> };
}
const busOf = (cache: TierCache) => (cache as unknown as { bus: BusView }).bus;

describe('Redis Cluster, sharded pub/sub: an invalidation whose SPUBLISH reached no subscriber', function () {
  this.timeout(30_000);
  const env = clusterCaches();

  it("the publisher stops trusting L1 at once, subscribes again, and trusts it again once subscribed", async () => {
    const ns = `heardby${process.pid}`;
    const b = await env.open(ns);
    await eventually(() => b.health().bus === 'ok', 'subscribed', 5_000);
    await b.set('k', 'old', { ttl: '1h', tags: ['T'] });
    const bus = busOf(b);
    await bus.subscriber.sunsubscribe(bus.channel);
    const flushes = bus.flushes;
    assert.deepEqual(await b.invalidateTags(['T']), { delivered: true });
    assert.notEqual(b.health().bus, 'ok', "B's bus still trusts L1 after its own SPUBLISH reached no subscriber, itself included");
    assert.ok(bus.flushes > flushes, 'L1 not flushed');
    await eventually(() => b.health().bus === 'ok', 'B subscribed again', 8_000);
    // Subscribed where it publishes: the next invalidations reach it, and flush nothing more.
    const after = bus.flushes;
    for (let i = 0; i < 3; i++) assert.deepEqual(await b.invalidateTags([`U${i}`]), { delivered: true });
    assert.equal(bus.flushes, after);
    assert.equal(b.health().bus, 'ok');
  });
});
