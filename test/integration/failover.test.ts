// Failover under load (DESIGN.md section 5) on a real Redis Cluster of 3
// masters with a replica each (node-timeout 1000 ms) and two app processes:
// the master that owns both the bus channel's slot and a hot key's slot is
// killed (SIGKILL) and its replica takes over. What is checked is in
// test/support/failover-scenario.ts.
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { keySlot } from '../../src/store/hash-slot.js';
import { startApp, START_MS, stopAllApps, type AppProcess } from '../support/app-process.js';
import { runFailoverUnderLoad } from '../support/failover-scenario.js';
import { startRedisCluster, type RedisClusterHandle } from '../support/redis-cluster.js';

const COMMAND_TIMEOUT_MS = 200;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The port of the master that serves `slot`, as `via` sees it (undefined while the slot has none). */
async function masterOf(via: Redis, slot: number): Promise<number | undefined> {
  const ranges = (await via.cluster('SLOTS')) as unknown as Array<[number, number, [string, number, string]]>;
  const range = ranges.find(([from, to]) => from <= slot && slot <= to);
  return range?.[2][1];
}

async function clusterOk(via: Redis): Promise<boolean> {
  return /^cluster_state:ok/m.test(String(await via.cluster('INFO')));
}

describe('failover under load: a 3-master Cluster with replicas, two app processes', function () {
  this.timeout(120_000);
  let cluster: RedisClusterHandle;
  let a: AppProcess;
  let b: AppProcess;
  const ns = `fo${process.pid}`;
  const admins: Redis[] = [];

  before(async function () {
    this.timeout(START_MS * 2 + 30_000);
    cluster = await startRedisCluster({ masters: 3, replicas: 1 });
    const env = { REDIS_CLUSTER: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(','), NAMESPACE: ns, COMMAND_TIMEOUT: String(COMMAND_TIMEOUT_MS) };
    [a, b] = await Promise.all([startApp('A', env), startApp('B', env)]);
  });

  after(async function () {
    this.timeout(15_000);
    for (const admin of admins) admin.disconnect();
    await stopAllApps();
    await cluster?.stop();
  });

  function admin(port: number): Redis {
    const client = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, retryStrategy: () => null });
    admins.push(client);
    return client;
  }

  it('killing the master of the bus channel and of a hot key: no error answers, bounded waits, invalidations before and after the kill hold', async () => {
    for (const app of [a, b]) assert.equal((await app.health()).health.pubsub, 'sharded');
    const first = admin(cluster.nodes[0]!.port);
    const busSlot = keySlot(`{${ns}}:bus`);
    const victimPort = (await masterOf(first, busSlot))!;
    const onVictim = async (slot: number) => (await masterOf(first, slot)) === victimPort;
    // A hot URL with its entry on the victim.
    const pickHot = async (): Promise<string> => {
      // Each try lands on the victim about one time in three.
      for (let i = 0; i < 300; i++) {
        const reply = await a.get(`/api/movies/hot${i}`);
        if (await onVictim(keySlot(reply.json.key))) return `/api/movies/hot${i}`;
      }
      throw new Error(`no hot URL of 300 has its entry on the victim (port ${victimPort})`);
    };
    // A URL to invalidate before the kill, with its entry and its tag counter on
    // the victim. The entry's slot is picked by the query, not the id: CRC16 is
    // linear, so two keys ending in the same id of the same length have slots a
    // fixed XOR apart, which for some namespaces never puts both on one master.
    const pickPre = async (): Promise<string> => {
      for (let i = 0; i < 300; i++) {
        if (!(await onVictim(keySlot(`${ns}:v:{movie:pre${i}}`)))) continue;
        for (let j = 0; j < 300; j++) {
          const reply = await a.get(`/api/movies/pre${i}?v=${j}`);
          if (await onVictim(keySlot(reply.json.key))) return `/api/movies/pre${i}?v=${j}`;
        }
      }
      throw new Error(`no pre URL has its entry and its tag counter on the victim (port ${victimPort})`);
    };
    const victim = cluster.servers.find((s) => s.port === victimPort)!;
    const survivor = admin(cluster.nodes.find((n) => n.port !== victimPort)!.port);
    await runFailoverUnderLoad({
      a,
      b,
      hot: await pickHot(),
      pre: await pickPre(),
      post: '/api/movies/post',
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      async kill() {
        victim.kill('SIGKILL');
        await victim.exited();
      },
      async takeover() {
        for (const deadline = Date.now() + 20_000; ; await sleep(20)) {
          assert.ok(Date.now() < deadline, 'no replica took over within 20 s');
          const owner = await masterOf(survivor, busSlot).catch(() => undefined);
          if (owner !== undefined && owner !== victimPort && (await clusterOk(survivor).catch(() => false))) return;
        }
      },
    });
  });
});
