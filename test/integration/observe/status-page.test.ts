// tiercache/status without a browser: the feed after a known sequence (its
// stats are stats(), its series and route table count what happened, user
// ids and keys hidden unless showKeys), and the page: self-contained (no URL
// to anywhere), with a CSP that forbids loading anything but its own feed.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache, type CacheOptions } from '../../../src/index.js';
import { TierCacheConfigError } from '../../../src/errors.js';
import { statusPage, type StatusFeed } from '../../../src/status.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp } from '../middleware/apps.js';

let counter = 0;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

describe('tiercache/status (HTTP)', function () {
  const cleanup = useCleanup();
  const open = (options: CacheOptions = {}) => cleanup.track(createCache({ namespace: `status-page${process.pid}-${++counter}`, redis: false, ...options }));

  for (const adapter of adapters.filter((a) => a.name === 'express5' || a.name === 'koa3')) {
    it(`${adapter.name}: the feed carries stats(), requests per second by result, the route table and the last invalidations`, async () => {
      const cache = open({ routes: { '/api': '1m', '/old': { ttl: 30, staleWhileRevalidate: '1m' } } });
      const page = statusPage(cache);
      const app = buildApp(adapter, cache, {
        appLevel: true,
        routes: [
          { path: '/api/a', handler: async (io) => (await sleep(20), io.send('a')) },
          { path: '/p/:id', mw: { ttl: '1m' }, handler: (io) => io.send('p') },
          { path: '/old', handler: (io) => io.send('old') },
        ],
      });
      for (let i = 0; i < 4; i++) await request(app.target).get('/api/a'); // 1 miss, 3 hits
      await request(app.target).get('/p/1');
      await request(app.target).get('/api/a').set('Cookie', 'a=1'); // bypass
      await request(app.target).get('/api/a').set('Authorization', 'Basic x'); // bypass
      await request(app.target).get('/old');
      await sleep(60);
      await request(app.target).get('/old'); // stale
      await cache.invalidateUser('u-42');
      await cache.invalidateKey('secret-key');
      await cache.invalidateTags(['movie:7']);

      const res = await request(page).get('/?feed=1');
      assert.equal(res.status, 200);
      assert.equal(res.headers['cache-control'], 'no-store');
      const feed = res.body as StatusFeed;
      assert.deepEqual(feed.stats, cache.stats());
      assert.equal(feed.series.counts.hit.length, 300);
      assert.deepEqual(
        Object.fromEntries(Object.entries(feed.series.counts).map(([result, values]) => [result, sum(values)])),
        { hit: 3, stale: 1, miss: 3, collapsed: 0, bypass: 2 },
      );
      const rows = Object.fromEntries(feed.routes.map((r) => [r.route, r]));
      assert.deepEqual(Object.keys(rows).sort(), ['/api', '/old', '/p/:id']);
      assert.deepEqual({ ...rows['/api']!, medianFillMs: null }, { route: '/api', hits: 3, misses: 1, stale: 0, collapsed: 0, bypasses: { cookie: 1, authorization: 1 }, hitRatio: 0.75, medianFillMs: null });
      assert.ok(rows['/api']!.medianFillMs! >= 15, `the /api/a handler takes 20 ms: ${rows['/api']!.medianFillMs}`);
      assert.deepEqual([rows['/old']!.stale, rows['/old']!.misses, rows['/old']!.hitRatio], [1, 1, 0.5]);
      assert.deepEqual(
        feed.invalidations.map((i) => [i.kind, i.tags, i.key]),
        [
          ['tags', ['movie:7'], undefined],
          ['key', ['key:…'], '…'],
          ['user', ['user:…'], undefined],
        ],
        'newest first; user ids and keys hidden',
      );
      assert.ok(!JSON.stringify(feed).includes('u-42') && !JSON.stringify(feed).includes('secret-key'));
      page.stop();
      assert.equal(cache.listenerCount('hit'), 0, 'stop() removes its listeners');
    });
  }

  it('shows user ids and keys with showKeys: true', async () => {
    const cache = open();
    const page = statusPage(cache, { showKeys: true });
    await cache.invalidateUser('u-42');
    await cache.invalidateKey('k-1');
    const feed = (await request(page).get('/_tiercache?feed')).body as StatusFeed;
    assert.deepEqual(
      feed.invalidations.map((i) => [i.kind, i.tags, i.key]),
      [
        ['key', ['key:k-1'], 'k-1'],
        ['user', ['user:u-42'], undefined],
      ],
    );
    page.stop();
  });

  it('serves one self-contained page: no URL to anywhere, a CSP that allows only its inline code and its own feed', async () => {
    const page = statusPage(open());
    const res = await request(page).get('/');
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'] ?? '', /^text\/html; charset=utf-8/);
    const csp = String(res.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /connect-src 'self'/);
    const html = res.text;
    assert.doesNotMatch(html, /(src|href)\s*=/i, 'loads no script, style, font or image');
    assert.doesNotMatch(html, /https?:\/\/|\/\/[a-z]/i, 'names no other origin');
    assert.doesNotMatch(html, /@import|url\(/i, 'no stylesheet imports or fetched backgrounds');
    assert.equal((await request(page).post('/')).status, 405);
    assert.equal((await request(page).head('/?feed')).status, 200);
    page.stop();
  });

  it('refuses an unknown option or a showKeys that is not a boolean', () => {
    const cache = open();
    assert.throws(() => statusPage(cache, { showkeys: true } as never), (err: unknown) => err instanceof TierCacheConfigError && err.option === 'showkeys');
    assert.throws(() => statusPage(cache, { showKeys: 'yes' } as never), (err: unknown) => err instanceof TierCacheConfigError && err.option === 'showKeys');
    assert.throws(() => statusPage({} as never), TierCacheConfigError);
  });
});
