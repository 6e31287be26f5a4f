// A listener that throws on what Redis's callbacks report (another
// instance's invalidation; Redis and the bus going down; the 'error' that
// says so) is logged, not thrown into ioredis, where nothing catches it and
// the process ends (found by helper-66). Mocha fails the test on an uncaught
// exception; the test also checks what the logger was told.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import type { Logger } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Records the warn lines a cache logs. */
function warnings(): Logger & { readonly lines: string[] } {
  const lines: string[] = [];
  const none = () => undefined;
  return { lines, debug: none, info: none, error: none, warn: (_obj: object, msg?: string) => void lines.push(msg ?? '') } as Logger & { readonly lines: string[] };
}

describe('listeners that throw on what Redis reports', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'throwing', serverPerTest: true, defaults: { l2: { commandTimeout: 300 } } });
  const open = (namespace: string, logger?: Logger) => ctx.open({ namespace, ...(logger === undefined ? {} : { logger }) });

  it("another instance's invalidation: a throwing 'invalidate' listener is logged, and the bus goes on", async () => {
    const namespace = ctx.ns;
    const a = await open(namespace);
    const log = warnings();
    const b = await open(namespace, log);
    let heard = 0;
    b.on('invalidate', (e) => {
      if (!e.remote) return;
      heard++;
      throw new Error('listener bug');
    });
    await b.set('price', 10, { tags: ['movie:7'] });
    await a.invalidateTags(['movie:7']);
    await until('B to hear the invalidation', () => heard === 1);
    assert.equal(await b.get('price'), undefined);
    await a.invalidateTags(['movie:8']);
    await until('B to hear the second invalidation', () => heard === 2);
    assert.deepEqual(b.health().bus, 'ok');
    assert.deepEqual(log.lines, ["tiercache: a 'invalidate' listener threw", "tiercache: a 'invalidate' listener threw"]);
  });

  it("Redis lost: throwing 'l2', 'bus' and 'error' listeners are logged; requests are answered", async () => {
    const log = warnings();
    const cache = await open(ctx.ns, log);
    for (const event of ['l2', 'bus', 'error'] as const) {
      cache.on(event, () => {
        throw new Error(`${event} listener bug`);
      });
    }
    const app = express().get('/api/x', expressCache(cache, { ttl: '1m' }), (_req, res) => res.json({ ok: true }));
    await ctx.redis.stop();
    await until('L2 and the bus to be down', () => cache.health().l2 === 'down' && cache.health().bus === 'reconnecting');
    for (let i = 0; i < 3; i++) assert.equal((await request(app).get('/api/x')).status, 200);
    for (const event of ['l2', 'bus', 'error']) assert.ok(log.lines.includes(`tiercache: a '${event}' listener threw`), `nothing logged for '${event}': ${JSON.stringify(log.lines)}`);
  });

  it('a logger whose methods throw: Redis lost and back, calls answered, the invalidation queued, the process goes on', async () => {
    let calls = 0;
    const broken = () => {
      calls++;
      throw new Error('logger bug');
    };
    const logger = { debug: broken, info: broken, warn: broken, error: broken, level: 'debug' } as Logger;
    const cache = await open(ctx.ns, logger);
    await cache.set('price', 10);
    const app = express().get('/api/x', expressCache(cache, { ttl: '1m' }), (_req, res) => res.json({ ok: true }));
    assert.equal((await request(app).get('/api/x')).status, 200, 'debug lines (a miss, a store) are written');
    await ctx.redis.kill('SIGKILL');
    await until('L2 and the bus to be down', () => cache.health().l2 === 'down' && cache.health().bus === 'reconnecting');
    // Answered, not thrown: a miss, as L1 cannot be checked in Redis now (README, When Redis is down).
    assert.equal(await cache.get('price'), undefined);
    assert.deepEqual(await cache.delete('price'), { delivered: false });
    assert.equal(await cache.getOrSet('other', () => 1), 1);
    assert.equal((await request(app).get('/api/x')).status, 200);
    await ctx.redis.restart();
    await until('L2 and the bus to be back', () => cache.health().l2 === 'ok' && cache.health().bus === 'ok');
    await until('the queued invalidation to be delivered', () => cache.stats().queuedInvalidations === 0);
    assert.ok(calls > 4, `premise: the logger was called (${calls} times)`);
  });
});
