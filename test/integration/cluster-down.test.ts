// A Cluster that serves no key while one master is down with no replica to take
// over (cluster-require-full-coverage, the default): every node answers
// CLUSTERDOWN, a reply, not a timeout. Before, L2 took it for one command's
// failure: a client made with retryDelayOnClusterDown 0 paid a round trip and
// an 'error' per command, and one with ioredis's defaults waited its whole
// redirection budget (16 retries 100 ms apart, 1.6 s, when the command timeout
// is longer) on every command, each a fill's lookup and store. DESIGN §4: a dead
// Redis costs speed, not errors: L2 is down until the Cluster is whole again.
import assert from 'node:assert/strict';
import { Cluster, Redis, type ClusterOptions } from 'ioredis';
import { createCache, type TierCache } from '../../src/index.js';
import { clusterDown } from '../../src/store/cluster-faults.js';
import { masterOf } from '../support/cluster-proxies.js';
import { eventually } from '../support/eventually.js';
import { startRedisCluster, type RedisClusterHandle } from '../support/redis-cluster.js';

describe('Redis Cluster down (a master gone with no replica)', function () {
  this.timeout(60_000);
  let cluster: RedisClusterHandle;
  const clients: Cluster[] = [];
  const caches: TierCache[] = [];
  before(async function () {
    this.timeout(60_000);
    cluster = await startRedisCluster({ masters: 3 });
  });
  after(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    for (const c of clients.splice(0)) c.disconnect();
    await cluster?.stop();
  });

  async function open(ns: string, options: ClusterOptions): Promise<{ cache: TierCache; errors: string[] }> {
    const client = new Cluster(cluster.nodes, options);
    client.on('error', () => undefined);
    clients.push(client);
    // Long enough that only the Cluster's answers can take L2 down; a long cooldown, so no probe runs meanwhile.
    const cache = createCache({ namespace: ns, redis: client, l2: { commandTimeout: '5s', breakerCooldown: '20s' } });
    const errors: string[] = [];
    cache.on('error', ({ err }: { err: Error }) => errors.push(err.message));
    caches.push(cache);
    await cache.ready();
    return { cache, errors };
  }

  it("each client's first command on a Cluster down takes L2 down; nothing throws, and an invalidation is queued", async () => {
    const ns = `cdown${process.pid}`;
    const kinds = { 'retryDelayOnClusterDown 0': { retryDelayOnClusterDown: 0 }, "ioredis's defaults": {} } as const;
    const opened = await Promise.all(Object.values(kinds).map((options) => open(ns, options)));
    const busMaster = await masterOf(cluster, `{${ns}}:bus`);
    // Keys on a master that stays up: what it answers is CLUSTERDOWN, not a lost connection.
    const keys: string[] = [];
    for (let k = 0; keys.length < 3; k++) if ((await masterOf(cluster, opened[0]!.cache.dataKey(`k${k}`))) === busMaster) keys.push(`k${k}`);
    const victim = cluster.servers.find((s) => s.port !== busMaster)!;
    victim.kill('SIGKILL');
    const survivor = new Redis(busMaster, '127.0.0.1');
    try {
      await eventually(async () => /cluster_state:fail/.test(String(await survivor.cluster('INFO'))), 'the Cluster says it is down', 10_000);
    } finally {
      survivor.disconnect();
    }
    for (const [i, kind] of Object.keys(kinds).entries()) {
      const { cache, errors } = opened[i]!;
      const waits: number[] = [];
      for (const key of keys) {
        const start = Date.now();
        assert.equal(await cache.getOrSet(key, () => 'loaded', { ttl: '1h' }), 'loaded');
        waits.push(Date.now() - start);
        await cache.set(key, 'v');
        assert.equal(await cache.get(`${key}-none`), undefined);
      }
      assert.equal(cache.health().l2, 'down', `${kind}: L2 still up after ${keys.length} getOrSet() whose Cluster answered CLUSTERDOWN (they waited ${waits.join(', ')} ms; errors: ${errors.join(' | ')})`);
      assert.deepEqual(await cache.invalidateTags(['T']), { delivered: false });
    }
  });

  // Both forms the client gives back for a command on a Cluster that is down: at once (retryDelayOnClusterDown 0),
  // or once its redirection budget is spent on CLUSTERDOWN (ioredis's defaults). Which one a live client returns
  // depends on timing (its retries may end on a closed connection instead), so the forms are checked as rules.
  it('reads CLUSTERDOWN as a Cluster down whether it comes at once or ends a spent redirection budget', () => {
    const spent = (last: string) => new Error(`Too many Cluster redirections. Last error: ${last}`);
    assert.equal(clusterDown(new Error('CLUSTERDOWN The cluster is down')), true);
    assert.equal(clusterDown(spent('ReplyError: CLUSTERDOWN The cluster is down')), true);
    assert.equal(clusterDown(spent('Error: Connection is closed.')), false);
    assert.equal(clusterDown(new Error('READONLY You can\'t write against a read only replica.')), false);
  });
});
