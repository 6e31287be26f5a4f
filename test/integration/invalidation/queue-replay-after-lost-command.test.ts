// Why this test exists: a client that does not send again a command its
// connection took with it (the one tiercache opens, and a caller's as the
// README recommends) left an invalidation whose bump was out when the
// connection was cut to fail only when its timer ends, after the next
// connection is already up. (The client tiercache opens now fails such a
// command at once: the second test. A caller's client, with no timeout of
// its own, still leaves it to tiercache's timer: the first.) L2 coming back had found that
// delivery still out and replayed nothing; the failure then waited for the
// queue's retry a second later. Other instances served the invalidated value
// all that time (1.2 s after a 50 ms cut, where sending again had taken
// 100 ms). Two caches on one real redis-server; A goes through a TCP proxy
// that holds every chunk 20 ms, so the bump is still in the proxy when the
// cut drops it.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { CacheOptions, TierCache } from '../../../src/index.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

describe('the invalidation queue after a cut took its command with it', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'qlost' });
  let proxy: TcpProxy | undefined;
  let given: Redis | undefined;
  afterEach(async () => {
    given?.disconnect();
    given = undefined;
    await proxy?.close();
    proxy = undefined;
  });

  /**
   * A (opened with `options`, through `proxy`) invalidates tag t while B holds k under it; the connection is cut
   * and healed while A's bump is in the proxy.
   */
  async function cutWhileBumping(through: TcpProxy, options: CacheOptions) {
    const a = await ctx.open(options);
    a.on('error', () => undefined);
    const b = await ctx.open();
    await b.set('k', 'old', { tags: ['t'] });
    assert.equal(await b.get('k'), 'old');
    const turns = through.turns;
    const invalidating = a.invalidateTags(['t']);
    await eventually(() => through.turns > turns, 'A sends the bump');
    const cutAt = performance.now();
    through.cut('refuse');
    through.setDelay(0);
    through.heal();
    return { a, b, invalidating, cutAt };
  }

  /** How long after `cutAt` B still served k's invalidated value (polled every 5 ms, at most 5 s). */
  async function servedOldFor(b: TierCache, cutAt: number): Promise<number> {
    while ((await b.get('k')) === 'old' && performance.now() - cutAt < 5_000) await sleep(5);
    return performance.now() - cutAt;
  }

  it("replays it as soon as its command has failed on a Redis already back, not a retry period later (a caller's client that does not send again)", async () => {
    proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 20);
    given = new Redis(proxy.url, { autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    given.on('error', () => undefined);
    const { a, b, invalidating, cutAt } = await cutWhileBumping(proxy, { redis: given });
    await invalidating;
    const ms = await servedOldFor(b, cutAt);
    // Its command timeout (200 ms) and a round trip; the queue's retry period alone is 1 s.
    assert.ok(ms < 800, `B served the invalidated value for ${ms.toFixed(0)} ms after the cut`);
    assert.equal(a.stats().queuedInvalidations, 0);
  });

  it('with a long command timeout, the others hear it once the next connection is up, not a command timeout later', async () => {
    proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 20);
    const { b, invalidating, cutAt } = await cutWhileBumping(proxy, { redis: proxy.url, l2: { commandTimeout: 3_000 } });
    const ms = await servedOldFor(b, cutAt);
    // A reconnects within about 50 ms; sending again had told B within about 100.
    assert.ok(ms < 1_000, `B served the invalidated value for ${ms.toFixed(0)} ms after the cut`);
    assert.deepEqual(await invalidating, { delivered: false });
  });
});
