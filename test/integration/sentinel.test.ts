// Redis Sentinel as L2, as the README's deploy notes describe it: an ioredis
// client with `sentinels` passed as `redis`. A real master, a replica and one
// sentinel on loopback; values, invalidations and cross-instance getOrSet go
// through the master the sentinel names, and after a failover (the master
// killed, the replica promoted) both instances follow the sentinel to the new
// master and serve nothing invalidated during it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createCache, type TierCache } from '../../src/index.js';
import { freePort, REDIS_HOST, startRedisServer, type RedisServerHandle } from '../support/redis-server.js';

const MASTER_NAME = 'tiercache-test';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(check: () => Promise<boolean> | boolean, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(20);
  }
}

interface Sentinel {
  readonly port: number;
  stop(): Promise<void>;
}

/** One sentinel watching `master` (quorum 1, quick failure detection); killed by PID in stop(). */
async function startSentinel(master: RedisServerHandle): Promise<Sentinel> {
  // A sentinel needs a config file it may rewrite, so it is started here rather than by the server harness.
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tiercache-sentinel-'));
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      `port ${port}`,
      `bind ${REDIS_HOST}`,
      `dir ${dir}`,
      `sentinel monitor ${MASTER_NAME} ${REDIS_HOST} ${master.port} 1`,
      `sentinel down-after-milliseconds ${MASTER_NAME} 500`,
      `sentinel failover-timeout ${MASTER_NAME} 5000`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const admin = new Redis({ host: REDIS_HOST, port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  admin.on('error', () => undefined); // refused until the sentinel listens
  try {
    await eventually(
      async () => {
        try {
          const replicas = (await admin.call('SENTINEL', 'REPLICAS', MASTER_NAME)) as unknown[];
          return replicas.length > 0;
        } catch {
          return false;
        }
      },
      'the sentinel answers and knows the replica',
      10_000,
    );
  } catch (err) {
    await stop();
    throw err;
  } finally {
    admin.disconnect();
  }
  return { port, stop };
}

describe('Redis Sentinel as L2', function () {
  this.timeout(30_000);
  let master: RedisServerHandle;
  let replica: RedisServerHandle;
  let sentinel: Sentinel | undefined;
  const clients: Redis[] = [];
  const caches: TierCache[] = [];
  let namespace = 0;

  beforeEach(async () => {
    // Diskless full syncs otherwise wait 5 s for more replicas.
    master = await startRedisServer({ args: ['--repl-diskless-sync-delay', '0'] });
    replica = await startRedisServer({ args: ['--replicaof', REDIS_HOST, String(master.port)] });
    sentinel = await startSentinel(master);
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    for (const c of clients.splice(0)) c.disconnect();
    await sentinel?.stop();
    await Promise.all([master.stop(), replica.stop()]);
  });

  async function open(ns: string): Promise<TierCache> {
    const client = new Redis({ sentinels: [{ host: REDIS_HOST, port: sentinel!.port }], name: MASTER_NAME });
    clients.push(client);
    const cache = createCache({ namespace: ns, redis: client, l2: { commandTimeout: 300 } });
    cache.on('error', () => undefined);
    caches.push(cache);
    await cache.ready();
    return cache;
  }

  it('stores in the master the sentinel names; values, invalidations and getOrSet reach the other instance', async () => {
    const ns = `sn${namespace++}`;
    const a = await open(ns);
    const b = await open(ns);
    assert.deepEqual([a.health(), b.health()], [{ l1: 'ok', l2: 'ok', bus: 'ok', pubsub: 'classic' }, { l1: 'ok', l2: 'ok', bus: 'ok', pubsub: 'classic' }]);
    await a.set('k', { v: 1 }, { tags: ['t'] });
    const direct = new Redis(master.port, REDIS_HOST);
    try {
      assert.equal(await direct.exists(`${ns}:d:k`), 1, 'the entry is in the master');
    } finally {
      direct.disconnect();
    }
    assert.deepEqual(await b.get('k'), { v: 1 });
    assert.equal(b.stats().l2.hits, 1);
    assert.deepEqual(await a.invalidateTags(['t']), { delivered: true });
    await eventually(async () => (await b.get('k')) === undefined, 'B drops k after invalidateTags on A', 2000);

    let runs = 0;
    const load = async () => {
      runs++;
      await sleep(100);
      return 7;
    };
    assert.deepEqual(await Promise.all([a.getOrSet('g', load), b.getOrSet('g', load)]), [7, 7]);
    assert.equal(runs, 1, 'one loader run across both instances');
  });

  it('after a failover both instances reconnect through the sentinel, serve nothing invalidated during it, and store in the promoted replica', async () => {
    const ns = `sn${namespace++}`;
    const a = await open(ns);
    const b = await open(ns);
    await a.set('k', 'old', { tags: ['t'], ttl: '1m' });
    assert.equal(await b.get('k'), 'old', 'in B');
    const onReplica = new Redis(replica.port, REDIS_HOST);
    try {
      await eventually(async () => (await onReplica.exists(`${ns}:d:k`)) === 1, 'the entry reaches the replica', 2000);
    } finally {
      onReplica.disconnect();
    }

    await master.stop();
    const during = await a.invalidateTags(['t']);
    assert.equal(during.delivered, false, 'Redis could not take it while the master was gone');
    assert.equal(await a.get('k'), undefined, 'A stopped serving it at once');

    await eventually(() => [a, b].every((c) => c.health().l2 === 'ok' && c.health().bus === 'ok'), 'both instances reconnect to the promoted replica', 20_000);
    await eventually(async () => (await b.get('k')) === undefined, 'B stops serving k once it is back', 5000);
    const promoted = new Redis(replica.port, REDIS_HOST);
    try {
      assert.match(await promoted.info('replication'), /role:master/);
      await a.set('n', 'new');
      assert.equal(await promoted.exists(`${ns}:d:n`), 1, 'A stores in the promoted replica');
    } finally {
      promoted.disconnect();
    }
    // B may still be checking which Redis process it reached (a miss meanwhile, never an error).
    await eventually(async () => (await b.get('n')) === 'new', "B reads A's new value from the promoted replica", 5000);
  });
});
