// A Sentinel failover to a replica that missed the last invalidations
// (DESIGN §4 (5)): the replica replicates through a TCP proxy, which is cut
// just before the invalidations, so the master takes the version bumps and
// the others hear the messages, but the replica keeps the old counters next
// to the old entries. The master is then killed and the sentinels promote
// the replica. After that settles, no instance (the invalidating one, the
// ones that heard the message, one started afterwards) may serve what was
// invalidated, and an invalidation made while no master answered is
// replayed onto the promoted replica. Three in-process caches, real
// master, replica and three sentinels.
import assert from 'node:assert/strict';
import express from 'express';
import { Redis } from 'ioredis';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { eventually } from '../../support/eventually.js';
import { replicateThroughProxy, SENTINEL_MASTER_NAME, startRedisSentinel, type RedisSentinelHandle } from '../../support/redis-sentinel.js';
import type { TcpProxy } from '../../support/tcp-proxy.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Every handler run gets the next number: an old answer is never produced again. */
let runs = 0;

/** A per-user profile and a public movie page (10 min), on `cache`; answers status and body. */
function appOf(cache: TierCache): (url: string, user?: string) => Promise<{ status: number; body: string }> {
  const app = express();
  const handler = (req: express.Request, res: express.Response) => void res.type('text/plain').send(`${req.originalUrl} #${++runs}`);
  app.get('/api/users/:id/profile', expressCache(cache, { ttl: '10m', user: (req) => req.get('x-user') }), handler);
  app.get('/api/movies/:id', expressCache(cache, { ttl: '10m' }), handler);
  return async (url, user) => {
    const req = request(app).get(url);
    const res = await (user === undefined ? req : req.set('x-user', user));
    return { status: res.status, body: res.text };
  };
}

