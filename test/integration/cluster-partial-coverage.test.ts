// A Redis Cluster set to keep serving what it still can (cluster-require-full-coverage
// no) loses a master that has no replica: its slots are gone, the others' stay
// up, and cluster_state stays ok, so no CLUSTERDOWN tells a client. What the
// contract promises there (DESIGN §4 Fallback, §5): no request fails (the lost
// slots degrade to L1 and the handler), an instance that never touches a lost
// slot keeps L2 and delivers its invalidations, and one that does is not
// distrusted for good: the breaker that the lost slot opens closes at the
// next probe, which asks only the masters the client still holds. Measured
// (h169): such an instance flaps, L2 down for a cooldown after each command on
// a lost slot (its invalidations queued meanwhile, replayed when it is back):
// the breaker is one per client, not one per master. Losing the master of the
// namespace's own slot (epoch, bus) leaves nothing that can be checked: L2 is
// down on every instance, and requests are answered by the handler.
import assert from 'node:assert/strict';
import express from 'express';
import { Cluster } from 'ioredis';
import request from 'supertest';
import { expressCache } from '../../src/express.js';
import { createCache, type TierCache } from '../../src/index.js';
import { masterOf } from '../support/cluster-proxies.js';
import { eventually } from '../support/eventually.js';
import { onEachNode, startRedisCluster, type RedisClusterHandle } from '../support/redis-cluster.js';

