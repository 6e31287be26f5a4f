// An invalidation bumped on one Redis process whose PUBLISH failed is
// replayed, publish only, once Redis answers again. If what answers then is
// another process holding older counters (a restart from a snapshot taken
// before the bump, a failover to a replica that missed it), the message
// carries a version that Redis does not hold: the receivers learn it
// (DESIGN §4 (5)). This checks that nothing stamped with it is served past a
// later invalidation of the tag by an instance that never heard it.
import assert from 'node:assert/strict';
import type { TierCache } from '../../../src/index.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';

const BOUND_MS = 8000;

describe('an invalidation replayed onto a Redis process with older counters (standalone restart from a snapshot)', function () {
  this.timeout(30_000);
  const ctx = useRedisCaches({ prefix: 'rpo', serverPerTest: true });

  it('a value set after the replay on an instance that heard it is not served once a new instance invalidates its tag', async () => {
    const user = `rpo-${ctx.ns}`;
    const url = `redis://${user}:pw@127.0.0.1:${ctx.redis.port}`;
    await ctx.admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all');
    const a = await ctx.open({ redis: url });
    a.on('error', () => undefined);
    const b = await ctx.open();
    b.on('error', () => undefined);
    await b.set('k', 'v0', { tags: ['t'] });
    assert.equal(await a.get('k'), 'v0');
    const counter = `${ctx.ns}:v:{t}`;
    const before = await ctx.admin.get(counter);
    assert.equal(await ctx.admin.save(), 'OK');

    await ctx.admin.call('ACL', 'SETUSER', user, '-publish');
    // Bumped in this process, not published: queued with the new version.
    assert.deepEqual(await a.invalidateTags(['t']), { delivered: false });
    assert.notEqual(await ctx.admin.get(counter), before);

    // The snapshot comes back (without A's user: A stays out until it is made again).
    await ctx.redis.restart();
    await eventually(() => b.health().l2 === 'ok' && b.health().bus === 'ok', 'B is back', BOUND_MS);
    assert.equal(await ctx.admin.get(counter), before, 'the snapshot did not bring the old counter back: the test proves nothing');
    const received = b.stats().bus.received;
    await ctx.admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all');
    await eventually(() => a.stats().queuedInvalidations === 0 && b.stats().bus.received > received, "A's replay reaches B", BOUND_MS);

    // A new value, set on B after everything above. (B stamps it with the replayed version, which this Redis
    // does not hold: the first store is refused, a miss; the second, with the counter read again, is stored.)
    await b.set('k', 'v1', { tags: ['t'] });
    await b.set('k', 'v1', { tags: ['t'] });
    assert.equal(await b.get('k'), 'v1');

    // An instance that never heard the replayed version invalidates the tag: nobody serves v1 afterwards.
    const d = await ctx.open();
    const heard = b.stats().bus.received;
    assert.deepEqual(await d.invalidateTags(['t']), { delivered: true });
    await eventually(() => b.stats().bus.received > heard, 'B hears it', BOUND_MS);
    for (const [name, cache] of [['A', a], ['B', b], ['D', d]] as Array<[string, TierCache]>) {
      for (let n = 0; n < 3; n++) assert.equal(await cache.get('k'), undefined, `${name} serves the value set before the last invalidation of its tag`);
    }
  });
});
