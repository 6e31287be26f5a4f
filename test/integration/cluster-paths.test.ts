// The Redis Cluster paths of a fill and of the bus, on a real 3-master
// cluster: counters read, created and deleted in other slots than their
// entry's, the epoch read first by an instance that distrusts what it knows,
// a lock released where no entry is stored, an invalidation that overtakes a
// fill from another slot, and the heartbeats that tell a bus it stopped
// hearing. Each test asserts what a user relies on (DESIGN.md §3-5), checked
// from the instances and, for what must not be left behind, on the nodes.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import express from 'express';
import type { Cluster } from 'ioredis';
import request from 'supertest';
import { createCache, type TierCache } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { EntryKind } from '../../src/store/entry.js';
import { PROVISIONAL_COUNTER_TTL_MS } from '../../src/store/fill-protocol.js';
import { EPOCH_CHECK_MS } from '../../src/store/invalidation-bus.js';
import { keySlot } from '../../src/store/hash-slot.js';
import { eventually } from '../support/eventually.js';
import { clusterCaches } from '../support/cluster-caches.js';
import { onEachNode } from '../support/redis-cluster.js';

/** What these tests reach inside a cache's invalidation bus (private there). */
interface BusInternals {
  readonly instanceId: string;
  readonly channel: string;
  readonly subscriber: Cluster;
  seq: number;
  readonly flushes: number;
  /** The epoch check (and, on a Cluster, the heartbeat) the bus runs every second. */
  checkEpoch(): void;
}

const busOf = (cache: TierCache) => cache.bus as unknown as BusInternals;

/** A gate a handler or loader waits on, and a signal that it got there. */
function gate(): { entered: Promise<void>; enter: () => void; wait: Promise<void>; open: () => void } {
  let enter!: () => void;
  let open!: () => void;
  const entered = new Promise<void>((resolve) => (enter = resolve));
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { entered, enter, wait, open };
}

