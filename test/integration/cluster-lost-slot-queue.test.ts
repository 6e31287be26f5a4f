// A Cluster that keeps serving what it can (cluster-require-full-coverage no)
// loses a master with no replica. An invalidation of a tag whose counter lived
// there cannot be delivered, and is queued. It must not hold back this
// instance's later invalidations of tags and keys on the masters that answer:
// DESIGN §4 allows the other instances to go on serving an invalidated entry
// only while Redis cannot be reached, and here it can. Found by h169: another
// instance served the invalidated value for as long as the master stayed lost.
// What the queue's order still guards: the stuck invalidation is replayed
// when its master returns, and a clear() made behind it covers it.
import assert from 'node:assert/strict';
import { Cluster, type ClusterOptions } from 'ioredis';
import { createCache, type TierCache } from '../../src/index.js';
import { slotUnserved } from '../../src/store/cluster-faults.js';
import { masterOf } from '../support/cluster-proxies.js';
import { eventually } from '../support/eventually.js';
import { onEachNode, startRedisCluster, type RedisClusterHandle } from '../support/redis-cluster.js';

describe('Redis Cluster with full coverage off: an invalidation stuck on a lost master', function () {
  this.timeout(90_000);
  let cluster: RedisClusterHandle;
  const clients: Cluster[] = [];
  const caches: TierCache[] = [];

  before(async function () {
    this.timeout(60_000);
    cluster = await startRedisCluster({ masters: 3 });
    await onEachNode(cluster, (node) => node.config('SET', 'cluster-require-full-coverage', 'no'));
  });
  after(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    for (const c of clients.splice(0)) c.disconnect();
    await cluster?.stop();
  });

  // Each case loses a master, and one that fails halfway leaves it lost: the next starts with the Cluster whole.
  afterEach(async function () {
    this.timeout(30_000);
    const lost = cluster.servers.filter((s) => !s.running);
    if (lost.length === 0) return;
    await Promise.all(lost.map((s) => s.restart()));
    await eventually(async () => (await onEachNode(cluster, (r) => r.cluster('NODES'))).every((nodes) => !String(nodes).includes('fail')), 'the Cluster is whole again', 20_000);
    // A restarted node starts from its config file: full coverage required again (it would answer CLUSTERDOWN).
    await onEachNode(cluster, (node) => node.config('SET', 'cluster-require-full-coverage', 'no'));
  });

  /** A cache on a client of its own; a short cooldown so that probes (and the replays they start) come within the test. */
  function open(namespace: string, options: ClusterOptions): TierCache {
    const client = new Cluster(cluster.nodes, options);
    client.on('error', () => undefined);
    clients.push(client);
    const cache = createCache({ namespace, redis: client, l2: { commandTimeout: '3s', breakerCooldown: '300ms' } });
    cache.on('error', () => undefined);
    caches.push(cache);
    return cache;
  }

  // How a command on the lost slot fails: ioredis's default budget spends itself on the lost node within ~1.2 s;
  // a large one keeps trying past the command timeout (as the default 200 ms one does with the default budget),
  // paced so that its loop does not crowd out the client's other commands (the bus's among them).
  const endings: Array<[string, ClusterOptions]> = [
    ['a spent redirection budget', {}],
    ['the command timeout', { maxRedirections: 100_000, retryDelayOnMoved: 50 }],
  ];
  for (const [ending, options] of endings) {
    const what = 'delivers the later invalidations on the masters that answer at once, replays the stuck one when its master returns, and a clear() behind it covers it';
    it(`with its bump ending on ${ending}: ${what}`, async () => {
      const ns = `hol${process.pid}${endings.findIndex(([e]) => e === ending)}`;
      const a = open(ns, options); // invalidates
      const b = open(ns, {}); // holds the entries in L1; never touches the lost master's slots
      await Promise.all([a.ready(), b.ready()]);
      const busMaster = await masterOf(cluster, `{${ns}}:epoch`);
      const [lost, alive] = cluster.nodes.map((n) => n.port).filter((p) => p !== busMaster) as [number, number];
      const tagOn = async (port: number, prefix: string) => {
        for (let t = 0; ; t++) if ((await masterOf(cluster, `${ns}:v:{${prefix}${t}}`)) === port) return `${prefix}${t}`;
      };
      const keyOn = async (port: number, prefix: string) => {
        for (let k = 0; ; k++) if ((await masterOf(cluster, a.dataKey(`${prefix}${k}`))) === port) return `${prefix}${k}`;
      };
      const [tLost, tAlive] = [await tagOn(lost, 'x'), await tagOn(alive, 'a')];
      // Entries on a master that answers; kL's and kL2's tag counter is on the one that will be lost.
      const [kA, kS, kL, kL2] = [await keyOn(alive, 'a'), await keyOn(alive, 's'), await keyOn(alive, 'l'), await keyOn(alive, 'm')];
      // Until B reads them: a master the previous case restarted may still be joining the Cluster.
      const read = async () => {
        await a.set(kA, 'old', { ttl: '1h', tags: [tAlive] });
        await a.set(kS, 'old', { ttl: '1h' });
        await a.set(kL, 'old', { ttl: '1h', tags: [tLost] });
        for (const key of [kA, kS, kL]) if ((await b.get(key)) !== 'old') return false;
        return true;
      };
      await eventually(read, 'B did not read the entries from L2', 10_000);
      // Then until B holds them in L1, its channel subscribed. ready() does not wait again for a first connection
      // closed before it was ready (the restarted master), so B may have read them before its channel was
      // subscribed: it forgets them when it is, and would read kL from L2 again later, touching the lost master.
      const tiers: string[] = [];
      b.on('hit', ({ tier }) => tiers.push(tier));
      const held = async () => {
        if (b.health().bus !== 'ok') return false;
        tiers.length = 0;
        for (const key of [kA, kS, kL]) if ((await b.get(key)) !== 'old') return false;
        return b.health().bus === 'ok' && tiers.join() === 'L1,L1,L1';
      };
      await eventually(held, 'B did not come to hold the entries in L1 with its channel subscribed', 10_000);
      assert.deepStrictEqual([a.health().l2, b.health().l2], ['ok', 'ok']);

      const server = cluster.servers.find((s) => s.port === lost)!;
      server.kill('SIGKILL');
      await server.exited();

      assert.deepStrictEqual(await a.invalidateTags([tLost]), { delivered: false }, "an invalidation of a tag on the lost master was delivered (the test's premise)");
      assert.deepStrictEqual(await a.invalidateTags([tAlive]), { delivered: true }, 'an invalidation of a tag on a master that answers was held back behind one stuck on the lost master');
      await eventually(async () => (await b.get(kA)) === undefined, 'B still serves an entry of a tag invalidated on a master that answers', 2_000);
      // A set() of a value with the stuck tag is not stored before that invalidation: it becomes a delete of its key
      // (on a master that answers), which B hears at once too.
      await a.set(kS, 'new', { ttl: '1h', tags: [tLost] });
      await eventually(async () => (await b.get(kS)) === undefined, 'B still serves the value from before a set() that could not be stored in order', 10_000);
      assert.equal(await b.get(kL), 'old', `B heard the stuck invalidation with its master lost (the test's premise): ${JSON.stringify([b.health(), b.stats().bus])}`);
      // The delete that set() became is delivered in the background (the set() does not wait for Redis twice), after
      // a retry of the stuck one that may be under way.
      await eventually(() => a.stats().queuedInvalidations === 1, 'invalidations other than the stuck one wait', 10_000);
      assert.deepStrictEqual(b.health(), { l1: 'ok', l2: 'ok', bus: 'ok', pubsub: 'sharded' });

      // Its master returns: the stuck invalidation is replayed, and B hears it.
      await server.restart();
      await eventually(() => a.stats().queuedInvalidations === 0, 'the stuck invalidation was not replayed after its master returned', 20_000);
      await eventually(async () => (await b.get(kL)) === undefined, 'B still serves an entry of the tag whose invalidation was replayed', 2_000);

      // Lost again, with an invalidation stuck: a clear() behind it covers it, and is not held back by it.
      await eventually(async () => (await a.set(kL2, 'old', { ttl: '1h', tags: [tLost] }), (await b.get(kL2)) === 'old'), 'B reads an entry of the returned master', 20_000);
      server.kill('SIGKILL');
      await server.exited();
      assert.deepStrictEqual(await a.invalidateTags([tLost]), { delivered: false }, "an invalidation of a tag on the lost master was delivered (the test's premise)");
      assert.deepStrictEqual(await a.clear(), { delivered: true }, 'a clear() was held back behind an invalidation stuck on the lost master');
      assert.equal(a.stats().queuedInvalidations, 0, 'the clear() did not take the place of the stuck invalidation');
      await eventually(async () => (await b.get(kL2)) === undefined, 'B still serves an entry from before the clear()', 2_000);
    });
  }

  // What lets the items on other slots go on: a failure of the command's own slot, not of the whole Cluster.
  it("reads a spent redirection budget and an unserved slot as that slot's failure, a Cluster down or a timeout as not", () => {
    const spent = (last: string) => new Error(`Too many Cluster redirections. Last error: ${last}`);
    assert.equal(slotUnserved(spent('Error: Connection is closed.')), true);
    assert.equal(slotUnserved(spent('ReplyError: MOVED 42 127.0.0.1:1')), true);
    assert.equal(slotUnserved(new Error('CLUSTERDOWN Hash slot not served')), true);
    assert.equal(slotUnserved(spent('ReplyError: CLUSTERDOWN Hash slot not served')), true);
    assert.equal(slotUnserved(new Error('CLUSTERDOWN The cluster is down')), false);
    assert.equal(slotUnserved(spent('ReplyError: CLUSTERDOWN The cluster is down')), false);
    assert.equal(slotUnserved(new Error('Command timed out')), false);
    assert.equal(slotUnserved(new Error('Connection is closed.')), false);
  });
});
