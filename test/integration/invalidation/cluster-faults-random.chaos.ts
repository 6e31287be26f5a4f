// Random faults on a Redis Cluster while Koa instances invalidate (run on
// demand, not in the suite:
// `FUZZ_MS=60000 npx mocha test/integration/invalidation/cluster-faults-random.chaos.ts`).
// The workload of koa-chaos.ts on three instances (Koa 3, Koa 2, Koa 3) of a
// 3-master Cluster with a replica each, every instance reaching every node
// through proxies of its own (cluster-proxies.ts), so one instance's link to
// one node (or to all of them) can be cut, blackholed, slowed or stalled while
// the others keep it. Now and then (CLUSTER_FAULTS=0: never) the Cluster
// itself: a master SIGKILLed (its replica takes over, the dead node is started
// again and rejoins as a replica), a master SIGKILLed and started again at
// once (back empty before anyone counts it failed), a master frozen (SIGSTOP,
// long enough or not for a failover), a FLUSHALL of every master, or the slot
// of a tag's counter (or of the bus channel and epoch) moved to another master
// key by key (MOVED and ASK between fill and invalidation). The rules are
// koa-chaos.ts's.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Koa from 'koa';
import { Redis } from 'ioredis';
import { createCache, type TierCache } from '../../../src/index.js';
import { keySlot } from '../../../src/store/hash-slot.js';
import { Koa2 } from '../middleware/apps.js';
import { startClusterProxies, type ClusterProxies } from '../../support/cluster-proxies.js';
import { CHAOS_ROUTES, linkFaults, rnd, runKoaChaos, type ChaosInstance } from '../../support/koa-chaos.js';
import { startRedisCluster, type RedisClusterHandle } from '../../support/redis-cluster.js';
import type { RedisServerHandle } from '../../support/redis-server.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const FUZZ_MS = Number(process.env['FUZZ_MS'] ?? 40_000);
const CLUSTER_FAULTS = process.env['CLUSTER_FAULTS'] !== '0';

/** A direct, short-lived admin connection to one node; undefined results when it does not answer. */
async function onNode<T>(port: number, command: (r: Redis) => Promise<T>): Promise<T | undefined> {
  const r = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000, commandTimeout: 2000, lazyConnect: true });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await command(r);
  } catch {
    return undefined;
  } finally {
    r.disconnect();
  }
}

interface NodeInfo { id: string; port: number; master: boolean; slots: Array<[number, number]> }

/** The cluster as the first node that answers sees it (failed nodes left out). */
async function topology(cluster: RedisClusterHandle): Promise<NodeInfo[]> {
  for (const s of cluster.servers) {
    if (!s.running) continue;
    const text = await onNode(s.port, (r) => r.cluster('NODES') as Promise<string>);
    if (text === undefined) continue;
    return String(text).trim().split('\n').flatMap((line) => {
      const f = line.split(' ');
      if (/fail|handshake|noaddr/.test(f[2]!)) return [];
      const port = Number(/:(\d+)@/.exec(f[1]!)![1]);
      const slots = f.slice(8).filter((x) => !x.startsWith('[')).map((x): [number, number] => {
        const [lo, hi] = x.split('-').map(Number);
        return [lo!, hi ?? lo!];
      });
      return [{ id: f[0]!, port, master: f[2]!.includes('master'), slots }];
    });
  }
  return [];
}

async function clusterOk(cluster: RedisClusterHandle): Promise<boolean> {
  const infos = await Promise.all(cluster.servers.filter((s) => s.running).map((s) => onNode(s.port, (r) => r.cluster('INFO') as Promise<string>)));
  return infos.every((i) => i !== undefined && /^cluster_state:ok/m.test(String(i)));
}

async function untilOk(cluster: RedisClusterHandle, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (await clusterOk(cluster)) return;
  throw new Error('the cluster is not ok again');
}

/** Moves `slot` from its master to another, key by key with pauses (ASK meanwhile), then SETSLOT NODE everywhere. */
async function moveSlot(cluster: RedisClusterHandle, slot: number): Promise<void> {
  const nodes = await topology(cluster);
  const masters = nodes.filter((n) => n.master && n.slots.length > 0);
  const from = masters.find((m) => m.slots.some(([lo, hi]) => lo <= slot && slot <= hi));
  if (from === undefined) return;
  const others = masters.filter((m) => m !== from);
  const to = others[rnd(others.length)]!;
  await onNode(to.port, (r) => r.cluster('SETSLOT', slot, 'IMPORTING', from.id));
  await onNode(from.port, (r) => r.cluster('SETSLOT', slot, 'MIGRATING', to.id));
  for (let round = 0; round < 100; round++) {
    const keys = (await onNode(from.port, (r) => r.cluster('GETKEYSINSLOT', slot, 1) as Promise<string[]>)) ?? [];
    if (keys.length === 0) break;
    await onNode(from.port, (r) => r.call('MIGRATE', '127.0.0.1', String(to.port), '', '0', '5000', 'REPLACE', 'KEYS', ...keys));
    await sleep(rnd(100));
  }
  await onNode(to.port, (r) => r.cluster('SETSLOT', slot, 'NODE', to.id));
  await onNode(from.port, (r) => r.cluster('SETSLOT', slot, 'NODE', to.id));
  for (const m of masters) if (m !== from && m !== to) await onNode(m.port, (r) => r.cluster('SETSLOT', slot, 'NODE', to.id));
}

