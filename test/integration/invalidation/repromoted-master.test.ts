// A master that comes back as master after a round as its successor's
// replica, having missed that one's last writes (found by helper-65 on a
// Cluster: a failover, the old master cut off, an invalidation on the new
// one, the new one lost, the old one promoted again). It is the same process
// (the same run id) with older data: what the successor handed out since,
// the invalidation's versions among them, never reached it. DESIGN §4: a
// failover to a replica that missed increments never makes an old entry
// valid again. Two real redis-servers, standalone: each phase talks to the
// server that is master then, with an instance of its own.
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

describe('invalidation: a master promoted again after missing its successor’s writes', function () {
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

  for (const kind of ['a tag invalidation', 'clear()'] as const) {
    it(`${kind} made on the successor is not undone`, async () => {
      const namespace = `repromoted${process.pid}-${kind === 'clear()' ? 'clear' : 'tag'}`;
      const a = await startRedisServer();
      servers.push(a);
      const b = await startRedisServer({ args: ['--replicaof', '127.0.0.1', String(a.port)] });
      servers.push(b);
      const [adminA, adminB] = [admin(a), admin(b)];
      await until('B to replicate A', async () => (await replicationField(adminB, 'master_link_status')) === 'up');

      // A is master: a value stored under a tag, replicated to B.
      const first = await open(a, namespace);
      await first.set('price', 10, { tags: ['movie:7'], ttl: '10m' });
      assert.equal(await first.get('price'), 10);
      await adminA.call('WAIT', '1', '2000');

      // Failover: B is promoted, A follows it (and takes B's data, which is its own).
      await adminB.call('REPLICAOF', 'NO', 'ONE');
      await adminA.call('REPLICAOF', '127.0.0.1', String(b.port));
      await until('A to replicate B', async () => (await replicationField(adminA, 'master_link_status')) === 'up');
      // A is cut off: frozen, its link dropped, so B's writes from here on never reach it.
      a.freeze();
      await adminB.call('CLIENT', 'KILL', 'TYPE', 'replica');

      // On B: the invalidation. (On standalone Redis, B, another process, has moved the epoch on
      // its first check already: every entry from A's time is invalid there anyway.)
      const second = await open(b, namespace);
      if (kind === 'clear()') await second.clear();
      else await second.invalidateTags(['movie:7']);
      assert.equal(await second.get('price'), undefined, 'B itself still returns the invalidated value');

      // B is lost; A comes back and is promoted again: the same process, with the data it had when cut off.
      await b.stop();
      a.thaw();
      await adminA.call('REPLICAOF', 'NO', 'ONE');
      assert.equal(await replicationField(adminA, 'role'), 'master');

      const third = await open(a, namespace);
      assert.equal(await third.get('price'), undefined, `an instance on the promoted-again master returns what ${kind} invalidated`);
    });
  }
});
