// tiercache/prometheus: a real prom-client registry scraped as text after a
// known sequence of hits (L1 and L2), misses, a collapsed wait, a bypass, a
// stale serve and its refresh, and invalidations here and on another
// instance; every series DESIGN.md names is checked, with its count.
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { prometheusCollector } from '../../../src/prometheus.js';
import { TierCacheConfigError } from '../../../src/errors.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { adapters, buildApp, type AppSpec } from '../middleware/apps.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** The samples of Prometheus text exposition format. */
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the one sample with exactly these labels (0 when there is none). */
function valueOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  const want = JSON.stringify(Object.entries(labels).sort());
  const found = samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want);
  assert.ok(found.length <= 1, `${name} ${want} appears ${found.length} times`);
  return found[0]?.value ?? 0;
}

const SPEC: AppSpec = {
  appLevel: true,
  routes: [
    { path: '/api/a', handler: (io) => io.send('a') },
    { path: '/api/b', handler: (io) => io.send('b') },
    { path: '/p/:id', mw: { ttl: '1m' }, handler: (io) => io.send(`p${io.params['id']}`) },
    { path: '/old', handler: (io) => io.send('old') },
    { path: '/slow', mw: { ttl: '1m' }, handler: async (io) => (await sleep(150), io.send('slow')) },
  ],
};

