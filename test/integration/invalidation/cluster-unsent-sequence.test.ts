// On a Redis Cluster (sharded pub/sub), a message whose SPUBLISH Redis
// refused is delivered later under the number it had (see
// bus-unsent-sequence.test.ts): the other instance sees no gap, neither at
// that message nor in the sender's heartbeats (one every epoch check) sent
// while it waits. A real 3-master cluster; the sender's user loses SPUBLISH
// by ACL on every node, every other command still runs.
import assert from 'node:assert/strict';
import { Cluster } from 'ioredis';
import { createCache, type TierCache } from '../../../src/index.js';
import { clusterCaches } from '../../support/cluster-caches.js';
import { eventually } from '../../support/eventually.js';
import { onEachNode } from '../../support/redis-cluster.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('the invalidation bus when an SPUBLISH is refused (Redis Cluster)', function () {
  this.timeout(30_000);
  const env = clusterCaches();
  const opened: TierCache[] = [];
  const clients: Cluster[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((c) => c.close()));
    for (const c of clients.splice(0)) c.disconnect();
  });

  it('the refused message goes out later under its number: the other instance counts no gap (heartbeats meanwhile included), keeps its other L1 entries, drops the invalidated one', async () => {
    const ns = 'cus';
    const user = 'nospublish';
    await onEachNode(env.cluster, (direct) => direct.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all'));
    const client = new Cluster(env.cluster.nodes, { redisOptions: { username: user, password: 'pw' } });
    client.on('error', () => undefined);
    clients.push(client);
    const a = createCache({ namespace: ns, redis: client, l2: { commandTimeout: 2000 } });
    a.on('error', () => undefined);
    opened.push(a);
    await a.ready();
    const b = await env.open(ns);
    await eventually(() => a.health().pubsub === 'sharded' && b.health().pubsub === 'sharded' && a.health().bus === 'ok' && b.health().bus === 'ok', 'both subscribed (sharded)', 5000);
    assert.deepEqual(await a.invalidateTags(['warm-up']), { delivered: true });
    await eventually(() => b.stats().bus.received === 1, 'B hears A', 5000);
    for (let n = 0; n < 5; n++) await b.set(`other-${n}`, n, { tags: [`u${n}`] });
    await b.set('k', 'old', { tags: ['t'] });
    const gaps = b.stats().bus.gaps;

    await onEachNode(env.cluster, (direct) => direct.call('ACL', 'SETUSER', user, '-spublish'));
    assert.deepEqual(await a.invalidateTags(['t']), { delivered: false });
    // Two queue retries and two epoch checks with their heartbeats, all refused.
    await sleep(2_500);
    await onEachNode(env.cluster, (direct) => direct.call('ACL', 'SETUSER', user, '+spublish'));
    await eventually(async () => (await b.get('k')) === undefined, 'B drops the invalidated entry', 5000);
    // Past the next heartbeats of A's too.
    await sleep(2_500);
    assert.equal(b.stats().bus.gaps, gaps, 'B saw a gap in A\'s numbers');
    const hits = b.stats().l1.hits;
    for (let n = 0; n < 5; n++) assert.equal(await b.get(`other-${n}`), n);
    assert.equal(b.stats().l1.hits, hits + 5, "entries the invalidation did not touch left B's L1");
  });
});
