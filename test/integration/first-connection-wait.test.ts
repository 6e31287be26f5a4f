// Requests made before the first Redis connection is up wait for it, but a
// request's whole Redis wait is one command timeout at most ("a Redis outage
// costs speed, never errors", and the timeout bounds the cost). Each command
// used to wait a whole timeout for the connection and then its own: with a
// caller's ioredis client that has no timeout of its own (ioredis's default,
// the README's Sentinel example) on a Redis that accepts connections and
// answers nothing, the connection never came up or went down, so every
// getOrSet() waited three timeouts (lookup, stamp, store) and every first
// HTTP request four (the fill's start gate too), for as long as it lasted;
// and a connection that came up just before the timeout left the command
// that then hung its whole timeout more. The bounds are generous: they only
// tell one timeout from two.
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import express from 'express';
import { Redis } from 'ioredis';
import request from 'supertest';
import { createCache, type TierCache } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { useRedisCaches } from '../support/cache-context.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { eventually } from '../support/eventually.js';

const TIMEOUT_MS = 400;
/** Above one command timeout, well below two. */
const BOUND_MS = 700;
/** For a connection that comes up LATE_MS late: a longer timeout, so that one (and a bit) stays well apart from the wait and a timeout. */
const LATE_TIMEOUT_MS = 600;
const LATE_MS = 450;
const LATE_BOUND_MS = 850;

async function timed(what: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await what();
  return performance.now() - start;
}

