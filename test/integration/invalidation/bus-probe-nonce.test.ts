// Why this test exists: a suspected bus (a Cluster node went away) trusts its
// subscription again only when the probe it is waiting for comes back. Each
// probe carries a fresh random nonce, so an older probe of its own (still on
// its way, or replayed) proves nothing about the subscription now. A bus whose
// probes all carried the same nonce passed every other test: here the bus's
// current probes never reach Redis (its user may not PUBLISH), and an older
// probe of its, published again, must not bring it back. Standalone Redis; the
// suspicion is driven through the bus as the Cluster events would.
import assert from 'node:assert/strict';
import type { TierCache } from '../../../src/index.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';

/** A "does not hang" bound. */
const BOUND_MS = 5000;
/** Probes sent before the bus subscribes again (and trusts that): the window this test must act in. */
const RESUBSCRIBE_EVERY = 10;

/** What this test reaches inside a cache's bus (private there). */
interface BusInternals {
  readonly instanceId: string;
  readonly channel: string;
  readonly received: number;
  readonly probes: number;
  readonly probe: number;
  readonly health: 'ok' | 'reconnecting';
  suspect(): void;
}

const busOf = (cache: TierCache) => cache.bus as unknown as BusInternals;
const trusted = (cache: TierCache) => (cache as unknown as { store: { versions: { trusted: boolean } } }).store.versions.trusted;

describe('the invalidation bus: probes are told apart by their nonce (standalone Redis)', function () {
  const ctx = useRedisCaches({ prefix: 'bpn', flush: true });

  it('an older probe of its own, heard while the bus waits for its current one, does not make it trust its subscription; the current one does', async () => {
    const user = `bpn-${ctx.ns}`;
    await ctx.admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all');
    const cache = await ctx.open({ redis: `redis://${user}:pw@127.0.0.1:${ctx.redis.port}` });
    cache.on('error', () => undefined);
    const bus = busOf(cache);

    // A first suspicion, with probes that do reach Redis: note the nonce of the one that came back.
    const watcher = ctx.admin.duplicate();
    try {
      const nonces: number[] = [];
      await watcher.subscribe(bus.channel);
      watcher.on('message', (_: string, payload: string) => {
        const m = JSON.parse(payload) as { i: string; h?: number };
        if (m.i === bus.instanceId && typeof m.h === 'number') nonces.push(m.h);
      });
      bus.suspect();
      await eventually(() => bus.health === 'ok', 'the first probe comes back', BOUND_MS);
      await eventually(() => nonces.length > 0, 'the watcher hears the first probe', BOUND_MS);
      const older = nonces[0]!;

      // From here the bus's probes are refused (its subscription stays up and hears everything else).
      await ctx.admin.call('ACL', 'SETUSER', user, '-publish');
      bus.suspect();
      assert.equal(bus.health, 'reconnecting');
      /** Publishes `payload` as another process would, then a marker from a sender of its own, and waits for the marker. */
      const deliver = async (payload: object) => {
        await ctx.admin.publish(bus.channel, JSON.stringify(payload));
        const received = bus.received;
        await ctx.admin.publish(bus.channel, JSON.stringify({ i: `marker-${Math.random()}`, s: 1 }));
        await eventually(() => bus.received > received, 'the marker arrives', BOUND_MS);
      };
      await deliver({ i: bus.instanceId, s: 0, h: older });
      assert.ok(bus.probes < RESUBSCRIBE_EVERY, `the premise: the bus has not subscribed again yet (${bus.probes} probes)`);
      assert.equal(bus.health, 'reconnecting', 'an older probe made the bus trust its subscription');
      assert.equal(trusted(cache), false);

      // The control: the probe it waits for, heard the same way, does (a probe is due every 100 ms: one
      // sent while this one was on its way replaces it, so try again, well before the bus subscribes again).
      for (let i = 0; i < 3 && (bus.health as string) !== 'ok'; i++) await deliver({ i: bus.instanceId, s: 0, h: bus.probe });
      assert.equal(bus.health, 'ok', 'the probe the bus waits for did not make it trust its subscription');
      assert.ok(bus.probes < RESUBSCRIBE_EVERY, `trusted only after subscribing again (${bus.probes} probes)`);
      assert.equal(trusted(cache), true);
    } finally {
      watcher.disconnect();
    }
  });
});
