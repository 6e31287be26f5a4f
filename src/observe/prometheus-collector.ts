// tiercache's Prometheus series, registered with the user's prom-client
// registry. Outcomes with a route (requests, stores, fill times,
// invalidations) are counted from the cache's events; tier state and totals
// the cache keeps itself (L1 size, L2 errors, bus traffic) are read from
// stats() at scrape time. Names are fixed by DESIGN.md so dashboards can rely
// on them; `route` is the bounded label of the events, never a raw URL.
import { Counter, Gauge, Histogram, register as defaultRegistry, type Registry } from 'prom-client';
import type { TierCache } from '../cache/tier-cache.js';
import { TierCacheConfigError } from '../errors.js';
import type { BypassEvent, HitEvent, InvalidateEvent, MissEvent, StoreEvent } from './events.js';
import type { CacheStats } from './stats.js';

export interface PrometheusCollectorOptions {
  /** The registry to register with. @default prom-client's global `register` */
  registry?: Registry | undefined;
  /** Put before every series name. @default 'tiercache_' */
  prefix?: string | undefined;
  /** Buckets of `fill_duration_seconds`, in seconds. @default prom-client's defaults (5 ms to 10 s) */
  fillBuckets?: readonly number[] | undefined;
}

export interface PrometheusCollector {
  /** The series' names, prefix included. */
  readonly names: readonly string[];
  /** Stops listening to the cache and removes the series from the registry. */
  stop(): void;
}

const KNOWN = new Set(['registry', 'prefix', 'fillBuckets']);
/** Every series the collector registers, without the prefix. */
const SERIES = ['requests_total', 'stores_total', 'fill_duration_seconds', 'invalidations_total', 'bus_messages_total', 'l1_entries', 'l1_bytes', 'l1_max_bytes', 'l1_evictions_total', 'l2_errors_total', 'l2_up', 'bus_gaps_total'] as const;
const PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * Registers tiercache's series with a prom-client registry:
 * `requests_total{route,result,tier}` (result hit, stale, miss, collapsed,
 * bypass; tier l1|l2 for hit and stale), `stores_total{tier}`,
 * `fill_duration_seconds{route}`, `l1_entries`, `l1_bytes`, `l1_max_bytes`,
 * `l1_evictions_total`, `l2_errors_total`, `l2_up`,
 * `bus_messages_total{direction}`, `bus_gaps_total`,
 * `invalidations_total{kind}` (made on this instance).
 * @example prometheusCollector(cache, { registry }); app.get('/metrics', async (_req, res) => res.type(registry.contentType).send(await registry.metrics()));
 * @throws TierCacheConfigError for an unknown option, a prefix Prometheus does not accept, or bad buckets.
 */
