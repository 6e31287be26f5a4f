import assert from 'node:assert/strict';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

describe('h170 probe: slow tag reads', function () {
  this.timeout(40_000);
  const ctx = useRedisCaches({ prefix: 'h170p', flush: true });
  let proxy: TcpProxy | undefined;
  afterEach(async () => { await proxy?.close(); proxy = undefined; });

  it('B heard the invalidation, its map let the tag go, Redis slow: does B serve?', async () => {
    proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 0, true);
    const a = await ctx.open({ l2: { commandTimeout: '3s' } });
    const b = await ctx.open({ redis: proxy.url, l1: { maxEntries: 100, ttl: '1h' }, ttl: '1h', l2: { commandTimeout: 300 } });
    b.on('error', () => undefined);
    await a.set('price', 'OLD', { tags: ['product:7'] });
    assert.equal(await b.get('price'), 'OLD');
    const learned: string[] = [];
    b.on('invalidate', (e: { tags?: readonly string[] }) => learned.push(...(e.tags ?? [])));
    await a.invalidateTags(['product:7']);
    await eventually(() => learned.includes('product:7'), 'B heard', 5000);
    await a.invalidateTags(Array.from({ length: 12_000 }, (_, i) => `product:${1000 + i}`));
    await eventually(() => learned.length >= 12_001, 'B heard all', 10_000);
    proxy.setDelay(1000);
    const t0 = performance.now();
    const got = await b.get('price');
    console.log('B.get ->', got, Math.round(performance.now() - t0), 'ms', b.health());
    proxy.setDelay(0);
  });

  it('bus down (cut) then Redis slow after heal-before-bus: baseline', async () => {
    proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 0, true);
    const a = await ctx.open({ l2: { commandTimeout: '3s' } });
    const b = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 300 } });
    b.on('error', () => undefined);
    await a.set('price', 'OLD', { tags: ['product:7'] });
    assert.equal(await b.get('price'), 'OLD');
    proxy.setDelay(1000);
    await a.invalidateTags(['product:7']);
    const t0 = performance.now();
    const got = await b.get('price');
    console.log('B.get (message delayed) ->', got, Math.round(performance.now() - t0), 'ms', b.health());
    proxy.setDelay(0);
  });
});
