// Sentinel failovers that close no connection, so ioredis, which asks the
// sentinels only when one closes, stays on the old master: one that stops
// answering (SIGSTOP: a hung VM, a long stall; the kernel keeps its sockets
// up) while the sentinels promote its replica, L2 down and every invalidation
// undelivered for as long as it stays stalled; and one that lives on
// (SENTINEL FAILOVER, or a master the sentinels cannot reach but the
// instances can), splitting the instances between two masters. And the
// connections tiercache opens to the sentinels to follow them: none past
// close(), a bounded number, none moved by another master's failover. A
// master, a replica and three sentinels on loopback (the harness's).
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { Redis } from 'ioredis';
import { createCache, type TierCache } from '../../src/index.js';
import { eventually } from '../support/eventually.js';
import { REDIS_HOST, startRedisServer, type RedisServerHandle } from '../support/redis-server.js';
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

  // What tiercache opens to the sentinels, and drops to follow them, against close(), a paused sentinel and
  // announcements for another master.
  describe('the connections tiercache opens and drops on its own', () => {
    it('close() while a command to a paused master is out: its timeout, after close(), opens no connection to a sentinel', async function () {
      setup = await startRedisSentinel();
      // Longer than close() takes with the master paused (its QUITs wait half a second each at most).
      const cache = await open('scl', 1500);
      await eventually(() => cache.health().bus === 'ok', 'the invalidation channel is subscribed', 10_000);
      const sentinelPorts = new Set(setup.sentinels.map((s) => s.port));
      const toSentinels = () => openSockets().filter((port) => sentinelPorts.has(port)).length;
      // Paused sentinels accept connections and answer nothing: a question to them stays out for seconds.
      for (const s of setup.sentinels) s.freeze();
      setup.master.freeze();
      const out = cache.get('k').catch(() => undefined);
      await cache.close();
      assert.equal(toSentinels(), 0, 'close() left no connection to a sentinel');
      await out;
      await sleep(200);
      assert.equal(toSentinels(), 0, 'no connection to a sentinel opened after close()');
    });

    it("close() while the invalidation channel asks a paused sentinel for the master, on a client without sentinelCommandTimeout: the question ends within the sentinel wait, and the channel reaches the master through the next sentinel", async function () {
      setup = await startRedisSentinel();
      // ioredis's default: no sentinelCommandTimeout, so its own questions to a paused sentinel never end.
      const client = new Redis({ sentinels: setup.addresses, name: SENTINEL_MASTER_NAME });
      clients.push(client);
      await new Promise((resolve) => client.once('ready', resolve));
      const sentinelPorts = new Set(setup.sentinels.map((s) => s.port));
      const toSentinels = () => openSockets().filter((port) => sentinelPorts.has(port)).length;
      // The first sentinel, the one every connection asks first, hangs: it accepts connections and answers nothing.
      setup.sentinels[0]!.freeze();
      // A one-second sentinel wait (sentinelWait: five command timeouts, at least a second).
      const open = () => {
        const cache = createCache({ namespace: 'scs', redis: client, l2: { commandTimeout: 200 } });
        cache.on('error', () => undefined);
        caches.push(cache);
        return cache;
      };
      const up = open();
      await eventually(() => up.health().bus === 'ok', 'the invalidation channel subscribes through the next sentinel', 10_000);
      const closed = open();
      await sleep(100);
      await closed.close();
      // The first cache's +switch-master watch holds a connection to a sentinel until its close().
      await up.close();
      await eventually(() => toSentinels() === 0, "no connection to a sentinel outlives the closed cache's channel by more than the sentinel wait", 4000);
    });

    it('a master that stalls with many commands out: their timeouts, one after another, ask the sentinels a few times, not once each', async function () {
      setup = await startRedisSentinel({ downAfterMs: 60_000 });
      const cache = await open('sst', 300);
      await eventually(() => cache.health().bus === 'ok', 'the invalidation channel is subscribed', 10_000);
      const received = async () => {
        let total = 0;
        for (const s of setup!.sentinels) {
          const c = new Redis(s.port, s.host, { lazyConnect: true, maxRetriesPerRequest: 0 });
          try {
            await c.connect();
            total += Number(/total_connections_received:(\d+)/.exec(await c.info('stats'))![1]);
          } finally {
            c.disconnect();
          }
        }
        return total;
      };
      const before = await received();
      // The sentinels never call it down here (down-after a minute): each question finds it still the master.
      setup.master.freeze();
      const frozenAt = performance.now();
      // Commands sent one after another until the first times out (the breaker then sends none): their timeouts
      // follow one another for as long, each a question if nothing holds them back.
      const out: Promise<unknown>[] = [];
      const until = performance.now() + 250;
      while (performance.now() < until) {
        out.push(cache.get(`k${out.length}`).catch(() => undefined));
        await sleep(5);
      }
      await Promise.all(out);
      await sleep(300);
      // Less the connections counting takes (one to each sentinel).
      const asked = (await received()) - before - setup.sentinels.length;
      const seconds = Math.ceil((performance.now() - frozenAt) / 1000);
      assert.ok(out.length >= 20, `${out.length} commands out`);
      // A question a second (the first timeout's, then the breaker's probes'); the rest are ioredis's own, the
      // invalidation channel's reconnects asking where the master is (measured: 3 in all within the second).
      assert.ok(asked * 4 <= out.length, `${asked} connections to the sentinels for ${out.length} timeouts in ${seconds} s`);
    });

    it("another master's failover announced by the same sentinels moves neither the client's connection nor the invalidation channel's", async function () {
      setup = await startRedisSentinel();
      const other: RedisServerHandle[] = [];
      try {
        const master = await startRedisServer({ args: ['--repl-diskless-sync-delay', '0'] });
        other.push(master);
        other.push(await startRedisServer({ args: ['--replicaof', REDIS_HOST, String(master.port), '--repl-diskless-sync-delay', '0'] }));
        const sentinels = setup.sentinels.map((s) => new Redis(s.port, s.host));
        try {
          for (const s of sentinels) {
            await s.call('SENTINEL', 'MONITOR', 'other', REDIS_HOST, String(master.port), '2');
            await s.call('SENTINEL', 'SET', 'other', 'failover-timeout', '2000');
          }
          const client = new Redis({ sentinels: setup.addresses, name: SENTINEL_MASTER_NAME });
          clients.push(client);
          let closes = 0;
          client.on('close', () => closes++);
          const cache = createCache({ namespace: 'som', redis: client, l2: { commandTimeout: '3s' } });
          const errors: string[] = [];
          cache.on('error', (event) => errors.push(event.err.message));
          caches.push(cache);
          await cache.ready();
          await eventually(() => cache.health().bus === 'ok', 'the invalidation channel is subscribed', 10_000);
          // Refused (NOGOODSLAVE) until the sentinel has read the replica's INFO.
          await eventually(async () => (await sentinels[0]!.call('SENTINEL', 'FAILOVER', 'other').catch((err: Error) => err.message)) === 'OK', "a sentinel starts the other master's failover", 20_000);
          await eventually(async () => ((await sentinels[1]!.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'other')) as string[])[1] === String(other[1]!.port), 'the other replica is promoted', 20_000);
          // The +switch-master watch hears it within a turn; a second is plenty for a move to begin.
          await sleep(1000);
          assert.equal(closes, 0, "the client's connection was not dropped");
          assert.deepEqual(errors, [], 'the invalidation channel did not reconnect');
          assert.equal(cache.health().bus, 'ok');
        } finally {
          for (const s of sentinels) s.disconnect();
        }
      } finally {
        await Promise.all(other.map((s) => s.stop()));
      }
    });
  });
});

/** Remote ports of this process's open TCP sockets. */
function openSockets(): number[] {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.flatMap((h) => (h instanceof Socket && !h.destroyed && h.remotePort !== undefined ? [h.remotePort] : []));
}
