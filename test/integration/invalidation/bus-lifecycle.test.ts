// The invalidation bus over its lifetime, on one real standalone redis-server:
// a subscriber that cannot connect at first, drops and comes back, is refused
// its SUBSCRIBE, or is closed at any point of that; the heartbeats of other
// instances; and what close() leaves behind. Each test asserts what DESIGN.md
// §4 promises (L1 not trusted while the bus is down, flushed when it is back,
// one 'bus' event per transition) through events, health(), CLIENT LIST and,
// where nothing public shows it, the bus's own counters.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { createCache, type CacheOptions, type TierCache } from '../../../src/index.js';
import type { InvalidationBus } from '../../../src/store/invalidation-bus.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

/** A "does not hang" bound for a reconnect or a close (the subscriber retries every 50-1000 ms). */
const BOUND_MS = 5000;

/** What these tests reach inside a cache's bus (private there). */
interface BusInternals {
  readonly subscriber: Redis;
  readonly readyWaiters: unknown[];
  readonly flushes: number;
  readonly gaps: number;
  readonly received: number;
  readonly channel: string;
  readonly instanceId: string;
  readonly health: 'ok' | 'reconnecting';
  /** What a Cluster's '-node' / '-subscriber' events call: distrust, and probe until a probe comes back. */
  suspect(): void;
  close(): Promise<void>;
  waitSubscribed(timeout: number): Promise<void>;
}

const busOf = (cache: TierCache) => cache.bus as unknown as BusInternals;
/** Whether the cache's version map is trusted (L1 hits need no Redis round trip). */
const trusted = (cache: TierCache) => (cache as unknown as { store: { versions: { trusted: boolean } } }).store.versions.trusted;

interface BusEvent {
  readonly state: 'down' | 'up';
  readonly err?: Error;
}

/** Every 'bus' and 'error' event of `cache`, from now on. */
function record(cache: TierCache): { bus: BusEvent[]; errors: Array<{ err: Error; where: string }> } {
  const seen = { bus: [] as BusEvent[], errors: [] as Array<{ err: Error; where: string }> };
  cache.on('bus', (e: BusEvent) => seen.bus.push(e));
  cache.on('error', (e: { err: Error; where: string }) => seen.errors.push(e));
  return seen;
}

/** Resolves with the cache's next 'bus' event of `state` (bounded). */
function nextBusEvent(cache: TierCache, state: 'down' | 'up'): Promise<BusEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no 'bus' ${state} event within ${BOUND_MS} ms`)), BOUND_MS);
    const on = (e: BusEvent) => {
      if (e.state !== state) return;
      clearTimeout(timer);
      cache.off('bus', on);
      resolve(e);
    };
    cache.on('bus', on);
  });
}

/** Rejects when `promise` does not settle within `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, bound]);
  } finally {
    clearTimeout(timer);
  }
}

