// Why this test exists: on a Cluster, a fill that stores nothing sends one
// ABANDON script per slot of the counters it created (abandonOnCluster), and
// the fill lock joins the group of its own slot. Without a lock (l2.lockTimeout
// 0) there is no lock slot at all. If one were grouped anyway, its script would
// name no key and fail, and the fill would report a Redis error that never
// happened. The Cluster tests checked what is left on the nodes, not the
// errors, so that went unseen. A real 3-master Redis Cluster.
import assert from 'node:assert/strict';
import type { TierCache } from '../../src/index.js';
import { keySlot } from '../../src/store/hash-slot.js';
import { eventually } from '../support/eventually.js';
import { clusterCaches } from '../support/cluster-caches.js';
import { onEachNode } from '../support/redis-cluster.js';

describe('Redis Cluster: a fill without a lock that stores nothing', function () {
  this.timeout(30_000);
  const env = clusterCaches();

  /** Every key of namespace `ns` on the masters, but its epoch and server record. */
  async function leftovers(ns: string): Promise<string[]> {
    const keys = (await onEachNode(env.cluster, (direct) => direct.keys('*'))).flat();
    return keys.filter((k) => (k.startsWith(`${ns}:`) || k.startsWith(`{${ns}`)) && k !== `{${ns}}:epoch` && k !== `{${ns}}:server` && k !== `{${ns}}:server:replid2`);
  }

  it('deletes the counters it created in every slot and reports no Redis error', async () => {
    const ns = 'cawl-0';
    const cache: TierCache = await env.open(ns, { lockTimeout: 0 });
    const errors: unknown[] = [];
    cache.on('error', (e) => errors.push(e));
    const entrySlot = keySlot(cache.dataKey('k'));
    const tags: string[] = [];
    for (let i = 0; tags.length < 2; i++) if (keySlot(`${ns}:v:{t${i}}`) !== entrySlot) tags.push(`t${i}`);
    await assert.rejects(cache.getOrSet('k', async () => { throw new Error('the loader failed'); }, { tags }), /the loader failed/);
    await eventually(async () => (await leftovers(ns)).length === 0, `a failed fill left ${(await leftovers(ns)).join(' ')}`);
    assert.equal(cache.stats().l2.errors, 0);
    assert.deepEqual(errors, []);
  });
});
