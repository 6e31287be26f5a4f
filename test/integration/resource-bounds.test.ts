// Why this test exists: what a client, a bulk invalidation or a stranger on
// the bus can make a process keep, beyond l1.maxBytes and the other bounds
// (found by a hostile review, helper-76):
// - the middleware kept every path's tags built (1,024 paths): a client's
//   13 KB URLs held ~80 KB of tags each, 80 MB with 4 MiB of L1;
// - the status page kept every tag of the last 50 invalidations and sent them
//   in every feed poll (50 x 45,000 tags: 144 MB, an 80 MB feed);
// - the bus kept the last sequence number of up to 1,000 senders, whatever
//   their ids' length (1,000 ids of 200,000 characters: 191 MB);
// - while Redis was down, every invalidation call left a ticket in the
//   queue's backlog, copied at each collapse (400,000 calls: 403,000 tickets,
//   each call slower than the last).
// Heap figures after a full GC, with margins far from both sides.
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import express from 'express';
import request from 'supertest';
import { createCache } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { statusPage, type StatusFeed } from '../../src/status.js';
import { useCleanup, useRedisCaches } from '../support/cache-context.js';
import { eventually } from '../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const MB = 1024 * 1024;

/** Heap in use after a full GC (twice: weak references let go on the second). */
function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

let counter = 0;

