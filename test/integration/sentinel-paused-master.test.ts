// Sentinel failovers that close no connection, so ioredis, which asks the
// sentinels only when one closes, stays on the old master: one that stops
// answering (SIGSTOP: a hung VM, a long stall; the kernel keeps its sockets
// up) while the sentinels promote its replica, L2 down and every invalidation
// undelivered for as long as it stays stalled; and one that lives on
// (SENTINEL FAILOVER, or a master the sentinels cannot reach but the
// instances can), splitting the instances between two masters. A master, a
// replica and three sentinels on loopback (the harness's).
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { Redis } from 'ioredis';
import { createCache, type TierCache } from '../../src/index.js';
import { eventually } from '../support/eventually.js';
import { REDIS_HOST } from '../support/redis-server.js';
import { SENTINEL_MASTER_NAME, startRedisSentinel, type RedisSentinelHandle } from '../support/redis-sentinel.js';

// The timeout is what finds the stall; short enough for the test, long enough for a loaded machine.
const COMMAND_TIMEOUT_MS = 500;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('Redis Sentinel: failovers that close no connection', function () {
  this.timeout(60_000);
  let setup: RedisSentinelHandle | undefined;
  const clients: Redis[] = [];
  const caches: TierCache[] = [];

  afterEach(async function () {
    this.timeout(15_000);
    for (const server of setup === undefined ? [] : [setup.master, ...setup.sentinels]) server.thaw();
    await Promise.all(caches.splice(0).map((c) => c.close()));
    for (const c of clients.splice(0)) c.disconnect();
    await setup?.stop();
    setup = undefined;
  });

  async function open(ns: string, commandTimeout = COMMAND_TIMEOUT_MS): Promise<TierCache> {
    const client = new Redis({ sentinels: setup!.addresses, name: SENTINEL_MASTER_NAME });
    clients.push(client);
    const cache = createCache({ namespace: ns, redis: client, l2: { commandTimeout } });
    cache.on('error', () => undefined);
    caches.push(cache);
    await cache.ready();
    return cache;
  }

  describe('a master paused (SIGSTOP) and replaced by its replica', () => {
    it('both instances follow the sentinels to the promoted replica while the old master stays paused, and an invalidation made then reaches the other', async function () {
      setup = await startRedisSentinel();
      const a = await open('spm');
      const b = await open('spm');
      await a.set('k', 'old', { tags: ['t'], ttl: '1m' });
      assert.equal(await b.get('k'), 'old', 'in B, from L2 and now in its L1');
      const paused = setup.master;
      // The host of the master and of the first sentinel hangs: that sentinel, the one whose announcements
      // tiercache listens to, tells nothing; the other two promote the replica, and only asking them finds it.
      paused.freeze();
      setup.sentinels[0]!.freeze();
      const other = new Redis(setup.sentinels[1]!.port, REDIS_HOST);
      try {
        await eventually(async () => ((await other.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER_NAME)) as string[])[1] === String(setup!.replica.port), 'the other sentinels promote the replica', 20_000);
      } finally {
        other.disconnect();
      }

      await eventually(() => [a, b].every((c) => c.health().l2 === 'ok' && c.health().bus === 'ok'), 'both instances reach the promoted replica, their buses subscribed there, the old master still paused', 10_000);
      assert.deepEqual(await a.invalidateTags(['t']), { delivered: true });
      await eventually(async () => (await b.get('k')) === undefined, 'B stops serving k, invalidated on A', 5000);
      await a.set('n', 'new', { ttl: '1m' });
      const promoted = new Redis(setup.replica.port, REDIS_HOST);
      try {
        assert.equal(await promoted.exists('spm:d:n'), 1, 'A stores in the promoted replica');
      } finally {
        promoted.disconnect();
      }
      assert.equal(paused.running, true, 'the old master was paused, not gone, throughout');
    });

    it('close() leaves no connection to a paused sentinel open: neither a question still out nor the invalidation channel\'s +switch-master subscriptions', async function () {
      setup = await startRedisSentinel();
      const a = await open('spc');
      const sentinelPorts = new Set(setup.sentinels.map((s) => s.port));
      const toSentinels = () => openSockets().filter((port) => sentinelPorts.has(port)).length;
      // Paused sentinels still accept connections (the kernel does), and answer nothing.
      for (const s of setup.sentinels) s.freeze();
      setup.master.freeze();
      try {
        assert.equal(await a.get('k'), undefined, 'a miss: the command timed out');
        // One connection watches the sentinels' announcements all along; a question makes a second.
        await eventually(() => toSentinels() >= 2, 'tiercache asks a sentinel where the master is', 5000);
        await a.close();
        // A socket ended by disconnect() is destroyed a turn later; a question left out would hold it for seconds.
        await sleep(100);
        assert.equal(toSentinels(), 0, 'no connection to a sentinel left once close() resolved');
      } finally {
        for (const s of setup.sentinels) s.thaw();
      }
    });
  });

  describe('a failover the sentinels make while the old master lives (SENTINEL FAILOVER)', () => {
    it('instances on the old master follow the sentinels to the new one at once: invalidations between them and an instance started there are heard both ways', async function () {
      // The sentinels turn an old master that lives into a replica when they next look at it (every 10 s here):
      // refused that command, it stays a master, as one they cannot reach but the instances can, for the whole test.
      setup = await startRedisSentinel({ masterArgs: ['--rename-command', 'SLAVEOF', ''] });
      const a = await open('sgf', 3000);
      const b = await open('sgf', 3000);
      await a.set('x', 'old', { tags: ['t'], ttl: '1m' });
      await a.set('y', 'old', { tags: ['u'], ttl: '1m' });
      assert.equal(await b.get('x'), 'old', 'in B');
      const old = setup.master.port;
      const sentinel = new Redis(setup.sentinels[0]!.port, REDIS_HOST);
      try {
        // Refused (NOGOODSLAVE) until the sentinel has read the replica's INFO since it started.
        await eventually(async () => (await sentinel.call('SENTINEL', 'FAILOVER', SENTINEL_MASTER_NAME).catch((err: Error) => err.message)) === 'OK', 'the sentinel starts a failover', 15_000);
      } finally {
        sentinel.disconnect();
      }
      await eventually(async () => ![undefined, old].includes(await setup!.masterPort()), 'the sentinels promote the replica', 20_000);
      // An instance started now reaches the new master.
      const c = await open('sgf', 3000);
      await eventually(() => [a, b].every((x) => x.health().l2 === 'ok' && x.health().bus === 'ok'), 'A and B up', 10_000);
      await c.set('z', 'c', { tags: ['v'], ttl: '1m' });
      await eventually(async () => (await a.get('z')) === 'c', "A reads C's entry: both on the new master", 5000);
      await c.invalidateTags(['t']);
      await eventually(async () => (await b.get('x')) === undefined, 'B stops serving x, invalidated on C', 5000);
      assert.deepEqual(await b.invalidateTags(['v']), { delivered: true });
      await eventually(async () => (await c.get('z')) === undefined, 'C stops serving z, invalidated on B', 5000);
      // Past the epoch's move (another server: every instance flushed L1 once), messages alone tell.
      await c.set('w', 'c', { tags: ['w'], ttl: '1m' });
      await eventually(async () => (await b.get('w')) === 'c', "B reads C's entry w", 5000);
      assert.equal(await b.get('w'), 'c', 'and holds it in L1');
      await c.invalidateTags(['w']);
      await eventually(async () => (await b.get('w')) === undefined, "B stops serving w, invalidated on C: B's invalidation channel listens on the new master", 5000);
      const oldMaster = new Redis(old, REDIS_HOST);
      try {
        assert.match(await oldMaster.info('replication'), /role:master/, 'the old master was still a master throughout');
      } finally {
        oldMaster.disconnect();
      }
    });

    it('the sentinel tiercache watches is paused: the instances follow the failover through the next one', async function () {
      setup = await startRedisSentinel({ masterArgs: ['--rename-command', 'SLAVEOF', ''] });
      const a = await open('sgp', 3000);
      const b = await open('sgp', 3000);
      await a.set('x', 'old', { tags: ['t'], ttl: '1m' });
      assert.equal(await b.get('x'), 'old', 'in B');
      const old = setup.master.port;
      // The first sentinel is the one watched; it hears of the failover, once thawed, only from the others.
      setup.sentinels[0]!.freeze();
      const sentinel = new Redis(setup.sentinels[1]!.port, REDIS_HOST);
      try {
        await eventually(async () => (await sentinel.call('SENTINEL', 'FAILOVER', SENTINEL_MASTER_NAME).catch((err: Error) => err.message)) === 'OK', 'the sentinel starts a failover', 15_000);
        await eventually(async () => ((await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER_NAME)) as string[])[1] === String(setup!.replica.port), 'the replica is promoted', 20_000);
      } finally {
        sentinel.disconnect();
      }
      const promoted = new Redis(setup.replica.port, REDIS_HOST);
      try {
        for (const [name, cache] of [['a', a], ['b', b]] as const) {
          const stored = async () => {
            await cache.set(name, 'new', { ttl: '1m' });
            return (await promoted.exists(`sgp:d:${name}`)) === 1;
          };
          await eventually(stored, `${name.toUpperCase()} stores in the promoted replica`, 10_000);
        }
      } finally {
        promoted.disconnect();
      }
      const oldMaster = new Redis(old, REDIS_HOST);
      try {
        assert.match(await oldMaster.info('replication'), /role:master/, 'the old master was still a master throughout');
      } finally {
        oldMaster.disconnect();
      }
    });
  });
});

/** Remote ports of this process's open TCP sockets. */
function openSockets(): number[] {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.flatMap((h) => (h instanceof Socket && !h.destroyed && h.remotePort !== undefined ? [h.remotePort] : []));
}
