// h191 probe (not in the default glob: *.probe.ts): on a real 3-master Cluster, how long an instance keeps
// trusting L1 (health().bus === 'ok') after its own route to the master holding its bus channel goes silent
// (the proxy holds every chunk, both ways, connections left open).
import { performance } from 'node:perf_hooks';
import { createCache } from '../../src/index.js';
import { startRedisCluster, type RedisClusterHandle } from '../support/redis-cluster.js';
import { masterOf, startClusterProxies } from '../support/cluster-proxies.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('probe: Cluster bus master route stalled', function () {
  this.timeout(300_000);
  let cluster: RedisClusterHandle;
  before(async function () {
    this.timeout(60_000);
    cluster = await startRedisCluster({ masters: 3 });
  });
  after(async () => await cluster?.stop());

  it('measures', async () => {
    const rounds = Number(process.env['ROUNDS'] ?? 5);
    const times: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const ns = `stall${process.pid}r${r}`;
      const proxies = await startClusterProxies(cluster, Object.fromEntries(cluster.nodes.map((n) => [n.port, 0])));
      const cache = createCache({ namespace: ns, redis: proxies.client(), l2: { commandTimeout: Number(process.env['CT'] ?? 1000) } });
      cache.on('error', () => undefined);
      try {
        await cache.ready();
        const t0 = performance.now();
        while (cache.health().bus !== 'ok') {
          if (performance.now() - t0 > 10_000) throw new Error('bus never ok');
          await sleep(10);
        }
        await cache.set('k', 'v', { ttl: '1h', tags: ['T'] });
        // A random phase against the 1 s epoch check.
        await sleep(1500 + Math.random() * 1000);
        const bus = await masterOf(cluster, `{${ns}}:bus`);
        const epoch = await masterOf(cluster, `{${ns}}:epoch`);
        const stalledAt = performance.now();
        proxies.proxyOf(bus).setDelay(1e9);
        let flipped = NaN;
        while (performance.now() - stalledAt < 20_000) {
          if (cache.health().bus !== 'ok') {
            flipped = performance.now() - stalledAt;
            const b = (cache as unknown as { bus: { heartbeatChecks: number; heartbeatSent: number; failedEpochChecks: number } }).bus;
            console.log(`      at flip: heartbeatChecks=${b.heartbeatChecks} heartbeat sent ${(performance.now() - b.heartbeatSent).toFixed(0)} ms before, ${(b.heartbeatSent - stalledAt).toFixed(0)} ms after the stall; failedEpochChecks=${b.failedEpochChecks}`);
            break;
          }
          await sleep(5);
        }
        times.push(flipped);
        console.log(`      round ${r}: bus master ${bus} (epoch on ${epoch}), distrusted L1 after ${flipped.toFixed(0)} ms, health=${JSON.stringify(cache.health())}`);
      } finally {
        await cache.close();
        await proxies.close();
      }
    }
    const s = [...times].sort((a, b) => a - b);
    console.log(`      min ${s[0]!.toFixed(0)} median ${s[Math.floor(s.length / 2)]!.toFixed(0)} max ${s[s.length - 1]!.toFixed(0)} ms (${s.map((x) => x.toFixed(0)).join(', ')})`);
  });
});
