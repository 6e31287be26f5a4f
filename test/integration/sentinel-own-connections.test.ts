// The connections tiercache opens to a Sentinel client's sentinels, and the
// ones it drops to follow them (sentinel-master.ts), against what the
// caller's client asked for and against close(). A master, a replica and
// three sentinels on loopback (the harness's).
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { Redis } from 'ioredis';
import { createCache, type TierCache } from '../../src/index.js';
import { eventually } from '../support/eventually.js';
import { REDIS_HOST, startRedisServer, type RedisServerHandle } from '../support/redis-server.js';
import { SENTINEL_MASTER_NAME, startRedisSentinel, type RedisSentinelHandle } from '../support/redis-sentinel.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('Redis Sentinel: the connections tiercache opens and drops on its own', function () {
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

  it('close() while a command to a paused master is out: its timeout, after close(), opens no connection to a sentinel', async function () {
    setup = await startRedisSentinel();
    const client = new Redis({ sentinels: setup.addresses, name: SENTINEL_MASTER_NAME });
    clients.push(client);
    // Longer than close() takes with the master paused (its QUITs wait half a second each at most).
    const cache = createCache({ namespace: 'scl', redis: client, l2: { commandTimeout: 1500 } });
    cache.on('error', () => undefined);
    caches.push(cache);
    await cache.ready();
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
    const client = new Redis({ sentinels: setup.addresses, name: SENTINEL_MASTER_NAME });
    clients.push(client);
    const cache = createCache({ namespace: 'sst', redis: client, l2: { commandTimeout: 300 } });
    cache.on('error', () => undefined);
    caches.push(cache);
    await cache.ready();
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

/** Remote ports of this process's open TCP sockets. */
function openSockets(): number[] {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.flatMap((h) => (h instanceof Socket && !h.destroyed && h.remotePort !== undefined ? [h.remotePort] : []));
}
