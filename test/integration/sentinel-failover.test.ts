// Redis Sentinel as L2 with three sentinels (DESIGN.md section 5): a caller's ioredis client made
// with `sentinels` and `name`, against a real setup on loopback (a master, a
// replica, three sentinels). The data API, the middleware and the bus work
// through it, and a Sentinel failover under load behaves as a Cluster one
// (test/support/failover-scenario.ts).
import assert from 'node:assert/strict';
import express from 'express';
import { Redis } from 'ioredis';
import request from 'supertest';
import { createCache, type TierCache } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { startApp, START_MS, stopAllApps } from '../support/app-process.js';
import { runFailoverUnderLoad } from '../support/failover-scenario.js';
import { SENTINEL_MASTER_NAME, startRedisSentinel, type RedisSentinelHandle } from '../support/redis-sentinel.js';

const COMMAND_TIMEOUT_MS = 200;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('Redis Sentinel as L2', function () {
  this.timeout(60_000);
  let setup: RedisSentinelHandle;
  const clients: Redis[] = [];
  const caches: TierCache[] = [];

  before(async function () {
    this.timeout(30_000);
    setup = await startRedisSentinel();
  });
  after(async function () {
    this.timeout(15_000);
    await Promise.all(caches.splice(0).map((c) => c.close()));
    for (const c of clients.splice(0)) c.disconnect();
    await stopAllApps();
    await setup?.stop();
  });

  async function open(ns: string): Promise<TierCache> {
    const client = new Redis({ sentinels: setup.addresses, name: SENTINEL_MASTER_NAME });
    clients.push(client);
    const cache = createCache({ namespace: ns, redis: client, l2: { commandTimeout: 2000 } });
    caches.push(cache);
    await cache.ready();
    return cache;
  }

  it('the data API, the middleware and the bus work through Sentinel', async () => {
    const a = await open('sen1');
    const b = await open('sen1');
    assert.deepEqual(b.health(), { l1: 'ok', l2: 'ok', bus: 'ok', pubsub: 'classic' });
    await a.set('k', { v: 1 }, { tags: ['t'] });
    assert.deepEqual(await b.get('k'), { v: 1 });
    assert.equal(b.stats().l2.hits, 1);
    let runs = 0;
    const appFor = (cache: TierCache) => {
      const app = express();
      app.get('/api/movies/:id', expressCache(cache, { ttl: '1m' }), (req, res) => void res.json({ id: req.params.id, run: ++runs }));
      return app;
    };
    assert.equal((await request(appFor(a)).get('/api/movies/1')).headers['cache-status'], 'tiercache; fwd=miss; stored');
    const appB = appFor(b);
    assert.equal((await request(appB).get('/api/movies/1')).headers['cache-status'], 'tiercache; hit; detail=L2');
    assert.equal((await request(appB).get('/api/movies/1')).headers['cache-status'], 'tiercache; hit; detail=L1');
    const heard = new Promise((resolve) => b.once('invalidate', resolve));
    assert.deepEqual(await a.invalidatePrefix('/api/movies'), { delivered: true });
    await heard;
    assert.equal((await request(appB).get('/api/movies/1')).headers['cache-status'], 'tiercache; fwd=miss; stored');
    assert.deepEqual(await b.get('k'), { v: 1 }, 'an unrelated entry was dropped');
  });

  it('a Sentinel failover under load: no error answers, bounded waits, invalidations before and after the failover hold', async function () {
    this.timeout(START_MS * 2 + 60_000);
    const env = { REDIS_SENTINELS: setup.addresses.map((s) => `${s.host}:${s.port}`).join(','), REDIS_SENTINEL_NAME: SENTINEL_MASTER_NAME, NAMESPACE: 'senfo', COMMAND_TIMEOUT: String(COMMAND_TIMEOUT_MS) };
    const [a, b] = await Promise.all([startApp('A', env), startApp('B', env)]);
    const masterPort = setup.master.port;
    await runFailoverUnderLoad({
      a,
      b,
      hot: '/api/movies/hot',
      pre: '/api/movies/pre',
      post: '/api/movies/post',
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      async kill() {
        setup.master.kill('SIGKILL');
        await setup.master.exited();
      },
      async takeover() {
        for (const deadline = Date.now() + 20_000; ; await sleep(20)) {
          assert.ok(Date.now() < deadline, 'the sentinels promoted no replica within 20 s');
          const port = await setup.masterPort();
          if (port !== undefined && port !== masterPort) return;
        }
      },
    });
  });
});
