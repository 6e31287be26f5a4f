// One real Redis Cluster for every suite that asks for it, and the caches and
// clients a test opens on it, closed after each test: what the Cluster test
// files share. A cluster takes about 2 s to start (a master is writable only
// then), so it outlives the tests and the files, each test taking a namespace
// of its own. These suites only read and write (none stops, freezes or
// reconfigures a node), and each starts on an empty cluster (FLUSHALL, SCRIPT
// FLUSH on every node). It is started on first use and killed with every other
// server at the end of the run (root-hooks.ts); one found dead (a run where the
// root hook ran after a file, as in parallel mode) is started anew.
import { Cluster } from 'ioredis';
import { createCache, type TierCache } from '../../src/index.js';
import { onEachNode, startRedisCluster, type RedisClusterHandle } from './redis-cluster.js';

export interface ClusterCaches {
  /** The running cluster (after the suite's `before`). */
  readonly cluster: RedisClusterHandle;
  /** A Cluster client, disconnected after the test. */
  client(): Cluster;
  /** A ready cache on a client of its own, closed after the test. */
  open(namespace: string, l2?: { lockTimeout?: number; commandTimeout?: number }): Promise<TierCache>;
}

let shared: Promise<RedisClusterHandle> | undefined;

/** The run's 3-master cluster, started on first use, or again if its nodes were killed since. */
async function sharedCluster(): Promise<RedisClusterHandle> {
  const running = await shared?.catch(() => undefined);
  if (running !== undefined && running.servers.every((s) => s.running)) return running;
  await running?.stop();
  shared = startRedisCluster({ masters: 3 });
  return shared;
}

/**
 * Registers the suite's hooks (call it inside `describe`): a 3-master cluster, and cleanup after each test.
 * `own`: a cluster of the suite's own, stopped after it, for a suite that must not follow others on the shared one.
 */
export function clusterCaches(options: { own?: boolean } = {}): ClusterCaches {
  let cluster: RedisClusterHandle | undefined;
  const clients: Cluster[] = [];
  const caches: TierCache[] = [];
  before(async () => {
    if (options.own) return void (cluster = await startRedisCluster({ masters: 3 }));
    cluster = await sharedCluster();
    // What an earlier file left (its keys, the scripts it loaded) is gone, as on a cluster of the file's own.
    await onEachNode(cluster, async (direct) => void (await direct.flushall(), await direct.script('FLUSH')));
  });
  if (options.own) after(async () => await cluster?.stop());
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    for (const c of clients.splice(0)) c.disconnect();
  });
  const env: ClusterCaches = {
    get cluster() {
      if (cluster === undefined) throw new Error('the cluster is not started yet (use it inside a test)');
      return cluster;
    },
    client() {
      const c = new Cluster(env.cluster.nodes);
      clients.push(c);
      return c;
    },
    async open(namespace, l2 = {}) {
      // A command timeout a loaded CI machine does not reach: these tests are not about timeouts.
      const cache = createCache({ namespace, redis: env.client(), l2: { commandTimeout: 2000, ...l2 } });
      caches.push(cache);
      await cache.ready();
      return cache;
    },
  };
  return env;
}
