// A script Redis does not know (SCRIPT FLUSH, say) costs two round trips:
// EVALSHA, answered NOSCRIPT, then EVAL. The caller still waits one command
// timeout in all. On a client that bounds each command by its own
// commandTimeout from its send (the one tiercache opens for a URL, since it no
// longer auto-pipelines), the EVAL got a whole timeout of its own: with a
// NOSCRIPT that came late and a Redis that then froze, a getOrSet() waited
// almost two timeouts. The bound is generous: it only tells one timeout from two.
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createCache } from '../../src/index.js';
import { useRedisCaches } from '../support/cache-context.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

const TIMEOUT_MS = 400;
/** How late the NOSCRIPT reply reaches the cache: most of its timeout. */
const NOSCRIPT_LATE_MS = 360;
/** Above one command timeout, well below two. */
const BOUND_MS = 600;

describe('a script Redis does not know (NOSCRIPT, then EVAL) costs its caller one command timeout at most', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'noscript-bound' });
  let relay: Server | undefined;
  let proxy: TcpProxy | undefined;
  const sockets = new Set<Socket>();

  afterEach(async () => {
    ctx.redis.thaw();
    for (const s of sockets) s.destroy();
    sockets.clear();
    if (relay !== undefined) await new Promise<void>((resolve) => relay!.close(() => resolve()));
    relay = undefined;
    await proxy?.close();
    proxy = undefined;
  });

  /** A server between the cache and Redis that hands every NOSCRIPT reply on NOSCRIPT_LATE_MS late, freezing Redis as it sends the first. */
  async function freezingAfterNoscript(): Promise<string> {
    let frozen = false;
    relay = createServer((downstream) => {
      const upstream = connect(ctx.redis.port, '127.0.0.1');
      for (const s of [downstream, upstream]) {
        sockets.add(s);
        s.on('error', () => undefined);
      }
      downstream.pipe(upstream);
      upstream.on('data', (d: Buffer) => {
        if (!d.includes('NOSCRIPT')) return void downstream.write(d);
        if (!frozen) ctx.redis.freeze();
        frozen = true;
        setTimeout(() => downstream.write(d), NOSCRIPT_LATE_MS);
      });
      upstream.on('close', () => downstream.destroy());
      downstream.on('close', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => relay!.listen(0, '127.0.0.1', resolve));
    return `redis://127.0.0.1:${(relay.address() as AddressInfo).port}`;
  }

  it('getOrSet() on a Redis that answers NOSCRIPT late and then freezes: one timeout, and the loader value', async () => {
    const cache = ctx.track(createCache({ namespace: ctx.ns, redis: await freezingAfterNoscript(), l2: { commandTimeout: TIMEOUT_MS } }));
    cache.on('error', () => undefined);
    await cache.ready();
    await ctx.admin.script('FLUSH');
    const start = performance.now();
    assert.equal(await cache.getOrSet('k', async () => 'loaded'), 'loaded');
    const took = performance.now() - start;
    assert.ok(took < BOUND_MS, `getOrSet() waited ${Math.round(took)} ms on Redis (command timeout ${TIMEOUT_MS} ms)`);
  });

  it('on a Redis that answers, the EVAL gets what the EVALSHA left of the timeout, not less: the fill is stored', async () => {
    // 10 ms each way: every round trip takes 20 ms, far within the timeout, far past a millisecond.
    proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 10);
    const cache = ctx.track(createCache({ namespace: ctx.ns, redis: proxy.url, l2: { commandTimeout: 2_000 } }));
    const errors: string[] = [];
    cache.on('error', (e) => errors.push(`${e.where}: ${e.err.message}`));
    await cache.ready();
    await ctx.admin.script('FLUSH');
    assert.equal(await cache.getOrSet('k', async () => 'loaded'), 'loaded');
    assert.deepEqual(errors, []);
    const other = await ctx.open();
    assert.equal(await other.get('k'), 'loaded', 'the entry reached Redis through the EVAL');
  });
});