describe('a Sentinel failover to a replica that missed the invalidations', function () {
  this.timeout(60_000);
  let setup: RedisSentinelHandle;
  let link: TcpProxy | undefined;
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
    await link?.close();
    await setup?.stop();
  });

  async function open(ns: string): Promise<TierCache> {
    const client = new Redis({ sentinels: setup.addresses, name: SENTINEL_MASTER_NAME });
    client.on('error', () => undefined);
    clients.push(client);
    const cache = createCache({ namespace: ns, redis: client, l2: { commandTimeout: 500 } });
    cache.on('error', () => undefined);
    caches.push(cache);
    await cache.ready();
    return cache;
  }

  it('no instance serves an entry invalidated on the old master, nor one invalidated while no master answered, once the promoted replica serves', async () => {
    const ns = 'lag';
    const [a, b, c] = [await open(ns), await open(ns), await open(ns)];
    const keys = ['k1', 'k2', 'k3', 'k4', 'kept'];
    await a.set('k1', 'old1', { tags: ['t1'], ttl: '10m' });
    await a.set('k2', 'old2', { tags: ['t2'], ttl: '10m' });
    await a.set('k3', 'old3', { ttl: '10m' });
    await a.set('k4', 'old4', { tags: ['t4'], ttl: '10m' });
    await a.set('kept', 'kept', { tags: ['u'], ttl: '10m' });
    for (const cache of [b, c]) for (const key of keys) assert.ok((await cache.get(key)) !== undefined, `${key} is not served`);
    const pages: Array<[string, string | undefined]> = [
      ['/api/users/u1/profile', 'u1'],
      ['/api/users/u2/profile', 'u2'],
      ['/api/movies/1', undefined],
      ['/api/movies/2', undefined],
    ];
    const http = [appOf(a), appOf(b), appOf(c)];
    const old = new Map<string, string>();
    for (const [url, user] of pages) {
      const filled = await http[0]!(url, user);
      old.set(url, filled.body);
      // Each instance serves the same answer, from L2 then from its L1.
      for (const get of http) for (let n = 0; n < 2; n++) assert.equal((await get(url, user)).body, filled.body);
    }
    const master = new Redis(setup.master.port, '127.0.0.1', { retryStrategy: () => null });
    master.on('error', () => undefined);
    clients.push(master);
    // The replica replicates through a proxy from now on, caught up; then the proxy is cut. (Only now: the
    // sentinels point a replica that replicates from another address than the master's back at the master,
    // on their next look at it, every 10 s; that look comes once the master is down, too late.)
    const through = await replicateThroughProxy(setup);
    const replica = through.replica;
    clients.push(replica);
    link = through.link;
    assert.equal(await master.wait(1, 2000), 1, 'the replica did not catch up');
    link.cut('refuse');
    await eventually(async () => /master_link_status:down/.test(await replica.info('replication')), 'the replica notices its link is down', 5000);
    // Taken by the master only: bumps, a key delete, and the messages the others hear.
    const received = [a, b, c].map((x) => x.stats().bus.received);
    assert.deepEqual(await a.invalidateTags(['t1']), { delivered: true });
    assert.deepEqual(await b.delete('k3'), { delivered: true });
    assert.deepEqual(await a.invalidateUser('u1'), { delivered: true });
    assert.deepEqual(await b.invalidatePrefix('/api/movies/1'), { delivered: true });
    assert.notEqual(await replica.get(`${ns}:v:{t1}`), await master.get(`${ns}:v:{t1}`), 'the replica took the bump: the test proves nothing');
    await eventually(() => [2, 2, 4].every((n, i) => [a, b, c][i]!.stats().bus.received >= received[i]! + n), 'each hears the others\' invalidations', 5000);
    for (const [i, cache] of [a, b, c].entries()) for (const key of ['k1', 'k3']) assert.equal(await cache.get(key), undefined, `${'ABC'[i]} serves ${key}`);
    const before = pages.filter(([url]) => url.includes('1'));
    for (const get of http) for (const [url, user] of before) assert.notEqual((await get(url, user)).body, old.get(url));

    // From here to the end, every instance is asked again and again for what it heard invalidated:
    // through the kill, the promotion and the reconnects, never served, never an error, never a long wait.
    const seen: string[] = [];
    let worst = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const [i, cache] of [a, b, c].entries()) {
          for (const [url, user] of before) {
            const start = Date.now();
            const reply = await http[i]!(url, user);
            worst = Math.max(worst, Date.now() - start);
            if (reply.status !== 200 || reply.body === old.get(url)) seen.push(`${'ABC'[i]} ${url}: ${reply.status} ${reply.body}`);
          }
          for (const key of ['k1', 'k3']) {
            const start = Date.now();
            const value = await cache.get(key).catch((err: Error) => `error ${err.message}`);
            worst = Math.max(worst, Date.now() - start);
            if (value !== undefined) seen.push(`${'ABC'[i]} ${key}: ${String(value)}`);
          }
        }
        await sleep(5);
      }
    })();

    const masterPort = setup.master.port;
    setup.master.kill('SIGKILL');
    await setup.master.exited();
    // While no master answers: queued, applied locally at once.
    for (const during of [await c.invalidateTags(['t2']), await c.invalidateUser('u2'), await a.invalidatePrefix('/api/movies/2')]) assert.equal(during.delivered, false);
    for (const deadline = Date.now() + 20_000; ; await sleep(20)) {
      assert.ok(Date.now() < deadline, 'the sentinels promoted no replica within 20 s');
      const port = await setup.masterPort();
      if (port !== undefined && port !== masterPort) break;
    }
    await eventually(() => [a, b, c].every((x) => x.health().l2 === 'ok' && x.health().bus === 'ok' && x.stats().queuedInvalidations === 0), 'every instance back, its queue empty', 20_000);
    await sleep(1_500); // an epoch check or two on every instance
    sampling = false;
    await sampler;
    assert.deepEqual(seen, [], 'served what it heard invalidated, or failed');
    assert.ok(worst < 3_000, `a request took ${worst} ms`);
    const d = await open(ns);
    for (const [name, cache] of [['A', a], ['B', b], ['C', c], ['D (new)', d]] as const) {
      for (const key of ['k1', 'k2', 'k3']) {
        for (let n = 0; n < 3; n++) assert.equal(await cache.get(key), undefined, `${name} serves ${key}, invalidated before or during the failover`);
      }
    }
    http.push(appOf(d));
    for (const [i, get] of http.entries()) {
      for (const [url, user] of pages) {
        for (let n = 0; n < 3; n++) {
          const reply = await get(url, user);
          assert.equal(reply.status, 200);
          assert.notEqual(reply.body, old.get(url), `instance ${'ABCD'[i]} serves ${url}, invalidated before or during the failover`);
        }
      }
    }
  });
});
