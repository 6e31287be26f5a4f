// Why this test exists: "A Redis outage costs speed, never errors: requests
// are answered from L1 and then by the handler" (README). With Redis down the
// invalidation bus is down too, so local version state cannot vouch for an L1
// entry: the middleware sent every such request to the fill, whose lookup
// failed and counted as a miss, and the handler ran for every request, L1
// full of valid answers (0 of 3,000 served in a hostile review's run). The
// fill's failed lookup now lets the L1 entry stand where verify() does (as
// the data API's get() always did). Real redis-server behind a TCP proxy.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

describe('middleware: Redis down, L1 still answers', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'outage-l1', flush: true });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  it('answers what L1 holds (plain and Vary entries) from L1 once Redis and the bus are down, and counts L1 hits', async () => {
    proxy = await startTcpProxy(ctx.redis.port);
    const cache = await ctx.open({ redis: proxy.url, routes: { '/api': '1h' } });
    cache.on('error', () => undefined);
    let runs = 0;
    const app = express();
    app.use(expressCache(cache));
    app.get('/api/items/:id', (req, res) => void res.json({ id: req.params.id, run: ++runs }));
    app.get('/api/lang', (req, res) => void res.vary('Accept-Language').json({ lang: req.headers['accept-language'], run: ++runs }));
    const paths = ['/api/items/1', '/api/items/2', '/api/items/3'];
    for (const p of paths) await request(app).get(p);
    await request(app).get('/api/lang').set('accept-language', 'fr');
    const filled = runs;

    proxy.cut('refuse');
    await eventually(() => cache.health().l2 === 'down' && cache.health().bus !== 'ok', 'Redis and the bus seen down', 5_000);
    const before = cache.stats().l1;
    for (const p of paths) {
      const res = await request(app).get(p);
      assert.equal(res.headers['cache-status'], 'tiercache; hit; detail=L1', `${p} while Redis is down`);
    }
    const lang = await request(app).get('/api/lang').set('accept-language', 'fr');
    assert.equal(lang.headers['cache-status'], 'tiercache; hit; detail=L1', 'the Vary entry while Redis is down');
    assert.equal(lang.body.lang, 'fr');
    assert.equal(runs, filled, 'the handler ran for requests L1 could answer');
    const after = cache.stats().l1;
    assert.ok(after.hits - before.hits >= 4, `L1 hits counted: ${after.hits - before.hits}`);
    assert.equal(after.misses - before.misses, 0, 'an L1 answer counted as an L1 miss');
  });
});
