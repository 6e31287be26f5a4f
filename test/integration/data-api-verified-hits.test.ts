// An L1 hit that had to be checked in Redis first: a cache whose bus is not
// subscribed cannot hear invalidations, so each L1 entry's tag versions are
// read from Redis before it is served. Served that way, it is still an L1 hit,
// and stats() counts it as one (and not as an L2 hit). Real redis-server, a
// user whom an ACL forbids every channel.
import assert from 'node:assert/strict';
import { createCache } from '../../src/index.js';
import { useRedisCaches } from '../support/cache-context.js';
import { eventually } from '../support/eventually.js';

describe('data API: L1 hits checked in Redis', function () {
  const ctx = useRedisCaches({ prefix: 'vh', flush: true });

  it('counts an L1 entry served after its versions were read from Redis as an L1 hit', async () => {
    const user = `vh-${ctx.ns}`;
    await ctx.admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', 'resetchannels', '+@all');
    const cache = ctx.track(createCache({ namespace: ctx.ns, redis: `redis://${user}:pw@127.0.0.1:${ctx.redis.port}` }));
    const errors: Error[] = [];
    cache.on('error', (e: { err: Error }) => errors.push(e.err));
    await eventually(() => errors.some((e) => /NOPERM/.test(e.message)), 'the refused SUBSCRIBE is reported', 5000);
    assert.equal(cache.health().bus, 'reconnecting');

    await cache.set('k', 'v', { tags: ['t'] });
    const before = cache.stats();
    assert.equal(await cache.get('k'), 'v');
    assert.equal(await cache.get('k'), 'v');
    const after = cache.stats();
    assert.equal(after.l1.hits - before.l1.hits, 2, 'L1 hits');
    assert.equal(after.l1.misses - before.l1.misses, 0, 'L1 misses');
    assert.equal(after.l2.hits - before.l2.hits, 0, 'L2 hits');
  });
});
