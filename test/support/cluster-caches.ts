// One real Redis Cluster per mocha suite, and the caches and clients a test
// opens on it, closed after each test: what the Cluster test files share. A
// master is writable only 2 s after its start, so the cluster outlives the
// tests and each test takes a namespace of its own.
import { Cluster } from 'ioredis';
import { createCache, type TierCache } from '../../src/index.js';
import { startRedisCluster, type RedisClusterHandle } from './redis-cluster.js';

export interface ClusterCaches {
  /** The running cluster (after the suite's `before`). */
  readonly cluster: RedisClusterHandle;
  /** A Cluster client, disconnected after the test. */
  client(): Cluster;
  /** A ready cache on a client of its own, closed after the test. */
  open(namespace: string, l2?: { lockTimeout?: number }): Promise<TierCache>;
}

/** Registers the suite's hooks (call it inside `describe`): a 3-master cluster, and cleanup after each test. */
export function clusterCaches(): ClusterCaches {
  let cluster: RedisClusterHandle | undefined;
  const clients: Cluster[] = [];
  const caches: TierCache[] = [];
  before(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  });
  after(async () => {
    await cluster?.stop();
  });
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
