// Redis Cluster as L2: a real 3-master cluster on loopback. Entries spread over
// slots, version counters share one slot per namespace, and the invalidation
// bus works across nodes.
import assert from 'node:assert/strict';
import express from 'express';
import { Cluster, Redis } from 'ioredis';
import request from 'supertest';
import { createCache, type TierCache } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { startRedisCluster, type RedisClusterHandle } from '../support/redis-cluster.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(check: () => Promise<boolean>, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(5);
  }
}

describe('Redis Cluster as L2', function () {
  this.timeout(30_000);
  let cluster: RedisClusterHandle;
  const clients: Cluster[] = [];
  const caches: TierCache[] = [];
  let namespace = 0;

  before(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  });
  after(async () => {
    await cluster?.stop();
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    for (const c of clients.splice(0)) c.disconnect();
  });

  async function open(ns: string): Promise<TierCache> {
    const client = new Cluster(cluster.nodes);
    clients.push(client);
    const cache = createCache({ namespace: ns, redis: client });
    caches.push(cache);
    await cache.ready();
    return cache;
  }

  it('spreads entries over the masters and reads them back from another instance', async () => {
    const ns = `cl${namespace++}`;
    const a = await open(ns);
    const b = await open(ns);
    for (let i = 0; i < 60; i++) await a.set(`k${i}`, { i, bytes: Buffer.from([i]).toString('base64') }, { tags: [`t${i % 3}`] });
    for (let i = 0; i < 60; i++) assert.deepEqual(await b.get(`k${i}`), { i, bytes: Buffer.from([i]).toString('base64') });
    assert.equal(b.stats().l2.hits, 60);
    assert.equal(b.stats().l2.errors, 0);
    // Every master holds some of them.
    const perNode = await Promise.all(
      cluster.nodes.map(async (node) => {
        const direct = new Redis(node.port, node.host);
        try {
          return (await direct.keys(`${ns}:d:*`)).length;
        } finally {
          direct.disconnect();
        }
      }),
    );
    assert.ok(perNode.every((n) => n > 0), `entries per master: ${perNode.join(', ')}`);
  });

  it('carries invalidations between instances over the bus, across nodes', async () => {
    const ns = `cl${namespace++}`;
    const a = await open(ns);
    const b = await open(ns);
    assert.equal(b.health().bus, 'ok');
    for (let i = 0; i < 30; i++) await a.set(`k${i}`, i, { tags: [`t${i % 3}`] });
    for (let i = 0; i < 30; i++) assert.equal(await b.get(`k${i}`), i); // now in B's L1
    await a.invalidateTags(['t0']);
    await eventually(async () => (await b.get('k0')) === undefined, 'B drops k0 after invalidateTags(t0)');
    for (let i = 0; i < 30; i++) assert.equal(await b.get(`k${i}`), i % 3 === 0 ? undefined : i, `k${i}`);
    await a.clear();
    await eventually(async () => (await b.get('k1')) === undefined, 'B drops everything after clear()');
  });

  it('serves HTTP hits from L2 on a second instance and drops them after invalidatePrefix', async () => {
    const ns = `cl${namespace++}`;
    let runs = 0;
    const appFor = (cache: TierCache) => {
      const app = express();
      app.use(expressCache(cache, { ttl: '1m' }));
      app.get('/api/movies/:id', (req, res) => {
        runs++;
        res.json({ id: req.params.id, run: runs });
      });
      return app;
    };
    const aCache = await open(ns);
    const a = appFor(aCache);
    const bCache = await open(ns);
    const b = appFor(bCache);
    // The answer may reach the client before its L2 write lands (a loaded
    // machine, mutation testing): B looks only once that write is done.
    const stored = new Promise((resolve) => aCache.once('store', resolve));
    const first = await request(a).get('/api/movies/7');
    assert.equal(first.headers['cache-status'], 'tiercache; fwd=miss; stored');
    await stored;
    const fromL2 = await request(b).get('/api/movies/7');
    assert.equal(fromL2.headers['cache-status'], 'tiercache; hit; detail=L2');
    assert.deepEqual(fromL2.body, first.body);
    assert.equal((await request(b).get('/api/movies/7')).headers['cache-status'], 'tiercache; hit; detail=L1');
    await caches[0]!.invalidatePrefix('/api/movies');
    await eventually(async () => (await request(b).get('/api/movies/7')).headers['cache-status'] !== 'tiercache; hit; detail=L1', 'B stops serving /api/movies/7');
    assert.equal(runs, 2);
  });
});
