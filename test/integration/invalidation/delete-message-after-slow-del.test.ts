// Why this test exists: delete(key) deletes the entry from L2, bumps the
// key's tag, then publishes. The DEL only frees memory (its failure is
// ignored), but when it times out it opens L2's breaker, and the bump and the
// publish behind it must still go out: the message is "urgent", as the bump is, and
// passes an open breaker while the connection is up. Without that the
// invalidation stayed queued (until a probe closed the breaker) and other
// instances kept serving the deleted value from their L1. Here the DEL is made
// slow on the caller's own client (Redis itself answers everything else at
// once): the only way to time out that one command and no other.
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { createCache } from '../../../src/index.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';

/** A "does not hang" bound. */
const BOUND_MS = 5000;

describe('delete(key) whose L2 DEL times out (standalone Redis)', function () {
  const ctx = useRedisCaches({ prefix: 'dsd', flush: true });

  it('still tells the other instances at once, through the breaker the timeout opened: delivered, and B drops its L1 copy', async () => {
    // No commandTimeout on the client: tiercache bounds each command itself (l2.commandTimeout).
    const client = new Redis(ctx.redis.url);
    try {
      const a = ctx.track(createCache({ namespace: ctx.ns, redis: client, l2: { commandTimeout: 200, breakerCooldown: 60_000 } }));
      a.on('error', () => undefined);
      await a.ready();
      const b = await ctx.open();
      await a.set('k', 'old');
      assert.equal(await b.get('k'), 'old');
      const received = b.bus!.received;

      const del = client.del.bind(client) as (...keys: string[]) => Promise<number>;
      (client as unknown as { del: (...keys: string[]) => Promise<number> }).del = (...keys) => new Promise((resolve) => setTimeout(resolve, 600)).then(() => del(...keys));
      const l2States: string[] = [];
      a.on('l2', (e: { state: string }) => l2States.push(e.state));
      const result = await a.delete('k');
      assert.equal(l2States[0], 'down', 'the premise: the DEL timed out and opened the breaker');
      assert.deepEqual(result, { delivered: true }, 'the message behind the DEL that timed out was not sent');
      await eventually(() => b.bus!.received > received, 'B hears the deletion', BOUND_MS);
      assert.equal(await b.get('k'), undefined, 'B still serves the deleted value');
    } finally {
      client.disconnect();
    }
  });
});