describe('resource bounds against hostile inputs', function () {
  this.timeout(60_000);

  describe('without Redis', () => {
    const cleanup = useCleanup();

    it('long request paths: the heap holds about what L1 holds, not every path\'s tags', async () => {
      const cache = cleanup.track(createCache({ namespace: `bounds-${process.pid}-${++counter}`, redis: false, routes: { '/api': '5m' }, l1: { maxBytes: 1 * MB } }));
      const app = express();
      app.use(expressCache(cache));
      app.get(/^\/api\//, (_req, res) => void res.send('x'));
      const segment = (i: number, s: number) => `${s}-${i}-`.padEnd(1_900, 'a');
      const before = heapAfterGc();
      for (let i = 0; i < 300; i++) {
        const path = '/api/' + Array.from({ length: 7 }, (_, s) => segment(i, s)).join('/');
        assert.equal((await request(app).get(path)).status, 200);
      }
      const grown = (heapAfterGc() - before) / MB;
      // 300 paths' tags were ~24 MB; L1 holds at most 1 MiB of entries (with their tags and keys).
      assert.ok(grown < 8, `the heap grew ${grown.toFixed(1)} MB over 300 requests with 13 KB paths`);
    });

    // (helper-108, session 30) `app.use((req, res, next) => expressCache(cache, { ttl: ttlFor(req) })(req, res, next))`:
    // the cache kept every middleware built, for close() to wait on its fills, for as long as the cache lived.
    it('middleware built per request is not kept by the cache once its requests are done', async () => {
      const cache = cleanup.track(createCache({ namespace: `bounds-${process.pid}-${++counter}`, redis: false, routes: { '/api': '5m' } }));
      const app = express();
      app.use((req, res, next) => void expressCache(cache, { ttl: '1m' })(req, res, next));
      app.get('/api/doc', (_req, res) => void res.send('doc'));
      assert.equal((await request(app).get('/api/doc')).headers['cache-status'], 'tiercache; fwd=miss; stored');
      const before = heapAfterGc();
      // As many builds as requests would make, without the sockets: the middleware is what is kept.
      const t0 = performance.now();
      for (let i = 0; i < 20_000; i++) expressCache(cache, { ttl: '1m' });
      const took = performance.now() - t0;
      // A weak reference keeps its target for the rest of the turn that made it.
      await new Promise((resolve) => setImmediate(resolve));
      const grown = (heapAfterGc() - before) / MB;
      assert.ok(grown < 4, `the heap grew ${grown.toFixed(1)} MB over 20,000 middleware built and dropped`);
      // The references to collected middleware go too, as later builds sweep them.
      const sources = (cache as unknown as { fillSources: Set<unknown> }).fillSources;
      const t1 = performance.now();
      for (let i = 0; i < 20_000; i++) expressCache(cache, { ttl: '1m' });
      const tookAgain = performance.now() - t1;
      assert.ok(sources.size <= 25_000, `${sources.size} references kept after 40,000 builds, 20,000 of them collected`);
      // Each build costs a constant share of a sweep: about 1 s for the 40,000 on a loaded machine, 50 s and more
      // when every build swept the whole set.
      assert.ok(took + tookAgain < 10_000, `40,000 builds took ${Math.round(took + tookAgain)} ms`);
      assert.equal((await request(app).get('/api/doc')).headers['cache-status'], 'tiercache; hit; detail=L1');
    });

    it('the status page keeps 20 tags of an invalidation (each cut to 200 characters) and counts the rest', async () => {
      const cache = cleanup.track(createCache({ namespace: `bounds-${process.pid}-${++counter}`, redis: false }));
      const page = statusPage(cache);
      const tags = Array.from({ length: 5_000 }, (_, i) => `movie:${i}`);
      for (let i = 0; i < 3; i++) await cache.invalidateTags(tags);
      await cache.invalidateTags(['x'.repeat(10_000)]);
      await cache.invalidateTags(['e'.repeat(199) + '😀'.repeat(10)]);
      const res = await request(page).get('/?feed=1');
      const feed = res.body as StatusFeed;
      const bulk = feed.invalidations.filter((row) => row.moreTags !== undefined);
      assert.equal(bulk.length, 3);
      for (const row of bulk) {
        assert.deepEqual(row.tags, tags.slice(0, 20));
        assert.equal(row.moreTags, 4_980);
      }
      const long = feed.invalidations.find((row) => row.tags[0]!.startsWith('x'));
      assert.equal(long?.tags[0], 'x'.repeat(200) + '…');
      // Cut before an emoji whose halves the 200th character would split: no lone surrogate on the page.
      const emoji = feed.invalidations.find((row) => row.tags[0]!.startsWith('e'));
      assert.equal(emoji?.tags[0], 'e'.repeat(199) + '…');
      assert.ok(res.text.length < 50_000, `the feed is ${res.text.length} characters`);
    });
  });

  describe('with Redis', () => {
    const ctx = useRedisCaches({ prefix: 'bounds', flush: true });
    let proxy: TcpProxy | undefined;
    afterEach(async () => {
      await proxy?.close();
      proxy = undefined;
    });

    it('bus messages from senders with huge ids are dropped, not remembered', async () => {
      const cache = await ctx.open();
      const heard: unknown[] = [];
      cache.on('invalidate', (e) => heard.push(e));
      const before = heapAfterGc();
      for (let i = 0; i < 300; i++) {
        await ctx.admin.publish(`{${ctx.ns}}:bus`, JSON.stringify({ i: `${i}-`.padEnd(100_000, 'z'), s: 1, t: [[`movie:${i}`, 1]] }));
      }
      // A message from a sender with a well-formed id after them: the bus is still listening.
      await ctx.admin.publish(`{${ctx.ns}}:bus`, JSON.stringify({ i: '00000000-0000-4000-8000-000000000000', s: 1, t: [['movie:last', 1]] }));
      await eventually(() => heard.length > 0, 'the last message heard', 5_000);
      const grown = (heapAfterGc() - before) / MB;
      // 300 ids of 100,000 characters kept: ~30 MB.
      assert.ok(grown < 8, `the heap grew ${grown.toFixed(1)} MB over 300 messages with 100,000-character sender ids`);
      assert.equal(heard.length, 1, `only the well-formed sender's message is taken: ${heard.length}`);
    });

    it('while Redis is down, calls that return at once leave no ticket behind in the collapsed backlog, and are counted in the replay', async () => {
      proxy = await startTcpProxy(ctx.redis.port);
      const infos: string[] = [];
      const logger = { debug: () => undefined, warn: () => undefined, error: () => undefined, info: (_: object, msg?: string) => void infos.push(String(msg)) };
      const cache = await ctx.open({ redis: proxy.url, logger });
      cache.on('error', () => undefined);
      proxy.cut('refuse');
      await eventually(() => cache.health().l2 === 'down', 'Redis seen down', 5_000);
      for (let i = 0; i < 5_000; i++) await cache.invalidateTags([`t:${i}`]);
      const queue = (cache as unknown as { queue: { items: Array<{ tickets: unknown[] }> } }).queue;
      const tickets = queue.items.reduce((n, item) => n + item.tickets.length, 0);
      assert.ok(tickets <= queue.items.length + 2, `${tickets} tickets in ${queue.items.length} queued items after 5,000 calls`);
      proxy.heal();
      const replayed = (line: string) => /queued while Redis was unreachable were delivered/.test(line);
      await eventually(() => infos.some(replayed), 'the replay logged', 10_000);
      assert.deepEqual(infos.filter(replayed), ['tiercache: 5000 invalidation(s) queued while Redis was unreachable were delivered']);
    });
  });
});
