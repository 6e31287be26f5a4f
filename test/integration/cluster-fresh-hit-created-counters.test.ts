// Why this test exists: on a Cluster, a fill's lookup that finds a fresh entry
// also reads the counters in other slots, and creates the missing ones with a
// short, provisional TTL (lookupOnCluster). On such a hit those counters count
// as unknown and are not learned: nobody renews them, so they soon expire. An
// instance that learned one would stamp its later fills with a version Redis
// no longer holds. Each such store is then refused, and the fill stays in that
// instance's L1. No test had a hit that created counters and a later fill that
// relied on them. A real 3-master Redis Cluster; a provisional counter's expiry
// is played by deleting it.
import assert from 'node:assert/strict';
import { LARGE_ENTRY_BYTES } from '../../src/store/fill-protocol.js';
import { keySlot } from '../../src/store/hash-slot.js';
import { clusterCaches } from '../support/cluster-caches.js';

describe('Redis Cluster: counters a fresh hit made in other slots', function () {
  this.timeout(30_000);
  const env = clusterCaches();

  // A large entry (LARGE_ENTRY_BYTES) is judged by its head and read by a GET after the script: its fresh hit too.
  for (const [size, stored] of [['small', 'stored by A'], ['large', 'A'.repeat(LARGE_ENTRY_BYTES)]] as const) {
    it(`are not learned: once such a counter expires, a later fill on that instance that names its tag is still stored in L2 (a ${size} entry)`, async () => {
      const ns = `cfh-${size}`;
      const a = await env.open(ns);
      const entrySlot = keySlot(a.dataKey('film'));
      let extra = '';
      for (let i = 0; extra === ''; i++) if (keySlot(`${ns}:v:{extra${i}}`) !== entrySlot) extra = `extra${i}`;
      assert.equal(await a.getOrSet('film', async () => stored, { tags: ['films'] }), stored);

      // B asks for the entry with one tag more: a fresh hit, and that tag's counter (missing) is made by the read.
      const b = await env.open(ns);
      assert.equal(await b.getOrSet('film', async () => 'run on B', { tags: ['films', extra] }), stored);
      const counter = `${ns}:v:{${extra}}`;
      const direct = env.client();
      assert.equal(await direct.exists(counter), 1, 'the hit made no counter');
      await direct.del(counter); // what its provisional TTL does, a minute later

      assert.equal(await b.getOrSet('other', async () => 'filled by B', { tags: [extra] }), 'filled by B');
      const c = await env.open(ns);
      assert.equal(await c.get('other'), 'filled by B', "B's fill was not stored in L2");
    });
  }
});
