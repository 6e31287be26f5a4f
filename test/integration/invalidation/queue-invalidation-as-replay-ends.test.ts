// Why this test exists: an invalidation submitted while a drain of the queue
// is just ending (its loop found the queue empty, it has not let go yet) waits
// for that drain, which resolves "emptied" without having delivered it. The
// queue must then drain again; answering "not delivered" instead leaves the
// invalidation queued with nothing to send it (no failure, so no retry) until
// some later invalidation happens to drain the queue. The one hook into that
// moment a user has is the replay's log line, written by that ending drain:
// here the logger makes the invalidation right then.
import assert from 'node:assert/strict';
import { createCache, type InvalidateResult, type TierCache } from '../../../src/index.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

/** A "does not hang" bound (reconnects retry every 50-1000 ms). */
const BOUND_MS = 8000;

describe('the invalidation queue: an invalidation made as a replay ends (standalone Redis, a TCP proxy)', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'qre', flush: true });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  it('is delivered, not left queued: the other instance hears it and nothing waits afterwards', async () => {
    proxy = await startTcpProxy(ctx.redis.port);
    let a!: TierCache;
    let late: Promise<InvalidateResult> | undefined;
    const logger = {
      debug: () => undefined,
      warn: () => undefined,
      error: () => undefined,
      info: (_: object, msg?: string) => {
        if (late === undefined && /queued while Redis was unreachable were delivered/.test(String(msg))) late = a.invalidateTags(['late']);
      },
    };
    a = ctx.track(createCache({ namespace: ctx.ns, redis: proxy.url, logger }));
    a.on('error', () => undefined);
    await a.ready();
    const b = await ctx.open();
    await b.set('k', 'old', { tags: ['late'] });
    assert.equal(await b.get('k'), 'old');

    proxy.cut();
    await eventually(() => a.health().l2 === 'down', 'A sees Redis down', BOUND_MS);
    assert.deepEqual(await a.invalidateTags(['early']), { delivered: false });
    proxy.heal();
    await eventually(() => late !== undefined, 'the replay is logged', BOUND_MS);

    assert.deepEqual(await late, { delivered: true }, 'the invalidation made as the replay ended was not delivered');
    assert.equal(a.stats().queuedInvalidations, 0, 'an invalidation is still waiting');
    await eventually(async () => (await b.get('k')) === undefined, 'B drops the entry of the late invalidation', BOUND_MS);
  });
});
