// Starts a throwaway Redis Cluster on loopback: N cluster-enabled servers from
// redis-server.ts, joined with `redis-cli --cluster create`. A master is
// writable no sooner than 2 s after its start, so start one cluster per suite
// and FLUSHALL the masters between tests rather than one cluster per test.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { REDIS_HOST, startRedisServer, type RedisServerHandle } from './redis-server.js';

const execFileAsync = promisify(execFile);

export interface RedisClusterOptions {
  /**
   * Number of masters; the 16384 slots are split evenly between them.
   * @default 3
   */
  masters?: number;
  /**
   * Replicas per master.
   * @default 0
   */
  replicas?: number;
  /**
   * Bound on the wait for `cluster_state:ok` on every node after the create.
   * @default 15000
   */
  readyTimeoutMs?: number;
  /**
   * The redis-cli binary.
   * @default process.env.REDIS_CLI_BIN ?? 'redis-cli'
   */
  cliBin?: string;
}

export interface RedisClusterHandle {
  /** Every node, for `new Cluster(nodes)`. */
  readonly nodes: { host: typeof REDIS_HOST; port: number }[];
  /** The server behind each node (same order as `nodes`), for fault injection. */
  readonly servers: RedisServerHandle[];
  /** Kills every node and waits for each to exit. */
  stop(): Promise<void>;
}

/**
 * Starts `masters * (1 + replicas)` cluster-enabled redis-servers, creates the
 * cluster and resolves once every node reports `cluster_state:ok`. The servers
 * are tracked like standalone ones, so the root hook kills them if a test doesn't.
 */
export async function startRedisCluster(opts: RedisClusterOptions = {}): Promise<RedisClusterHandle> {
  const masters = opts.masters ?? 3;
  const replicas = opts.replicas ?? 0;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
  const cliBin = opts.cliBin ?? process.env['REDIS_CLI_BIN'] ?? 'redis-cli';
  if (!Number.isInteger(masters) || masters < 3) throw new TypeError(`masters must be an integer >= 3 (Redis Cluster's minimum), got ${masters}`);
  if (!Number.isInteger(replicas) || replicas < 0) throw new TypeError(`replicas must be an integer >= 0, got ${replicas}`);

  const results = await Promise.allSettled(Array.from({ length: masters * (1 + replicas) }, startClusterNode));
  const servers = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
  };
  try {
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;

    const addresses = servers.map((s) => `${REDIS_HOST}:${s.port}`);
    try {
      await execFileAsync(
        cliBin,
        ['--cluster', 'create', ...addresses, '--cluster-replicas', String(replicas), '--cluster-yes'],
        { timeout: readyTimeoutMs, encoding: 'utf8' },
      );
    } catch (err) {
      const e = err as Error & { stdout?: string; stderr?: string };
      throw new Error(`redis-cli --cluster create ${addresses.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`, { cause: err });
    }
    await waitForClusterOk(servers, readyTimeoutMs);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    nodes: servers.map((s) => ({ host: REDIS_HOST, port: s.port })),
    servers,
    stop,
  };
}

/** One cluster-enabled redis-server, in no cluster yet. */
function startClusterNode(): Promise<RedisServerHandle> {
  return startRedisServer({
    clusterBus: true,
    args: ({ port, dir }) => [
      '--cluster-enabled', 'yes',
      '--cluster-config-file', join(dir, `nodes-${port}.conf`),
      // 2000 sometimes gave 3-4 s starts; 1000 gives a steady ~2.1 s (REDIS-NOTES §2).
      '--cluster-node-timeout', '1000',
      // The default 5 s delay would hold up replicas' first sync.
      '--repl-diskless-sync-delay', '0',
    ],
  });
}

/**
 * Joins a new master holding no slot to `cluster` (what scaling out starts
 * with, before slots are moved to it), and resolves once every node knows it.
 * Not in `cluster.nodes`: stop it with the handle returned.
 */
export async function addEmptyMaster(cluster: RedisClusterHandle, readyTimeoutMs = 15_000): Promise<RedisServerHandle> {
  const server = await startClusterNode();
  try {
    const first = cluster.nodes[0]!;
    const admin = new Redis(first.port, first.host);
    try {
      await admin.cluster('MEET', REDIS_HOST, server.port);
    } finally {
      admin.disconnect();
    }
    await waitForClusterOk([...cluster.servers, server], readyTimeoutMs);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/** Runs `command` on every node directly (a connection of its own each); results in `cluster.nodes` order. */
export async function onEachNode<T>(cluster: RedisClusterHandle, command: (direct: Redis) => Promise<T>): Promise<T[]> {
  return Promise.all(
    cluster.nodes.map(async (node) => {
      const direct = new Redis(node.port, node.host);
      try {
        return await command(direct);
      } finally {
        direct.disconnect();
      }
    }),
  );
}

/** Polls CLUSTER INFO on every node until each says the cluster is ok and knows every node. */
async function waitForClusterOk(servers: RedisServerHandle[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const clients = servers.map(
    (s) => new Redis({ host: REDIS_HOST, port: s.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 50 }),
  );
  const last = new Map<number, string>();
  try {
    for (;;) {
      const infos = await Promise.all(
        clients.map((c, i) =>
          c.cluster('INFO').then(
            (info) => String(info),
            (err: Error) => `error: ${err.message}`,
          ).then((info) => {
            last.set(servers[i]!.port, info);
            return info;
          }),
        ),
      );
      if (infos.every((info) => isClusterOk(info, servers.length))) return;
      if (Date.now() > deadline) {
        const report = [...last].map(([port, info]) => `--- ${REDIS_HOST}:${port}\n${info.trim()}`).join('\n');
        throw new Error(`Redis Cluster not ok on every node within ${timeoutMs} ms; last CLUSTER INFO:\n${report}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    clients.forEach((c) => c.disconnect());
  }
}

function isClusterOk(info: string, nodeCount: number): boolean {
  const field = (name: string) => new RegExp(`^${name}:(\\S+)`, 'm').exec(info)?.[1];
  return field('cluster_state') === 'ok' && field('cluster_slots_ok') === '16384' && field('cluster_known_nodes') === String(nodeCount);
}
