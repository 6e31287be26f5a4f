// What the guards record of the Redis process serving a namespace (its run
// id) must not change when nothing failed over: a replica attaching gives the
// master a new replication id (found by helper-69, when that id was part of
// the record for a while: the cache was emptied for nothing). The double
// failover that the run id alone cannot tell (a master back as master after
// a round as its successor's replica, found by helper-65) is open (README,
// Redis Cluster: what a failover can still undo).
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { createCache, type TierCache } from '../../../src/index.js';
import { startRedisServer, type RedisServerHandle } from '../../support/redis-server.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` until true, or fails after `timeoutMs` naming `what`. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const replicationField = async (client: Redis, field: string) => new RegExp(`^${field}:(\\S+)`, 'm').exec(await client.info('replication'))?.[1];

describe('invalidation: the Redis process a namespace records', function () {
  this.timeout(30_000);
  const servers: RedisServerHandle[] = [];
  const clients: Redis[] = [];
  const caches: TierCache[] = [];
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close().catch(() => undefined)));
    for (const c of clients.splice(0)) c.disconnect();
    for (const s of servers.splice(0)) {
      s.thaw();
      await s.stop();
    }
  });

  const admin = (server: RedisServerHandle) => {
    const client = new Redis({ host: '127.0.0.1', port: server.port, maxRetriesPerRequest: 1, retryStrategy: () => null });
    client.on('error', () => undefined);
    clients.push(client);
    return client;
  };
  const open = async (server: RedisServerHandle, namespace: string) => {
    const cache = createCache({ redis: server.url, namespace, l2: { commandTimeout: 1000 } });
    cache.on('error', () => undefined);
    caches.push(cache);
    await cache.ready();
    return cache;
  };

  it('a replica attaching (a new replication id on the master) empties nothing (found by helper-69)', async () => {
    const namespace = `repromoted${process.pid}-attach`;
    const a = await startRedisServer();
    servers.push(a);
    const first = await open(a, namespace);
    await first.set('price', 10, { ttl: '10m' });
    const b = await startRedisServer({ args: ['--replicaof', '127.0.0.1', String(a.port)] });
    servers.push(b);
    await until('B to replicate A', async () => (await replicationField(admin(b), 'master_link_status')) === 'up');
    const fresh = await open(a, namespace);
    assert.equal(await fresh.get('price'), 10, 'an instance started after the replica attached found nothing');
    assert.equal(await first.get('price'), 10);
  });

});