describe('tiercache/prometheus', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'prom' });
  const routes = { '/api': '1m', '/old': { ttl: 40, staleWhileRevalidate: '1m' } } as const;

  for (const adapter of adapters.filter((a) => a.name === 'express5' || a.name === 'koa3')) {
    it(`${adapter.name}: every series counts exactly what happened, with bounded route labels`, async () => {
      const a = await ctx.open({ routes, l1: { maxEntries: 4, maxBytes: 1_000_000 } });
      const b = await ctx.open({ routes });
      const registry = new Registry();
      const collector = prometheusCollector(a, { registry });
      const appA = buildApp(adapter, a, SPEC);
      const appB = buildApp(adapter, b, SPEC);
      const server = await ctx.serve(appA.target);

      for (let i = 0; i < 3; i++) await request(server).get('/api/a'); // miss, hit, hit
      await request(appB.target).get('/api/b'); // B fills L2 ...
      await request(server).get('/api/b'); // ... A hits it there
      await request(server).get('/p/1'); // miss (route pattern)
      await request(server).get('/p/1'); // hit
      await request(server).get('/api/a').set('Authorization', 'Bearer t'); // bypass
      await request(server).get('/old'); // miss
      await sleep(80);
      await request(server).get('/old'); // stale, refreshed in the background
      await Promise.all([request(server).get('/slow'), sleep(30).then(() => request(server).get('/slow'))]); // miss, collapsed
      for (let i = 0; i < 100 && a.stats().fills < 5; i++) await sleep(20);
      assert.equal(a.stats().fills, 5, '/api/a, /p/1, /old, its refresh, /slow');

      await a.invalidateTags(['t']);
      await a.invalidateUser(1);
      await a.invalidatePrefix('/nothing');
      await a.clear();
      await b.invalidateTags(['from-b']);
      for (let i = 0; i < 100 && a.stats().bus.received < 1; i++) await sleep(20);

      const samples = parse(await registry.metrics());
      const stats = a.stats();
      const requests = (labels: Record<string, string>) => valueOf(samples, 'tiercache_requests_total', labels);
      assert.deepEqual(
        {
          apiMiss: requests({ route: '/api', result: 'miss' }),
          apiHitL1: requests({ route: '/api', result: 'hit', tier: 'l1' }),
          apiHitL2: requests({ route: '/api', result: 'hit', tier: 'l2' }),
          apiBypass: requests({ route: '/api', result: 'bypass' }),
          patternMiss: requests({ route: '/p/:id', result: 'miss' }),
          patternHit: requests({ route: '/p/:id', result: 'hit', tier: 'l1' }),
          oldMiss: requests({ route: '/old', result: 'miss' }),
          // A stale L1 entry is looked up in L2 first (it may have been refreshed there): served from L2.
          oldStale: requests({ route: '/old', result: 'stale', tier: 'l2' }),
          slowMiss: requests({ route: '/slow', result: 'miss' }),
          slowCollapsed: requests({ route: '/slow', result: 'collapsed' }),
        },
        { apiMiss: 1, apiHitL1: 2, apiHitL2: 1, apiBypass: 1, patternMiss: 1, patternHit: 1, oldMiss: 1, oldStale: 1, slowMiss: 1, slowCollapsed: 1 },
      );
      const requestSamples = samples.filter((s) => s.name === 'tiercache_requests_total');
      assert.equal(requestSamples.reduce((sum, s) => sum + s.value, 0), 11, 'no other requests were counted');
      assert.deepEqual([...new Set(requestSamples.map((s) => s.labels['route']))].sort(), ['/api', '/old', '/p/:id', '/slow'], 'route labels are table prefixes and route patterns, never raw paths');

      assert.equal(valueOf(samples, 'tiercache_stores_total', { tier: 'l1' }), 5);
      assert.equal(valueOf(samples, 'tiercache_stores_total', { tier: 'l2' }), 5);
      for (const [route, count] of [['/api', 1], ['/p/:id', 1], ['/old', 2], ['/slow', 1]] as const) {
        assert.equal(valueOf(samples, 'tiercache_fill_duration_seconds_count', { route }), count, `fills of ${route}`);
        assert.equal(valueOf(samples, 'tiercache_fill_duration_seconds_bucket', { route, le: '+Inf' }), count);
      }
      const slowSum = valueOf(samples, 'tiercache_fill_duration_seconds_sum', { route: '/slow' });
      assert.ok(slowSum >= 0.14 && slowSum < 5, `the /slow fill took its handler's 150 ms: ${slowSum} s`);

      assert.equal(valueOf(samples, 'tiercache_l1_entries'), stats.l1.entries);
      assert.equal(valueOf(samples, 'tiercache_l1_bytes'), stats.l1.bytes);
      assert.equal(valueOf(samples, 'tiercache_l1_max_bytes'), 1_000_000);
      assert.ok(stats.l1.evictions > 0, 'maxEntries 4 evicted some');
      assert.equal(valueOf(samples, 'tiercache_l1_evictions_total'), stats.l1.evictions);
      assert.equal(valueOf(samples, 'tiercache_l2_errors_total'), 0);
      assert.equal(valueOf(samples, 'tiercache_l2_up'), 1);
      assert.equal(valueOf(samples, 'tiercache_bus_messages_total', { direction: 'sent' }), 4);
      assert.equal(valueOf(samples, 'tiercache_bus_messages_total', { direction: 'received' }), 1);
      assert.equal(valueOf(samples, 'tiercache_bus_gaps_total'), 0);
      for (const kind of ['tags', 'user', 'prefix', 'clear']) assert.equal(valueOf(samples, 'tiercache_invalidations_total', { kind }), 1, kind);
      assert.equal(samples.filter((s) => s.name === 'tiercache_invalidations_total').reduce((sum, s) => sum + s.value, 0), 4, "B's invalidation is not counted as A's");

      // A second scrape adds nothing by itself: totals read from stats() are not counted twice.
      const again = parse(await registry.metrics());
      assert.equal(valueOf(again, 'tiercache_bus_messages_total', { direction: 'sent' }), 4);
      assert.equal(valueOf(again, 'tiercache_l1_evictions_total'), a.stats().l1.evictions);

      collector.stop();
      assert.equal((await registry.metrics()).trim(), '', 'stop() removes every series');
      assert.equal(a.listenerCount('hit'), 0, 'stop() removes its listeners');
    });
  }

  it('uses the prefix given, and refuses options it does not know or a prefix Prometheus would not take', async () => {
    const cache: TierCache = await ctx.open();
    const registry = new Registry();
    const collector = prometheusCollector(cache, { registry, prefix: 'shop_cache_' });
    assert.ok(collector.names.every((n) => n.startsWith('shop_cache_')));
    assert.match(await registry.metrics(), /^# TYPE shop_cache_l2_up gauge$/m);
    collector.stop();
    assert.throws(() => prometheusCollector(cache, { registry, prefix: 'bad-prefix' }), (err: unknown) => err instanceof TierCacheConfigError && err.option === 'prefix');
    assert.throws(() => prometheusCollector(cache, { registry, buckets: [1] } as never), (err: unknown) => err instanceof TierCacheConfigError && err.option === 'buckets');
    assert.throws(() => prometheusCollector({} as TierCache), TierCacheConfigError);
    // Found by helper-70: a repeated bound or one at Infinity wrote a duplicate series (Prometheus refuses the whole
    // scrape), unsorted ones were written out of order, and a registry that is none failed inside prom-client.
    for (const fillBuckets of [[1, 1], [Infinity], [2, 1], [0.1, Number.NaN]]) {
      assert.throws(() => prometheusCollector(cache, { registry, fillBuckets }), (err: unknown) => err instanceof TierCacheConfigError && err.option === 'fillBuckets', JSON.stringify(fillBuckets));
    }
    for (const bad of [{}, 'x', null]) {
      assert.throws(() => prometheusCollector(cache, { registry: bad } as never), (err: unknown) => err instanceof TierCacheConfigError && err.option === 'registry', String(bad));
    }
    prometheusCollector(cache, { registry, fillBuckets: [0.01, 0.1, 1] }).stop();
  });

  it('refuses, with TierCacheConfigError naming prefix and registering nothing, a prefix whose series the registry holds already', async () => {
    const a: TierCache = await ctx.open();
    const b: TierCache = await ctx.open();
    const registry = new Registry();
    const first = prometheusCollector(a, { registry });
    const held = registry.getMetricsAsArray().length;
    assert.throws(() => prometheusCollector(b, { registry }), (err: unknown) => err instanceof TierCacheConfigError && err.option === 'prefix' && /tiercache_requests_total/.test(err.message));
    prometheusCollector(b, { registry, prefix: 'b_' });
    assert.equal(registry.getMetricsAsArray().length, 2 * held, 'the second cache under its own prefix has every series');
    // A series of the app's own under a name the collector uses: nothing of the collector is left behind.
    const own = new Registry();
    own.registerMetric(registry.getSingleMetric('tiercache_l1_entries')!);
    assert.throws(() => prometheusCollector(b, { registry: own }), (err: unknown) => err instanceof TierCacheConfigError && err.option === 'prefix');
    assert.deepEqual(own.getMetricsAsArray().map((m) => m.name), ['tiercache_l1_entries']);
    assert.equal(first.names.length, held, 'premise: the collector says which series it registered');
  });
});
