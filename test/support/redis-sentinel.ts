// Starts a throwaway Redis Sentinel setup on loopback: a master, a replica of
// it and three sentinels (quorum 2), all from redis-server.ts, started in
// parallel where they can be. Sentinels find each other through the master's
// hello channel (every 2 s), so the setup resolves once every sentinel knows
// the replica and the two other sentinels: a failover needs them.
import { Redis } from 'ioredis';
import { eventually } from './eventually.js';
import { REDIS_HOST, startRedisServer, type RedisServerHandle } from './redis-server.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

export const SENTINEL_MASTER_NAME = 'mymaster';

export interface RedisSentinelHandle {
  readonly master: RedisServerHandle;
  readonly replica: RedisServerHandle;
  readonly sentinels: RedisServerHandle[];
  /** For `new Redis({ sentinels, name: SENTINEL_MASTER_NAME })`. */
  readonly addresses: { host: typeof REDIS_HOST; port: number }[];
  /** The port of the master as the sentinels see it (undefined while they disagree or cannot say). */
  masterPort(): Promise<number | undefined>;
  stop(): Promise<void>;
}

export interface RedisSentinelOptions {
  /** Sentinels call the master down after this long without an answer (ms). @default 500 */
  downAfterMs?: number;
  /** @default 15000 */
  readyTimeoutMs?: number;
  /** More redis-server arguments for the master. */
  masterArgs?: readonly string[];
}

export async function startRedisSentinel(opts: RedisSentinelOptions = {}): Promise<RedisSentinelHandle> {
  const downAfter = opts.downAfterMs ?? 500;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
  const started: RedisServerHandle[] = [];
  const stop = async () => {
    await Promise.all(started.map((s) => s.stop()));
  };
  try {
    const master = await startRedisServer({ args: ['--repl-diskless-sync-delay', '0', ...(opts.masterArgs ?? [])] });
    started.push(master);
    const sentinelConfig = () =>
      [
        `sentinel monitor ${SENTINEL_MASTER_NAME} ${REDIS_HOST} ${master.port} 2`,
        `sentinel down-after-milliseconds ${SENTINEL_MASTER_NAME} ${downAfter}`,
        `sentinel failover-timeout ${SENTINEL_MASTER_NAME} 2000`,
        '',
      ].join('\n');
    const [replica, ...sentinels] = await Promise.all([
      startRedisServer({ args: ['--replicaof', REDIS_HOST, String(master.port), '--repl-diskless-sync-delay', '0'] }),
      ...[0, 1, 2].map(() => startRedisServer({ config: sentinelConfig, args: ['--sentinel'], readyLine: '+monitor master' })),
    ]);
    started.push(replica!, ...sentinels);
    const handle: RedisSentinelHandle = {
      master,
      replica: replica!,
      sentinels,
      addresses: sentinels.map((s) => ({ host: REDIS_HOST, port: s.port })),
      masterPort: () => masterPort(sentinels),
      stop,
    };
    await waitForSentinels(sentinels, readyTimeoutMs);
    return handle;
  } catch (err) {
    await stop();
    throw err;
  }
}

async function ask<T>(server: RedisServerHandle, command: (c: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(server.port, server.host, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
  try {
    await client.connect();
    return await command(client);
  } finally {
    client.disconnect();
  }
}

async function masterPort(sentinels: readonly RedisServerHandle[]): Promise<number | undefined> {
  const ports = await Promise.all(
    sentinels
      .filter((s) => s.running)
      .map((s) => ask(s, (c) => c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER_NAME) as Promise<[string, string] | null>).catch(() => null)),
  );
  const first = ports[0]?.[1];
  return first !== undefined && ports.every((p) => p?.[1] === first) ? Number(first) : undefined;
}

/** Every sentinel knows one replica and two other sentinels. */
async function waitForSentinels(sentinels: readonly RedisServerHandle[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const states = await Promise.all(
      sentinels.map((s) =>
        ask(s, async (c) => {
          const fields = (await c.call('SENTINEL', 'MASTER', SENTINEL_MASTER_NAME)) as string[];
          const get = (name: string) => fields[fields.indexOf(name) + 1];
          return `${get('num-slaves')}/${get('num-other-sentinels')}`;
        }).catch((err: Error) => err.message),
      ),
    );
    last = states.join(' ');
    if (states.every((s) => s === '1/2')) return;
    if (Date.now() > deadline) throw new Error(`sentinels not ready within ${timeoutMs} ms (replicas/other sentinels: ${last})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Points `setup`'s replica at a new TCP proxy to the master and resolves once
 * it replicates through it: cutting `link` then cuts the replica off the
 * master's writes. The sentinels point a replica that replicates from another
 * address than the master's back at the master on their next look at it
 * (every 10 s): call this just before the cut. On a loaded machine they may
 * do so while this waits; the replica is then pointed at the proxy again.
 * The caller disconnects `replica` and closes `link`.
 */
export async function replicateThroughProxy(setup: RedisSentinelHandle): Promise<{ replica: Redis; link: TcpProxy }> {
  const replica = new Redis(setup.replica.port, REDIS_HOST);
  const link = await startTcpProxy(setup.master.port);
  await replica.replicaof(REDIS_HOST, link.port);
  const linked = new RegExp(`master_port:${link.port}\\r?\\nmaster_link_status:up`);
  await eventually(
    async () => {
      const info = await replica.info('replication');
      if (linked.test(info)) return true;
      if (!info.includes(`master_port:${link.port}`)) await replica.replicaof(REDIS_HOST, link.port);
      return false;
    },
    'the replica replicates through the proxy',
    15_000,
  );
  return { replica, link };
}
