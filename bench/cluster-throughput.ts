// L2 throughput on one Redis vs. a 3-master Redis Cluster (DESIGN.md section
// 5), all on this machine: expect no gain in absolute numbers (the same cores
// run every server and the client); what the Cluster run shows is the spread,
// commands per master from INFO commandstats. Then the invalidation
// propagation p50/p95 on the Cluster (sharded pub/sub).
//
//   node --import tsx bench/cluster-throughput.ts [--seconds 3] [--runs 3] [--concurrency 32] [--json]
//
// Per target and run, through the data API with L1 off (every get is an L2
// round trip): "hits" = get() of 2,000 pre-filled keys, chosen at random;
// "misses" = getOrSet() of a key never seen (lookup + lock, then store +
// unlock: two round trips, as a middleware miss). Runs alternate between the
// targets; the figure is the median run. Propagation: two caches (two Cluster
// clients in this process): B holds a tagged value in L1, A invalidates the
// tag, and the time from invalidateTags() resolving to B's 'invalidate' event
// is recorded, 200 rounds.
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Cluster, Redis } from 'ioredis';
import { createCache, type TierCache } from '../src/index.js';
import { startRedisCluster } from '../test/support/redis-cluster.js';
import { startRedisServer } from '../test/support/redis-server.js';
import { runInfo } from './support/machine.mjs';
import { rounded, summarize } from './support/stats.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    runs: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '32' },
    json: { type: 'boolean', default: false },
  },
});
const SECONDS = Number(args.seconds);
const RUNS = Number(args.runs);
const CONCURRENCY = Number(args.concurrency);
const KEYS = 2_000;
const ADMIN_COMMANDS = new Set(['info', 'config', 'cluster', 'ping', 'command', 'client', 'hello', 'select', 'readonly', 'script']);

interface Target {
  readonly name: 'single' | 'cluster';
  /** Direct connections to every master, for INFO commandstats. */
  readonly masters: Redis[];
  client(): Redis | Cluster;
}

interface PhaseResult {
  readonly opsPerSec: number;
  readonly commandsPerMaster: number[];
}

const median = (values: readonly number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function commandsPerMaster(masters: readonly Redis[]): Promise<number[]> {
  return Promise.all(
    masters.map(async (m) => {
      let total = 0;
      for (const [, name, calls] of (await m.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
        if (!ADMIN_COMMANDS.has(name!.split('|')[0]!)) total += Number(calls);
      }
      return total;
    }),
  );
}

/** Runs `op` from CONCURRENCY loops for SECONDS; ops per second and commands per master meanwhile. */
async function phase(target: Target, op: (i: number) => Promise<unknown>): Promise<PhaseResult> {
  await Promise.all(target.masters.map((m) => m.config('RESETSTAT')));
  let done = 0;
  let next = 0;
  const end = performance.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        await op(next++);
        done++;
      }
    }),
  );
  const elapsed = SECONDS + (performance.now() - end) / 1000;
  return { opsPerSec: done / elapsed, commandsPerMaster: await commandsPerMaster(target.masters) };
}

async function run(target: Target, round: number): Promise<{ hits: PhaseResult; misses: PhaseResult }> {
  const client = target.client();
  // A generous command timeout: a loaded 2-core machine must not turn slow answers into fast failures.
  const cache = createCache({ namespace: `bench-cl-${target.name}-${round}`, redis: client, l1: false, l2: { commandTimeout: 2000 } });
  await cache.ready();
  try {
    for (let i = 0; i < KEYS; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => cache.set(`k${i + j}`, { i: i + j, pad: 'x'.repeat(1000) })));
    let missed = 0;
    const hits = await phase(target, async () => {
      if ((await cache.get(`k${Math.floor(Math.random() * KEYS)}`)) === undefined) missed++;
    });
    if (missed > 0) throw new Error(`${target.name}: ${missed} gets of pre-filled keys missed (L2 errors: ${cache.stats().l2.errors})`);
    const misses = await phase(target, (i) => cache.getOrSet(`m${round}-${i}`, () => ({ i, pad: 'x'.repeat(1000) }), { tags: [`t${i % 50}`] }));
    if (cache.stats().l2.errors > 0) throw new Error(`${cache.stats().l2.errors} L2 errors`);
    return { hits, misses };
  } finally {
    await cache.close();
    client.disconnect();
  }
}

