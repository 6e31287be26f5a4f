// A caller's Cluster client made with `scaleReads: 'slave'` (README: tiercache
// uses the client as it is) sends ioredis's read-only commands to replicas.
// tiercache's scripts run on masters, but an entry's bytes read by a plain GET
// (a large entry after its lookup script, fill-protocol.ts LARGE_ENTRY_BYTES;
// a get() whose counters are known here) came from a replica, which may lag:
// bytes from before a set() that completed, or none. Replicas are made to lag
// here by CLIENT PAUSE WRITE, which holds their replication stream and still
// answers reads.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import request from 'supertest';
import { createCache, type TierCache } from '../../src/index.js';
import { blobApp, collectBytes } from '../support/blob-app.js';
import { eventually } from '../support/eventually.js';
import { startRedisCluster, type RedisClusterHandle } from '../support/redis-cluster.js';

const blob = (bytes: number) => randomBytes(Math.ceil((bytes * 3) / 4)).toString('base64').slice(0, bytes);
const offset = (info: string, field: string) => Number(new RegExp(`^${field}:(\\d+)`, 'm').exec(info)?.[1] ?? -1);

describe('a Cluster client that reads from replicas (scaleReads)', function () {
  this.timeout(60_000);
  let cluster: RedisClusterHandle;
  const direct: Redis[] = [];
  const replicas: Redis[] = [];
  const masters: Redis[] = [];
  const clients: Cluster[] = [];
  const caches: TierCache[] = [];
  let n = 0;

  before(async function () {
    this.timeout(60_000);
    cluster = await startRedisCluster({ masters: 3, replicas: 1 });
    for (const node of cluster.nodes) {
      const c = new Redis(node.port, node.host);
      direct.push(c);
      (/^role:slave/m.test(await c.info('replication')) ? replicas : masters).push(c);
    }
    // Replicas show in CLUSTER SLOTS (what a client learns them from) once the masters have heard of them.
    // Every node's view, not one master's: a client learns them from whichever node it asks first.
    await eventually(async () => {
      for (const node of direct) {
        const ranges = (await node.cluster('SLOTS')) as unknown as unknown[][];
        if (ranges.length === 0 || !ranges.every((range) => range.length >= 4)) return false;
      }
      return true;
    }, 'every slot range lists a replica, on every node', 20_000);
  });
  after(async () => {
    for (const c of direct) c.disconnect();
    await cluster?.stop();
  });
  afterEach(async () => {
    for (const r of replicas) await r.client('UNPAUSE');
    await Promise.all(caches.splice(0).map((c) => c.close()));
    for (const c of clients.splice(0)) c.disconnect();
  });

  async function open(namespace: string, options: object = {}): Promise<TierCache> {
    const client = new Cluster(cluster.nodes, { scaleReads: 'slave' });
    clients.push(client);
    const cache = createCache({ namespace, l1: false, redis: client, l2: { commandTimeout: '2s' }, ...options });
    caches.push(cache);
    await cache.ready();
    // The premise: the client knows every replica, so a GET goes to one.
    // On a busy machine its first CLUSTER SLOTS may predate a replica's; ask again rather than wait for its 5 s refresh.
    await eventually(async () => {
      if (client.nodes('slave').length === replicas.length) return true;
      await new Promise<void>((resolve) => client.refreshSlotsCache(() => resolve()));
      return client.nodes('slave').length === replicas.length;
    }, 'the client knows the replicas', 20_000);
    return cache;
  }

  /** Every replica has applied what its master had written by now; then their replication stream is held. */
  async function syncThenLag(): Promise<void> {
    const written = new Map<string, number>();
    for (const m of masters) written.set(String(m.options.port), offset(await m.info('replication'), 'master_repl_offset'));
    await eventually(async () => {
      for (const r of replicas) {
        const info = await r.info('replication');
        if (offset(info, 'slave_repl_offset') < written.get(String(offset(info, 'master_port')))!) return false;
      }
      return true;
    }, 'the replicas caught up', 10_000);
    for (const r of replicas) await r.client('PAUSE', '30000', 'WRITE');
  }

  for (const size of [100, 200 * 1024]) {
    it(`get(), getOrSet() and pull() of ${size} bytes on another instance after a set() completed: the value set, which stays (for getOrSet) in Redis`, async () => {
      const ns = `replica-reads${process.pid}-${n++}`;
      const a = await open(ns);
      const b = await open(ns);
      const before = blob(size);
      const after = blob(size);
      for (const key of ['g', 'o', 'p']) await a.set(key, before);
      // b learns the key counters (a get() then needs none from Redis: a plain GET).
      for (const key of ['g', 'o', 'p']) assert.ok((await b.get(key)) === before);
      await syncThenLag();
      for (const key of ['g', 'o', 'p']) await a.set(key, after);
      let loads = 0;
      const got = await b.get('g');
      assert.ok(got === after, `get(): ${got === before ? 'the value from before the set()' : String(got).slice(0, 40)}`);
      const loaded = await b.getOrSet('o', async () => {
        loads++;
        return 'loaded';
      });
      assert.equal(loads, 0, 'getOrSet() ran its loader over the value set');
      assert.ok(loaded === after);
      const pulled = await b.pull('p');
      assert.ok(pulled === after, `pull(): ${pulled === before ? 'the value from before the set()' : String(pulled).slice(0, 40)}`);
      for (const r of replicas) await r.client('UNPAUSE');
      const c = await open(ns);
      assert.ok((await c.get('o')) === after, 'the value set is gone from Redis');
      assert.equal(await c.get('p'), undefined, 'the pulled value is still in Redis');
    });
  }

  // A waiter on another instance asks now and then whether the filling instance still holds the lock (PTTL,
  // read-only: sent to a replica). A lagging replica has no lock yet: the waiter gave up at its first ask and ran
  // its loader beside the filler's (DESIGN: a fill within the lock's lifetime runs once across all instances).
  it('a getOrSet() waiting on another instance\'s fill while the replicas lag waits for it: the loader runs once', async () => {
    const ns = `replica-reads${process.pid}-${n++}`;
    const a = await open(ns);
    const b = await open(ns);
    await syncThenLag();
    let loads = 0;
    const load = (who: string) => async () => {
      loads++;
      await new Promise((resolve) => setTimeout(resolve, 400));
      return who;
    };
    const first = a.getOrSet('slow', load('a'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = b.getOrSet('slow', load('b'));
    assert.deepEqual(await Promise.all([first, second]), ['a', 'a']);
    assert.equal(loads, 1, 'the loader ran on both instances');
  });

  it('an HTTP body of 200 KiB stored while the replicas lag is an L2 hit on another instance, byte-exact', async () => {
    const ns = `replica-reads${process.pid}-${n++}`;
    const body = randomBytes(200 * 1024);
    const a = await open(ns, { routes: { '/api': '1m' } });
    const b = await open(ns, { routes: { '/api': '1m' } });
    await syncThenLag();
    assert.equal((await request(blobApp(a, body)).get('/api/blob')).headers['cache-status'], 'tiercache; fwd=miss; stored');
    const hit = await request(blobApp(b, body)).get('/api/blob').buffer(true).parse(collectBytes);
    assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L2');
    assert.ok(Buffer.compare(hit.body as Buffer, body) === 0, 'the body read from L2 differs');
  });
});
