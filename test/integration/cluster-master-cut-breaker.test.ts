// One instance cut off one Cluster master (its TCP route refused, the master
// alive for everyone else), on a client with a small redirection budget. ioredis
// answers the closed connection by trying a random node, which answers MOVED
// back to the master it cannot reach, so a command gives up with either
// 'Connection is closed.' or that MOVED as its last error: about half the
// time the MOVED (scratch runs: 3-6 MOVED to 1 closed per cut). Only the first
// opened the breaker, so the first requests for the cut master's slots paid
// 0.4-1.4 s each (a getOrSet twice: lookup and store) until one happened to
// end on a closed connection.
import assert from 'node:assert/strict';
import { Cluster } from 'ioredis';
import { createCache } from '../../src/index.js';
import { LostNodes, nodeGone } from '../../src/store/cluster-faults.js';
import { clusterCaches } from '../support/cluster-caches.js';
import { masterOf, startClusterProxies } from '../support/cluster-proxies.js';
import { eventually } from '../support/eventually.js';

describe('Redis Cluster: a master this instance is cut off from (refused), the others reaching it', function () {
  this.timeout(60_000);
  const env = clusterCaches();

  // Three cuts, each on a cache of its own: each read's last error is a coin toss between the two.
  it('L2 goes down at the first read of its slots, whichever error the redirection budget ends on', async () => {
    for (let round = 0; round < 3; round++) {
      const ns = `cutb${round}x${process.pid}`;
      const proxies = await startClusterProxies(env.cluster);
      // A long command timeout, so that only the cut can take L2 down; a long cooldown, so no probe closes it meanwhile.
      const a = createCache({ namespace: ns, redis: proxies.client({ maxRedirections: 4, retryDelayOnFailover: 50 }), l2: { commandTimeout: '5s', breakerCooldown: '20s' } });
      const errors: string[] = [];
      a.on('error', ({ err }: { err: Error }) => errors.push(err.message));
      try {
        await a.ready();
        const busMaster = await masterOf(env.cluster, `{${ns}}:bus`);
        const x = env.cluster.nodes.map((n) => n.port).find((p) => p !== busMaster)!;
        let key = '';
        for (let k = 0; key === ''; k++) if ((await masterOf(env.cluster, a.dataKey(`k${k}`))) === x) key = `k${k}`;
        assert.equal(a.health().l2, 'ok');
        proxies.proxyOf(x).cut('refuse');
        const start = Date.now();
        assert.equal(await a.get(key), undefined);
        assert.equal(a.health().l2, 'down', `round ${round}: L2 still up after a read of the cut master's slots that waited ${Date.now() - start} ms and failed with: ${errors.join(' | ')}`);
      } finally {
        await a.close();
        await proxies.close();
      }
    }
  });

  async function connectEveryMaster(client: Cluster): Promise<void> {
    await client.set(`{cutb}:warm${process.pid}`, '1');
    await Promise.all(env.cluster.nodes.map((n) => client.nodes('master').find((m) => m.options.port === n.port)?.ping()));
    await eventually(() => client.nodes('master').every((m) => m.status === 'ready'), 'connected to every master', 5_000);
  }

  // What keeps a resharding's MOVED churn (slots moving between nodes that answer, or to a node the client never
  // tried yet) a failure of one command: only a MOVED to a node whose connection the client lost is a node gone.
  it('a budget spent on a MOVED is a node gone only when the client lost its connection to that node and has not had it back', async () => {
    const client = env.client();
    const lost = new LostNodes(client);
    try {
      await connectEveryMaster(client);
      const spent = (last: string) => new Error(`Too many Cluster redirections. Last error: ${last}`);
      const up = env.cluster.nodes[1]!;
      assert.equal(nodeGone(spent(`ReplyError: MOVED 42 ${up.host}:${up.port}`), lost), false, 'a MOVED to a connected master');
      assert.equal(nodeGone(spent('ReplyError: MOVED 42 127.0.0.1:1'), lost), false, 'a MOVED to a node the client never tried');
      assert.equal(nodeGone(spent('Error: Connection is closed.'), lost), true);
      assert.equal(nodeGone(spent('ReplyError: ASK 42 127.0.0.1:1'), lost), false);
      const dropped = env.cluster.nodes[2]!;
      const movedThere = spent(`ReplyError: MOVED 42 ${dropped.host}:${dropped.port}`);
      const atLoss = new Promise<boolean>((resolve) => client.once('-node', () => resolve(nodeGone(movedThere, lost))));
      client.nodes('master').find((m) => m.options.port === dropped.port)!.disconnect();
      assert.equal(await atLoss, true, 'a MOVED to a node whose connection was just lost');
      let key = '';
      for (let k = 0; key === ''; k++) if ((await masterOf(env.cluster, `{cutb${k}}:x`)) === dropped.port) key = `{cutb${k}}:x`;
      await eventually(async () => (await client.get(key).catch(() => 'failed')) === null && !nodeGone(movedThere, lost), 'the node counts again once a connection to it is ready', 5_000);
    } finally {
      lost.close();
    }
  });

  // A MOVED names the node as the server knows it; a client behind a NAT reaches it where its natMap says.
  it('a MOVED naming a node by the address natMap maps is read as that node: a node gone once its connection is lost', async () => {
    const dropped = env.cluster.nodes[2]!;
    const natted = new Cluster(env.cluster.nodes, { natMap: { '10.255.0.9:7000': { host: dropped.host, port: dropped.port } } });
    const lost = new LostNodes(natted);
    try {
      await connectEveryMaster(natted);
      const movedThere = new Error('Too many Cluster redirections. Last error: ReplyError: MOVED 42 10.255.0.9:7000');
      assert.equal(nodeGone(movedThere, lost), false, 'a MOVED to an address natMap maps to a node the client is connected to');
      const atLoss = new Promise<boolean>((resolve) => natted.once('-node', () => resolve(nodeGone(movedThere, lost))));
      natted.nodes('master').find((m) => m.options.port === dropped.port)!.disconnect();
      assert.equal(await atLoss, true, 'a MOVED to an address natMap maps to a node whose connection was just lost');
    } finally {
      lost.close();
      natted.disconnect();
    }
  });
});
