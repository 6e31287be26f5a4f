// Writes and their invalidations go on through a Sentinel failover: A
// changes a record and invalidates its tag every few milliseconds, while A,
// B and C serve it; the master is killed and the sentinels promote the
// replica meanwhile, a replica cut off from the master's writes for the
// last 300 ms before the kill (it replicates through a proxy then). Checked (DESIGN §4): A never serves a version older
// than the last write whose invalidation returned (delivered or queued);
// once the failover has settled every instance serves the last write; no
// answer is an error and none waits long. Three in-process caches, a real
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

describe('invalidations through a Sentinel failover, three instances', function () {
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
    const cache = createCache({ namespace: ns, redis: client, l2: { commandTimeout: 300 } });
    cache.on('error', () => undefined);
    caches.push(cache);
    await cache.ready();
    return cache;
  }

  it('A never serves a record older than its last invalidation that returned; afterwards every instance serves the last write; no errors, no long waits', async () => {
    const ns = 'storm';
    let record = 0;
    const appOf = (cache: TierCache) => {
      const app = express();
      app.get('/api/record', expressCache(cache, { ttl: '10m', tags: () => ['record'] }), (_req, res) => {
        const read = record;
        // A handler that takes a moment: fills overlap the writes.
        setTimeout(() => res.type('text/plain').send(String(read)), 3);
      });
      return app;
    };
    const [a, b, c] = [await open(ns), await open(ns), await open(ns)];
    // The replica replicates through a proxy (set just now: the sentinels would point it back at the master within 10 s).
    const through = await replicateThroughProxy(setup);
    const replica = through.replica;
    clients.push(replica);
    link = through.link;
    const apps = [appOf(a), appOf(b), appOf(c)];
    const problems: string[] = [];
    let worst = 0;
    /** The record as of the last invalidation A returned from. */
    let floor = 0;
    let running = true;
    let served = 0;

    const reader = async (i: number) => {
      while (running) {
        const since = floor;
        const start = Date.now();
        const res = await request(apps[i]!).get('/api/record');
        worst = Math.max(worst, Date.now() - start);
        served++;
        if (res.status !== 200) problems.push(`${'ABC'[i]}: ${res.status} ${res.text}`);
        else if (i === 0 && Number(res.text) < since) problems.push(`A served record ${res.text} after the invalidation of ${since} returned (${res.headers['cache-status']})`);
        await sleep(2);
      }
    };
    const writer = async () => {
      while (running) {
        const next = ++record;
        const start = Date.now();
        await a.invalidateTags(['record']);
        worst = Math.max(worst, Date.now() - start);
        floor = next;
        await sleep(15);
      }
    };
    const load = [writer(), reader(0), reader(0), reader(1), reader(2)];
    await sleep(500);
    link.cut('refuse');
    const cutAt = record;
    await sleep(300);
    assert.ok(record > cutAt, 'no write while the replica was cut off');
    const masterPort = setup.master.port;
    setup.master.kill('SIGKILL');
    await setup.master.exited();
    for (const deadline = Date.now() + 20_000; ; await sleep(20)) {
      assert.ok(Date.now() < deadline, 'the sentinels promoted no replica within 20 s');
      const port = await setup.masterPort();
      if (port !== undefined && port !== masterPort) break;
    }
    await eventually(() => [a, b, c].every((x) => x.health().l2 === 'ok' && x.health().bus === 'ok'), 'every instance back', 20_000);
    await sleep(1_000);
    running = false;
    await Promise.all(load);
    await eventually(() => a.stats().queuedInvalidations === 0, "A's queue empties", 5_000);
    await sleep(300);
    for (const [i, app] of apps.entries()) {
      for (let n = 0; n < 3; n++) {
        const res = await request(app).get('/api/record');
        assert.equal(res.text, String(record), `${'ABC'[i]} serves record ${res.text}, the last write is ${record} (${res.headers['cache-status']})`);
      }
    }
    console.log(`      ${served} answers, ${record} writes, worst wait ${worst} ms`);
    assert.deepEqual(problems.slice(0, 5), []);
    // The documented bound for a request waiting on a fill lock the failover stranded (its holder's store and
    // release went to the dead master): l2.lockTimeout (3 s), then it fills itself. Seen once on a loaded machine: 3,013 ms (not traced to which wait).
    assert.ok(worst < 3_000 + 1_000, `a request or an invalidation took ${worst} ms`);
  });
});