async function propagation(nodes: Array<{ host: string; port: number }>): Promise<ReturnType<typeof summarize>> {
  const clients = [new Cluster(nodes), new Cluster(nodes)];
  const [a, b] = clients.map((c) => createCache({ namespace: 'bench-cl-prop', redis: c, l2: { commandTimeout: 2000 } })) as [TierCache, TierCache];
  await Promise.all([a.ready(), b.ready()]);
  const samples: number[] = [];
  try {
    for (let round = 0; round < 250; round++) {
      await a.set(`v${round}`, round, { tags: [`t${round}`] });
      if ((await b.get(`v${round}`)) !== round) throw new Error(`round ${round}: B did not read the value: A ${JSON.stringify(a.stats())} ${JSON.stringify(a.health())} B ${JSON.stringify(b.stats())} ${JSON.stringify(b.health())}`);
      const heard = new Promise<number>((resolve) => b.once('invalidate', () => resolve(performance.now())));
      await a.invalidateTags([`t${round}`]);
      const resolvedAt = performance.now();
      const at = await heard;
      if (round >= 50) samples.push(Math.max(0, at - resolvedAt));
    }
  } finally {
    await Promise.all([a.close(), b.close()]);
    for (const c of clients) c.disconnect();
  }
  return summarize(samples);
}

const single = await startRedisServer();
const cluster = await startRedisCluster({ masters: 3 });
const singleAdmin = new Redis(single.port, single.host);
const clusterMasters = cluster.nodes.map((n) => new Redis(n.port, n.host));
const targets: Target[] = [
  { name: 'single', masters: [singleAdmin], client: () => new Redis(single.port, single.host) },
  { name: 'cluster', masters: clusterMasters, client: () => new Cluster(cluster.nodes) },
];
try {
  const results: Record<string, Array<{ hits: PhaseResult; misses: PhaseResult }>> = { single: [], cluster: [] };
  for (let round = 0; round < RUNS; round++) {
    for (const target of targets) results[target.name]!.push(await run(target, round));
  }
  const pick = (name: string, kind: 'hits' | 'misses') => {
    const runs = results[name]!.map((r) => r[kind]);
    const mid = median(runs.map((r) => r.opsPerSec));
    const chosen = runs.find((r) => r.opsPerSec === mid)!;
    const total = chosen.commandsPerMaster.reduce((s, n) => s + n, 0);
    return { opsPerSec: Math.round(mid), commandsPerMaster: chosen.commandsPerMaster, shares: chosen.commandsPerMaster.map((n) => Math.round((n / total) * 1000) / 10) };
  };
  const prop = rounded(await propagation(cluster.nodes), 3);
  const report = {
    ...runInfo(),
    seconds: SECONDS,
    runs: RUNS,
    concurrency: CONCURRENCY,
    hits: { single: pick('single', 'hits'), cluster: pick('cluster', 'hits') },
    misses: { single: pick('single', 'misses'), cluster: pick('cluster', 'misses') },
    propagationMs: prop,
  };
  if (args.json) console.log(JSON.stringify(report, null, 2));
  else {
    for (const kind of ['hits', 'misses'] as const) {
      const s = report[kind].single;
      const c = report[kind].cluster;
      console.log(`L2 ${kind}: single ${s.opsPerSec} ops/s; cluster ${c.opsPerSec} ops/s (${(c.opsPerSec / s.opsPerSec).toFixed(2)}x); commands per master ${c.commandsPerMaster.join(' / ')} (${c.shares.join('% / ')}%)`);
    }
    console.log(`invalidation propagation on the cluster (sharded pub/sub), ${prop.n} rounds: p50 ${prop.p50} ms, p95 ${prop.p95} ms, max ${prop.max} ms`);
  }
} finally {
  singleAdmin.disconnect();
  for (const m of clusterMasters) m.disconnect();
  await single.stop();
  await cluster.stop();
}
