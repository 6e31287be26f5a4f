// One instance's own route to each master of a Redis Cluster: a TCP proxy
// per node, and a Cluster client that reaches every node through them. The
// client learns node addresses from CLUSTER SLOTS (and from MOVED), so a
// proxy in front of the seed alone would carry only the first connection:
// `natMap` maps each real address to its proxy, and cutting one proxy cuts
// that instance off that master alone while every other client keeps it.
import { Cluster, Redis, type ClusterOptions } from 'ioredis';
import type { RedisClusterHandle } from './redis-cluster.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

export interface ClusterProxies {
  /** One per master, in `cluster.nodes` order. */
  readonly proxies: readonly TcpProxy[];
  /** A Cluster client whose every connection goes through `proxies` (disconnected by close()), with `options` besides natMap. */
  client(options?: ClusterOptions): Cluster;
  /** The proxy in front of the node listening on `port`. */
  proxyOf(port: number): TcpProxy;
  close(): Promise<void>;
}

/**
 * `delayMs`: per master port, how long its proxy holds every chunk each way (a
 * slow link to that master alone); a proxy named there can be slowed later
 * (TcpProxy.setDelay, from 0 too).
 */
export async function startClusterProxies(cluster: RedisClusterHandle, delayMs: Readonly<Record<number, number>> = {}): Promise<ClusterProxies> {
  const proxies = await Promise.all(cluster.nodes.map((node) => startTcpProxy(node.port, node.host, delayMs[node.port] ?? 0, delayMs[node.port] !== undefined)));
  const natMap = Object.fromEntries(cluster.nodes.map((node, i) => [`${node.host}:${node.port}`, { host: '127.0.0.1', port: proxies[i]!.port }]));
  const clients: Cluster[] = [];
  return {
    proxies,
    client(options = {}) {
      const client = new Cluster(proxies.map((p) => ({ host: '127.0.0.1', port: p.port })), { ...options, natMap });
      client.on('error', () => undefined);
      clients.push(client);
      return client;
    },
    proxyOf(port) {
      const i = cluster.nodes.findIndex((node) => node.port === port);
      if (i === -1) throw new Error(`no node listens on ${port}`);
      return proxies[i]!;
    },
    async close() {
      for (const c of clients.splice(0)) c.disconnect();
      await Promise.all(proxies.map((p) => p.close()));
    },
  };
}

/** The port of the master serving `key`'s slot. */
export async function masterOf(cluster: RedisClusterHandle, key: string): Promise<number> {
  const node = new Redis(cluster.nodes[0]!.port, cluster.nodes[0]!.host);
  try {
    const slot = Number(await node.cluster('KEYSLOT', key));
    const ranges = (await node.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
    return ranges.find(([from, to]) => from <= slot && slot <= to)![2][1];
  } finally {
    node.disconnect();
  }
}

/**
 * A tag of `namespace` whose counter is on a master X that does not serve the
 * namespace's epoch and bus channel (so an instance cut off X alone keeps its bus).
 */
export async function tagOffBusMaster(cluster: RedisClusterHandle, namespace: string): Promise<{ tag: string; x: number }> {
  const busMaster = await masterOf(cluster, `{${namespace}}:epoch`);
  for (let t = 0; ; t++) {
    const x = await masterOf(cluster, `${namespace}:v:{t${t}}`);
    if (x !== busMaster) return { tag: `t${t}`, x };
  }
}