export function prometheusCollector(cache: TierCache, options?: PrometheusCollectorOptions): PrometheusCollector {
  if (cache === null || typeof cache !== 'object' || typeof (cache as TierCache).stats !== 'function' || typeof (cache as TierCache).on !== 'function') {
    throw new TierCacheConfigError('prometheusCollector(cache)', cache, 'must be a cache made by createCache()');
  }
  const o = options ?? {};
  if (typeof o !== 'object' || o === null) throw new TierCacheConfigError('prometheusCollector options', o, 'must be an object');
  for (const key of Object.keys(o)) if (!KNOWN.has(key)) throw new TierCacheConfigError(key, (o as Record<string, unknown>)[key], `is not a known option (known: ${[...KNOWN].join(', ')})`);
  const prefix = o.prefix ?? 'tiercache_';
  if (typeof prefix !== 'string' || (prefix !== '' && !PREFIX.test(prefix))) throw new TierCacheConfigError('prefix', prefix, 'must be a Prometheus metric name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*)');
  // Sorted and finite: a repeated bound, or one at Infinity next to prom-client's own +Inf, writes a duplicate
  // series, and Prometheus then refuses the whole scrape (the app's own metrics with it).
  if (o.fillBuckets !== undefined && (!Array.isArray(o.fillBuckets) || o.fillBuckets.length === 0 || o.fillBuckets.some((b, i, all) => typeof b !== 'number' || !(b > 0) || !Number.isFinite(b) || (i > 0 && !(b > all[i - 1]!))))) {
    throw new TierCacheConfigError('fillBuckets', o.fillBuckets, 'must be a non-empty array of finite positive numbers (seconds), each greater than the one before');
  }
  if (o.registry !== undefined && (typeof o.registry !== 'object' || o.registry === null || typeof (o.registry as { registerMetric?: unknown }).registerMetric !== 'function' || typeof (o.registry as { getSingleMetric?: unknown }).getSingleMetric !== 'function')) {
    throw new TierCacheConfigError('registry', o.registry, "must be a prom-client Registry (or left out for prom-client's global one)");
  }
  const registry = o.registry ?? defaultRegistry;
  const registers = [registry];
  // Checked before any is made: prom-client would throw a plain Error at the first name taken, leaving
  // the series made before it registered (a second cache on one registry, a series of the app's own).
  const taken = SERIES.map((name) => prefix + name).find((name) => registry.getSingleMetric(name) !== undefined);
  if (taken !== undefined) {
    throw new TierCacheConfigError('prefix', prefix, `must not name series the registry holds already (${taken}: another collector there, maybe for another cache? give each its own prefix or registry)`);
  }

  // One stats() read per scrape, shared by every series read from it.
  let snapshot: CacheStats | undefined;
  let snapshotAt = -1;
  const stats = (): CacheStats => {
    const now = Date.now();
    if (snapshot === undefined || now - snapshotAt > 50) {
      snapshot = cache.stats();
      snapshotAt = now;
    }
    return snapshot;
  };
  /** A counter whose total the cache keeps: raised by what it grew since the last scrape. */
  const totalOf = (name: string, help: string, read: (s: CacheStats) => number): Counter => {
    let last = 0;
    return new Counter({
      name: prefix + name,
      help,
      registers,
      collect() {
        const value = read(stats());
        if (value > last) this.inc(value - last);
        last = value;
      },
    });
  };
  const gaugeOf = (name: string, help: string, read: (s: CacheStats) => number): Gauge =>
    new Gauge({
      name: prefix + name,
      help,
      registers,
      collect() {
        this.set(read(stats()));
      },
    });

  const requests = new Counter({ name: `${prefix}requests_total`, help: 'Requests the cache answered or passed on, by route and result (hit, stale, miss, collapsed, bypass); tier for hit and stale', labelNames: ['route', 'result', 'tier'] as const, registers });
  const stores = new Counter({ name: `${prefix}stores_total`, help: 'Entries stored, by tier', labelNames: ['tier'] as const, registers });
  const fillSeconds = new Histogram({ name: `${prefix}fill_duration_seconds`, help: 'From the start of a fill to its store, by route', labelNames: ['route'] as const, registers, ...(o.fillBuckets === undefined ? {} : { buckets: [...o.fillBuckets] }) });
  const invalidations = new Counter({ name: `${prefix}invalidations_total`, help: 'Invalidations made on this instance, by kind (tags, user, prefix, key, clear)', labelNames: ['kind'] as const, registers });
  let lastSent = 0;
  let lastReceived = 0;
  const busMessages = new Counter({
    name: `${prefix}bus_messages_total`,
    help: 'Invalidation messages sent and received',
    labelNames: ['direction'] as const,
    registers,
    collect() {
      const { sent, received } = stats().bus;
      if (sent > lastSent) this.inc({ direction: 'sent' }, sent - lastSent);
      if (received > lastReceived) this.inc({ direction: 'received' }, received - lastReceived);
      lastSent = sent;
      lastReceived = received;
    },
  });
  busMessages.inc({ direction: 'sent' }, 0);
  busMessages.inc({ direction: 'received' }, 0);
  const read = [
    gaugeOf('l1_entries', 'Entries in L1', (s) => s.l1.entries),
    gaugeOf('l1_bytes', 'Bytes L1 holds', (s) => s.l1.bytes),
    gaugeOf('l1_max_bytes', 'The L1 byte bound (0 without L1)', (s) => s.l1.maxBytes),
    totalOf('l1_evictions_total', 'Entries evicted from L1 to keep its bounds', (s) => s.l1.evictions),
    totalOf('l2_errors_total', 'Redis commands that failed or timed out', (s) => s.l2.errors),
    gaugeOf('l2_up', '1 while Redis (L2) answers, else 0 (also without L2)', (s) => (s.l2.state === 'ok' ? 1 : 0)),
    totalOf('bus_gaps_total', "Gaps in another instance's invalidation messages (L1 flushed each time)", (s) => s.bus.gaps),
  ];

  const onHit = (e: HitEvent) => requests.inc({ route: e.route, result: e.stale ? 'stale' : 'hit', tier: e.tier === 'L1' ? 'l1' : 'l2' });
  const onMiss = (e: MissEvent) => requests.inc({ route: e.route, result: e.collapsed === true ? 'collapsed' : 'miss' });
  const onBypass = (e: BypassEvent) => requests.inc({ route: e.route, result: 'bypass' });
  const onStore = (e: StoreEvent) => {
    for (const tier of e.tiers) stores.inc({ tier: tier === 'L1' ? 'l1' : 'l2' });
    fillSeconds.observe({ route: e.route }, e.fillMs / 1000);
  };
  const onInvalidate = (e: InvalidateEvent) => {
    if (!e.remote) invalidations.inc({ kind: e.kind });
  };
  cache.on('hit', onHit);
  cache.on('miss', onMiss);
  cache.on('bypass', onBypass);
  cache.on('store', onStore);
  cache.on('invalidate', onInvalidate);

  const metrics = [requests, stores, fillSeconds, invalidations, busMessages, ...read];
  const names = metrics.map((m) => (m as unknown as { name: string }).name);
  return {
    names,
    stop() {
      cache.off('hit', onHit);
      cache.off('miss', onMiss);
      cache.off('bypass', onBypass);
      cache.off('store', onStore);
      cache.off('invalidate', onInvalidate);
      for (const name of names) registry.removeSingleMetric(name);
    },
  };
}
