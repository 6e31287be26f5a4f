// Why this test exists: stale-if-error lets a stale entry stand in for a
// failing handler's 5xx, unless the entry was invalidated while the handler
// ran (DESIGN §4(3)). The check asked local version state alone, and took
// "cannot tell" for "valid": when this instance's bus lost its connection
// while the handler ran (local state reset on reconnect, or still down), an
// invalidation made on another instance meanwhile was missed and the
// invalidated entry went out in place of the 5xx (found by a hostile review).
// The fix refused the stand-in whenever local state could not vouch and Redis
// answered, which cost every 5xx its stand-in for good on an instance whose
// bus never connects (SUBSCRIBE or the channel denied by an ACL), with
// nothing invalidated at all (DESIGN §3; found by the review of that fix).
// Now the 5xx waits for Redis's word on the entry's versions (one round
// trip): it stands in unless something it depends on moved. Redis down as
// well, or not answering in time with the bus down, is an outage: the stale
// entry stands in then. Two caches on one real redis-server; B goes through a
// TCP proxy where the outage is tested.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import express from 'express';
import request from 'supertest';
import type { CacheOptions, StoreEvent, TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { adapters, buildApp, type Adapter } from '../middleware/apps.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { openDeafCache } from '../../support/deaf-cache.js';
import { eventually } from '../../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('stale-if-error and an invalidation missed while the bus was down', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'sie-bus', flush: true });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  interface Failing {
    failing: boolean;
    /** Called as the failing handler starts. */
    started?: () => void;
    /** Called just before the failing handler answers its 500. */
    answering?: () => void;
    /** What the failing handler waits for before it answers, in place of its `slowMs`. */
    gate?: Promise<void>;
  }

  /**
   * An app whose handler answers 'OLD' while `failing` is false, else waits
   * `slowMs` and answers 500: with res.send(), or `streamed` in parts
   * (writeHead, write, end), or with res.send() and then a throw (`throws`:
   * Express's own final handler then sees the error of a request already answered).
   */
  function app(cache: TierCache, state: Failing, slowMs = 300, shape: 'send' | 'streamed' | 'throws' = 'send'): express.Express {
    const a = express();
    a.set('env', 'test'); // the final handler prints no errors
    a.get('/item/:id', expressCache(cache, { ttl: 200, staleIfError: '1h', tags: (req) => [`item:${req.params['id']}`] }), async (_req, res) => {
      if (!state.failing) return void res.json({ v: 'OLD' });
      state.started?.();
      await (state.gate ?? sleep(slowMs));
      state.answering?.();
      if (shape === 'streamed') {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.write('upstream ');
        await sleep(10);
        res.end('failed');
        return;
      }
      res.status(500).send('upstream failed');
      if (shape === 'throws') throw new Error('the handler failed after answering');
    });
    return a;
  }

  /**
   * Fills through A, lets the entry go stale, and starts B's failing request (`method`, GET by default);
   * resolves with its answer, and calls `during` once B's handler runs.
   */
  async function failingOnB(a: TierCache, b: TierCache, during: () => Promise<void>, shape?: 'send' | 'streamed' | 'throws', method: 'get' | 'head' = 'get', state: Failing = { failing: false }): Promise<request.Response> {
    assert.deepEqual((await request(app(a, state)).get('/item/1')).body, { v: 'OLD' });
    await sleep(250);
    state.failing = true;
    const running = new Promise<void>((resolve) => (state.started = resolve));
    const answer = request(app(b, state, 300, shape))[method]('/item/1');
    const [res] = await Promise.all([answer, running.then(during)]);
    return res;
  }

  const deafB = (how: 'command' | 'channel', options: CacheOptions = {}): Promise<TierCache> => openDeafCache(ctx, how, options);

  function assertStoodIn(res: request.Response, what: string): void {
    assert.equal(res.status, 200, `B answered ${res.status} ${res.text} [${res.headers['cache-status']}]: ${what}`);
    assert.deepEqual(res.body, { v: 'OLD' });
    assert.match(String(res.headers['cache-status']), /hit/);
  }

  it('B\'s bus reconnects after the invalidation reached it: the 5xx goes out, not the invalidated entry', async () => {
    const [a, b] = [await ctx.open(), await ctx.open()];
    const res = await failingOnB(a, b, async () => {
      assert.equal((await a.invalidatePrefix('/item')).delivered, true);
      await sleep(30);
      await ctx.admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    });
    assert.equal(res.status, 500, `B answered ${res.status} ${res.text} [${res.headers['cache-status']}]: the invalidated entry`);
  });

  it("B's bus reconnects while its handler runs, nothing invalidated: the stale entry stands in (Redis vouches for it)", async () => {
    const [a, b] = [await ctx.open(), await ctx.open()];
    b.on('error', () => undefined);
    let open!: () => void;
    const state: Failing = { failing: false, gate: new Promise<void>((resolve) => (open = resolve)) };
    const res = await failingOnB(a, b, async () => {
      const generation = b.store.versions.currentGeneration();
      await ctx.admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      await eventually(() => b.health().bus === 'ok' && b.store.versions.currentGeneration() !== generation, "B's bus back, its version state reset", 5_000);
      open();
    }, 'send', 'get', state);
    assertStoodIn(res, 'a stale entry nothing invalidated must stand in for a 5xx');
  });

  it("B's bus is cut before the invalidation (the message is lost): the 5xx goes out", async () => {
    const [a, b] = [await ctx.open(), await ctx.open()];
    b.on('error', () => undefined);
    const res = await failingOnB(a, b, async () => {
      await ctx.admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      assert.equal((await a.invalidatePrefix('/item')).delivered, true);
    });
    assert.equal(res.status, 500, `B answered ${res.status} ${res.text} [${res.headers['cache-status']}]: the invalidated entry`);
  });

  it("B's bus never subscribed (SUBSCRIBE denied by an ACL), Redis answering: the 5xx goes out", async () => {
    const a = await ctx.open();
    const b = await deafB('command');
    const res = await failingOnB(a, b, async () => {
      assert.equal((await a.invalidatePrefix('/item')).delivered, true);
    });
    assert.equal(res.status, 500, `B answered ${res.status} ${res.text} [${res.headers['cache-status']}]: the invalidated entry`);
  });

  for (const how of ['command', 'channel'] as const) {
    it(`B's bus never subscribes (${how === 'command' ? 'SUBSCRIBE' : 'the channel'} denied by an ACL), nothing invalidated: the stale entry stands in for the 5xx (Redis vouches for it)`, async () => {
      const a = await ctx.open();
      const b = await deafB(how);
      assertStoodIn(await failingOnB(a, b, async () => undefined), 'a stale entry nothing invalidated must stand in for a 5xx');
    });
  }

  it("B's bus never subscribes, and A invalidates the entry's tag while B's handler runs: the 5xx goes out", async () => {
    const a = await ctx.open();
    const b = await deafB('channel');
    const res = await failingOnB(a, b, async () => {
      assert.equal((await a.invalidateTags(['item:1'])).delivered, true);
    });
    assert.equal(res.status, 500, `B answered ${res.status} ${res.text} [${res.headers['cache-status']}]: the invalidated entry`);
    assert.equal(res.text, 'upstream failed');
  });

  /** A 5xx shaped `shape` (and asked with `method`) on B, whose bus never subscribes; with `invalidate`, A invalidates the entry's tag while B's handler runs. */
  async function deafFailure(shape: 'send' | 'streamed' | 'throws', method: 'get' | 'head', invalidate: boolean): Promise<request.Response> {
    const a = await ctx.open();
    const b = await deafB('command');
    return failingOnB(a, b, async () => {
      if (invalidate) assert.equal((await a.invalidateTags(['item:1'])).delivered, true);
    }, shape, method);
  }

  const SHAPES = {
    streamed: { what: 'a 5xx streamed in parts', stoodIn: 'the stale entry stands in', failed: 'the 5xx goes out whole' },
    throws: { what: 'the handler answers 500 and then throws', stoodIn: "the stale entry stands in (Express's final handler leaves it alone)", failed: "the handler's 500 goes out, not one written over it" },
  } as const;
  for (const [shape, says] of Object.entries(SHAPES) as Array<[keyof typeof SHAPES, (typeof SHAPES)[keyof typeof SHAPES]]>) {
    it(`B's bus never subscribes, ${says.what}, nothing invalidated: ${says.stoodIn}`, async () => {
      assertStoodIn(await deafFailure(shape, 'get', false), 'a stale entry nothing invalidated must stand in for a 5xx');
    });

    it(`B's bus never subscribes, ${says.what}, the tag invalidated meanwhile: ${says.failed}`, async () => {
      const res = await deafFailure(shape, 'get', true);
      assert.equal(res.status, 500, `B answered ${res.status} ${res.text} [${res.headers['cache-status']}]: the invalidated entry`);
      assert.equal(res.text, 'upstream failed');
    });
  }

  it("B's bus never subscribes, a HEAD (its answer never stored), nothing invalidated: the stale entry's head stands in", async () => {
    const res = await deafFailure('send', 'head', false);
    assert.equal(res.status, 200, `B answered ${res.status} [${res.headers['cache-status']}]: a stale entry nothing invalidated must stand in for a 5xx`);
    assert.match(String(res.headers['cache-status']), /hit/);
  });

  it("B's bus never subscribes, a HEAD (its answer never stored), the tag invalidated meanwhile: the 5xx goes out", async () => {
    const res = await deafFailure('send', 'head', true);
    assert.equal(res.status, 500, `B answered ${res.status} [${res.headers['cache-status']}]: the invalidated entry`);
  });

  for (const adapter of adapters) {
    it(`${adapter.name}: B's bus never subscribes, a handler that throws: the stale entry stands in for the framework's 500`, async () => {
      const a = await ctx.open();
      const b = await deafB('command');
      const state = { failing: false, started: undefined as (() => void) | undefined };
      const spec = (cache: TierCache) =>
        buildApp(adapter, cache, {
          routes: [
            {
              path: '/item/:id',
              mw: { ttl: 200, staleIfError: '1h' },
              handler: async (io) => {
                if (!state.failing) return io.send('OLD');
                state.started?.();
                await sleep(100);
                throw new Error('upstream failed');
              },
            },
          ],
        });
      assert.equal((await request(spec(a).target).get('/item/1')).text, 'OLD');
      await sleep(250);
      state.failing = true;
      const res = await request(spec(b).target).get('/item/1');
      assert.equal(res.status, 200, `B answered ${res.status} ${res.text} [${res.headers['cache-status']}]: a stale entry nothing invalidated must stand in for a 5xx`);
      assert.equal(res.text, 'OLD');
    });
  }

  /**
   * Origin mode: A stores /item/1 (ETag "v1", stale at once, stale-if-error
   * for an hour); on B, whose bus never subscribes, the revalidation's 304
   * names another ETag (it refreshes nothing, RFC 9111 §4.3.4), so B retries
   * unconditionally, and the retry answers 503 after `during` ran.
   *
   * Both caches wait for Redis longer than the 200 ms default: on a loaded
   * 2-core machine a command of A's passed it as A came up, A's breaker was
   * open when it filled, and the fill was stored in L1 alone (an outage, as
   * promised), so B found nothing in Redis and its 503 went out
   * (`fwd=miss; detail=status`). B's own lookup can pass it as well. Whether
   * A's answer reached Redis is checked before B is asked. B's bound is
   * shorter: a bus that never subscribes holds its first fills for one
   * command timeout from its start (the first connection's checks), and this
   * is such a fill.
   */
  async function failingRetryOnB(adapter: Adapter, during: (a: TierCache) => Promise<void>): Promise<request.Response> {
    const a = await ctx.open({ l2: { commandTimeout: '3s' } });
    const b = await deafB('command', { l2: { commandTimeout: '1s' } });
    const state: Failing = { failing: false };
    const on = (cache: TierCache) =>
      buildApp(adapter, cache, {
        routes: [
          {
            path: '/item/:id',
            mw: { freshness: 'origin', staleIfError: '1h', tags: () => ['item:1'] },
            handler: async (io) => {
              if (io.header('if-none-match') !== undefined) {
                io.set('ETag', '"v2"');
                io.set('Cache-Control', 'max-age=3600');
                io.status(304);
                return io.end();
              }
              if (state.failing) {
                state.started?.();
                await sleep(300);
                io.status(503);
                return io.send('origin down');
              }
              io.set('ETag', '"v1"');
              io.set('Cache-Control', 'max-age=0, stale-if-error=3600');
              io.set('Content-Type', 'text/plain');
              io.send('version 1');
            },
          },
        ],
      });
    const stored = once(a, 'store') as Promise<[StoreEvent]>;
    assert.equal((await request(on(a).target).get('/item/1')).text, 'version 1');
    const [{ tiers }] = await stored;
    assert.deepEqual(tiers, ['L1', 'L2'], "the premise: A's answer is in Redis for B to find");
    state.failing = true;
    const running = new Promise<void>((resolve) => (state.started = resolve));
    const [res] = await Promise.all([request(on(b).target).get('/item/1'), running.then(() => during(a))]);
    return res;
  }

  for (const adapter of adapters) {
    it(`${adapter.name}: origin mode, B's bus never subscribes, a 503 to the retry of a 304 that refreshes nothing, nothing invalidated: the stale entry stands in`, async () => {
      const res = await failingRetryOnB(adapter, async () => undefined);
      assert.equal(res.status, 200, `B answered ${res.status} ${res.text} [${res.headers['cache-status']}]: a stale entry nothing invalidated must stand in for a 5xx`);
      assert.equal(res.text, 'version 1');
    });
  }

  it("express5: origin mode, B's bus never subscribes, a 503 to the retry of a 304 that refreshes nothing, the tag invalidated meanwhile: the 503 goes out", async () => {
    const res = await failingRetryOnB(adapters.find((x) => x.name === 'express5')!, async (a) => {
      assert.equal((await a.invalidateTags(['item:1'])).delivered, true);
    });
    assert.equal(res.status, 503, `B answered ${res.status} ${res.text} [${res.headers['cache-status']}]: the invalidated entry`);
    assert.equal(res.text, 'origin down');
  });

  it("B's bus never subscribes and Redis stops answering as the 5xx arrives (frozen): once the command timed out, the stale entry stands in (an outage)", async () => {
    const a = await ctx.open();
    const b = await deafB('command', { l2: { commandTimeout: 300 } });
    const state: Failing = { failing: false, answering: () => ctx.redis.freeze() };
    try {
      const res = await failingOnB(a, b, async () => undefined, 'send', 'get', state);
      assertStoodIn(res, 'neither connection reaches Redis: an outage costs no 5xx');
    } finally {
      ctx.redis.thaw();
    }
  });

  it('Redis down while the handler runs (no invalidation): the stale entry stands in (an outage costs no 5xx)', async () => {
    proxy = await startTcpProxy(ctx.redis.port);
    const a = await ctx.open();
    const b = await ctx.open({ redis: proxy.url });
    b.on('error', () => undefined);
    const res = await failingOnB(a, b, async () => {
      proxy!.cut('refuse');
      await eventually(() => b.health().l2 === 'down', 'B sees Redis down', 5_000);
    });
    assert.equal(res.status, 200, `B answered ${res.status} ${res.text}: a stale entry must stand in while Redis is down`);
    assert.deepEqual(res.body, { v: 'OLD' });
    assert.match(String(res.headers['cache-status']), /hit/);
  });
});
