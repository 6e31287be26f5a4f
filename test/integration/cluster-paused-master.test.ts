// A master that stops answering without closing its connections (SIGSTOP: a
// hung VM, a long stall; the kernel keeps its sockets up) while its replica
// takes over (CLUSTER FAILOVER TAKEOVER, as an operator or the cluster does).
// Nothing tells a caller's Cluster client: no MOVED, no reset, so ioredis keeps
// routing the old master's slots to it until something asks for the slot map
// again. One cluster of 3 masters with a replica each for the file; each test
// fails over another master.
import assert from 'node:assert/strict';
import { Cluster, Redis, type ClusterOptions } from 'ioredis';
import { createCache, type TierCache } from '../../src/index.js';
import { keySlot } from '../../src/store/hash-slot.js';
import { eventually } from '../support/eventually.js';
import { startRedisCluster, type RedisClusterHandle } from '../support/redis-cluster.js';
import type { RedisServerHandle } from '../support/redis-server.js';

const COMMAND_TIMEOUT_MS = 300;

describe('Redis Cluster: a master paused (SIGSTOP) and replaced by its replica', function () {
  this.timeout(60_000);
  let cluster: RedisClusterHandle;
  const admins: Redis[] = [];
  const clients: Cluster[] = [];
  const caches: TierCache[] = [];
  const frozen: RedisServerHandle[] = [];
  /** Ids of the masters failed over so far: their replicas are the old masters, which may still be syncing. */
  const failedOver = new Set<string>();

  before(async function () {
    this.timeout(60_000);
    // Four masters: three of them fail over in the tests below, and the last test kills one none of them touched.
    cluster = await startRedisCluster({ masters: 4, replicas: 1 });
  });
  after(async () => {
    for (const a of admins.splice(0)) a.disconnect();
    await cluster?.stop();
  });
  afterEach(async () => {
    for (const s of frozen.splice(0)) s.thaw();
    await Promise.all(caches.splice(0).map((c) => c.close()));
    for (const c of clients.splice(0)) c.disconnect();
  });

  function admin(port: number): Redis {
    const client = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, commandTimeout: 1000 });
    client.on('error', () => undefined);
    admins.push(client);
    return client;
  }

  /** A cache on a Cluster client of the caller's own, built the plain way (with `options`). */
  async function open(namespace: string, options: ClusterOptions = {}, commandTimeout = COMMAND_TIMEOUT_MS): Promise<TierCache> {
    const client = new Cluster(cluster.nodes, options);
    client.on('error', () => undefined);
    clients.push(client);
    const cache = createCache({ namespace, redis: client, l2: { commandTimeout } });
    cache.on('error', () => undefined);
    caches.push(cache);
    await cache.ready();
    return cache;
  }

  /** Whether a `CLUSTER NODES` line is a master's that serves `slot`. */
  function serves(line: string, slot: number): boolean {
    const fields = line.split(' ');
    return fields[2]!.includes('master') && fields.slice(8).some((range) => {
      const [from, to = from] = range.split('-').map(Number);
      return from! <= slot && slot <= to!;
    });
  }

  /** Each node's `CLUSTER NODES` line, as a node that is not frozen tells it. */
  async function nodeLines(): Promise<string[]> {
    const live = cluster.servers.find((s) => !frozen.includes(s))!;
    return String(await admin(live.port).cluster('NODES')).trim().split('\n');
  }

  /**
   * Freezes the master serving `slot` (one with a replica and not frozen yet) and has its replica take over; resolves
   * once a live node says the slot is the replica's.
   */
  async function freezeAndFailOver(slot: number): Promise<number> {
    // The node asked may not have heard yet (gossip) which node replicates that master: asked again until it has.
    let master: string[] | undefined;
    let replica: string[] | undefined;
    await eventually(async () => {
      const lines = await nodeLines();
      master = lines.find((line) => serves(line, slot))?.split(' ');
      replica = master === undefined ? undefined : lines.find((line) => line.split(' ')[3] === master![0])?.split(' ');
      return replica !== undefined;
    }, 'a live node names the master of the slot and its replica', 10_000);
    failedOver.add(master![0]!);
    const port = (field: string) => Number(/:(\d+)@/.exec(field)![1]);
    const victim = cluster.servers.find((s) => s.port === port(master![1]!))!;
    victim.freeze();
    frozen.push(victim);
    await admin(port(replica![1]!)).cluster('FAILOVER', 'TAKEOVER');
    const survivor = admin(cluster.servers.find((s) => s !== victim && s.port !== port(replica![1]!))!.port);
    await eventually(async () => {
      const ranges = (await survivor.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
      return ranges.find(([from, to]) => from <= slot && slot <= to)?.[2][1] === port(replica![1]!);
    }, 'the replica serves the slot', 10_000);
    return port(replica![1]!);
  }

  it("L2 comes back on the new master while the old one stays frozen: a set() on one instance is read from L2 on the other", async () => {
    const ns = `pm${process.pid}a`;
    const a = await open(ns);
    const b = await open(ns);
    await a.set('before', 'v0');
    assert.equal(await b.get('before'), 'v0');
    // The master of the namespace's epoch: the check that brings L2 back reads it.
    await freezeAndFailOver(keySlot(`{${ns}}:epoch`));
    // Traffic meets the frozen master: a command times out, and L2 is down on each instance.
    for (let i = 0; i < 20; i++) await Promise.all([a.set(`k${i}`, 'x'), b.get(`k${i}`)]);
    let n = 0;
    await eventually(async () => {
      const key = `after${n++}`;
      await a.set(key, 'v1');
      return a.health().l2 === 'ok' && b.health().l2 === 'ok' && (await b.get(key)) === 'v1';
    }, "both instances use L2 again, on the replica that took over, while the old master is frozen", 8_000);
  });

  it("the bus subscribes again on the new master of its channel while the old one stays frozen: an invalidation reaches the other instance's L1", async () => {
    // A namespace whose channel is on a master the last test did not fail over (its replica is the old master, still syncing).
    const lines = await nodeLines();
    let ns = '';
    for (let i = 0; ns === ''; i++) {
      const owner = lines.find((line) => serves(line, keySlot(`{pm${process.pid}b${i}}:epoch`)))!;
      if (!failedOver.has(owner.split(' ')[0]!)) ns = `pm${process.pid}b${i}`;
    }
    const a = await open(ns);
    const b = await open(ns);
    await freezeAndFailOver(keySlot(`{${ns}}:epoch`));
    const heard = () => (b as unknown as { bus: { received: number } }).bus.received;
    let n = 0;
    await eventually(async () => {
      const before = heard();
      const { delivered } = await a.invalidateTags([`t${n++}`]);
      // L2 too: the set() and get() below read it (the bus may be back before a breaker opened by the frozen master closes).
      if (!delivered || a.health().bus !== 'ok' || b.health().bus !== 'ok' || a.health().l2 !== 'ok' || b.health().l2 !== 'ok') return false;
      for (const until = Date.now() + 300; Date.now() < until; await new Promise((r) => setTimeout(r, 5))) if (heard() > before) return true;
      return false;
    }, "an invalidation is heard by the other instance through its subscription, on the replica that took over, while the old master is frozen", 10_000);
    // The premise: B holds a's value in L1. Under load one command can still time out on the way back from the
    // failover (CI at 3dfb1bf: B read nothing), which is the breaker's business, not this test's: asked again.
    await eventually(async () => (await a.set('k', 'v1'), (await b.get('k')) === 'v1'), "B reads A's set() (the premise of the invalidation below)", 3_000);
    assert.deepEqual(await a.delete('k'), { delivered: true });
    await eventually(async () => (await b.get('k')) === undefined, "the other instance's L1 copy is dropped by the message", 1_000);
  });

  // The subscriber is told nothing when its master stalls: no '-node', no reset. Each instance's data client learns
  // the channel's new master when a command of its times out (L2Store asks for the slot map then), about a second
  // before the heartbeat would notice; another instance publishes there meanwhile. The bus kept trusting L1 until
  // the heartbeat, and the data API answered from it (L2 down) what the other instance invalidated, `delivered: true`,
  // 60-80 times over 0.6 s in a scratch run.
  it("the bus stops trusting L1 once its client learns the channel has a new master, the old one frozen: another instance's invalidation is not answered from L1", async () => {
    // A shard failed over already (its replica is the old master, thawed): the kill below needs an untouched one.
    // Asked again until the node asked knows of one (gossip: an old master thawed joins as a replica later, under
    // load seconds later), each look bounded: a search that never ends blocks the event loop and mocha's timeout with it.
    let ns = '';
    await eventually(async () => {
      const lines = await nodeLines();
      const fields = lines.map((line) => line.split(' '));
      // A shard none of the tests before touched (the fourth master keeps one for the kill below), or one failed
      // over before whose old master is back as its replica.
      const untouched = (line: string) => fields.some((r) => r[3] === line.split(' ')[0] && !failedOver.has(r[0]!));
      const again = (line: string) => failedOver.size === 0 || untouched(line) || fields.some((r) => r[3] === line.split(' ')[0] && failedOver.has(r[0]!));
      for (let i = 0; ns === '' && i < 2_000; i++) {
        const owner = lines.find((line) => serves(line, keySlot(`{pm${process.pid}d${i}}:bus`)));
        if (owner !== undefined && !failedOver.has(owner.split(' ')[0]!) && again(owner)) ns = `pm${process.pid}d${i}`;
      }
      return ns !== '';
    }, 'a master whose shard failed over before and whose replica is back, to freeze', 20_000);
    const slot = keySlot(`{${ns}}:bus`);
    const a = await open(ns);
    const routesA = clients.at(-1)!;
    const b = await open(ns);
    await eventually(() => a.health().bus === 'ok' && b.health().bus === 'ok', 'both buses subscribed', 5_000);
    await b.set('k', 'old', { ttl: '1h', tags: ['T'] });
    assert.equal(await a.get('k'), 'old');
    const bus = a as unknown as { bus: { flushes: number } };
    const newMaster = await freezeAndFailOver(slot);
    // A's epoch check (the epoch shares the channel's slot) times out on the frozen master, and the slot map is read again.
    await eventually(() => routesA.slots[slot]?.[0]?.endsWith(`:${newMaster}`) === true, "A's client names the channel's new master", 5_000);
    assert.notEqual(a.health().bus, 'ok', "A's bus still trusts L1 with its subscription on the frozen master, where nobody publishes any more");
    let delivered = false;
    while (!delivered) {
      delivered = (await b.invalidateTags(['T'])).delivered;
      if (!delivered) await new Promise((r) => setTimeout(r, 50));
    }
    for (let i = 0; i < 20; i++, await new Promise((r) => setTimeout(r, 10))) assert.notEqual(await a.get('k'), 'old', `A answered from L1 what B invalidated (read ${i})`);
    // Trusted again once subscribed on the new master; later reads of the same slot map flush nothing.
    await eventually(() => a.health().bus === 'ok', "A's bus subscribed on the new master", 8_000);
    const flushes = bus.bus.flushes;
    for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => routesA.refreshSlotsCache(() => resolve()));
    assert.equal(bus.bus.flushes, flushes, 'L1 flushed again by a slot map that did not move the channel');
    assert.equal(a.health().bus, 'ok');
  });

  // Not a pause: a master killed. A client with a small redirection budget gives up on a command for its slots after
  // about 200 ms ('Too many Cluster redirections. Last error: Error: Connection is closed.'), before the command
  // timeout: that opened no breaker, so every command for those slots paid it until the replica took over (about
  // 2.2 s here), each a reported failure, where a timeout would have opened the breaker at the first. The command
  // timeout is long here, so that only that error can take L2 down.
  it("a master killed under a client with a small redirection budget: L2 goes down at the first command its dead node fails, not only after a timeout", async () => {
    const lines = await nodeLines();
    const fields = lines.map((line) => line.split(' '));
    // A master not failed over yet, whose replica is not an old master still syncing.
    const master = fields.find((m) => m[2]!.includes('master') && !failedOver.has(m[0]!) && fields.some((r) => r[3] === m[0] && !failedOver.has(r[0]!)))!;
    const victimLine = master.join(' ');
    let ns = '';
    for (let i = 0; ns === ''; i++) if (!serves(victimLine, keySlot(`{pm${process.pid}c${i}}:epoch`))) ns = `pm${process.pid}c${i}`;
    const a = await open(ns, { maxRedirections: 4, retryDelayOnFailover: 50 }, 5_000);
    const onVictim: string[] = [];
    for (let k = 0; onVictim.length < 10; k++) if (serves(victimLine, keySlot(a.dataKey(`v${k}`)))) onVictim.push(`v${k}`);
    const victim = cluster.servers.find((s) => s.port === Number(/:(\d+)@/.exec(master[1]!)![1]))!;
    failedOver.add(master[0]!);
    victim.kill('SIGKILL');
    const waits: number[] = [];
    for (const key of onVictim) {
      if (a.health().l2 === 'down') break;
      const start = Date.now();
      assert.equal(await a.get(key), undefined);
      waits.push(Date.now() - start);
    }
    assert.equal(a.health().l2, 'down', `L2 still up after ${waits.length} reads of the dead master's slots, which waited ${waits.join(', ')} ms`);
  });
});
