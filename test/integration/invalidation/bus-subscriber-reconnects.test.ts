// Why this test exists: the bus subscribes on a connection of its own, with a
// reconnect schedule of its own (50 ms after the first failure, 50 ms more
// after each next one, at most a second apart). Until it is subscribed again
// the instance distrusts its L1 (every hit asks Redis), so a dropped
// connection should come back at once; and while Redis refuses connections it
// should back off, not reconnect in a tight loop. Neither was tested: a bus
// that waited a second before every reconnect, or one that retried with no
// delay at all, passed every other test. Real redis-server behind a TCP proxy
// (test/support/tcp-proxy.ts) that drops, then refuses, the connections.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

/** A "does not hang" bound. */
const BOUND_MS = 5000;
/** The bus back after a dropped connection: its first reconnect is due after 50 ms (a second would be too late). */
const BACK_WITHIN_MS = 700;
/** How long Redis refuses connections in the back-off test. */
const REFUSED_MS = 1000;
/**
 * Connection attempts allowed meanwhile, the cache's data connection's
 * included (both wait 50, 100, 150... ms: about six each in a second).
 */
const MAX_ATTEMPTS = 40;

describe("the invalidation bus's own connection: quick reconnects, with back-off (standalone Redis)", function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'bsr', flush: true });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  it('a dropped connection is subscribed again within a few hundred ms', async () => {
    proxy = await startTcpProxy(ctx.redis.port);
    const cache = await ctx.open({ redis: proxy.url });
    cache.on('error', () => undefined);
    const states: string[] = [];
    cache.on('bus', (e: { state: string }) => states.push(e.state));
    assert.equal(cache.health().bus, 'ok', 'the premise: the bus is subscribed');

    const cut = performance.now();
    proxy.cut('refuse');
    proxy.heal();
    await eventually(() => states.includes('down'), 'the bus notices the dropped connection', BOUND_MS);
    await eventually(() => states.includes('up'), 'the bus subscribes again', BOUND_MS);
    const took = performance.now() - cut;
    assert.ok(took < BACK_WITHIN_MS, `the bus was subscribed again only ${Math.round(took)} ms after its connection dropped`);
    assert.equal(cache.health().bus, 'ok');
  });

  it('while Redis refuses connections it backs off (a handful of attempts a second), and comes back once it accepts them', async () => {
    proxy = await startTcpProxy(ctx.redis.port);
    const cache = await ctx.open({ redis: proxy.url });
    cache.on('error', () => undefined);
    assert.equal(cache.health().bus, 'ok', 'the premise: the bus is subscribed');

    const before = proxy.attempts;
    proxy.cut('refuse');
    await new Promise((resolve) => setTimeout(resolve, REFUSED_MS));
    const attempts = proxy.attempts - before;
    proxy.heal();
    assert.equal(cache.health().bus, 'reconnecting', 'the premise: the bus lost its connection');
    assert.ok(attempts >= 1, 'the premise: the clients tried to reconnect');
    assert.ok(attempts <= MAX_ATTEMPTS, `${attempts} connection attempts in ${REFUSED_MS} ms: no back-off`);
    await eventually(() => cache.health().bus === 'ok', 'the bus subscribes again once Redis accepts connections', BOUND_MS);
  });
});
