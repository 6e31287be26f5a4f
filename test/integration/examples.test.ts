// The examples start the way the README says (`npm run example:express`,
// `npm run example:koa`), print their port, and answer a repeat GET from L1.
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startExample, stopExample as stop, type StartedExample as Started } from '../support/example-process.js';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';

for (const script of ['example:express', 'example:koa']) {
  describe(`npm run ${script}`, function () {
    this.timeout(60_000);
    let started: Started | undefined;
    after(async () => {
      if (started) await stop(started.child);
    });

    it('starts without Redis and answers the second GET /api/movies from L1', async () => {
      started = await startExample(script);
      const first = await fetch(`${started.base}/api/movies`);
      assert.equal(first.status, 200);
      assert.equal(first.headers.get('cache-status'), 'tiercache; fwd=miss; stored');
      const body = await first.text();
      const second = await fetch(`${started.base}/api/movies`);
      assert.equal(second.headers.get('cache-status'), 'tiercache; hit; detail=L1');
      assert.equal(await second.text(), body);
    });

    it('mounts the status page at /_tiercache: the self-contained HTML and the JSON feed it polls, untouched by the cache', async () => {
      assert.ok(started, 'the example is running');
      const page = await fetch(`${started.base}/_tiercache`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
      assert.equal(page.headers.get('cache-status'), null);
      assert.match(await page.text(), /<canvas id="chart"/);
      const feed = (await (await fetch(`${started.base}/_tiercache?feed=1`)).json()) as { stats: { l1: { hits: number } }; routes: Array<{ route: string; hits: number }> };
      assert.ok(feed.stats.l1.hits >= 1, 'the hit of the test before is counted');
      assert.ok(feed.routes.some((r) => r.route === '/api/movies' && r.hits >= 1), JSON.stringify(feed.routes));
    });

    it('invalidates a user after a write: /api/me shows the new name at once', async () => {
      assert.ok(started, 'the example is running');
      const me = () => fetch(`${started!.base}/api/me`, { headers: { 'x-user': 'u2' } });
      await me();
      const cached = await me();
      assert.equal(cached.headers.get('cache-status'), 'tiercache; hit; detail=L1');
      const put = await fetch(`${started.base}/api/me`, {
        method: 'PUT',
        headers: { 'x-user': 'u2', 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'Grace H.' }),
      });
      assert.equal(put.status, 200);
      const after = await me();
      assert.equal(after.headers.get('cache-status'), 'tiercache; fwd=miss; stored');
      assert.equal(((await after.json()) as { name: string }).name, 'Grace H.');
    });

    it('invalidates a movie by tag after a write: /api/movies/2 and the list show the new title at once', async () => {
      assert.ok(started, 'the example is running');
      const movie = () => fetch(`${started!.base}/api/movies/2`);
      await movie();
      assert.equal((await movie()).headers.get('cache-status'), 'tiercache; hit; detail=L1');
      assert.equal((await fetch(`${started.base}/api/movies`)).headers.get('cache-status'), 'tiercache; hit; detail=L1');
      const put = await fetch(`${started.base}/api/movies/2`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ title: 'Shichinin no Samurai' }),
      });
      assert.equal(put.status, 200);
      const after = await movie();
      assert.equal(after.headers.get('cache-status'), 'tiercache; fwd=miss; stored');
      assert.equal(((await after.json()) as { title: string }).title, 'Shichinin no Samurai');
      const list = await fetch(`${started.base}/api/movies`);
      assert.equal(list.headers.get('cache-status'), 'tiercache; fwd=miss; stored');
      assert.ok(((await list.json()) as Array<{ title: string }>).some((m) => m.title === 'Shichinin no Samurai'));
    });
  });
}

describe('the examples with REDIS_URL', function () {
  this.timeout(60_000);
  let server: RedisServerHandle;
  const running: Started[] = [];
  before(async () => {
    server = await startRedisServer();
  });
  after(async () => {
    await Promise.all(running.map((s) => stop(s.child)));
    await server.stop();
  });

  it('use both tiers: a second process (Koa) answers from L2 what the first (Express) stored', async () => {
    const express = await startExample('example:express', server.url);
    running.push(express);
    const koa = await startExample('example:koa', server.url);
    running.push(koa);
    const first = await fetch(`${express.base}/api/movies`);
    assert.equal(first.headers.get('cache-status'), 'tiercache; fwd=miss; stored');
    const redis = new Redis(server.url);
    try {
      assert.ok((await redis.keys('example:GET:*')).length >= 1, 'the entry is in Redis');
    } finally {
      redis.disconnect();
    }
    const fromL2 = await fetch(`${koa.base}/api/movies`);
    assert.equal(fromL2.headers.get('cache-status'), 'tiercache; hit; detail=L2');
    assert.equal(await fromL2.text(), await first.text());
  });

  it('read TIERCACHE_REDIS_URL when REDIS_URL is not set', async () => {
    const koa = await startExample('example:koa', server.url, 'TIERCACHE_REDIS_URL');
    running.push(koa);
    const redis = new Redis(server.url);
    try {
      // A fill is stored in Redis (the first one after an instance meets a Redis may not be: asked again).
      let keys: string[] = [];
      for (let i = 0; i < 10 && !keys.some((k) => k.includes('/api/movies/3')); i++) {
        await (await fetch(`${koa.base}/api/movies/3`)).text();
        keys = await redis.keys('example:*');
      }
      assert.ok(keys.some((k) => k.includes('/api/movies/3')), `the entry is not in Redis: ${keys.join(', ')}`);
    } finally {
      redis.disconnect();
    }
  });
});
