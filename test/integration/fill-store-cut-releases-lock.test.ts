// Why this test exists: a fill whose store step (or, when it stored nothing,
// whose release) a cut took with it left its fill lock in Redis. The client tiercache opens does not send that step
// again (openRedis), and nothing else released the lock, so a request for
// the key on another instance waited the lock's whole lifetime (3 s) before
// running the loader itself, Redis answering again all along (sending again
// had stored the value and released the lock within 0.1 s). Two caches on
// one real redis-server; A goes through a TCP proxy cut as A's step is sent.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { useRedisCaches } from '../support/cache-context.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

describe('a fill whose last step a connection cut took with it', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'fscut' });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  it("releases its lock once Redis answers again: another instance's caller waits about a command timeout, not the lock's lifetime", async () => {
    proxy = await startTcpProxy(ctx.redis.port);
    const a = await ctx.open({ redis: proxy.url });
    a.on('error', () => undefined);
    const b = await ctx.open();
    const fills = (a.store as unknown as { fills: { store: (...args: unknown[]) => Promise<unknown> } }).fills;
    const store = fills.store.bind(fills);
    fills.store = (...args: unknown[]) => {
      const storing = store(...args);
      proxy!.cut('refuse');
      proxy!.heal();
      return storing;
    };
    let loads = 0;
    const load = async () => {
      loads++;
      await sleep(100);
      return 'loaded';
    };
    const filling = a.getOrSet('k', load);
    // B finds A's lock taken and waits for A's value.
    await sleep(40);
    const started = performance.now();
    assert.equal(await b.getOrSet('k', load), 'loaded');
    const waited = performance.now() - started;
    assert.equal(await filling, 'loaded');
    // The lock lives 3 s; A's store fails a command timeout (200 ms) after it was sent, B polls every 100 ms.
    assert.ok(waited < 1_500, `B waited ${waited.toFixed(0)} ms on the lock of a fill that could not store`);
    assert.ok(loads <= 2);
  });

  it("that stored nothing (its loader threw) releases its lock once Redis answers again, though the release went with the connection", async () => {
    proxy = await startTcpProxy(ctx.redis.port);
    const a = await ctx.open({ redis: proxy.url });
    a.on('error', () => undefined);
    const b = await ctx.open();
    const fills = (a.store as unknown as { fills: { abandon: (...args: unknown[]) => void } }).fills;
    const abandon = fills.abandon.bind(fills);
    fills.abandon = (...args: unknown[]) => {
      abandon(...args);
      proxy!.cut('refuse');
      proxy!.heal();
    };
    const failing = a.getOrSet('k', async () => {
      await sleep(100);
      throw new Error('the database is down');
    });
    // Its rejection is taken up now: it comes while B waits.
    const failed = assert.rejects(failing, /database is down/);
    await sleep(40);
    const started = performance.now();
    assert.equal(await b.getOrSet('k', async () => 'loaded'), 'loaded');
    const waited = performance.now() - started;
    await failed;
    assert.ok(waited < 1_500, `B waited ${waited.toFixed(0)} ms on the lock of a fill that stored nothing`);
  });
});
