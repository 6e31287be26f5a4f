// Why this test exists: stale-if-error lets a stale entry stand in for a
// failing handler's 5xx, unless the entry was invalidated while the handler
// ran (DESIGN §4(3)). The check asked local version state alone, and took
// "cannot tell" for "valid": when this instance's bus lost its connection
// while the handler ran (local state reset on reconnect, or still down), an
// invalidation made on another instance meanwhile was missed and the
// invalidated entry went out in place of the 5xx (found by a hostile review).
// Redis down as well is an outage: the stale entry still stands in then.
// Two caches on one real redis-server; B goes through a TCP proxy where the
// outage is tested.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';
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

  /** An app whose handler answers 'OLD' while `failing` is false, else waits `slowMs` and answers 500. */
  function app(cache: TierCache, state: { failing: boolean; started?: () => void }, slowMs = 300): express.Express {
    const a = express();
    a.get('/item/:id', expressCache(cache, { ttl: 200, staleIfError: '1h' }), async (_req, res) => {
      if (!state.failing) return void res.json({ v: 'OLD' });
      state.started?.();
      await sleep(slowMs);
      res.status(500).send('upstream failed');
    });
    return a;
  }

  /** Fills through A, lets the entry go stale, and starts B's failing request; resolves with its answer, and calls `during` once B's handler runs. */
  async function failingOnB(a: TierCache, b: TierCache, during: () => Promise<void>): Promise<request.Response> {
    const state: { failing: boolean; started?: () => void } = { failing: false };
    assert.deepEqual((await request(app(a, state)).get('/item/1')).body, { v: 'OLD' });
    await sleep(250);
    state.failing = true;
    const running = new Promise<void>((resolve) => (state.started = resolve));
    const answer = request(app(b, state)).get('/item/1');
    const [res] = await Promise.all([answer, running.then(during)]);
    return res;
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
    await ctx.admin.acl('SETUSER', 'nosub', 'on', '>pw', '~*', '&*', '+@all', '-subscribe', '-ssubscribe', '-psubscribe');
    const a = await ctx.open();
    const url = new URL(ctx.redis.url);
    url.username = 'nosub';
    url.password = 'pw';
    const b = await ctx.open({ redis: url.toString() });
    b.on('error', () => undefined);
    assert.notEqual(b.health().bus, 'ok', 'the premise: B hears no invalidations');
    const res = await failingOnB(a, b, async () => {
      assert.equal((await a.invalidatePrefix('/item')).delivered, true);
    });
    assert.equal(res.status, 500, `B answered ${res.status} ${res.text} [${res.headers['cache-status']}]: the invalidated entry`);
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