describe('Redis Cluster paths of fills and of the bus', function () {
  this.timeout(30_000);
  const env = clusterCaches();
  const { open } = env;
  const client = () => env.client();
  let namespace = 0;
  // '-' is no base-36 digit: no slot guard key ({tag}:tiercache:guard) starts like a namespace here.
  const nextNamespace = () => `cp-${namespace++}`;

  /** Every key of namespace `ns` on the masters, but its epoch and server record (the run id and the master_replid2 beside it), which live as long as the namespace. */
  async function leftovers(ns: string): Promise<string[]> {
    const keys = (await onEachNode(env.cluster, (direct) => direct.keys('*'))).flat();
    const ours = (k: string) => k.startsWith(`${ns}:`) || k.startsWith(`{${ns}:`) || k.startsWith(`{${ns}}`);
    return keys.filter((k) => ours(k) && k !== `{${ns}}:epoch` && k !== `{${ns}}:server` && k !== `{${ns}}:server:replid2`).sort();
  }

  /** Two ready instances of a new namespace, a client, and the namespace's epoch key and its slot. */
  async function withEpoch() {
    const ns = nextNamespace();
    const [a, b] = [await open(ns), await open(ns)];
    const epochKey = `{${ns}}:epoch`;
    return { ns, a, b, direct: client(), epochKey, epochSlot: keySlot(epochKey) };
  }

  /** A data-API key of `cache` whose store key is in `slot` (or, with `not`, in none of `not`). */
  function dataKeyIn(cache: TierCache, where: { slot: number } | { not: number[] }): string {
    for (let i = 0; ; i++) {
      const slot = keySlot(cache.dataKey(`k${i}`));
      if ('slot' in where ? slot === where.slot : !where.not.includes(slot)) return `k${i}`;
    }
  }

  /** A tag whose counter (`ns:v:{tag}`) is in none of `not`. */
  function tagOutside(ns: string, base: string, not: number[]): string {
    for (let i = 0; ; i++) if (!not.includes(keySlot(`${ns}:v:{${base}${i}}`))) return `${base}${i}`;
  }

  /**
   * Runs `act` on `sender` while the messages it publishes (not its
   * heartbeats) never reach `receiver`: pub/sub is at-most-once, and this is
   * what a lost message looks like from the receiving side. Resolves once one
   * was dropped.
   */
  async function losingMessages<T>(sender: TierCache, receiver: TierCache, act: () => Promise<T>): Promise<T> {
    const subscriber = busOf(receiver).subscriber;
    const deliver = subscriber.listeners('smessage') as Array<(channel: string, payload: string) => void>;
    const from = busOf(sender).instanceId;
    let dropped!: () => void;
    const lost = new Promise<void>((resolve) => (dropped = resolve));
    const filter = (channel: string, payload: string) => {
      const wire = JSON.parse(payload) as { i: string; h?: number };
      if (wire.i === from && wire.h === undefined) return dropped();
      for (const listener of deliver) listener(channel, payload);
    };
    subscriber.removeAllListeners('smessage');
    subscriber.on('smessage', filter);
    try {
      const result = await act();
      await lost;
      return result;
    } finally {
      subscriber.off('smessage', filter);
      for (const listener of deliver) subscriber.on('smessage', listener);
    }
  }

  /** `receiver` hears an invalidation of `sender`'s (so it knows where `sender`'s numbering stands). */
  async function hear(sender: TierCache, receiver: TierCache, tag: string): Promise<void> {
    const heard = once(receiver, 'invalidate');
    await sender.invalidateTags([tag]);
    await heard;
  }

  it('a handler that fails (500, or throws) releases its lock and deletes the counters it created in every slot: nothing is left, and another instance fills at once', async () => {
    const ns = nextNamespace();
    let fail: 'status' | 'throw' | undefined;
    let runs = 0;
    let during: string[] = [];
    const appFor = (cache: TierCache) => {
      const app = express();
      app.get('/api/films/:id', expressCache(cache, { ttl: '1m', tags: (req) => [`film:${req.params.id}`, `studio:${req.params.id}`] }), async (req, res) => {
        runs++;
        if (fail !== undefined) during = await leftovers(ns);
        if (fail === 'throw') throw new Error('the handler failed');
        if (fail === 'status') return void res.status(500).json({ error: true });
        res.json({ id: req.params.id, run: runs });
      });
      // Express's own handler would log the thrown error; the answer is the same 500.
      app.use((_err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => void res.status(500).end());
      return app;
    };
    // A lock that outlives the test: a waiter only gets through early because the lock was released.
    const aCache = await open(ns, { lockTimeout: 60_000 });
    const bCache = await open(ns, { lockTimeout: 60_000 });
    const [a, b] = [appFor(aCache), appFor(bCache)];

    fail = 'status';
    assert.equal((await request(a).get('/api/films/1')).status, 500);
    // While it ran: its lock, the entry's own counter, film:1, studio:1 and the path counters, over several slots.
    assert.ok(during.some((k) => k.endsWith(':lock')), `no lock while the handler ran: ${during.join(' ')}`);
    const slots = new Set(during.map(keySlot));
    assert.ok(slots.size >= 4, `keys while the handler ran: ${during.join(' ')}`);
    await eventually(async () => (await leftovers(ns)).length === 0, `a failed fill left ${(await leftovers(ns)).join(' ')}`);

    fail = 'throw';
    const failed = request(a).get('/api/films/2');
    assert.equal((await failed).status, 500);
    fail = undefined;
    const started = Date.now();
    const filled = await request(b).get('/api/films/2');
    assert.equal(filled.headers['cache-status'], 'tiercache; fwd=miss; stored');
    assert.ok(Date.now() - started < 5_000, `B waited ${Date.now() - started} ms for a lock that A's failed fill held`);
    assert.equal(runs, 3);
  });

  it('a fill whose entry the L2 format cannot hold (a tag over 64 KiB) releases its lock in the entry\'s slot and stores no entry: L1 serves it', async () => {
    const ns = nextNamespace();
    const cache = await open(ns, { lockTimeout: 60_000 });
    let runs = 0;
    const app = express();
    app.get('/api/long', expressCache(cache, { ttl: '1m', tags: () => ['t'.repeat(70_000)] }), (_req, res) => void res.json({ run: ++runs }));
    assert.equal((await request(app).get('/api/long')).status, 200);
    assert.equal((await request(app).get('/api/long')).headers['cache-status'], 'tiercache; hit; detail=L1');
    assert.equal(runs, 1);
    const left = await leftovers(ns);
    assert.deepEqual(left.filter((k) => k.endsWith(':lock')), [], `the fill left its lock: ${left.join(' ')}`);
    assert.deepEqual(left.filter((k) => k === `${ns}:GET:/api/long`), [], 'L2 holds an entry');
  });

  it('a failed fill whose counters in other slots partly existed deletes only those it created, and releases its lock', async () => {
    const ns = nextNamespace();
    const a = await open(ns, { lockTimeout: 60_000 });
    const key = dataKeyIn(a, { not: [] });
    const entrySlot = keySlot(a.dataKey(key));
    const existing = tagOutside(ns, 'existing-', [entrySlot]);
    const created = tagOutside(ns, 'created-', [entrySlot, keySlot(`${ns}:v:{${existing}}`)]);
    await a.invalidateTags([existing]);
    const b = await open(ns, { lockTimeout: 60_000 }); // knows no version: reads them all
    await assert.rejects(b.getOrSet(key, async () => { throw new Error('the loader failed'); }, { tags: [existing, created] }), /the loader failed/);
    await eventually(async () => {
      const left = await leftovers(ns);
      return left.length === 1 && left[0] === `${ns}:v:{${existing}}`;
    }, `left after the failed fill: ${(await leftovers(ns)).join(' ')}`);
  });

  it('without a fill lock (l2.lockTimeout 0), a fill that stores nothing still deletes the counters it created in every slot', async () => {
    const ns = nextNamespace();
    const a = await open(ns, { lockTimeout: 0 });
    const key = dataKeyIn(a, { not: [] });
    const tags = [tagOutside(ns, 'left-', [keySlot(a.dataKey(key))]), tagOutside(ns, 'right-', [keySlot(a.dataKey(key))])];
    let during: string[] = [];
    const failing = async () => {
      during = await leftovers(ns);
      throw new Error('the loader failed');
    };
    await assert.rejects(a.getOrSet(key, failing, { tags }), /the loader failed/);
    assert.ok(new Set(during.map(keySlot)).size >= 3, `counters while the loader ran: ${during.join(' ')}`);
    await eventually(async () => (await leftovers(ns)).length === 0, `a failed fill left ${(await leftovers(ns)).join(' ')}`);
  });

  it('a fill on an instance that distrusts its versions reads the epoch first: an epoch lost from Redis comes back without a TTL and larger, in the entry\'s slot or another, and a fill that stores nothing leaves nothing', async () => {
    const { ns, a, b, direct, epochKey, epochSlot } = await withEpoch();
    assert.equal(await a.getOrSet('old', () => 'from before', { tags: ['shelf'] }), 'from before');
    await hear(b, a, 'warm-up');
    const inEpochSlot = dataKeyIn(a, { slot: epochSlot });
    const elsewhere = dataKeyIn(a, { not: [epochSlot] });
    for (const key of [inEpochSlot, elsewhere]) {
      const keySlotOf = keySlot(a.dataKey(key));
      const tag = tagOutside(ns, `fresh-${key}-`, [epochSlot, keySlotOf]);
      await direct.del(epochKey); // evicted, say
      // A message of B's is lost: A sees the gap at B's next one and forgets what it knew, the epoch too.
      busOf(b).seq++;
      await hear(b, a, `after-${key}`);
      const before = await leftovers(ns);
      await assert.rejects(a.getOrSet(key, () => Promise.reject(new Error('the loader failed')), { tags: [tag] }), /the loader failed/);
      await eventually(async () => JSON.stringify(await leftovers(ns)) === JSON.stringify(before), `the failed fill of ${key} left ${(await leftovers(ns)).filter((k) => !before.includes(k)).join(' ')}`);
      assert.equal(await direct.pttl(epochKey), -1, `the epoch read first by the fill of ${key} (slot ${keySlotOf}, epoch's ${epochSlot}) is not there for good`);
      assert.equal(await a.getOrSet(key, () => `value of ${key}`, { tags: [tag] }), `value of ${key}`);
      assert.equal(await b.get(key), `value of ${key}`);
      assert.equal(await direct.pttl(epochKey), -1);
    }
    assert.equal(a.stats().bus.gaps, 2);
    // The epoch came back from the clock: what was stored before it was lost matches nowhere.
    assert.equal(await a.get('old'), undefined);
    assert.equal(await (await open(ns)).get('old'), undefined);
  });

  it('an epoch moved in Redis without a message (a clear() whose message was lost) refuses a store in the epoch\'s slot; the next fill reads the epoch and its entry serves other instances', async () => {
    const { ns, a, b, direct, epochKey, epochSlot } = await withEpoch();
    const first = dataKeyIn(a, { slot: epochSlot });
    const second = dataKeyIn(a, { not: [epochSlot] });
    let stores = 0;
    a.on('store', () => stores++);
    await direct.incr(epochKey);
    assert.equal(await a.getOrSet(first, () => 'one'), 'one');
    assert.equal(stores, 0, 'stored an entry that recorded an epoch Redis had moved past');
    assert.equal(await b.get(first), undefined);
    assert.equal(await a.getOrSet(second, () => 'two'), 'two');
    assert.equal(stores, 1);
    assert.equal(await b.get(second), 'two', 'the fill after the refused one did not record the current epoch');
  });

  it("a getOrSet() loader on another instance that began before a plain set() is refused when it stores (the set() moved the key's counter, in its entry's slot)", async () => {
    const ns = nextNamespace();
    const a = await open(ns);
    const b = await open(ns);
    let release!: () => void;
    const loading = new Promise<void>((resolve) => (release = resolve));
    let started = false;
    const slow = a.getOrSet('row', async () => {
      started = true;
      await loading;
      return 'old';
    });
    await eventually(() => started, "A's loader did not start");
    await b.set('row', 'new');
    release();
    assert.equal(await slow, 'old');
    assert.equal(await (await open(ns)).get('row'), 'new', "A's loader stored its older value over B's set()");
    assert.equal(await a.get('row'), 'new');
    // B's own copy records the version its set() moved the key counter to, as Redis's entry does.
    const storeKey = `${b.prefix}:d:row`;
    const inL1 = b.store.l1!.peek(storeKey);
    const inRedis = Number(await client().get(`{${storeKey}}:v`));
    assert.ok(inL1 !== undefined, "B's L1 has no copy of its set() value");
    assert.equal(inL1.versions[0], inRedis, "B's copy does not record the moved version");
  });

  it('an epoch moved in Redis without a message: every instance stops serving what its L1 holds from before, within an epoch check or two', async function () {
    this.timeout(20_000);
    const ns = nextNamespace();
    const a = await open(ns);
    const b = await open(ns);
    await a.set('k', 1, { tags: ['t'] });
    assert.equal(await b.get('k'), 1); // in B's L1 too
    await client().incr(`{${ns}}:epoch`);
    for (const [name, cache] of [['A', a], ['B', b]] as const) {
      await eventually(async () => (await cache.get('k')) === undefined, `${name} stops serving an entry from before the epoch moved`, 5_000);
    }
  });

  it('the bus keeps the sequence numbers of at most 1,000 senders: the one heard from longest ago is forgotten, and its next message is no gap', async () => {
    const ns = nextNamespace();
    const a = await open(ns);
    const direct = client();
    const bus = busOf(a);
    const send = (sender: string, seq: number) => direct.spublish(bus.channel, JSON.stringify({ i: sender, s: seq, t: [] }));
    await send('first', 1);
    for (let n = 0; n < 1_000; n += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => send(`other-${n + j}`, 1)));
    await send('first', 5);
    await send('other-999', 3);
    await eventually(() => a.stats().bus.received === 1_003, `A heard ${a.stats().bus.received} of 1003 messages`);
    assert.equal(a.stats().bus.gaps, 1, 'a gap of the forgotten sender was counted, or the one of a remembered sender was not');
  });

  it('an invalidateTags of a tag in another slot than the entry, on another instance while the handler runs, means that answer is never served afterwards, anywhere', async () => {
    const ns = nextNamespace();
    let runs = 0;
    let held: ReturnType<typeof gate> | undefined;
    const appFor = (cache: TierCache) => {
      const app = express();
      app.get('/api/movies/:id', expressCache(cache, { ttl: '1m', tags: (req) => [`movie:${req.params.id}`] }), async (req, res) => {
        const run = ++runs;
        if (held !== undefined) {
          held.enter();
          await held.wait;
        }
        res.json({ id: req.params.id, run });
      });
      return app;
    };
    const aCache = await open(ns);
    const bCache = await open(ns);
    const [a, b] = [appFor(aCache), appFor(bCache)];
    held = gate();
    const filling = request(a).get('/api/movies/7');
    const response = filling.then((r) => r);
    await held.entered;
    const current = held;
    held = undefined;
    const heard = once(aCache, 'invalidate');
    await bCache.invalidateTags(['movie:7']);
    await heard;
    current.open();
    const first = await response;
    assert.equal(first.body.run, 1);
    assert.notEqual(first.headers['cache-status'], 'tiercache; fwd=miss; stored');
    const cCache = await open(ns);
    const c = appFor(cCache);
    for (const app of [a, b, c, a, b, c]) assert.notEqual((await request(app).get('/api/movies/7')).body.run, 1);
  });

  it('when the message of that invalidation is lost, the entry stored (no check spans slots) serves no other instance and leaves L2; the instance that stored it drops it once the sender\'s heartbeat shows the gap', async function () {
    this.timeout(20_000);
    const ns = nextNamespace();
    const a = await open(ns);
    const b = await open(ns);
    const direct = client();
    await hear(b, a, 'warm-up');
    const tag = 'movie:7';
    const key = dataKeyIn(a, { not: [keySlot(`${ns}:v:{${tag}}`)] });
    const loader = gate();
    let stored = false;
    a.on('store', () => (stored = true));
    const filling = a.getOrSet(
      key,
      async () => {
        loader.enter();
        await loader.wait;
        return 'before the invalidation';
      },
      { tags: [tag] },
    );
    await loader.entered;
    await losingMessages(b, a, () => b.invalidateTags([tag]));
    loader.open();
    assert.equal(await filling, 'before the invalidation');
    assert.ok(stored, 'the entry was not stored: this test no longer reaches the store that no counter check spans');
    assert.equal(await b.get(key), undefined, 'B served an entry whose tag it invalidated before the entry was stored');
    assert.equal(await (await open(ns)).get(key), undefined, 'a fresh instance served the invalidated entry');
    assert.equal(await direct.exists(a.dataKey(key)), 0, 'the refused entry stayed in L2');
    // A learned nothing of the invalidation; B's next heartbeat carries the number of the lost message.
    await eventually(async () => (await a.get(key)) === undefined, 'A drops the entry after the gap', 5_000);
    assert.equal(a.stats().bus.gaps, 1);
  });

  it('clear() on another instance while a fill runs: that fill\'s answer is never served afterwards, by any instance', async () => {
    const ns = nextNamespace();
    const a = await open(ns);
    const b = await open(ns);
    const loader = gate();
    const key = dataKeyIn(a, { not: [keySlot(`{${ns}}:epoch`)] });
    const filling = a.getOrSet(key, async () => {
      loader.enter();
      await loader.wait;
      return 'before clear()';
    });
    await loader.entered;
    const heard = once(a, 'invalidate');
    await b.clear();
    await heard;
    loader.open();
    assert.equal(await filling, 'before clear()');
    const c = await open(ns);
    for (const cache of [a, b, c]) assert.equal(await cache.get(key), undefined);
  });

  it('invalidateUser, invalidatePrefix and invalidateTags of several tags at once reach counters over several slots: every entry they name stops being served on every instance, no other', async () => {
    const ns = nextNamespace();
    let runs = 0;
    const appFor = (cache: TierCache) => {
      const app = express();
      const me = expressCache(cache, { ttl: '1m', user: (req) => String(req.headers['x-user']) });
      app.get('/api/me/profile', me, (req, res) => void res.json({ user: req.headers['x-user'], run: ++runs }));
      app.get('/api/me/orders', me, (req, res) => void res.json({ user: req.headers['x-user'], run: ++runs }));
      app.get('/api/shelves/:id', expressCache(cache, { ttl: '1m', tags: (req) => [`shelf:${req.params.id}`] }), (req, res) => void res.json({ shelf: req.params.id, run: ++runs }));
      app.get('/api/catalog/:id', expressCache(cache, { ttl: '1m' }), (req, res) => void res.json({ item: req.params.id, run: ++runs }));
      return app;
    };
    const aCache = await open(ns);
    const bCache = await open(ns);
    const [a, b] = [appFor(aCache), appFor(bCache)];
    const requests: Array<[string, string | undefined]> = [
      ['/api/me/profile', '42'], ['/api/me/orders', '42'], ['/api/me/profile', '7'],
      ['/api/shelves/1', undefined], ['/api/shelves/2', undefined], ['/api/shelves/3', undefined], ['/api/shelves/4', undefined],
      ['/api/catalog/1', undefined], ['/api/catalog/2', undefined], ['/api/other/1', undefined],
    ];
    const get = (app: express.Express, [path, user]: [string, string | undefined]) => {
      const r = request(app).get(path);
      return user === undefined ? r : r.set('x-user', user);
    };
    const firstRun = new Map<string, number>();
    for (const r of requests) {
      if (r[0] === '/api/other/1') continue;
      const stored = once(aCache, 'store');
      firstRun.set(r.join('|'), (await get(a, r)).body.run);
      await stored;
      assert.equal((await get(b, r)).headers['cache-status'], 'tiercache; hit; detail=L2', r.join(' '));
    }
    const served = async (app: express.Express, r: [string, string | undefined]) => (await get(app, r)).body.run === firstRun.get(r.join('|'));
    const gone = async (names: Array<[string, string | undefined]>) => {
      for (const app of [a, b]) for (const r of names) await eventually(async () => !(await served(app, r)), `${r.join(' ')} still served`);
    };
    await aCache.invalidateUser('42');
    await gone([requests[0]!, requests[1]!]);
    await bCache.invalidateTags(['shelf:1', 'shelf:2', 'shelf:3']);
    await gone([requests[3]!, requests[4]!, requests[5]!]);
    await aCache.invalidatePrefix('/api/catalog');
    await gone([requests[7]!, requests[8]!]);
    for (const r of [requests[2]!, requests[6]!]) for (const app of [a, b]) assert.ok(await served(app, r), `${r.join(' ')} was dropped too`);
  });

  it("a message of another instance's that never arrived is told by that instance's next heartbeat: the gap is counted and L1 dropped, with no message after it", async function () {
    this.timeout(10_000);
    const ns = nextNamespace();
    const [a, b] = [await open(ns), await open(ns)];
    await hear(b, a, 'warm-up'); // A knows B's sequence from here
    await a.set('k', 1);
    // B numbers a message it never sends: as if Redis lost it (a failover) with nothing after it to show the gap.
    busOf(b).seq++;
    await eventually(() => a.stats().bus.gaps === 1, 'no gap counted from B\'s heartbeat', 4_000);
    const tiers: string[] = [];
    a.on('hit', (e: { tier: string }) => tiers.push(e.tier));
    assert.equal(await a.get('k'), 1);
    assert.deepEqual(tiers, ['L2'], 'L1 kept its entry after a gap');
  });

  /** A new instance, and what its bus does from now on: whether it reported itself anything but up, and its flushes so far. */
  async function watchedInstance(): Promise<{ a: TierCache; bus: BusInternals; flushes: number; left: () => boolean }> {
    const a = await open(nextNamespace());
    const bus = busOf(a);
    let left = false;
    a.on('bus', (e: { state: string }) => (left ||= e.state !== 'up'));
    return { a, bus, flushes: bus.flushes, left: () => left };
  }

  it('an instance whose own heartbeats come back is never suspected: over several epoch checks the bus stays ok and L1 is kept', async function () {
    this.timeout(10_000);
    const { a, bus, flushes, left } = await watchedInstance();
    // Past two check intervals (a heartbeat not back by then makes the bus suspect its subscription).
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    assert.equal(left(), false, 'the bus reported itself down');
    assert.equal(a.health().bus, 'ok');
    assert.equal(bus.flushes, flushes, 'L1 was flushed although every heartbeat came back');
  });

  it("an instance whose event loop is blocked past two check intervals (2.5 s of its own work) right after a heartbeat left is not suspected: the heartbeat, back meanwhile, is read before the next check; L1 kept", async function () {
    this.timeout(20_000);
    const { a, bus, flushes, left } = await watchedInstance();
    for (let i = 0; i < 2; i++) {
      bus.checkEpoch(); // a heartbeat leaves
      const until = performance.now() + 2_500;
      while (performance.now() < until) {
        // blocked: the heartbeat comes back into the kernel, this process does not look
      }
      // The check that was due runs first (before the read); then the next ones.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      assert.equal(a.health().bus, 'ok', `after block ${i + 1}`);
    }
    assert.equal(left(), false, 'the bus reported itself down');
    assert.equal(bus.flushes, flushes, 'L1 was flushed although every heartbeat came back');
  });

  // The heartbeat comes back through the subscription, behind every message published before it: an instance slow
  // to get through a backlog of large ones (starved of CPU, or busy with what they tell it) found it overdue, took its
  // subscription for lost and flushed L1 when its probe came back (h149 fixed the same on standalone Redis, 3bcdf4c).
  it('an instance working through a backlog of large messages for longer than two checks keeps its subscription: never distrusted, L1 kept', async function () {
    this.timeout(40_000);
    const { a, bus, flushes, left } = await watchedInstance();
    await a.set('kept', 'v');
    let heard = 0;
    let distrusted = 0;
    a.on('invalidate', () => {
      heard++;
      if (a.health().bus !== 'ok') distrusted++;
      const until = performance.now() + 150;
      while (performance.now() < until) {
        // the process's own work on what it heard
      }
    });
    // Another instance's deleteMany() of 200,000 keys, as its bus splits it: 40 messages of 5,000 keys (~200 KB), in sequence.
    const sender = randomUUID();
    const messages = 40;
    const publisher = client();
    await Promise.all(
      Array.from({ length: messages }, (_, s) => {
        const keys = Array.from({ length: 5_000 }, (_, i) => `gone:${s}:${i}:`.padEnd(40, 'x'));
        return publisher.spublish(bus.channel, JSON.stringify({ i: sender, s: s + 1, d: '0', k: keys }));
      }),
    );
    await eventually(() => heard === messages, `all ${messages} messages heard (${heard} so far)`, 30_000);
    // Two checks more, with nothing left to deliver: the heartbeat is back.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    assert.equal(distrusted, 0, `the bus distrusted L1 while ${distrusted} of the ${messages} messages were handled`);
    assert.equal(left(), false, 'the bus reported itself down');
    assert.equal(a.health().bus, 'ok');
    assert.equal(bus.flushes, flushes, 'L1 was flushed although the subscription delivered throughout');
    assert.equal(a.stats().l1.entries, 1);
  });

  it('a heartbeat still on its way is no reason to distrust: back-to-back epoch checks keep L1', async () => {
    const ns = nextNamespace();
    const a = await open(ns);
    const b = await open(ns);
    await a.set('k', 1, { tags: ['t'] });
    const bus = busOf(a);
    const flushes = bus.flushes;
    bus.checkEpoch();
    bus.checkEpoch(); // the first one's heartbeat is not back yet
    // Whatever those checks published reaches A before B's message, sent later on the same shard channel.
    await hear(b, a, 'other');
    assert.equal(bus.flushes, flushes, 'the bus flushed L1 for a heartbeat that was still on its way');
    assert.equal(a.health().bus, 'ok');
    const tiers: string[] = [];
    a.on('hit', (e: { tier: string }) => tiers.push(e.tier));
    assert.equal(await a.get('k'), 1);
    assert.deepEqual(tiers, ['L1']);
  });

  it('a subscription that stopped hearing without a word (its heartbeat does not come back) makes the bus distrust L1 within a few epoch checks, then subscribe again', async function () {
    this.timeout(20_000);
    const ns = nextNamespace();
    const a = await open(ns);
    const b = await open(ns);
    await a.set('k', 1, { tags: ['t'] });
    const bus = busOf(a);
    await bus.subscriber.sunsubscribe(bus.channel); // subscribed nowhere, as after a failed resubscription
    await b.invalidateTags(['t']); // A does not hear it
    assert.equal(await a.get('k'), 1, 'A knew of the invalidation without its bus');
    // Epoch checks run every second; the heartbeat is overdue after two.
    await eventually(async () => (await a.get('k')) === undefined, 'A stops serving what it cannot know is current', 6_000);
    await eventually(() => a.health().bus === 'ok', 'A\'s bus subscribes again', 5_000);
    await a.set('k2', 2, { tags: ['t2'] });
    await hear(b, a, 't2');
    assert.equal(await a.get('k2'), undefined);
  });

  // The epoch check's timer counts an interval from when the check began, the heartbeat's stamp is taken after it was
  // sent: the second check after it finds a millisecond or so short of two intervals about half the time. A verdict
  // wanting more than two then waited for a third check, and a route gone silent was trusted up to four seconds
  // (h191: 2.4-3.9 s). Checks are placed here by the heartbeat's stamp, with the bus's own timer stopped.
  it('a heartbeat that does not come back is overdue at the second check after it left, however close to two intervals that check runs; never at the first, however late (a blocked loop)', async function () {
    const ns = nextNamespace();
    const a = await open(ns);
    const b = await open(ns);
    await a.set('k', 1, { tags: ['t'] });
    const bus = busOf(a) as BusInternals & { readonly heartbeat: number; heartbeatSent: number; readonly epochTimer: NodeJS.Timeout };
    clearInterval(bus.epochTimer);
    await eventually(() => bus.heartbeat === 0, 'the last heartbeat of the bus\'s own timer never came back', 3_000);
    await bus.subscriber.sunsubscribe(bus.channel); // subscribed nowhere: no heartbeat comes back
    await b.invalidateTags(['t']); // A does not hear it
    assert.equal(await a.get('k'), 1, 'A knew of the invalidation without its bus');
    bus.checkEpoch();
    assert.notEqual(bus.heartbeat, 0, 'no heartbeat out: the test proves nothing');
    await sleep(100); // one that came back would be read by now
    const interval = EPOCH_CHECK_MS;
    // First check, as after a loop blocked for ten intervals: not yet read what came meanwhile.
    bus.heartbeatSent = performance.now() - 10 * interval;
    bus.checkEpoch();
    assert.equal(a.health().bus, 'ok', 'the first check after the heartbeat distrusted L1: a blocked loop would be taken for a silent route');
    // Second check, a millisecond short of two intervals after the stamp, as the timer places it about half the time.
    bus.heartbeatSent = performance.now() - 2 * interval + 1;
    bus.checkEpoch();
    assert.equal(a.health().bus, 'reconnecting', 'the second check after a heartbeat that never came back still trusted L1');
    assert.equal(await a.get('k'), undefined, 'A served from L1 what B invalidated');
  });

  it('a subscription that went deaf just after bytes came on it while its heartbeat was out is distrusted all the same: bytes count for the interval they came in, not for good', async function () {
    this.timeout(20_000);
    // Past the pause below: a timed-out epoch check would take L2 down, distrusting L1 for another reason.
    const a = await open(nextNamespace(), { commandTimeout: 10_000 });
    const bus = busOf(a) as BusInternals & { readonly heartbeat: number };
    const flushes = bus.flushes;
    // Redis delays what writes (SPUBLISH among it), not a subscription's replies: a heartbeat sent now stays out.
    await onEachNode(env.cluster, (d) => d.call('CLIENT', 'PAUSE', '6000', 'WRITE'));
    try {
      await sleep(50); // one sent before the pause is back by now
      if (bus.heartbeat === 0) bus.checkEpoch();
      // Then bytes on the subscription, and none after: the reply to one more subscription of the bus's shard.
      await bus.subscriber.ssubscribe(`${bus.channel}:late`);
      assert.notEqual(bus.heartbeat, 0, 'no heartbeat out: the test proves nothing');
      await eventually(() => bus.flushes > flushes || a.health().bus !== 'ok', 'A still trusts L1 on a subscription that has delivered nothing since', 5_000);
    } finally {
      await onEachNode(env.cluster, (d) => d.call('CLIENT', 'UNPAUSE'));
    }
  });

  it('a fill renews the tag counters in other slots than its entry to their full TTL, and the next fills leave them alone while most of it is left', async () => {
    const ns = nextNamespace();
    const a = await open(ns);
    const direct = client();
    const first = dataKeyIn(a, { not: [] });
    const entrySlot = keySlot(a.dataKey(first));
    const tag = tagOutside(ns, 'shelf', [entrySlot]);
    const counter = `${ns}:v:{${tag}}`;
    await a.getOrSet(first, async () => 'one', { ttl: '1m', tags: [tag] });
    // Made provisional by the lookup (a minute), renewed by the store: it must outlive every entry that recorded it.
    assert.ok((await direct.pttl(counter)) > 6 * 24 * 3600_000, 'the counter in another slot kept its provisional TTL');
    // Its TTL runs down behind this instance's back; this instance renewed it a moment ago and does not send again.
    await direct.pexpire(counter, 120_000);
    const second = dataKeyIn(a, { not: [entrySlot, keySlot(counter)] });
    await a.getOrSet(second, async () => 'two', { ttl: '1m', tags: [tag] });
    const left = await direct.pttl(counter);
    assert.ok(left > 0 && left <= 120_000, `the counter was renewed again by the next fill (PTTL ${left})`);
    // The epoch (no TTL) is never given one.
    assert.equal(await direct.pttl(`{${ns}}:epoch`), -1);
  });

  it("close() takes back every listener the cache put on the caller's Cluster client", async () => {
    const shared = client();
    await once(shared, 'ready');
    const events = ['ready', 'error', 'close', 'end', '-node', '+node', 'node error', 'refresh'];
    const before = events.map((event) => shared.listenerCount(event));
    const cache = createCache({ namespace: nextNamespace(), redis: shared, l2: { commandTimeout: 2000 } });
    await cache.ready();
    assert.ok(shared.listenerCount('-node') > before[events.indexOf('-node')]!, 'the bus listens for a node leaving');
    assert.ok(shared.listenerCount('refresh') > before[events.indexOf('refresh')]!, 'the bus listens for a new slot map');
    await cache.close();
    assert.deepEqual(events.map((event) => shared.listenerCount(event)), before);
  });

  /** A Cluster client whose INFO answers through `answer` (the servers themselves are Redis 7): what the bus reads to choose its pub/sub. */
  function clientWithInfo(answer: (real: (section: string) => Promise<string>, section: string) => Promise<string>): Cluster {
    const shared = client();
    const real = shared.info.bind(shared) as (section: string) => Promise<string>;
    (shared as unknown as { info: (section: string) => Promise<string> }).info = (section) => answer(real, section);
    return shared;
  }

  /** Caches on `clients`, closed when `body` is done. */
  async function withCaches(ns: string, clients: Cluster[], body: (caches: TierCache[]) => Promise<void>): Promise<void> {
    const caches = clients.map((shared) => createCache({ namespace: ns, redis: shared, l2: { commandTimeout: 2000 } }));
    try {
      await body(caches);
    } finally {
      await Promise.all(caches.map((c) => c.close()));
    }
  }

  it('a Cluster whose servers say Redis 6 gets classic pub/sub: a SUBSCRIBE on a node, no shard channel, and an invalidation still reaches the other instance', async () => {
    const ns = nextNamespace();
    const redis6 = async () => '# Server\r\nredis_version:6.2.14\r\nredis_mode:cluster\r\n';
    await withCaches(ns, [clientWithInfo(redis6), clientWithInfo(redis6)], async ([a, b]) => {
      await Promise.all([a!.ready(), b!.ready()]);
      assert.equal(a!.health().pubsub, 'classic');
      assert.equal(b!.health().bus, 'ok');
      const channel = `{${ns}}:bus`;
      const classic = await onEachNode(env.cluster, async (d) => (await d.call('PUBSUB', 'NUMSUB', channel)) as [string, number]);
      assert.equal(classic.reduce((n, [, count]) => n + Number(count), 0), 2, `classic subscribers per node: ${JSON.stringify(classic)}`);
      const sharded = await onEachNode(env.cluster, async (d) => (await d.call('PUBSUB', 'SHARDCHANNELS', channel)) as string[]);
      assert.deepEqual(sharded.flat(), [], 'a shard channel is open on a cluster that has none');
      await a!.set('k', 1, { tags: ['t'] });
      assert.equal(await b!.get('k'), 1);
      await hear(a!, b!, 't');
      assert.equal(await b!.get('k'), undefined);
    });
  });

  it('a Cluster that does not answer INFO at first (an error, then too slow) still gets its subscriber once it does', async () => {
    const ns = nextNamespace();
    let asked = 0;
    // First an error, then an answer later than the bus waits, then a slow one it does wait for.
    const flaky = clientWithInfo(async (real, section) => {
      asked++;
      if (asked === 1) throw new Error('LOADING Redis is loading the dataset in memory');
      await new Promise((resolve) => setTimeout(resolve, asked === 2 ? 1_500 : 300));
      return real(section);
    });
    await withCaches(ns, [flaky], async ([cache]) => {
      await eventually(() => cache!.health().bus === 'ok', 'the bus never subscribed', 8_000);
      assert.equal(cache!.health().pubsub, 'sharded');
      assert.equal(asked, 3, 'INFO was not asked again after the error and the answer that came too late');
    });
  });

  it("a cache closed while its bus still asks the Cluster which pub/sub it has opens no subscriber afterwards (the caller's client stays open)", async () => {
    const ns = nextNamespace();
    const shared = client();
    await once(shared, 'ready');
    // A server slow to answer INFO: the bus chooses sharded or classic pub/sub from it.
    const info = shared.info.bind(shared) as (section: string) => Promise<string>;
    let asked!: () => void;
    const askedInfo = new Promise<void>((resolve) => (asked = resolve));
    (shared as unknown as { info: (section: string) => Promise<string> }).info = async (section) => {
      asked();
      await new Promise((resolve) => setTimeout(resolve, 300));
      return info(section);
    };
    const cache = createCache({ namespace: ns, redis: shared, l2: { commandTimeout: 2000 } });
    cache.on('error', () => undefined);
    await askedInfo;
    await cache.close();
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(busOf(cache).subscriber, undefined, 'a subscriber was attached after close()');
    const subscribers = (await onEachNode(env.cluster, (direct) => direct.call('CLIENT', 'LIST', 'TYPE', 'pubsub') as Promise<string>)).join('');
    assert.doesNotMatch(subscribers, /\S/, `pub/sub connections after close(): ${subscribers}`);
  });

  it("a counter in another slot that a second fill read survives the abandon of the fill that created it", async () => {
    const ns = nextNamespace();
    const [a, b] = [await open(ns), await open(ns)];
    const direct = client();
    const firstKey = dataKeyIn(a, { not: [] });
    const tag = tagOutside(ns, 'shared-', [keySlot(a.dataKey(firstKey))]);
    const counter = `${ns}:v:{${tag}}`;
    const secondKey = dataKeyIn(a, { not: [keySlot(a.dataKey(firstKey)), keySlot(counter)] });
    const first = await a.store.lookupForFill(a.dataKey(firstKey), [tag], undefined);
    assert.equal(first.ticket.createdTags.includes(tag), true);
    const second = await b.store.lookupForFill(b.dataKey(secondKey), [tag], undefined);
    assert.equal(second.ticket.createdTags.includes(tag), false, 'the second lookup found the counter');
    a.store.abandonFill(first.ticket);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await direct.exists(counter), 1, 'the abandon deleted a counter another fill had read');
    assert.ok((await direct.pttl(counter)) > PROVISIONAL_COUNTER_TTL_MS, 'the read did not extend the provisional TTL');
  });

  it('a lookup that finds a stale entry takes the lock and reports the counters it created in other slots, which its abandon deletes', async () => {
    const ns = nextNamespace();
    const [a, b] = [await open(ns), await open(ns)];
    const direct = client();
    const key = dataKeyIn(a, { not: [] });
    const tag = tagOutside(ns, 'stale-', [keySlot(a.dataKey(key))]);
    const counter = `${ns}:v:{${tag}}`;
    const fill = await a.store.lookupForFill(a.dataKey(key), [tag], undefined);
    const now = Date.now();
    const stamp = fill.stamp!;
    // Stale for a minute more: the next lookup returns it and takes the fill steps.
    const entry = { kind: EntryKind.Bytes, createdAt: now - 2_000, freshUntil: now - 1_000, staleUntil: now + 60_000, epoch: stamp.epoch, tags: stamp.tags, versions: stamp.versions, head: Buffer.alloc(0), body: Buffer.from('old') };
    assert.equal(await a.store.storeFill([{ key: a.dataKey(key), entry, l1Entry: entry }], fill.ticket), true);
    await direct.del(counter); // lost (evicted, say) since
    // On an instance that has not learned the tag's version: it reads the counter.
    const refresh = await b.store.lookupForFill(b.dataKey(key), [tag], b.fillLock!.request(b.dataKey(key)));
    assert.equal(refresh.lock, 'ours');
    assert.deepEqual(refresh.ticket.createdTags, [tag], 'the counter made again in another slot was not reported');
    b.store.abandonFill(refresh.ticket);
    await eventually(async () => (await direct.exists(counter)) === 0, 'the abandon left the counter it created');
  });

  it('version counters by slot: a tag counter a bump creates (or finds provisional) lives as long as a provisional one, one an entry recorded a week, an epoch that went back is moved past what clear() saw and keeps no TTL, a read makes the epoch again without TTL and leaves a provisional counter its TTL', async () => {
    const { ns, a, b, direct, epochKey, epochSlot } = await withEpoch();
    const tag = tagOutside(ns, 'bumped-', [epochSlot]);
    await a.invalidateTags([tag, 'second-tag']);
    for (const t of [tag, 'second-tag']) {
      const ttl = await direct.pttl(`${ns}:v:{${t}}`);
      assert.ok(ttl > 0 && ttl <= PROVISIONAL_COUNTER_TTL_MS, `the counter of ${t} the bump made lives ${ttl} ms`);
    }
    await a.invalidateTags([tag, 'second-tag']);
    for (const t of [tag, 'second-tag']) {
      const ttl = await direct.pttl(`${ns}:v:{${t}}`);
      assert.ok(ttl > 0 && ttl <= PROVISIONAL_COUNTER_TTL_MS, `the provisional counter of ${t} bumped again lives ${ttl} ms`);
    }
    await a.getOrSet('recorder', async () => 1, { tags: [tag, 'second-tag'] });
    await a.invalidateTags([tag, 'second-tag']);
    for (const t of [tag, 'second-tag']) {
      const ttl = await direct.pttl(`${ns}:v:{${t}}`);
      assert.ok(ttl > 6 * 24 * 3600_000 && ttl <= 7 * 24 * 3600_000, `the bumped counter of ${t} lives ${ttl} ms`);
    }
    await hear(b, a, 'warm-up');
    await a.clear();
    const seen = Number(await direct.get(epochKey));
    await direct.set(epochKey, String(seen - 1));
    await a.clear();
    assert.ok(Number(await direct.get(epochKey)) > seen, `clear() moved the epoch to ${await direct.get(epochKey)}, not past ${seen}`);
    assert.equal(await direct.pttl(epochKey), -1, 'the epoch was given a TTL');
    await direct.del(epochKey);
    const provisional = `${ns}:v:{${tagOutside(ns, 'provisional-', [epochSlot])}}`;
    await direct.set(provisional, '3', 'PX', 30_000);
    await b.store.versions.stamp([provisional.slice(`${ns}:v:{`.length, -1), 'never-seen']);
    assert.equal(await direct.pttl(epochKey), -1, 'the epoch read back was made with a TTL');
    const left = await direct.pttl(provisional);
    assert.ok(left > 0 && left <= 30_000, `a plain read changed a provisional counter's TTL to ${left} ms`);
  });

  it('a fill whose lock lives in a slot where it stores nothing (the answer stopped varying) still releases the lock', async () => {
    const ns = nextNamespace();
    let vary = true;
    let locks: string[] = [];
    const aCache = await open(ns);
    const app = express();
    app.get('/api/news', expressCache(aCache, { ttl: '1m' }), async (req, res) => {
      if (vary) res.set('vary', 'accept-language');
      else locks = (await leftovers(ns)).filter((k) => k.endsWith(':lock'));
      res.json({ language: req.headers['accept-language'] });
    });
    let stored = once(aCache, 'store');
    await request(app).get('/api/news').set('accept-language', 'en').expect(200);
    await stored;
    vary = false;
    stored = once(aCache, 'store');
    const during = request(app).get('/api/news').set('accept-language', 'fr');
    assert.equal((await during).headers['cache-status'], 'tiercache; fwd=miss; stored');
    await stored;
    // The fill locked the request's variant, then stored the plain answer under the route's key alone.
    const entries = (await leftovers(ns)).filter((k) => k.startsWith(`${ns}:`) && !k.startsWith(`${ns}:v:`));
    assert.equal(locks.length, 1, `locks while the handler ran: ${locks.join(' ')}`);
    assert.ok(entries.every((k) => keySlot(k) !== keySlot(locks[0]!)), `the lock ${locks[0]} shares a slot with ${entries.join(' ')}`);
    assert.deepEqual((await leftovers(ns)).filter((k) => k.endsWith(':lock')), [], 'a lock outlived its fill');
  });
});
