// An instance whose route to Redis starts dropping everything, silently (no
// reset: a firewall, a dead link), hears no invalidation and sees no error on
// its subscriber. It kept serving L1 copies another instance had invalidated
// until their TTL ended (found by a hostile review). A failing epoch check
// (every second) now makes it distrust L1 until a probe comes back through
// the subscription, as a dropped subscriber connection already did.
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Socket, type Server } from 'node:net';
import express from 'express';
import request from 'supertest';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A TCP proxy to `port` that can stop forwarding in both directions, keeping
 * every connection open: all of them (stall, dropping what comes), or only
 * the connections that subscribed so far (stallSubscribers: a NAT that forgot
 * an idle subscriber, while the data connection and new connections get
 * through) or all of them (holdAll), holding what comes until resume().
 */
async function stallingProxy(port: number): Promise<{ port: number; stall(): void; stallSubscribers(): Promise<void>; holdAll(): Promise<void>; resume(): void; resumeData(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const subscribers = new Set<Socket>();
  const dead = new Set<Socket>();
  const held: Array<{ client: Socket; send: () => void }> = [];
  let heldPing: (() => void) | undefined;
  let heldCommand: (() => void) | undefined;
  let stalled = false;
  const server: Server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    // Held (a subscriber's stall, until resume) or dropped (stall).
    const pass = (to: Socket, d: Buffer) => {
      if (stalled) return;
      if (dead.has(client)) held.push({ client, send: () => void (to.destroyed || to.write(d)) });
      else to.write(d);
    };
    client.on('data', (d: Buffer) => {
      const text = d.toString('latin1');
      if (/subscribe/i.test(text)) subscribers.add(client);
      if (dead.has(client) && /ping/i.test(text)) heldPing?.();
      if (dead.has(client) && !subscribers.has(client)) heldCommand?.();
      pass(upstream, d);
    });
    upstream.on('data', (d: Buffer) => pass(client, d));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    stall: () => void (stalled = true),
    // Resolves when the first PING a stalled subscriber sends is held.
    stallSubscribers: () => {
      for (const s of subscribers) if (!s.destroyed) dead.add(s);
      return new Promise<void>((resolve) => (heldPing = resolve));
    },
    // Every connection held (a slow moment of the server's); resolves when the first command on the data connection is.
    holdAll: () => {
      for (const s of sockets) dead.add(s);
      return new Promise<void>((resolve) => (heldCommand = resolve));
    },
    // A stall of holdAll or stallSubscribers ends: what was held goes on, late (a slow moment, not a lost route).
    resume: () => {
      dead.clear();
      for (const { send } of held.splice(0)) send();
    },
    // Only the data connections come back (what was held on them goes on); subscribers stay held.
    resumeData: () => {
      for (const s of [...dead]) if (!subscribers.has(s)) dead.delete(s);
      const kept = held.filter(({ client }) => subscribers.has(client));
      for (const { client, send } of held) if (!subscribers.has(client)) send();
      held.splice(0, held.length, ...kept);
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Waits until `cache`'s bus is live again, at most `ms`, and fails with `why` if it is not. */
async function busBackWithin(cache: { health(): { bus: string } }, ms: number, why: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (cache.health().bus !== 'ok' && Date.now() < deadline) await sleep(50);
  assert.equal(cache.health().bus, 'ok', why);
}

/**
 * Asks until the answer's version is not `version` (the copy the invalidation outdated), at most `ms`; the last
 * answer. An L1 hit while the copy is still trusted costs no Redis command, so asking often changes nothing.
 */
async function servedOtherThan(ask: () => Promise<request.Response>, version: number, ms: number): Promise<request.Response> {
  const deadline = Date.now() + ms;
  for (;;) {
    const answer = await ask();
    if (answer.body.version !== version || Date.now() > deadline) return answer;
    await sleep(50);
  }
}

describe('invalidation: an instance whose route to Redis drops everything silently', () => {
  const ctx = useRedisCaches({ prefix: 'blackholed', flush: true });

  /** One instance talking to Redis directly, one through the proxy whose L1 holds alice's answer (version 1). */
  async function twoInstances(proxyPort: number) {
    const direct = await ctx.open();
    const cut = await ctx.open({ redis: `redis://127.0.0.1:${proxyPort}` });
    cut.on('error', () => undefined);
    let version = 0;
    const app = express();
    app.get('/api/me', expressCache(cut, { user: (req) => req.headers['x-user'] as string, ttl: '5m' }), (_req, res) => void res.json({ version: ++version }));
    const alice = () => request(app).get('/api/me').set('x-user', 'alice').set('cookie', 's=a');
    assert.equal((await alice()).body.version, 1);
    assert.match(String((await alice()).headers['cache-status']), /hit; detail=L1/);
    return { direct, cut, alice };
  }

  it("stops serving L1 copies within about two seconds, so another instance's invalidateUser() is not missed until their TTL ends", async function () {
    this.timeout(15_000);
    const proxy = await stallingProxy(ctx.redis.port);
    try {
      const { direct, cut, alice } = await twoInstances(proxy.port);
      proxy.stall();
      assert.equal((await direct.invalidateUser('alice')).delivered, true);
      const after = await servedOtherThan(alice, 1, 3_500); // two epoch checks in a row without an answer
      assert.notEqual(after.body.version, 1, `the invalidated copy was still served (${String(after.headers['cache-status'])})`);
      assert.equal(after.status, 200);
      assert.equal(cut.health().bus, 'reconnecting');
    } finally {
      await proxy.close();
    }
  });

  it("on standalone Redis, a subscriber connection gone silent while commands get through is noticed within about two seconds: L1 distrusted, the subscriber connects again, and later invalidations arrive", async function () {
    this.timeout(30_000);
    const proxy = await stallingProxy(ctx.redis.port);
    try {
      const { direct, cut, alice } = await twoInstances(proxy.port);
      void proxy.stallSubscribers();
      assert.equal((await direct.invalidateUser('alice')).delivered, true);
      const after = await servedOtherThan(alice, 1, 3_500); // two epoch checks whose PING on the subscriber got no answer
      assert.equal(after.status, 200);
      assert.notEqual(after.body.version, 1, `the invalidated copy was still served (${String(after.headers['cache-status'])})`);
      // Subscribed again on a new connection: trusted, and the next invalidation reaches it.
      await busBackWithin(cut, 5_000, 'not subscribed again');
      const filled = (await alice()).body.version;
      assert.match(String((await alice()).headers['cache-status']), /hit; detail=L1/);
      assert.equal((await direct.invalidateUser('alice')).delivered, true);
      await sleep(300);
      assert.equal((await alice()).body.version, filled + 1);
      // The new connection is watched as the first was: gone silent too, it is noticed again.
      assert.match(String((await alice()).headers['cache-status']), /hit; detail=L1/);
      void proxy.stallSubscribers();
      assert.equal((await direct.invalidateUser('alice')).delivered, true);
      assert.equal((await servedOtherThan(alice, filled + 1, 3_500)).body.version, filled + 2, 'the second silent connection was not noticed');
    } finally {
      await proxy.close();
    }
  });

  /**
   * An instance through the proxy, its L1 holding an answer; `slowMoment` holds what it must, and
   * after it the answer is still an L1 hit with the bus trusted: nothing was flushed.
   */
  async function survivesSlowMoment(options: Parameters<typeof ctx.open>[0], slowMoment: (proxy: Awaited<ReturnType<typeof stallingProxy>>) => Promise<void>): Promise<void> {
    const proxy = await stallingProxy(ctx.redis.port);
    try {
      const cut = await ctx.open({ ...options, redis: `redis://127.0.0.1:${proxy.port}` });
      const busErrors: string[] = [];
      cut.on('error', (e: { err: Error; where: string }) => void (e.where === 'bus' && busErrors.push(e.err.message)));
      let version = 0;
      const app = express();
      app.get('/api/me', expressCache(cut, { ttl: '5m' }), (_req, res) => void res.json({ version: ++version }));
      assert.equal((await request(app).get('/api/me')).body.version, 1);
      await slowMoment(proxy);
      await sleep(1_500);
      const after = await request(app).get('/api/me');
      assert.match(String(after.headers['cache-status']), /hit; detail=L1/);
      assert.equal(cut.health().bus, 'ok');
      assert.deepEqual(busErrors, [], 'a slow moment was reported as a lost connection');
    } finally {
      await proxy.close();
    }
  }

  it('a subscriber silent for less than two checks (a slow moment) costs nothing: L1 is still trusted and served', async function () {
    this.timeout(20_000);
    await survivesSlowMoment({}, async (proxy) => {
      // Checks run every second: the one after this PING finds it unanswered, and the stall ends
      // half-way to the next. (Acting on the first unanswered check would distrust L1 here.)
      await proxy.stallSubscribers();
      await sleep(1_500);
      proxy.resume();
    });
  });

  it('an epoch check that gets no answer once (a slow moment, its command timed out) costs nothing: L1 is still trusted and served', async function () {
    this.timeout(20_000);
    await survivesSlowMoment({ l2: { commandTimeout: 200 } }, async (proxy) => {
      // The next check's command is held past its timeout; the one after finds Redis answering again.
      await proxy.holdAll();
      await sleep(500);
      proxy.resume();
    });
  });

  it('a Redis busy for three seconds (a long script) answers late but loses nothing: no reconnect, no error, L1 trusted again once the PING is answered', async function () {
    this.timeout(20_000);
    await survivesSlowMoment({}, async () => {
      const before = Number((await ctx.admin.info('stats')).match(/total_connections_received:(\d+)/)![1]);
      const busy = ctx.admin.duplicate();
      try {
        await busy.eval(`local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] while true do local n = redis.call('TIME') if n[1] * 1000000 + n[2] - s > 3000000 then break end end return 1`, 0);
      } finally {
        busy.disconnect();
      }
      await sleep(500);
      const after = Number((await ctx.admin.info('stats')).match(/total_connections_received:(\d+)/)![1]);
      assert.equal(after - before, 1, "connections made to Redis meanwhile (the script's own is the one)");
    });
  });

  it('a subscriber that went silent while Redis answered nobody is found once Redis answers the data connection again: made anew, L1 flushed, the bus back', async function () {
    this.timeout(30_000);
    const proxy = await stallingProxy(ctx.redis.port);
    try {
      const { direct, cut, alice } = await twoInstances(proxy.port);
      // A moment where Redis answers nobody (both connections held): the bus lags, distrusting L1...
      await proxy.holdAll();
      await sleep(2_600);
      assert.equal(cut.health().bus, 'reconnecting');
      // ...after which the data connection answers again and the subscriber's never does.
      proxy.resumeData();
      assert.equal((await direct.invalidateUser('alice')).delivered, true);
      await busBackWithin(cut, 12_000, 'still lagging on a connection that will never answer');
      assert.notEqual((await alice()).body.version, 1);
    } finally {
      await proxy.close();
    }
  });
});
