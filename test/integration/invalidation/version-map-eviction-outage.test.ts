// Why this test exists: an instance keeps the tag versions it knows in a
// bounded map. When Redis cannot answer, an L1 entry whose tags the map does
// not hold was served (an outage cost freshness, bounded by l1.ttl). But a
// tag the map let go may be one this very instance invalidated: once other
// instances' invalidations had pushed it out, a Redis outage brought the
// invalidated value back on the instance that invalidated it (DESIGN §4(1);
// found by a hostile review). A tag this instance invalidated and then let go
// now raises a floor, and an entry that recorded a version below it for a tag
// the map no longer holds is dropped while Redis cannot answer. Only its own
// invalidations, and per bucket of tags: a first form raised one floor with
// every tag let go, a second one floor with its own (helpers 74 and 75).
// Since h204 no L1 entry Redis cannot vouch for is served while the bus is
// down, by the data API as by the middleware (outage-unchecked-l1.test.ts):
// the floor decides which such entries are kept, unverified, as the
// middleware's stand-in for a 5xx (stale-if-error), and which are dropped.
// Two caches on one real redis-server; A goes through a TCP proxy that is cut.
import assert from 'node:assert/strict';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

/** More tags than A's version map keeps (max(10,000, 4 x l1.maxEntries)). */
const OTHER_TAGS = 12_000;

describe('an invalidated tag pushed out of the version map, then Redis unreachable', function () {
  this.timeout(30_000);
  const ctx = useRedisCaches({ prefix: 'vmap-out', flush: true });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  it('the invalidating instance drops what it invalidated; entries it did not invalidate are kept unverified, their tags known or not, and served by nobody until Redis answers', async () => {
    proxy = await startTcpProxy(ctx.redis.port);
    const a = await ctx.open({ redis: proxy.url, l1: { maxEntries: 100, ttl: '1h' }, ttl: '1h' });
    const b = await ctx.open();
    a.on('error', () => undefined);
    // Never invalidated, not read again: its tags go out of A's map with the others'. Made before
    // the invalidation (its counters older than product:7's bump).
    await a.set('cold', 'COLD', { tags: ['shelf:3'] });
    await a.set('price', 'OLD-PRICE', { tags: ['product:7'] });
    assert.equal(await a.get('price'), 'OLD-PRICE');
    assert.equal((await a.invalidateTags(['product:7'])).delivered, true);

    // Other instances invalidate, and A learns every tag over the bus: more than its map keeps.
    const learned: string[] = [];
    a.on('invalidate', (e: { tags?: readonly string[] }) => learned.push(...(e.tags ?? [])));
    await b.invalidateTags(Array.from({ length: OTHER_TAGS }, (_, i) => `product:${1000 + i}`));
    await eventually(() => learned.length >= OTHER_TAGS, 'A heard the other invalidations', 10_000);
    // Set after: its tag is among those A's map holds now.
    await a.set('stock', 12, { tags: ['warehouse:1'] });

    proxy.cut('refuse');
    await eventually(() => a.health().l2 === 'down', 'A sees Redis down', 5_000);
    await eventually(() => !a.store.versions.trusted, "A's bus is down", 5_000);
    const kept = async (key: string) => (await a.store.get(a.dataKey(key)))?.unverified === true;
    assert.equal(await kept('price'), false, 'A kept as a stand-in the value it invalidated');
    assert.equal(await kept('stock'), true, 'an entry whose tags A still knows was dropped while Redis is down');
    // Other instances' invalidations that A let go say nothing about A's own entries (an outage costs no more than it must).
    assert.equal(await kept('cold'), true, 'an entry nobody invalidated was dropped while Redis is down');
    for (const key of ['price', 'stock', 'cold']) assert.equal(await a.get(key), undefined, `A's get() served ${key}, which Redis could not vouch for`);

    proxy.heal();
    await eventually(() => a.health().bus === 'ok', "A's bus is back", 8_000);
    assert.equal(await a.get('price'), undefined, 'A served the value it invalidated once Redis was back');
    assert.equal(await a.get('stock'), 12);
    assert.equal(await a.get('cold'), 'COLD');
  });
});
