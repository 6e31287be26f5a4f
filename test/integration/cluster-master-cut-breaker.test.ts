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
import { nodeGone } from '../../src/store/cluster-faults.js';
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

  // What keeps a resharding's MOVED churn (slots moving between nodes that answer) a failure of one command.
  it('a budget spent on a MOVED to a node the client is connected to is not a node gone', async () => {
    const client = env.client();
    await connectEveryMaster(client);
    const up = env.cluster.nodes[1]!;
    const spent = (last: string) => new Error(`Too many Cluster redirections. Last error: ${last}`);
    assert.equal(nodeGone(spent(`ReplyError: MOVED 42 ${up.host}:${up.port}`), client), false);
    assert.equal(nodeGone(spent('ReplyError: MOVED 42 127.0.0.1:1'), client), true, 'a MOVED to a node the client holds no connection to');
    assert.equal(nodeGone(spent('Error: Connection is closed.'), client), true);
    assert.equal(nodeGone(spent('ReplyError: ASK 42 127.0.0.1:1'), client), false);
    // A MOVED names the node as the server knows it; a client behind a NAT reaches it where its natMap says.
    const natted = new Cluster(env.cluster.nodes, { natMap: { '10.255.0.9:7000': { host: up.host, port: up.port } } });
    try {
      await connectEveryMaster(natted);
      assert.equal(nodeGone(spent('ReplyError: MOVED 42 10.255.0.9:7000'), natted), false, 'a MOVED to an address natMap maps to a node the client is connected to');
    } finally {
      natted.disconnect();
    }
  });
});