describe('a request made before the first Redis connection is up waits one command timeout at most', function () {
  this.timeout(30_000);
  const ctx = useRedisCaches({ prefix: 'first-wait', flush: true });
  let proxy: TcpProxy | undefined;
  let client: Redis | undefined;
  let held: Server | undefined;
  const sockets = new Set<Socket>();

  afterEach(async () => {
    client?.disconnect();
    client = undefined;
    await proxy?.close();
    proxy = undefined;
    for (const s of sockets) s.destroy();
    sockets.clear();
    if (held !== undefined) await new Promise<void>((resolve) => held!.close(() => resolve()));
    held = undefined;
  });

  interface Relay {
    /** What a client sends: `pass` hands it on to Redis (held until the connection is `late` ms old). */
    sent(d: Buffer, pass: () => void, client: Socket): void;
    /** What Redis answers: passed on at once unless this says otherwise. */
    answered?(d: Buffer, client: Socket): void;
  }

  /** A server between the caches and Redis, with a `relay` made for each connection; its redis:// URL. */
  async function between(relay: () => Relay, late = 0): Promise<string> {
    held = createServer((downstream) => {
      const upstream = connect(ctx.redis.port, '127.0.0.1');
      for (const s of [downstream, upstream]) {
        sockets.add(s);
        s.on('error', () => undefined);
      }
      const openUntil = Date.now() + late;
      const r = relay();
      const pass = (d: Buffer) => () => {
        const wait = openUntil - Date.now();
        if (wait > 0) setTimeout(() => upstream.write(d), wait);
        else upstream.write(d);
      };
      downstream.on('data', (d: Buffer) => r.sent(d, pass(d), downstream));
      upstream.on('data', (d: Buffer) => (r.answered === undefined ? downstream.write(d) : r.answered(d, downstream)));
      downstream.on('close', () => upstream.destroy());
      upstream.on('close', () => downstream.destroy());
    });
    await new Promise<void>((resolve) => held!.listen(0, '127.0.0.1', resolve));
    return `redis://127.0.0.1:${(held.address() as AddressInfo).port}`;
  }

  /** A cache on a caller's ioredis client without a commandTimeout, through a proxy that accepts connections and answers nothing. */
  async function onSilentRedis(): Promise<TierCache> {
    proxy = await startTcpProxy(ctx.redis.port);
    proxy.cut('blackhole');
    client = new Redis(proxy.url, { maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    const cache = ctx.track(createCache({ namespace: ctx.ns, redis: client, routes: { '/api': '1m' }, l2: { commandTimeout: TIMEOUT_MS } }));
    cache.on('error', () => undefined);
    return cache;
  }

  it('getOrSet(): the first call and the ones after each wait at most one command timeout, and get the loader value', async () => {
    const cache = await onSilentRedis();
    for (let i = 0; i < 3; i++) {
      let value: unknown;
      const took = await timed(async () => (value = await cache.getOrSet(`k${i}`, async () => i)));
      assert.equal(value, i);
      assert.ok(took < BOUND_MS, `getOrSet() #${i + 1} waited ${Math.round(took)} ms on Redis (command timeout ${TIMEOUT_MS} ms)`);
    }
  });

  it('Express: the first request and the ones after each wait at most one command timeout, and are answered', async () => {
    const cache = await onSilentRedis();
    const app = express();
    app.use(expressCache(cache));
    app.get('/api/:id', (req, res) => void res.json({ id: req.params.id }));
    for (let i = 0; i < 3; i++) {
      let status = 0;
      const took = await timed(async () => (status = (await request(app).get(`/api/${i}`)).status));
      assert.equal(status, 200);
      assert.ok(took < BOUND_MS, `request #${i + 1} waited ${Math.round(took)} ms on Redis (command timeout ${TIMEOUT_MS} ms)`);
    }
  });

  /**
   * A cache on a Redis whose connections come up late and that then freezes: every byte a client
   * sends in its connection's first LATE_MS arrives then; from then on, once a command names
   * 'hung-key', nothing more on that connection is passed on.
   */
  async function onLateThenFrozenRedis(): Promise<TierCache> {
    const url = await between(() => {
      let hung = false;
      return {
        sent: (d, pass) => {
          hung ||= d.includes('hung-key');
          if (!hung) pass();
        },
      };
    }, LATE_MS);
    const cache = ctx.track(createCache({ namespace: ctx.ns, redis: url, l2: { commandTimeout: LATE_TIMEOUT_MS } }));
    cache.on('error', () => undefined);
    return cache;
  }

  /**
   * As onLateThenFrozenRedis, but a command that names `failing` is not passed on: an error reply
   * comes back `after` ms after it reaches here (it is sent once the first connection is up).
   */
  async function onLateRedisFailing(failing: string, after: number): Promise<TierCache> {
    const url = await between(() => ({
      sent: (d, pass, client) => (d.includes(failing) ? void setTimeout(() => client.write('-ERR injected\r\n'), after) : pass()),
    }), LATE_MS);
    const cache = ctx.track(createCache({ namespace: ctx.ns, redis: url, l2: { commandTimeout: LATE_TIMEOUT_MS } }));
    cache.on('error', () => undefined);
    return cache;
  }

  it('get(): a first connection that comes up late, then a command Redis fails at once: one error counted', async () => {
    const cache = await onLateRedisFailing('failing-key', 0);
    assert.equal(await cache.get('failing-key'), undefined);
    assert.equal(cache.stats().l2.errors, 1);
  });

  it("get(): a first connection that comes up late, then a command Redis fails after its caller gave up: one error counted (the caller's wait), not two", async () => {
    const cache = await onLateRedisFailing('failing-key', 400);
    assert.equal(await cache.get('failing-key'), undefined);
    // The error reply comes about LATE_MS + 400 ms after the call, past the caller's wait (LATE_TIMEOUT_MS), before the command's own timeout.
    await new Promise((resolve) => setTimeout(resolve, LATE_TIMEOUT_MS));
    assert.equal(cache.stats().l2.errors, 1);
  });

  it("getOrSet() while the breaker is open after a command timed out: the fill's lookup is not sent (it is no urgent command), the loader answers", async () => {
    let sent = false;
    const url = await between(() => {
      let hung = false;
      return {
        sent: (d, pass) => {
          sent ||= d.includes('after-key');
          hung ||= d.includes('hung-key');
          if (!hung) pass();
        },
      };
    });
    const cache = ctx.track(createCache({ namespace: ctx.ns, redis: url, l2: { commandTimeout: TIMEOUT_MS } }));
    cache.on('error', () => undefined);
    await eventually(() => cache.health().l2 === 'ok', 'L2 up', 5_000);
    assert.equal(await cache.get('hung-key'), undefined);
    assert.equal(cache.stats().l2.breaker, 'open', 'the premise: the timeout opened the breaker');
    assert.equal(await cache.getOrSet('after-key', async () => 'loaded'), 'loaded');
    assert.equal(sent, false);
  });

  it("get(): a first connection that comes up late, then a command Redis answers: no error counted, not even once the caller's wait would have ended", async () => {
    const cache = await onLateThenFrozenRedis();
    assert.equal(await cache.get('answered-key'), undefined);
    // The caller's wait (one command timeout from the call) is over by now: a timer of it left running counts an error.
    await new Promise((resolve) => setTimeout(resolve, LATE_TIMEOUT_MS + 200));
    assert.equal(cache.stats().l2.errors, 0);
  });

  it('get(): a first connection that comes up late, then a command that hangs, costs one command timeout, not the wait and then its own', async () => {
    const cache = await onLateThenFrozenRedis();
    let value: unknown = 'not answered';
    const took = await timed(async () => (value = await cache.get('hung-key')));
    assert.equal(value, undefined, 'a miss');
    assert.ok(took < LATE_BOUND_MS, `get() waited ${Math.round(took)} ms on Redis (command timeout ${LATE_TIMEOUT_MS} ms)`);
  });

  it('getOrSet(): a first connection that comes up late, then Redis freezes under the fill, costs one command timeout (the stamp read after the lookup gave up included)', async () => {
    const cache = await onLateThenFrozenRedis();
    let value: unknown;
    const took = await timed(async () => (value = await cache.getOrSet('hung-key', async () => 'loaded')));
    assert.equal(value, 'loaded');
    assert.ok(took < LATE_BOUND_MS, `getOrSet() waited ${Math.round(took)} ms on Redis (command timeout ${LATE_TIMEOUT_MS} ms)`);
  });
  it('getOrSet(): a lookup Redis ran after its caller gave up (the first connection came up just in time) leaves no fill lock behind: another instance does not wait the lock out', async () => {
    // Bytes a client sends in its connection's first LATE_MS arrive then; once a command names
    // 'slow-key' (the lookup, which takes the fill lock), Redis's replies on that connection come
    // 400 ms late: the lookup runs, its caller (one command timeout in all) has given up.
    const url = await between(() => {
      let slow = false;
      return {
        sent: (d, pass) => {
          slow ||= d.includes('slow-key');
          pass();
        },
        answered: (d, client) => void (slow ? setTimeout(() => client.write(d), 400) : client.write(d)),
      };
    }, LATE_MS);
    const late = ctx.track(createCache({ namespace: ctx.ns, redis: url, l2: { commandTimeout: LATE_TIMEOUT_MS, lockTimeout: 3000 } }));
    late.on('error', () => undefined);
    assert.equal(await late.getOrSet('slow-key', async () => 'late'), 'late');
    // The release, if any, is sent at once; its reply may come late.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const other = await ctx.open({ l2: { commandTimeout: LATE_TIMEOUT_MS, lockTimeout: 3000 } });
    let value: unknown;
    const took = await timed(async () => (value = await other.getOrSet('slow-key', async () => 'other')));
    assert.equal(value, 'other');
    assert.ok(took < 1500, `the other instance's getOrSet() waited ${Math.round(took)} ms for a fill lock nobody was filling under (lock timeout 3000 ms)`);
  });
  it('close() after a getOrSet() on a Redis that answers nothing: the client tiercache opened prints no unhandled error event (its ready check times out just after)', async () => {
    held = createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => held!.listen(0, '127.0.0.1', resolve));
    const printed: string[] = [];
    const consoleError = console.error;
    console.error = (...args: unknown[]) => void printed.push(args.map(String).join(' '));
    try {
      const cache = createCache({ namespace: ctx.ns, redis: `redis://127.0.0.1:${(held.address() as AddressInfo).port}`, l2: { commandTimeout: TIMEOUT_MS } });
      cache.on('error', () => undefined);
      assert.equal(await cache.getOrSet('k', async () => 1), 1);
      await cache.close();
      await new Promise((resolve) => setTimeout(resolve, TIMEOUT_MS));
    } finally {
      console.error = consoleError;
    }
    assert.deepEqual(printed.filter((line) => line.includes('Unhandled error event')).map((line) => line.split('\n')[0]), []);
  });
});