describe('Redis Cluster with cluster-require-full-coverage no: masters lost with no replica', function () {
  this.timeout(60_000);
  let cluster: RedisClusterHandle;
  const clients: Cluster[] = [];
  const caches: TierCache[] = [];

  before(async function () {
    this.timeout(60_000);
    cluster = await startRedisCluster({ masters: 3 });
    await onEachNode(cluster, (node) => node.config('SET', 'cluster-require-full-coverage', 'no'));
  });
  after(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    for (const c of clients.splice(0)) c.disconnect();
    await cluster?.stop();
  });

  /** A cache on a client of its own; a short cooldown so that a probe comes within the test. */
  function open(namespace: string): TierCache {
    const client = new Cluster(cluster.nodes);
    client.on('error', () => undefined);
    clients.push(client);
    const cache = createCache({ namespace, redis: client, l2: { commandTimeout: '3s', breakerCooldown: '300ms' } });
    cache.on('error', () => undefined);
    caches.push(cache);
    return cache;
  }

  it('the surviving masters serve L2 hits and take invalidations, the lost slots answer from the handler, and with the namespace master lost too every request is answered by its handler', async () => {
    const ns = `cov${process.pid}`;
    const filler = open(ns);
    await filler.ready();
    const busMaster = await masterOf(cluster, `{${ns}}:epoch`);
    const [lost, alive] = cluster.nodes.map((n) => n.port).filter((p) => p !== busMaster) as [number, number];
    const keyOn = async (port: number, prefix: string) => {
      for (let k = 0; ; k++) if ((await masterOf(cluster, filler.dataKey(`${prefix}${k}`))) === port) return `${prefix}${k}`;
    };
    const [keyLost, keyAlive, keyAlive2] = [await keyOn(lost, 'l'), await keyOn(alive, 'a'), await keyOn(alive, 'b')];
    let tag = '';
    for (let t = 0; tag === ''; t++) if ((await masterOf(cluster, `${ns}:v:{t${t}}`)) === alive) tag = `t${t}`;
    for (const key of [keyLost, keyAlive, keyAlive2]) await filler.set(key, `v-${key}`, { ttl: '1h', tags: [tag] });
    // Routes through Express: one whose entry is on the lost master, one whose entry and tag counters (its key's,
    // and its path's: /s, /s/n and the exact path) all are on the others.
    let served = 0;
    const spec = (cache: TierCache) => {
      const app = express();
      app.get('/:s/:n', expressCache(cache, { ttl: '1h' }), (req, res) => void res.send(`body ${req.params['n']} ${served++}`));
      return app;
    };
    const routeKey = (path: string) => filler.keyFor({ method: 'GET', url: path, headers: {} });
    const keysOf = (path: string) => [routeKey(path), ...['path:' + path.slice(0, path.lastIndexOf('/')), 'path:' + path, 'at:' + path].map((t) => `${ns}:v:{${t}}`)];
    let pathLost = '';
    for (let n = 0; pathLost === ''; n++) if ((await masterOf(cluster, routeKey(`/s/${n}`))) === lost) pathLost = `/s/${n}`;
    let pathAlive = '';
    for (let n = 0; pathAlive === ''; n++) {
      const ports = await Promise.all(keysOf(`/s${n}/${n}`).map((key) => masterOf(cluster, key)));
      if (!ports.includes(lost)) pathAlive = `/s${n}/${n}`;
    }
    const fillerApp = spec(filler);
    for (const path of [pathLost, pathAlive]) assert.equal((await request(fillerApp).get(path)).status, 200);

    const reader = open(ns); // reads lost slots
    const bystander = open(ns); // never touches them
    await Promise.all([reader.ready(), bystander.ready()]);
    const server = cluster.servers.find((s) => s.port === lost)!;
    server.kill('SIGKILL');
    await server.exited();

    // The bystander: L2 and bus up, its invalidation of a tag on a surviving master delivered, L2 hits there.
    assert.equal(await bystander.get(keyAlive), `v-${keyAlive}`, 'a surviving master served no L2 hit');
    assert.deepStrictEqual(await bystander.invalidateTags([tag]), { delivered: true }, 'an invalidation on a surviving master was not delivered by an instance that never touched a lost slot');
    assert.deepStrictEqual(bystander.health(), { l1: 'ok', l2: 'ok', bus: 'ok', pubsub: 'sharded' });
    await filler.set(keyAlive2, 'v2', { ttl: '1h' });

    // The reader: a lost slot is a miss, not a rejection; L2 comes back at the next probe and serves the others.
    assert.equal(await reader.get(keyLost), undefined);
    await eventually(() => reader.health().l2 === 'ok', 'the breaker a lost slot opened closes again at a probe', 5_000);
    assert.equal(await reader.get(keyAlive2), 'v2', 'L2 back, the surviving master serves the reader');

    // HTTP on an instance opened after the loss: the lost route from the handler, the other from L2; no 5xx.
    const late = open(ns);
    await late.ready();
    // Its client starts from the startup nodes, the lost one among them: a first command there may open its breaker
    // for one cooldown (the flapping above), which is not what this part asks about.
    await eventually(() => late.health().l2 === 'ok', "the late instance's L2 is up", 5_000);
    const lateApp = spec(late);
    const aliveRes = await request(lateApp).get(pathAlive);
    assert.equal(aliveRes.status, 200);
    assert.match(String(aliveRes.headers['cache-status']), /hit/, `the surviving route was not an L2 hit (${String(aliveRes.headers['cache-status'])})`);
    const before = served;
    const lostRes = await request(lateApp).get(pathLost);
    assert.equal(lostRes.status, 200);
    assert.equal(served, before + 1, 'the lost route was not answered by its handler');

    // The namespace master too: nothing can be checked any more (the epoch is there). Every request is answered by
    // the handler (an L1 entry is not trusted with the bus gone, an L2 one cannot be checked), none fails.
    const nsServer = cluster.servers.find((s) => s.port === busMaster)!;
    nsServer.kill('SIGKILL');
    await nsServer.exited();
    await eventually(() => late.health().bus !== 'ok', "the bus's loss is noticed", 10_000);
    for (const path of [pathAlive, pathLost]) {
      const n = served;
      const res = await request(lateApp).get(path);
      assert.equal(res.status, 200);
      assert.equal(served, n + 1, `${path} was not answered by its handler with the namespace master lost (${String(res.headers['cache-status'])})`);
    }
    assert.equal(await late.get(keyAlive2), undefined, 'the data API answered an L2 value it could not check with the namespace master lost');
  });
});
