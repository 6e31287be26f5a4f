// stale-while-revalidate across instances: a stale L1 entry is checked when
// the request arrives, but served only after the fill's lookup in Redis comes
// back. An invalidation heard on the bus during that round trip must still
// count: the entry it covers is not served (DESIGN §4 (2)), stale or fresh;
// and a bus lost meanwhile leaves an L1 entry that only Redis could vouch for.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** Each way, on B's link: B's lookup takes two of these, the message one. */
const LINK_DELAY_MS = 200;

describe('stale-while-revalidate and an invalidation heard during the lookup', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'swrinv', defaults: { routes: { '/api/movies': { ttl: 300, staleWhileRevalidate: '1m' } } } });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  /**
   * A on Redis, B through a proxy; B's app serves /api/movies/9 (tag movie:9) from the version, and holds it
   * stale (filled, 400 ms old). Then B's link is slowed, B is asked again (its lookup is out), and A
   * invalidates the tag (the version moves to 2). Returns the pending reply and whether it came yet.
   */
  async function invalidatedDuringLookup() {
    let version = 1;
    proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 0, true);
    const a = await ctx.open({ l2: { commandTimeout: '3s' } });
    const b = await ctx.open({ redis: proxy.url, l2: { commandTimeout: '3s' } });
    b.on('error', () => undefined);
    const app = express();
    app.use(expressCache(b, { tags: () => ['movie:9'] }));
    app.get('/api/movies/9', (_req, res) => void res.type('text/plain').send(`v=${version}`));
    const get = async () => {
      const res = await request(app).get('/api/movies/9');
      return { body: res.text, cacheStatus: String(res.headers['cache-status']) };
    };
    assert.equal((await get()).body, 'v=1');
    assert.match((await get()).cacheStatus, /hit; detail=L1/);
    await sleep(400); // past the TTL: stale, within stale-while-revalidate
    proxy.setDelay(LINK_DELAY_MS);
    const heard = b.bus!.received;
    let settled = false;
    const reply = get().finally(() => (settled = true));
    await sleep(10);
    version = 2;
    assert.deepEqual(await a.invalidateTags(['movie:9']), { delivered: true });
    return { b, proxy, reply, settled: () => settled, heard: () => b.bus!.received !== heard };
  }

  it('a stale entry whose tag another instance invalidates while the lookup is out is not served: the handler answers', async () => {
    const { reply, settled, heard } = await invalidatedDuringLookup();
    while (!heard()) await sleep(1);
    assert.equal(settled(), false, 'the request was answered before B heard the invalidation: this test proves nothing');
    const { body, cacheStatus } = await reply;
    assert.equal(body, 'v=2', `B served the entry invalidated during its lookup (${cacheStatus})`);
  });

  it('a stale L1 entry is not served once the lookup finds Redis cut off: an invalidation made meanwhile, whose message the cut lost, is not served', async () => {
    const { b, proxy, reply, settled, heard } = await invalidatedDuringLookup();
    // The message is still held on B's link: the cut drops it, and the lookup with it.
    proxy.cut();
    assert.equal(heard() || settled(), false, 'B heard the invalidation or answered before the cut: this test proves nothing');
    const { body, cacheStatus } = await reply;
    assert.equal(body, 'v=2', `B served an L1 entry it could not check, cut off from Redis (${cacheStatus}; bus ${b.health().bus})`);
  });
});
