// One instance's own route to each master of a Redis Cluster: a TCP proxy
// per node, and a Cluster client that reaches every node through them. The
// client learns node addresses from CLUSTER SLOTS (and from MOVED), so a
// proxy in front of the seed alone would carry only the first connection:
// `natMap` maps each real address to its proxy, and cutting one proxy cuts
// that instance off that master alone while every other client keeps it.
import { Cluster } from 'ioredis';
import type { RedisClusterHandle } from './redis-cluster.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

export interface ClusterProxies {
  /** One per master, in `cluster.nodes` order. */
  readonly proxies: readonly TcpProxy[];
  /** A Cluster client whose every connection goes through `proxies` (disconnected by close()). */
  client(): Cluster;
  /** The proxy in front of the node listening on `port`. */
  proxyOf(port: number): TcpProxy;
  close(): Promise<void>;
}

export async function startClusterProxies(cluster: RedisClusterHandle): Promise<ClusterProxies> {
  const proxies = await Promise.all(cluster.nodes.map((node) => startTcpProxy(node.port, node.host)));
  const natMap = Object.fromEntries(cluster.nodes.map((node, i) => [`${node.host}:${node.port}`, { host: '127.0.0.1', port: proxies[i]!.port }]));
  const clients: Cluster[] = [];
  return {
    proxies,
    client() {
      const client = new Cluster(proxies.map((p) => ({ host: '127.0.0.1', port: p.port })), { natMap });
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