describe('the invalidation bus over its lifetime (standalone Redis)', function () {
  const ctx = useRedisCaches({ prefix: 'bl', flush: true });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  /** A cache (not waited for) whose connections all go through a TCP proxy to the test's Redis. */
  async function behindProxy(options: CacheOptions = {}): Promise<TierCache> {
    proxy = await startTcpProxy(ctx.redis.port);
    return ctx.track(createCache({ namespace: ctx.ns, redis: proxy.url, ...options }));
  }

  /** The connections Redis lists, by name or address, as `CLIENT LIST` lines. */
  async function clientList(): Promise<string[]> {
    return String(await ctx.admin.call('CLIENT', 'LIST')).trim().split('\n');
  }

  it('a bus that cannot reach Redis at first reports down once, with the connection error; once Redis answers it subscribes, counts one flush and reports up', async () => {
    proxy = await startTcpProxy(ctx.redis.port);
    proxy.cut('refuse');
    const cache = ctx.track(createCache({ namespace: ctx.ns, redis: proxy.url }));
    const seen = record(cache);
    const down = await nextBusEvent(cache, 'down');
    assert.notEqual(down.err?.message, 'the invalidation bus lost its Redis connection', 'reported without the error that made the connection fail');
    assert.match(String((down.err as NodeJS.ErrnoException | undefined)?.code), /^ECONN/);
    assert.equal(cache.health().bus, 'reconnecting');
    assert.equal(trusted(cache), false);
    const up = nextBusEvent(cache, 'up');
    proxy.heal();
    await up;
    assert.deepEqual(seen.bus.map((e) => e.state), ['down', 'up'], 'one down and one up, however many connection attempts failed');
    assert.equal(cache.health().bus, 'ok');
    assert.equal(trusted(cache), true);
    assert.equal(busOf(cache).flushes, 1, 'coming up after a reported outage flushes (and counts) like any reconnect');
  });

  it('each drop of the subscriber connection (CLIENT KILL TYPE pubsub) is reported down once and up once, and closing the cache reports nothing more', async () => {
    const cache = await ctx.open();
    const seen = record(cache);
    for (let round = 1; round <= 2; round++) {
      const up = nextBusEvent(cache, 'up');
      assert.equal(Number(await ctx.admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')), 1);
      await up;
      assert.deepEqual(seen.bus.map((e) => e.state), Array.from({ length: round }, () => ['down', 'up']).flat(), `round ${round}`);
      assert.equal(busOf(cache).flushes, round);
    }
    const events = seen.bus.length;
    const errors = seen.errors.length;
    await cache.close();
    // The subscriber's last 'close' and 'end' events come after close() resolved.
    await eventually(() => busOf(cache).subscriber.status === 'end', 'the subscriber ends', BOUND_MS);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(seen.bus.length, events, `close() reported the bus ${seen.bus.slice(events).map((e) => e.state).join(', ')}`);
    assert.deepEqual(seen.errors.slice(errors), [], 'close() reported an error');
  });

  it('while only the subscriber is down (its user lost the channel: ACL resetchannels), an L1 hit is checked against Redis: an invalidation it did not hear is not served', async () => {
    const user = `bl-${ctx.ns}`;
    await ctx.admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all');
    const a = await ctx.open({ redis: `redis://${user}:pw@127.0.0.1:${ctx.redis.port}` });
    const b = await ctx.open();
    const seen = record(a);
    await a.set('k', 'old', { tags: ['t'] });
    const tiers: string[] = [];
    a.on('hit', (e: { tier: string }) => tiers.push(e.tier));
    assert.equal(await a.get('k'), 'old');
    assert.deepEqual(tiers, ['L1']);
    const down = nextBusEvent(a, 'down');
    // Redis drops the subscriber of a user who lost the channel; its SUBSCRIBE after reconnecting is refused.
    await ctx.admin.call('ACL', 'SETUSER', user, 'resetchannels');
    await down;
    await eventually(() => seen.errors.some((e) => /NOPERM/.test(e.err.message)), 'the refused SUBSCRIBE is reported', BOUND_MS);
    assert.equal(a.health().l2, 'ok');
    assert.equal(a.health().bus, 'reconnecting');
    await b.invalidateTags(['t']);
    assert.equal(await a.get('k'), undefined, 'A served from L1 an entry invalidated while its bus was down');
  });

  it('a cache whose bus has never been subscribed trusts no L1 hit: an invalidation it could not hear is not served', async () => {
    const user = `bl-${ctx.ns}`;
    await ctx.admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', 'resetchannels', '+@all');
    const a = ctx.track(createCache({ namespace: ctx.ns, redis: `redis://${user}:pw@127.0.0.1:${ctx.redis.port}` }));
    const seen = record(a);
    const b = await ctx.open();
    await eventually(() => seen.errors.some((e) => /NOPERM/.test(e.err.message)), 'the refused SUBSCRIBE is reported', BOUND_MS);
    assert.equal(a.health().bus, 'reconnecting');
    await a.set('k', 'old', { tags: ['t'] });
    assert.equal(await a.get('k'), 'old');
    await b.invalidateTags(['t']);
    assert.equal(await a.get('k'), undefined, 'A served from L1 an entry invalidated while it had never been subscribed');
  });

  it("a refused SUBSCRIBE is reported on 'error' (where: 'bus') and logged saying the bus could not subscribe", async () => {
    const user = `bl-${ctx.ns}`;
    await ctx.admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', 'resetchannels', '+@all');
    const warnings: string[] = [];
    const logger = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (_: object, msg?: string) => void warnings.push(String(msg)) };
    const cache = ctx.track(createCache({ namespace: ctx.ns, redis: `redis://${user}:pw@127.0.0.1:${ctx.redis.port}`, logger }));
    const [event] = (await within(once(cache, 'error'), BOUND_MS, "the 'error' event")) as [{ err: Error; where: string }];
    assert.equal(event.where, 'bus');
    assert.match(event.err.message, /NOPERM/);
    assert.ok(warnings.includes('tiercache: could not subscribe to the invalidation channel'), JSON.stringify(warnings));
    assert.equal(cache.health().bus, 'reconnecting');
  });

  it('a refused SUBSCRIBE is tried again on the same connection: once the channel is allowed the bus comes up, and the refusal was reported once', async () => {
    const user = `bl-${ctx.ns}`;
    await ctx.admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', 'resetchannels', '+@all');
    const cache = ctx.track(createCache({ namespace: ctx.ns, redis: `redis://${user}:pw@127.0.0.1:${ctx.redis.port}` }));
    const seen = record(cache);
    await eventually(() => seen.errors.some((e) => /NOPERM/.test(e.err.message)), 'the refused SUBSCRIBE is reported', BOUND_MS);
    const connections = async () => String(await ctx.admin.client('LIST')).split('\n').filter((line) => line.includes(` user=${user} `));
    const idOf = (line: string) => /\bid=(\d+)/.exec(line)![1];
    const before = (await connections()).map(idOf);
    await new Promise((resolve) => setTimeout(resolve, 2_500)); // several retries' worth
    assert.equal(cache.health().bus, 'reconnecting');
    await ctx.admin.call('ACL', 'SETUSER', user, '&*');
    await eventually(() => cache.health().bus === 'ok', 'the bus comes up', BOUND_MS);
    const subscribed = (await connections()).filter((line) => / sub=1 /.test(line)).map(idOf);
    assert.equal(subscribed.length, 1);
    assert.ok(before.includes(subscribed[0]!), 'it came up on a new connection, not by trying again');
    assert.equal(seen.errors.filter((e) => /NOPERM/.test(e.err.message)).length, 1, 'each retry reported the refusal again');
  });

  it('waitSubscribed: a waiter that timed out is forgotten (others stay), and close() releases every waiter at once, then and later', async () => {
    const cache = await behindProxy();
    proxy!.cut('refuse');
    const bus = busOf(cache);
    let longDone = false;
    const long = bus.waitSubscribed(60_000).then(() => (longDone = true));
    await bus.waitSubscribed(10);
    await bus.waitSubscribed(10);
    assert.equal(bus.readyWaiters.length, 1, 'the waiters that timed out are still listed');
    assert.equal(longDone, false);
    await cache.close();
    await within(long, 1000, 'a waiter released by close()');
    await within(bus.waitSubscribed(60_000), 1000, 'waitSubscribed on a closed bus');
  });

  it('close() leaves no connection on Redis and no trusted version map', async () => {
    const before = (await clientList()).length;
    const cache = await ctx.open();
    assert.equal((await clientList()).length, before + 2, 'the data client and the subscriber');
    assert.equal(trusted(cache), true);
    await cache.close();
    const after = await clientList();
    assert.equal(after.length, before, `left behind:\n${after.join('\n')}`);
    assert.equal(trusted(cache), false, 'a closed bus hears nothing: nothing local may be trusted');
  });

  it('close() with Redis frozen (SIGSTOP) settles within a bound: the subscriber\'s QUIT is never answered', async () => {
    const cache = await ctx.open();
    cache.on('error', () => undefined);
    ctx.redis.freeze();
    try {
      await within(cache.close(), 3000, 'close()');
    } finally {
      ctx.redis.thaw();
    }
  });

  it('close() with an invalidation stuck on a frozen Redis (commandTimeout 10 s) still settles within its 2 s wait, and reports the invalidation lost', async () => {
    const cache = await ctx.open({ l2: { commandTimeout: 10_000 } });
    const errors: Array<{ where: string }> = [];
    cache.on('error', (e: { where: string }) => errors.push(e));
    ctx.redis.freeze();
    try {
      const pending = cache.invalidateTags(['t']);
      await within(cache.close(), 4_000, 'close()');
      assert.ok(errors.some((e) => e.where === 'close'), 'the invalidation lost at close() was not reported');
      void pending;
    } finally {
      ctx.redis.thaw();
    }
  });

  it("delete(key) on one instance frees the other's L1 copy at once, and its remote 'invalidate' event names the key", async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await a.set('k', 'v');
    assert.equal(await b.get('k'), 'v');
    assert.equal(b.stats().l1.entries, 1);
    const heard = once(b, 'invalidate');
    await a.delete('k');
    const [event] = (await within(heard, BOUND_MS, "B's 'invalidate' event")) as [{ kind: string; key?: string; remote: boolean }];
    assert.equal(event.remote, true);
    assert.equal(event.kind, 'key');
    assert.equal(event.key, a.dataKey('k'));
    assert.equal(b.stats().l1.entries, 0, 'B keeps the deleted value in L1 (invalid, but taking memory) until it is asked for');
  });

  it('a message already on its way to the subscriber when close() is called is not applied', async () => {
    const cache = await ctx.open();
    const bus = busOf(cache);
    const heard: unknown[] = [];
    cache.on('invalidate', (e) => heard.push(e));
    const received = bus.received;
    // Published by another process while this one is blocked: the message is in this process's socket, unread, when close() starts.
    execFileSync('redis-cli', ['-p', String(ctx.redis.port), 'PUBLISH', bus.channel, JSON.stringify({ i: 'other', s: 1, t: [['t', 9]] })]);
    const closing = bus.close();
    await closing; // its QUIT's reply comes after the message on that connection
    assert.equal(bus.received, received, 'the closed bus applied a message');
    assert.deepEqual(heard, []);
  });

  it('a bus closed while its SUBSCRIBE is on its way does not come up when the reply arrives', async () => {
    const cache = ctx.track(createCache({ namespace: ctx.ns, redis: ctx.redis.url }));
    const bus = busOf(cache);
    const closed = new Promise<void>((resolve) => bus.subscriber.once('ready', () => void bus.close().then(resolve))); // runs after the bus's own 'ready' listener sent SUBSCRIBE
    await within(closed, BOUND_MS, 'close()');
    assert.equal(bus.health, 'reconnecting');
    assert.equal(trusted(cache), false, 'the SUBSCRIBE reply made a closed bus trust its versions');
  });

  it('a bus closed just as its connection comes up subscribes to nothing and reports nothing', async () => {
    /** SUBSCRIBE commands the server has run so far (no other client of this test subscribes). */
    const subscribes = async () => Number(/cmdstat_subscribe:calls=(\d+)/.exec(await ctx.admin.info('commandstats'))?.[1] ?? 0);
    const before = await subscribes();
    const cache = ctx.track(createCache({ namespace: ctx.ns, redis: ctx.redis.url }));
    const seen = record(cache);
    const bus = busOf(cache);
    const closed = new Promise<void>((resolve) => bus.subscriber.prependOnceListener('ready', () => void bus.close().then(resolve)));
    // Resolves once its QUIT was answered: a SUBSCRIBE sent before it has run by then.
    await within(closed, BOUND_MS, 'close()');
    assert.equal(await subscribes(), before, 'the closed bus subscribed');
    assert.deepEqual(seen.errors, []);
  });

  describe('probes (what a Cluster node going away sets off; driven here through the bus)', () => {
    /** Messages this bus published to itself (probes), seen by a subscriber of the test's own. */
    async function probesOf(bus: BusInternals): Promise<{ readonly count: number; stop(): void }> {
      const sub = ctx.admin.duplicate();
      await sub.subscribe(bus.channel);
      let count = 0;
      sub.on('message', (_: string, payload: string) => {
        const m = JSON.parse(payload) as { i: string; h?: number };
        if (m.i === bus.instanceId && typeof m.h === 'number') count++;
      });
      return { get count() { return count; }, stop: () => sub.disconnect() };
    }

    it('a suspected subscription distrusts L1 at once and is trusted again as soon as its probe comes back (no resubscription), with one flush and no bus event', async () => {
      const cache = await ctx.open();
      const seen = record(cache);
      const bus = busOf(cache);
      const probes = await probesOf(bus);
      try {
        bus.suspect();
        assert.equal(cache.health().bus, 'reconnecting');
        assert.equal(trusted(cache), false);
        await eventually(() => cache.health().bus === 'ok', 'the probe comes back', BOUND_MS);
        assert.equal(trusted(cache), true);
        assert.equal(bus.flushes, 1);
        assert.ok(probes.count >= 1 && probes.count < 10, `${probes.count} probes before the bus trusted its subscription again (a resubscription comes every 10)`);
        assert.deepEqual(seen.bus, [], 'a suspicion is no outage to report');
      } finally {
        probes.stop();
      }
    });

    it('a subscription gone without a word (UNSUBSCRIBE behind its back) hears no probe: the bus subscribes again after 10 of them and is trusted again', async () => {
      const cache = await ctx.open();
      const bus = busOf(cache);
      const probes = await probesOf(bus);
      try {
        await bus.subscriber.unsubscribe(bus.channel);
        bus.suspect();
        await eventually(() => cache.health().bus === 'ok', 'the bus subscribes again', BOUND_MS);
        assert.equal(trusted(cache), true);
        // The 10th probe and the resubscription go out together: on a loaded machine this
        // test's own subscriber may hear that probe after the bus is trusted again.
        await eventually(() => probes.count >= 10, `${probes.count} probes heard, 10 expected before subscribing again`, BOUND_MS);
        await new Promise((resolve) => setTimeout(resolve, 300)); // three probe periods: no more come
        assert.equal(probes.count, 10, 'probes sent before subscribing again');
      } finally {
        probes.stop();
      }
    });

    it('a closed bus ignores a suspicion: it sends no probe', async () => {
      const cache = await ctx.open();
      const bus = busOf(cache);
      const probes = await probesOf(bus);
      try {
        await bus.close();
        bus.suspect();
        await new Promise((resolve) => setTimeout(resolve, 300)); // three probe periods
        assert.equal(probes.count, 0);
      } finally {
        probes.stop();
      }
    });
  });

  it("another instance's heartbeat ahead of the last message heard from it counts a gap and flushes L1, once; an unknown sender's or an up-to-date one does not", async () => {
    const cache = await ctx.open();
    const bus = busOf(cache);
    await cache.set('k', 'v');
    const publish = (message: object) => ctx.admin.publish(bus.channel, JSON.stringify(message));
    /** Publishes `messages`, then a marker message from a sender of its own, and waits for the marker: everything before it was handled. */
    let markers = 0;
    const deliver = async (...messages: object[]) => {
      for (const m of messages) await publish(m);
      const received = bus.received;
      await publish({ i: `marker-${++markers}`, s: 1 });
      await eventually(() => bus.received > received, 'the marker arrives', BOUND_MS);
    };
    await deliver({ i: 'x', s: 4 }, { i: 'y', s: 7, h: 1 }, { i: 'x', s: 4, h: 2 }, { i: 'x', s: 3, h: 3 });
    assert.equal(bus.gaps, 0, 'a gap counted for a heartbeat that is not ahead, or from a sender never heard');
    assert.equal(bus.flushes, 0);
    assert.equal(await cache.get('k'), 'v');
    await deliver({ i: 'x', s: 6, h: 4 });
    assert.equal(bus.gaps, 1, 'a heartbeat ahead of the last message heard showed no gap');
    assert.equal(bus.flushes, 1);
    const tiers: string[] = [];
    cache.on('hit', (e: { tier: string }) => tiers.push(e.tier));
    cache.on('miss', () => tiers.push('miss'));
    await cache.get('k');
    assert.notEqual(tiers[0], 'L1', 'L1 still served after the gap');
    // The heartbeat moved the sender's sequence on: its next message is no gap, nor is the same heartbeat again.
    await deliver({ i: 'x', s: 6, h: 5 }, { i: 'x', s: 7 });
    assert.equal(bus.gaps, 1);
  });

  /** Publishes raw `payloads` on the bus's channel, then a marker from a sender of its own, and waits for the marker: everything before it was handled. */
  async function deliverRaw(bus: BusInternals, ...payloads: string[]): Promise<void> {
    for (const payload of payloads) await ctx.admin.publish(bus.channel, payload);
    const received = bus.received;
    await ctx.admin.publish(bus.channel, JSON.stringify({ i: `marker-${Math.random()}`, s: 1 }));
    await eventually(() => bus.received > received, 'the marker arrives', BOUND_MS);
  }

  it("a message on the channel that is not the bus's own shape (not JSON, null, a number, a sender that is not a string, no sequence number, versions that are not numbers) changes nothing; the same message well formed does", async () => {
    const cache = await ctx.open();
    const bus = busOf(cache);
    const seen = record(cache);
    await cache.set('k', 'v', { tags: ['t'] });
    // Above any version the cache has (they start from the clock, in microseconds).
    const ahead = Number.MAX_SAFE_INTEGER - 1;
    const tiers: string[] = [];
    cache.on('hit', (e: { tier: string }) => tiers.push(e.tier));
    await deliverRaw(
      bus,
      'not json',
      'null',
      '42',
      '"text"',
      JSON.stringify({ i: 5, s: 1, t: [['t', ahead]], e: ahead }),
      JSON.stringify({ i: 'no-sequence', t: [['t', ahead]], e: ahead, k: [cache.dataKey('k')] }),
      JSON.stringify({ i: 'odd-versions', s: 1, t: [['t', String(ahead)], [7, ahead], 't', null, ['t']] }),
    );
    assert.equal(await cache.get('k'), 'v');
    assert.deepEqual(tiers, ['L1'], 'a malformed message dropped the L1 entry');
    assert.equal(bus.gaps, 0);
    assert.equal(bus.flushes, 0);
    assert.deepEqual(seen.bus, [], 'a malformed message took the bus down');
    assert.deepEqual(seen.errors, []);
    // The controls: the same messages well formed do act (the key leaves L1; the tag's version moves past the entry's).
    await deliverRaw(bus, JSON.stringify({ i: 'well-formed', s: 1, k: [cache.dataKey('k')] }));
    tiers.length = 0;
    assert.equal(await cache.get('k'), 'v');
    assert.deepEqual(tiers, ['L2'], 'the well-formed key message left the L1 entry');
    await deliverRaw(bus, JSON.stringify({ i: 'well-formed', s: 2, t: [['t', ahead]] }));
    assert.equal(await cache.get('k'), undefined, 'the well-formed tag message did not invalidate');
  });

  it('sequence numbers are kept per sender: two instances heard in turn, then one of them skips a number, is one gap, from that one', async () => {
    const cache = await ctx.open();
    const bus = busOf(cache);
    const message = (i: string, s: number) => JSON.stringify({ i, s });
    await deliverRaw(bus, message('b', 1), message('c', 1), message('b', 2), message('c', 2), message('b', 3));
    assert.equal(bus.gaps, 0, 'a gap counted for senders heard in turn without one');
    await deliverRaw(bus, message('c', 4));
    assert.equal(bus.gaps, 1, "c's skipped number was not noticed");
  });

  it("a dropped subscriber connection says so: at its 'down' event health() already says reconnecting, and the error names the bus's lost connection", async () => {
    const cache = await ctx.open();
    let healthAtDown: string | undefined;
    cache.on('bus', (e: BusEvent) => {
      if (e.state === 'down') healthAtDown = cache.health().bus;
    });
    const down = nextBusEvent(cache, 'down');
    const up = nextBusEvent(cache, 'up');
    assert.equal(Number(await ctx.admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')), 1);
    assert.match(String((await down).err?.message), /invalidation bus lost its Redis connection/);
    assert.equal(healthAtDown, 'reconnecting');
    await up;
  });

  it('a subscriber that cannot reconnect tries again after 50 ms, then less and less often, never waiting more than a second between tries', async function () {
    this.timeout(15_000);
    proxy = await startTcpProxy(ctx.redis.port);
    // The caller's client gives up at once when cut: every try the proxy sees afterwards is the subscriber's.
    const main = new Redis(proxy.url, { retryStrategy: () => null });
    main.on('error', () => undefined);
    try {
      const cache = ctx.track(createCache({ namespace: ctx.ns, redis: main }));
      cache.on('error', () => undefined);
      await cache.ready();
      assert.equal(cache.health().bus, 'ok');
      proxy.cut('refuse');
      const before = proxy.attempts;
      await new Promise((resolve) => setTimeout(resolve, 2_600));
      // Waits of 50, 100, 150, ... ms (at most 1 s): about 9 tries in 2.6 s.
      const tries = proxy.attempts - before;
      assert.ok(tries >= 5 && tries <= 15, `${tries} tries in 2.6 s`);
      const up = nextBusEvent(cache, 'up');
      proxy.heal();
      await up;
    } finally {
      main.disconnect();
    }
  });
});