describe('Redis Cluster: invalidation under random link and node faults (three Koa instances, all invalidating)', function () {
  this.timeout(FUZZ_MS + 120_000);
  let cluster: RedisClusterHandle;
  before(async function () {
    this.timeout(60_000);
    cluster = await startRedisCluster({ masters: 3, replicas: 1 });
  });
  after(async () => await cluster?.stop());

  it('no answer is older than an invalidation its instance made or heard before the request, and none is a 5xx', async () => {
    const ns = `cchaos${process.pid}`;
    const links: ClusterProxies[] = [];
    const caches: TierCache[] = [];
    const instances: ChaosInstance[] = [];
    for (const [name, K] of [['A', Koa], ['B', Koa2], ['C', Koa]] as const) {
      const proxies = await startClusterProxies(cluster, Object.fromEntries(cluster.nodes.map((n) => [n.port, 0])));
      links.push(proxies);
      const cache = createCache({ namespace: ns, redis: proxies.client(), routes: CHAOS_ROUTES, l2: { commandTimeout: 300, lockTimeout: rnd(2) === 0 ? 0 : 500 } });
      cache.on('error', () => undefined);
      await cache.ready();
      caches.push(cache);
      instances.push({ name, cache, Koa: K });
    }
    let fault = '-';
    const log: string[] = [];
    const nodeFaults = async (stopped: () => boolean) => {
      while (!stopped()) {
        await sleep(3000 + rnd(4000));
        if (stopped()) break;
        const masters = (await topology(cluster)).filter((n) => n.master && n.slots.length > 0);
        const victim = masters[rnd(masters.length)];
        const server = cluster.servers.find((s) => s.port === victim?.port) as RedisServerHandle | undefined;
        const kind = rnd(5);
        const t = Date.now();
        try {
          if (kind === 4 && server !== undefined) {
            // Back before the others count it failed: the same node, its slots empty (nothing is persisted).
            fault = `restart ${server.port}`;
            await server.restart();
            await untilOk(cluster);
          } else if (kind === 0 && server !== undefined) {
            fault = `kill ${server.port}`;
            server.kill('SIGKILL');
            await server.exited();
            // A replica takes over once the others see the master failed (node-timeout 1000 ms).
            await untilOk(cluster);
            await server.restart();
            await untilOk(cluster);
          } else if (kind === 1 && server !== undefined) {
            const ms = rnd(2500);
            fault = `freeze ${server.port} ${ms} ms`;
            server.freeze();
            await sleep(ms);
            server.thaw();
            await untilOk(cluster);
          } else if (kind === 2) {
            fault = 'flushall';
            await Promise.all(masters.map((m) => onNode(m.port, (r) => r.flushall())));
          } else if (rnd(3) > 0) {
            const tag = `movie:${rnd(4)}`;
            fault = `move slot of ${tag}`;
            await moveSlot(cluster, keySlot(`${ns}:v:{${tag}}`));
          } else {
            // The namespace's slot: the epoch, and the bus's channel (sharded subscribers are unsubscribed).
            fault = 'move the bus slot';
            await moveSlot(cluster, keySlot(`{${ns}}:bus`));
          }
        } catch (err) {
          fault = `${fault} (failed: ${(err as Error).message})`;
        }
        log.push(`${fault}: ${Date.now() - t} ms`);
        fault = '-';
      }
    };
    const faults = [
      ...links.map((l, i) => (s: () => boolean) => (async () => {
        // Each round a random node's link of this instance, or now and then all of them at once (the instance cut off).
        const all = {
          cut: (mode?: 'refuse' | 'blackhole') => l.proxies.forEach((p) => p.cut(mode)),
          heal: () => l.proxies.forEach((p) => p.heal()),
          setDelay: (ms: number) => l.proxies.forEach((p) => p.setDelay(ms)),
        };
        while (!s()) await linkFaults(rnd(4) === 0 ? all : l.proxies[rnd(l.proxies.length)]!, [2500, 100, 1500][i]!, () => s() || rnd(2) === 0);
      })()),
      ...(CLUSTER_FAULTS ? [nodeFaults] : []),
    ];
    try {
      const { failures, outage, summary } = await runKoaChaos(instances, FUZZ_MS, faults, () => fault);
      console.log(`      ${summary}\n      cluster faults: ${log.join('; ')}`);
      if (failures.length + outage.length > 0) writeFileSync(join(tmpdir(), `invalidation-chaos-cluster-${Date.now()}.txt`), [...failures, '--- the outage fallback:', ...outage].join('\n'));
      assert.deepEqual(failures.slice(0, 5), []);
    } finally {
      for (const s of cluster.servers) if (s.running) s.thaw();
      await Promise.all(caches.map((c) => c.close()));
      for (const l of links) await l.close();
    }
  });
});
