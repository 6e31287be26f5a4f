// Koa: a hit goes out when Koa would send an answer, after the middleware in
// front of the cache have run what follows their `await next()` (found by
// helper-68: a hit written at once, koa-session's renewed cookie came too late,
// Koa reported ERR_HTTP_HEADERS_SENT, and the user was logged out when the
// old cookie ran out). Headers they add reach the hit; the stored status and
// bytes are what goes out; an error they throw is the answer, as without the cache,
// and that hit, never written, is counted as no hit (it was: the 'hit' event,
// Prometheus, the status page and stats().stale said the cache answered).
import assert from 'node:assert/strict';
import { ServerResponse } from 'node:http';
import Koa from 'koa';
import { Registry } from 'prom-client';
import request from 'supertest';
import { createCache, type CacheOptions } from '../../../src/index.js';
import { koaCache } from '../../../src/koa.js';
import { prometheusCollector } from '../../../src/prometheus.js';
import { statusPage, type StatusFeed } from '../../../src/status.js';
import { useCleanup, useRedisCaches } from '../../support/cache-context.js';
import { onWriteHead } from '../../support/head-hook.js';
import { Koa2 } from './apps.js';
import { wireRequest } from '../../support/http-wire.js';

let counter = 0;

/** A serializer in front of the cache that answers by itself: ctx.body (undefined on a hit) as JSON, on ctx.res. */
function serializeBody(ctx: Koa.Context): void {
  ctx.res.statusCode = ctx.status;
  ctx.res.end(JSON.stringify({ ok: true, data: ctx.body ?? null }));
}

/** What node emits at a response written after its end comes on a later tick: it fails the test waiting here, if it comes. */
const laterTick = () => new Promise((resolve) => setImmediate(resolve));

describe('middleware: Koa hits and the middleware in front of the cache', () => {
  const cleanup = useCleanup();
  const redisCaches = useRedisCaches({ prefix: 'koa-upstream-l2' });

  for (const [name, Framework] of [
    ['koa3', Koa],
    ['koa2', Koa2],
  ] as const) {
    describe(name, () => {
      /** `frozen`: app.context is frozen, so Koa's read of ctx.respond cannot be heard (hits are written at once); or has a respond of its own. */
      function build(front: Koa.Middleware, options: CacheOptions = {}, cache = cleanup.track(createCache({ namespace: `koa-upstream${process.pid}-${++counter}`, redis: false, ...options })), frozen: boolean | 'own respond' = false) {
        const app = new (Framework as typeof Koa)();
        // A respond of app.context's own hides it as well.
        if (frozen === 'own respond') app.context.respond = true;
        else if (frozen) Object.freeze(app.context);
        const errors: Error[] = [];
        app.silent = true;
        app.on('error', (err: Error) => errors.push(err));
        let runs = 0;
        app.use(front);
        app.use(koaCache(cache, options.routes === undefined ? { ttl: '1m' } : undefined));
        app.use((ctx) => {
          runs++;
          ctx.body = { n: 1 };
        });
        return { app, cache, target: app.callback(), errors, runs: () => runs };
      }

      it('a header and a cookie set after next() reach the hit, with no error', async () => {
        let id = 0;
        const { target, errors, runs } = build(async (ctx, next) => {
          await next();
          // As koa-session renews a cookie: not on every answer (the fill's has none, so it is stored).
          if (++id === 1) return;
          ctx.set('X-Late', `late-${id}`);
          ctx.cookies.set('sid', `renewed-${id}`);
        });
        const fill = await request(target).get('/me');
        assert.equal(fill.headers['cache-status'], 'tiercache; fwd=miss; stored');
        const hit = await request(target).get('/me');
        assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
        assert.equal(hit.headers['x-late'], 'late-2');
        assert.match(String(hit.headers['set-cookie']), /^sid=renewed-2;/);
        assert.deepEqual(hit.body, { n: 1 });
        assert.deepEqual(errors, []);
        assert.equal(runs(), 1);
      });

      it('a not-found check after next() sees the hit’s status, and a conditional hit’s 304', async () => {
        const { target, errors } = build(async (ctx, next) => {
          await next();
          if (ctx.status === 404) ctx.throw(404, 'not found (checked in front)');
        });
        const fill = await request(target).get('/me');
        await request(target).get('/me').expect(200, { n: 1 });
        await request(target).get('/me').set('If-None-Match', String(fill.headers['etag'])).expect(304);
        assert.deepEqual(errors, []);
      });

      it('an error of the stored status thrown in front after next() (a stored 404 checked in front) is the answer: Koa’s, not the stored head', async () => {
        // Koa's error answer goes out through writeHead while the hit waits, with the hit's own status here.
        const cache = cleanup.track(createCache({ namespace: `koa-upstream${process.pid}-${++counter}`, redis: false }));
        const app = new (Framework as typeof Koa)();
        app.silent = true;
        let checked = false;
        app.use(async (ctx, next) => {
          await next();
          if (checked && ctx.status === 404) ctx.throw(404, 'gone (said in front)');
        });
        app.use(koaCache(cache, { ttl: '1m', negativeTtl: '1m' }));
        app.use((ctx) => {
          ctx.status = 404;
          ctx.body = { missing: true };
        });
        const target = app.callback();
        await request(target).get('/none').expect(404, { missing: true });
        const hit = await request(target).get('/none').expect(404, { missing: true });
        assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
        checked = true;
        const hits: string[] = [];
        cache.on('hit', (e) => hits.push(e.tier));
        const answer = await request(target).get('/none').timeout(3000).expect(404);
        assert.equal(answer.text, 'gone (said in front)');
        assert.equal(answer.headers['content-type'], 'text/plain; charset=utf-8');
        assert.equal(answer.headers['cache-status'], undefined);
        assert.deepEqual(hits, []);
      });

      // An error answer of the hit's own status (an envelope, 200) from an onerror the wrapper did not see went out
      // under the stored head: its ETag over the error's body, `hit`, and counted as one.
      for (const where of ['on app.context once hits are served', 'on ctx by a middleware in front'] as const) {
        it(`an onerror set ${where} answers an error thrown in front after next(): its answer, not the hit's head`, async () => {
          const envelope = function (this: Koa.Context, err: Error | null) {
            if (err === null || err === undefined) return;
            const body = JSON.stringify({ error: err.message });
            this.res.statusCode = 200;
            this.res.setHeader('content-type', 'application/json');
            this.res.setHeader('content-length', Buffer.byteLength(body));
            this.res.end(body);
          };
          const { app, cache, target, errors } = build(async (ctx, next) => {
            if (where === 'on ctx by a middleware in front') ctx.onerror = envelope;
            await next();
            if (ctx.get('x-fail') !== '') throw new Error('failed in front');
          });
          await request(target).get('/me').expect(200, { n: 1 });
          const hit = await request(target).get('/me').expect(200, { n: 1 });
          assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
          // As koa-onerror sets it, here after the cache has wrapped Koa's own (at the first fill).
          if (where === 'on app.context once hits are served') app.context.onerror = envelope;
          const hits: string[] = [];
          cache.on('hit', (e) => hits.push(e.tier));
          const answer = await request(target).get('/me').set('x-fail', '1').timeout(3000).expect(200);
          assert.deepEqual(answer.body, { error: 'failed in front' });
          assert.deepEqual([answer.headers['etag'], answer.headers['cache-status'], answer.headers['age']], [undefined, undefined, undefined], 'the error answer went out under the stored head');
          assert.deepEqual(hits, [], 'the error answer counted as a hit');
          await request(target).get('/me').expect(200, { n: 1 });
          assert.deepEqual(errors, []);
        });
      }

      it('an error thrown in front after next() is the answer, as without the cache', async () => {
        let fail = false;
        const { target } = build(async (_ctx, next) => {
          await next();
          if (fail) throw new Error('late failure');
        });
        await request(target).get('/me').expect(200);
        fail = true;
        await request(target).get('/me').expect(500);
      });

      it('a writeHead hook put on in front before next() runs on the error answer a throw in front after next() makes of a hit', async () => {
        let fail = false;
        const { target } = build(async (ctx, next) => {
          onWriteHead(ctx.res, (res) => res.setHeader('x-before', 'yes'));
          await next();
          if (fail) throw new Error('late failure');
        });
        const fill = await request(target).get('/me').expect(200);
        assert.equal(fill.headers['x-before'], 'yes');
        fail = true;
        const failed = await request(target).get('/me').expect(500);
        assert.equal(failed.headers['x-before'], 'yes', 'the hook put on in front was skipped on the error answer');
      });

      it('a hit that an error thrown in front turns into that error counts as no hit (events, Prometheus, status page); L1 still counts what its lookup found', async () => {
        let fail = false;
        const { cache, target } = build(async (_ctx, next) => {
          await next();
          if (fail) throw new Error('late failure');
        });
        const hits: string[] = [];
        cache.on('hit', (e) => hits.push(e.tier));
        const registry = new Registry();
        const collector = prometheusCollector(cache, { registry });
        const page = statusPage(cache);
        await request(target).get('/me').expect(200); // a miss, stored
        await request(target).get('/me').expect(200); // a hit
        fail = true;
        await request(target).get('/me').expect(500); // the hit, never written
        assert.deepEqual(hits, ['L1']);
        const requests = (await registry.getSingleMetric('tiercache_requests_total')!.get()).values;
        assert.deepEqual(requests.map((v) => [v.labels['result'], v.value]).sort(), [['hit', 1], ['miss', 1]]);
        const feed = (await request(page).get('/?feed=1')).body as StatusFeed;
        assert.deepEqual(feed.routes.map((r) => [r.hits, r.misses]), [[1, 1]]);
        assert.equal(cache.stats().l1.hits, 2);
        collector.stop();
        page.stop();
      });

      it('an L2 hit that an error thrown in front turns into that error counts as no hit; L2 still counts what its lookup found', async () => {
        let fail = false;
        const front: Koa.Middleware = async (_ctx, next) => {
          await next();
          if (fail) throw new Error('late failure');
        };
        const filler = build(front, {}, await redisCaches.open());
        await request(filler.target).get('/me').expect(200); // a miss, stored in both tiers
        const { cache, target } = build(front, {}, await redisCaches.open());
        const hits: string[] = [];
        cache.on('hit', (e) => hits.push(e.tier));
        fail = true;
        await request(target).get('/me').expect(500); // an L2 hit, never written
        assert.deepEqual(hits, []);
        assert.equal(cache.stats().l2.hits, 1);
      });

      it('a stale answer that an error thrown in front turns into that error is not counted as stale', async () => {
        let fail = false;
        const { cache, target } = build(
          async (_ctx, next) => {
            await next();
            if (fail) throw new Error('late failure');
          },
          { routes: { '/me': { ttl: 30, staleWhileRevalidate: '1m' } } },
        );
        const stale: boolean[] = [];
        cache.on('hit', (e) => stale.push(e.stale));
        await request(target).get('/me').expect(200); // a miss, stored
        await new Promise((resolve) => setTimeout(resolve, 60));
        fail = true;
        await request(target).get('/me').expect(500); // stale, never written
        assert.deepEqual(stale, []);
        assert.equal(cache.stats().stale, 0);
      });

      it('a middleware in front that answers by itself after next() (ctx.respond = false, then ctx.res.end) gets the hit, and what it writes then is dropped', async () => {
        // A serializer of ctx.body (undefined on a hit): on the fill its bytes are what was stored. Its end() after the
        // hit used to make node emit write-after-end at the response, an 'error' nobody listens to: the process went down.
        const called: string[] = [];
        let requests = 0;
        const { target, errors, runs } = build(async (ctx, next) => {
          const n = ++requests;
          await next();
          ctx.respond = false;
          // Its calls, as a serializer makes them, return what node's do (writeHead chains), and their callbacks run.
          ctx.res.writeHead(ctx.status, { 'content-type': 'application/json' }).write('{"ok":true,', () => called.push(`${n} write`));
          ctx.res.end(`"data":${JSON.stringify(ctx.body ?? null)}}`, 'utf8', () => called.push(`${n} end`));
        });
        const fill = await request(target).get('/me').expect(200);
        assert.equal(fill.text, '{"ok":true,"data":{"n":1}}');
        const hit = await request(target).get('/me').timeout(3000).expect(200);
        assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
        assert.equal(hit.text, '{"ok":true,"data":{"n":1}}');
        await laterTick();
        assert.deepEqual(called.filter((c) => c.startsWith('2 ')), ['2 write', '2 end']);
        assert.deepEqual(errors, []);
        assert.equal(runs(), 1);
      });

      for (const accessor of [true, false]) {
        it(`a middleware in front that says before next() it answers by itself (ctx.respond = false), then does: the hit goes out, what it writes is dropped (${accessor ? 'after an earlier hit' : 'the first hit'})`, async () => {
          // Only under /api: a serializer of ctx.body (undefined on a hit). The hit waited for Koa to respond, which it
          // never does here: the serializer's null went out, and Koa reported ERR_HTTP_HEADERS_SENT as the hit followed.
          const { target, errors, runs } = build(async (ctx, next) => {
            if (ctx.path !== '/api') return next();
            ctx.respond = false;
            await next();
            serializeBody(ctx);
          });
          if (accessor) {
            await request(target).get('/page').expect(200);
            await request(target).get('/page').expect(200);
          }
          const fill = await request(target).get('/api').expect(200);
          assert.equal(fill.text, '{"ok":true,"data":{"n":1}}');
          const hit = await request(target).get('/api').timeout(3000).expect(200);
          assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
          assert.equal(hit.text, '{"ok":true,"data":{"n":1}}');
          await laterTick();
          assert.deepEqual(errors, []);
          assert.equal(runs(), accessor ? 2 : 1);
        });
      }

      it('an L2 hit written at once (a frozen context) to a middleware in front that answers by itself after next(): what it writes is dropped', async () => {
        // The L2 hit is written in a promise continuation: the serializer's end() follows before node has closed the
        // response, and node emitted write-after-end at it, an 'error' nobody listens to (the process went down).
        const front: Koa.Middleware = async (ctx, next) => {
          await next();
          ctx.respond = false;
          serializeBody(ctx);
        };
        const filler = build(front, {}, await redisCaches.open(), true);
        await request(filler.target).get('/me').expect(200, '{"ok":true,"data":{"n":1}}');
        const { target, errors } = build(front, {}, await redisCaches.open(), true);
        const hit = await request(target).get('/me').timeout(3000).expect(200);
        assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L2');
        assert.equal(hit.text, '{"ok":true,"data":{"n":1}}');
        await laterTick();
        assert.deepEqual(errors, []);
      });

      // Hits written at once (Koa's read of ctx.respond cannot be heard): what a middleware in front sets on the
      // response after next() comes after the head. ctx.set() says nothing then (Koa checks headerSent), but node's
      // own setHeader, removeHeader and appendHeader, and the cookies of ctx.cookies.set() (koa-session renewing its
      // cookie), threw ERR_HTTP_HEADERS_SENT into that middleware: the rest of it never ran, and Koa reported an error
      // on every such hit.
      for (const how of ['frozen', 'a respond of its own'] as const) {
        it(`a hit written at once (app.context ${how}): headers and cookies a middleware in front sets after next() are dropped, no error, the rest of it runs`, async () => {
          let requests = 0;
          let finished = 0;
          const front: Koa.Middleware = async (ctx, next) => {
            await next();
            ctx.res.setHeader('x-late', '1');
            ctx.res.appendHeader('x-late', '2');
            ctx.res.removeHeader('x-gone');
            ctx.set('x-koa', '1');
            // As koa-session renews its cookie: not on the fill (a Set-Cookie would keep it from being stored).
            if (++requests > 1) ctx.cookies.set('sid', 'renewed');
            finished++;
          };
          const { target, errors } = build(front, {}, undefined, how === 'frozen' ? true : 'own respond');
          const fill = await request(target).get('/me').expect(200, { n: 1 });
          assert.equal(fill.headers['x-late'], '1, 2');
          const hit = await request(target).get('/me').timeout(3000).expect(200, { n: 1 });
          assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
          // Stored with the fill: the hit repeats it (see the README), whatever the middleware sets later.
          assert.equal(hit.headers['x-late'], '1, 2');
          assert.equal(hit.headers['set-cookie'], undefined);
          await laterTick();
          assert.deepEqual(errors, []);
          assert.equal(finished, 2);
        });
      }

      it('an L2 hit that finds the answer already given (a middleware in front answered while Redis was asked) is not written, nor counted', async () => {
        // Answers at once and lets the app go on (ctx.respond = false before the cache's lookup has come back): the hit
        // must leave the answer alone, as when Koa's read of ctx.respond is waited for.
        let appDone: Promise<unknown> = Promise.resolve();
        const front: Koa.Middleware = async (ctx, next) => {
          const work = next();
          appDone = work.catch(() => undefined);
          ctx.respond = false;
          ctx.res.statusCode = 202;
          ctx.res.end('accepted');
          await work;
        };
        const filler = build(async (_ctx, next) => next(), {}, await redisCaches.open());
        await request(filler.target).get('/me').expect(200);
        const { cache, target, errors } = build(front, {}, await redisCaches.open());
        const hits: string[] = [];
        cache.on('hit', (e) => hits.push(e.tier));
        await request(target).get('/me').timeout(3000).expect(202, 'accepted');
        // The client has its answer before the cache has heard from Redis: the rest is decided once the app is done.
        await appDone;
        await laterTick();
        assert.deepEqual(errors, []);
        assert.deepEqual(hits, []);
        assert.equal(cache.stats().l2.hits, 1);
      });

      // A middleware in front that streams its own answer while the app goes on: its head and a first chunk go out
      // while Redis is asked, its end once the app is done. Without the cache this answers (Koa does not write to a
      // response that ended); the hit, written at once (ctx.respond = false said before the lookup came back) or
      // waiting for Koa's read, must leave it alone: it was written on top (ERR_HTTP_HEADERS_SENT, counted) or what
      // that middleware wrote next was dropped as if after a hit, its end() with it (the client waited forever).
      for (const says of ['at once (ctx.respond = false)', 'after next() (ctx.respond = false)', 'never (Koa finds the response ended)'] as const) {
        it(`an L2 hit that finds the head given by a middleware in front that says it answers itself ${says}: left alone, not counted, no hang`, async () => {
          const front: Koa.Middleware = async (ctx, next) => {
            const work = next();
            if (says.startsWith('at once')) ctx.respond = false;
            ctx.res.writeHead(202, { 'content-type': 'text/plain' });
            ctx.res.write('working;');
            await work.catch(() => undefined);
            if (says.startsWith('after')) ctx.respond = false;
            ctx.res.end('done');
          };
          const filler = build(async (_ctx, next) => next(), {}, await redisCaches.open());
          await request(filler.target).get('/me').expect(200);
          const { cache, target, errors } = build(front, {}, await redisCaches.open());
          const hits: string[] = [];
          cache.on('hit', (e) => hits.push(e.tier));
          await request(target).get('/me').timeout(3000).expect(202, 'working;done');
          await laterTick();
          assert.deepEqual(errors, []);
          assert.deepEqual(hits, []);
        });
      }

      // A middleware in front that sends the head after next() and leaves the rest to Koa (ctx.flushHeaders(), or a
      // writeHead of its own): without the cache Koa writes the app's body after it. The hit waiting for Koa's read
      // found the head gone and was not written, and Koa was told not to respond: the client waited forever. Then
      // the stored body followed a head without the stored fields (no Content-Type, ETag, Age, Cache-Status, nor
      // the app's own): the head such a middleware sends on a hit is the stored answer's, with its own fields.
      // A layer that puts node's own writeHead back first (or calls it on ctx.res) builds the head past the cache's
      // writeHead: the stored body went out under a head with none of the stored fields, and the hit was not counted.
      for (const how of ['ctx.flushHeaders()', 'ctx.res.flushHeaders()', 'ctx.res.writeHead()', "node's writeHead put back, ctx.flushHeaders()", "node's writeHead called on ctx.res"] as const) {
        for (const tier of ['L1', 'L2'] as const) {
          it(`a middleware in front that sends the head after next() (${how}) and leaves the rest to Koa sends the stored head and body, no hang (${tier} hit)`, async () => {
            const front: Koa.Middleware = async (ctx, next) => {
              await next();
              if (ctx.get('x-flush') === '') return;
              if (how === 'ctx.flushHeaders()') ctx.flushHeaders();
              else if (how === 'ctx.res.flushHeaders()') ctx.res.flushHeaders();
              else if (how === 'ctx.res.writeHead()') ctx.res.writeHead(ctx.status, { 'x-front': 'head' });
              else if (how === "node's writeHead called on ctx.res") ServerResponse.prototype.writeHead.call(ctx.res, ctx.status, { 'x-front': 'head' });
              else {
                ctx.res.writeHead = ServerResponse.prototype.writeHead;
                ctx.flushHeaders();
              }
            };
            const options = tier === 'L1' ? {} : { l1: false as const };
            const { cache, target, errors, runs } = build(front, options, tier === 'L1' ? undefined : await redisCaches.open(options));
            const hits: string[] = [];
            cache.on('hit', (e) => hits.push(e.tier));
            const fill = await request(target).get('/me').timeout(3000).expect(200, { n: 1 });
            const plain = await request(target).get('/me').timeout(3000).expect(200);
            assert.equal(plain.headers['cache-status'], `tiercache; hit; detail=${tier}`);
            const fields = ['content-type', 'etag', 'cache-status'];
            const hit = await request(target).get('/me').set('x-flush', '1').timeout(3000).expect(200);
            assert.equal(hit.text, '{"n":1}');
            for (const name of fields) assert.equal(hit.headers[name], plain.headers[name], name);
            assert.match(String(hit.headers['age']), /^\d+$/);
            assert.equal(hit.headers['content-type'], fill.headers['content-type']);
            if (how.includes('writeHead(') || how.includes('called')) assert.equal(hit.headers['x-front'], 'head');
            const head = await request(target).head('/me').set('x-flush', '1').timeout(3000).expect(200);
            for (const name of [...fields, 'content-length']) assert.equal(head.headers[name], plain.headers[name], `HEAD ${name}`);
            assert.match(String(head.headers['age']), /^\d+$/);
            const notModified = await request(target).get('/me').set('x-flush', '1').set('If-None-Match', String(plain.headers['etag'])).timeout(3000).expect(304);
            assert.equal(notModified.headers['etag'], plain.headers['etag']);
            assert.equal(notModified.headers['cache-status'], plain.headers['cache-status']);
            assert.equal(runs(), 1);
            assert.deepEqual(hits, [tier, tier, tier, tier]);
            await laterTick();
            assert.deepEqual(errors, []);
          });
        }
      }

      it('a middleware in front that answers with a head of another status after next() (writeHead(503), its own end) sends its own answer, not the hit', async () => {
        const { cache, target, errors } = build(async (ctx, next) => {
          await next();
          if (ctx.get('x-busy') === '') return;
          ctx.res.writeHead(503, { 'content-type': 'text/plain' });
          ctx.res.end('busy');
        });
        const hits: string[] = [];
        cache.on('hit', (e) => hits.push(e.tier));
        await request(target).get('/me').timeout(3000).expect(200, { n: 1 });
        const busy = await request(target).get('/me').set('x-busy', '1').timeout(3000).expect(503, 'busy');
        assert.equal(busy.headers['etag'], undefined);
        assert.equal(busy.headers['cache-status'], undefined);
        await request(target).get('/me').timeout(3000).expect(200, { n: 1 });
        assert.deepEqual(hits, ['L1']);
        await laterTick();
        assert.deepEqual(errors, []);
      });

      // Koa then sends ctx.body under that head, as without the cache. The stored body went there instead: under
      // a Content-Length said for that middleware's body, which framed it wrong for the next answer on the connection.
      it('a middleware in front that answers with a head of another status after next() and a body on ctx (ctx.status = 503, ctx.body, ctx.flushHeaders()), leaving the end to Koa: Koa sends that body, not the stored one', async () => {
        const { cache, target, errors } = build(async (ctx, next) => {
          await next();
          if (ctx.get('x-busy') === '') return;
          ctx.status = 503;
          ctx.body = 'down';
          ctx.flushHeaders();
        });
        const hits: string[] = [];
        cache.on('hit', (e) => hits.push(e.tier));
        const server = await cleanup.serve(target);
        await request(server).get('/me').timeout(3000).expect(200, { n: 1 });
        const busy = await wireRequest(server, '/me', { 'x-busy': '1' });
        assert.equal(busy.status, 503);
        assert.equal(busy.fields.find(([n]) => n === 'content-length')?.[1], '4');
        assert.equal(busy.body, 'down');
        assert.equal(busy.fields.find(([n]) => n === 'cache-status'), undefined);
        await request(server).get('/me').timeout(3000).expect(200, { n: 1 });
        assert.deepEqual(hits, ['L1']);
        await laterTick();
        assert.deepEqual(errors, []);
      });

      // Without the cache the handler replaces a body set in front before next(), and Koa ends with the handler's under
      // that head (a layer setting the same body again after next() sends it, as Koa does). The early body went instead.
      for (const again of [undefined, 'early', 'down'] as const) {
        it(`a middleware in front that sets ctx.body before next(), then after it a head of another status${again === undefined ? '' : ` and ctx.body = '${again}'`} (ctx.status = 503, ctx.flushHeaders()), leaving the end to Koa: Koa sends ${again === undefined ? 'the stored body, as the app alone sends its handler’s' : 'that body'}`, async () => {
          const { target, errors } = build(async (ctx, next) => {
            ctx.body = 'early';
            await next();
            if (ctx.get('x-busy') === '') return;
            ctx.status = 503;
            if (again !== undefined) ctx.body = again;
            ctx.flushHeaders();
          });
          const server = await cleanup.serve(target);
          await request(server).get('/me').timeout(3000).expect(200, { n: 1 });
          const busy = await wireRequest(server, '/me', { 'x-busy': '1' });
          const body = again ?? '{"n":1}';
          assert.deepEqual([busy.status, busy.body, busy.fields.find(([n]) => n === 'content-length')?.[1]], [503, body, String(body.length)]);
          await request(server).get('/me').timeout(3000).expect(200, { n: 1 });
          await laterTick();
          assert.deepEqual(errors, []);
        });
      }

      // ctx.body = null is a body set too (Koa ends with none, saying so by its explicit-null flag): the handler
      // replaces it as it replaces any other. Left in place, Koa ended that head with no body.
      it('a middleware in front that sets ctx.body = null before next(), then after it a head of another status (ctx.status = 503, ctx.flushHeaders()), leaving the end to Koa: Koa sends the stored body, as the app alone sends its handler’s', async () => {
        const { target, errors } = build(async (ctx, next) => {
          // Only on the hit: the app alone answers a request with a null body set in front 204 (Koa's explicit null).
          if (ctx.get('x-busy') !== '') ctx.body = null;
          await next();
          if (ctx.get('x-busy') === '') return;
          ctx.status = 503;
          ctx.flushHeaders();
        });
        const server = await cleanup.serve(target);
        await request(server).get('/me').timeout(3000).expect(200, { n: 1 });
        const busy = await wireRequest(server, '/me', { 'x-busy': '1' });
        assert.deepEqual([busy.status, busy.body, busy.fields.find(([n]) => n === 'content-length')?.[1]], [503, '{"n":1}', '7']);
        await laterTick();
        assert.deepEqual(errors, []);
      });

      it("a middleware in front that wraps the response's _storeHeader after next(), over the cache's hook, gets the hit's head through its wrapper", async () => {
        let wrapped = 0;
        const { cache, target, errors } = build(async (ctx, next) => {
          await next();
          const res = ctx.res as unknown as { _storeHeader: (...args: unknown[]) => void };
          const inner = res._storeHeader;
          res._storeHeader = function (this: unknown, ...args: unknown[]) {
            wrapped++;
            return inner.apply(this, args);
          };
        });
        const hits: string[] = [];
        cache.on('hit', (e) => hits.push(e.tier));
        const fill = await request(target).get('/me').timeout(3000).expect(200, { n: 1 });
        const hit = await request(target).get('/me').timeout(3000).expect(200, { n: 1 });
        assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
        assert.equal(hit.headers['etag'], fill.headers['etag']);
        assert.equal(wrapped, 2);
        assert.deepEqual(hits, ['L1']);
        await laterTick();
        assert.deepEqual(errors, []);
      });

      // The hit's Age was taken when it was found: a middleware in front that took a second after next() sent Age: 0
      // for an entry a second old, which a cache downstream takes to be that much fresher.
      // What Koa reads of ctx.body after such a head decides whose body follows it. A head of another status: ctx.body
      // set (null too) is that middleware's answer, Koa ends it; none set, the app's body follows, which is the
      // stored one. The hit's own head: the stored body, whatever was set on ctx in front (dropped, as after any hit).
      for (const [what, flushInFront, status, stored] of [
        ['a head of another status and ctx.body = null (ctx.body = null, ctx.status = 503): Koa ends it with no body', (ctx: Koa.Context) => {
          ctx.body = null;
          ctx.status = 503;
        }, 503, false],
        ['a head of another status and no body on ctx (ctx.status = 503): the stored body follows, as the app\'s would', (ctx: Koa.Context) => {
          ctx.status = 503;
        }, 503, true],
        ["the hit's own head and a body set on ctx (an envelope): the stored body follows, the envelope dropped", (ctx: Koa.Context) => {
          ctx.body = { data: ctx.body as unknown };
        }, 200, true],
      ] as const) {
        it(`a middleware in front that sends ${what}, by ctx.flushHeaders() after next(), leaving the end to Koa`, async () => {
          const { target, errors } = build(async (ctx, next) => {
            await next();
            if (ctx.get('x-front') === '') return;
            flushInFront(ctx);
            ctx.flushHeaders();
          });
          const server = await cleanup.serve(target);
          await request(server).get('/me').timeout(3000).expect(200, { n: 1 });
          const answer = await wireRequest(server, '/me', { 'x-front': '1' });
          assert.equal(answer.status, status);
          assert.equal(answer.body.includes('{"n":1}'), stored, `body ${JSON.stringify(answer.body)}`);
          await request(server).get('/me').timeout(3000).expect(200, { n: 1 });
          await laterTick();
          assert.deepEqual(errors, []);
        });
      }

      // With a 'hit' listener the deferred write is another closure (it reports the hit as it goes): both take Age then.
      for (const listened of [false, true]) {
        it(`a hit that waits on a middleware in front (a second after next()) says its Age as it leaves${listened ? ", a 'hit' listener on" : ''}`, async () => {
          const { cache, target, errors } = build(async (ctx, next) => {
            await next();
            if (ctx.get('x-until') !== '') await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(ctx.get('x-until')) - Date.now())));
          });
          const hits: string[] = [];
          if (listened) cache.on('hit', (e) => hits.push(e.tier));
          await request(target).get('/me').timeout(3000).expect(200, { n: 1 });
          // The entry was made before its answer came back: a second past that, it is a second old at least.
          const slow = await request(target).get('/me').set('x-until', String(Date.now() + 1_050)).timeout(3000).expect(200, { n: 1 });
          assert.equal(slow.headers['cache-status'], 'tiercache; hit; detail=L1');
          assert.ok(Number(slow.headers['age']) >= 1, `Age: ${String(slow.headers['age'])}`);
          assert.deepEqual(hits, listened ? ['L1'] : []);
          await laterTick();
          assert.deepEqual(errors, []);
        });
      }

      it("writeHead wrapped by a middleware in front before and after next() (on-headers): both wrappers' fields reach the hit, which counts once, the head flushed in front too", async () => {
        const { cache, target, errors } = build(async (ctx, next) => {
          const res = ctx.res;
          const wrap = (name: string) => {
            const inner = res.writeHead;
            res.writeHead = function (this: typeof res, ...args: unknown[]) {
              this.setHeader(name, 'yes');
              return (inner as (...a: unknown[]) => typeof res).apply(this, args);
            } as typeof res.writeHead;
          };
          wrap('x-before');
          await next();
          wrap('x-after');
          if (ctx.get('x-flush') !== '') ctx.flushHeaders();
        });
        const hits: string[] = [];
        cache.on('hit', (e) => hits.push(e.tier));
        const fill = await request(target).get('/me').timeout(3000).expect(200, { n: 1 });
        assert.equal(fill.headers['x-before'], 'yes');
        for (const flush of ['', '1']) {
          for (const method of ['get', 'head'] as const) {
            const hit = await request(target)[method]('/me').set('x-flush', flush).timeout(3000).expect(200);
            const what = `${method}${flush === '' ? '' : ', flushed'}`;
            assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1', what);
            assert.equal(hit.headers['x-before'], 'yes', `${what}: x-before`);
            assert.equal(hit.headers['x-after'], 'yes', `${what}: x-after`);
            if (method === 'get') assert.equal(hit.text, '{"n":1}', what);
            else assert.equal(hit.headers['content-length'], fill.headers['content-length'], what);
          }
        }
        assert.deepEqual(hits, ['L1', 'L1', 'L1', 'L1']);
        await laterTick();
        assert.deepEqual(errors, []);
      });

      it("a head sent in front after next() with a reason and fields as a list or an object gets those fields over the stored ones, an empty name skipped as node skips it", async () => {
        const { target, errors } = build(async (ctx, next) => {
          await next();
          const form = ctx.get('x-form');
          if (form === 'list') ctx.res.writeHead(ctx.status, 'Fine', ['x-front', 'list', '', 'skipped']);
          else if (form === 'object') ctx.res.writeHead(ctx.status, 'Fine', { 'x-front': 'object', '': 'skipped' });
        });
        await request(target).get('/me').timeout(3000).expect(200, { n: 1 });
        for (const form of ['list', 'object']) {
          const hit = await request(target).get('/me').set('x-form', form).timeout(3000).expect(200);
          assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1', form);
          assert.equal(hit.headers['x-front'], form, form);
          // Names and values taken in pairs: no field named by a value.
          assert.equal(hit.headers['list'], undefined, form);
          assert.equal(hit.text, '{"n":1}', form);
        }
        await laterTick();
        assert.deepEqual(errors, []);
      });

      it('a middleware in front that sends the head after next() and then writes a body of its own: that body follows the stored head, no error', async () => {
        const { target, errors } = build(async (ctx, next) => {
          await next();
          if (ctx.get('x-own') === '') return;
          ctx.flushHeaders();
          ctx.res.end('own body');
        });
        const fill = await request(target).get('/me').timeout(3000).expect(200, { n: 1 });
        // Read as text: the head says JSON (the stored one), the body is that middleware's.
        const hit = await request(target)
          .get('/me')
          .set('x-own', '1')
          .timeout(3000)
          .buffer(true)
          .parse((res, done) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (text += chunk));
            res.on('end', () => done(null, text));
          })
          .expect(200);
        assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
        assert.equal(hit.headers['etag'], fill.headers['etag']);
        assert.equal(hit.body, 'own body');
        await laterTick();
        assert.deepEqual(errors, []);
      });

      it('a respond set on ctx in front of the cache before its first hit does not hide the hit', async () => {
        // A fresh app: its context prototype has no accessor yet when the first hit comes.
        const { target } = build(async (ctx, next) => {
          (ctx as { respond?: boolean }).respond = true;
          await next();
        });
        await request(target).get('/me').expect(200);
        const hit = await request(target).get('/me').timeout(3000).expect(200);
        assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
        await request(target).get('/me').timeout(3000).expect(200, { n: 1 });
      });

      // Once the app's first hit has given its context the respond accessor, what a middleware in front sets on
      // ctx.respond must act as it does on a Koa context without the cache.
      it('once a hit was served, ctx.respond = true said in front still lets Koa answer: a miss and a hit go out', async () => {
        const { target, errors, runs } = build(async (ctx, next) => {
          // Not on the first hit's requests: a respond of ctx's own then would keep the accessor from being given.
          if (ctx.path === '/other') (ctx as { respond?: boolean }).respond = true;
          await next();
        });
        await request(target).get('/me').expect(200);
        await request(target).get('/me').timeout(3000).expect(200, { n: 1 });
        const miss = await request(target).get('/other').timeout(3000).expect(200, { n: 1 });
        assert.equal(miss.headers['cache-status'], 'tiercache; fwd=miss; stored');
        const hit = await request(target).get('/other').timeout(3000).expect(200, { n: 1 });
        assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
        assert.deepEqual(errors, []);
        assert.equal(runs(), 2);
      });

      it('once a hit was served, ctx.respond = false said in front is a plain property of ctx, as without the cache: set again, deleted, listed among its keys', async () => {
        // A middleware that takes the answer over (respond = false), then hands it back to Koa after all.
        const seen: string[] = [];
        const { target, errors } = build(async (ctx, next) => {
          const c = ctx as { respond?: boolean };
          if (ctx.path === '/again' || ctx.path === '/deleted' || ctx.path === '/listed') {
            c.respond = false;
            if (Object.keys(ctx).includes('respond') && { ...ctx }.respond === false) seen.push(`${ctx.path} listed`);
            if (ctx.path === '/again') c.respond = true;
            if (ctx.path === '/deleted') delete c.respond;
          }
          await next();
          if (ctx.path === '/listed') {
            ctx.res.writeHead(203, { 'content-type': 'text/plain' });
            ctx.res.end('own answer');
          }
        });
        await request(target).get('/me').expect(200);
        await request(target).get('/me').timeout(3000).expect(200, { n: 1 });
        for (const path of ['/again', '/deleted']) {
          const fill = await request(target).get(path).timeout(3000).expect(200, { n: 1 });
          assert.equal(fill.headers['cache-status'], 'tiercache; fwd=miss; stored', path);
          const hit = await request(target).get(path).timeout(3000).expect(200, { n: 1 });
          assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1', path);
        }
        await request(target).get('/listed').timeout(3000).expect(203, 'own answer');
        assert.deepEqual(seen, ['/again listed', '/again listed', '/deleted listed', '/deleted listed', '/listed listed']);
        assert.deepEqual(errors, []);
      });

      it('once a hit was served, for...in over ctx lists the names it lists without the cache (onerror among them)', async () => {
        const names = (app: Koa) => {
          let listed: string[] = [];
          app.use(async (ctx, next) => {
            await next();
            listed = [];
            for (const name in ctx) listed.push(name);
            listed.sort();
          });
          return () => listed;
        };
        const plain = new (Framework as typeof Koa)();
        const plainNames = names(plain);
        plain.use((ctx) => void (ctx.body = { n: 1 }));
        await request(plain.callback()).get('/me').expect(200);
        const cached = new (Framework as typeof Koa)();
        const cachedNames = names(cached);
        cached.use(koaCache(cleanup.track(createCache({ namespace: `koa-upstream${process.pid}-${++counter}`, redis: false })), { ttl: '1m' }));
        cached.use((ctx) => void (ctx.body = { n: 1 }));
        await request(cached.callback()).get('/me').expect(200);
        const hit = await request(cached.callback()).get('/me').expect(200);
        assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
        assert.ok(plainNames().includes('onerror'));
        assert.deepEqual(cachedNames(), plainNames());
      });

      it("an app.context whose onerror is its own and cannot be redefined is left so: hits go out, errors are Koa's answers", async () => {
        const app = new (Framework as typeof Koa)();
        app.silent = true;
        Object.defineProperty(app.context, 'onerror', { value: app.context.onerror, writable: false, configurable: false, enumerable: true });
        app.use(async (ctx, next) => {
          await next();
          if (ctx.get('x-fail') !== '') ctx.throw(502, 'bad gateway');
        });
        app.use(koaCache(cleanup.track(createCache({ namespace: `koa-upstream${process.pid}-${++counter}`, redis: false })), { ttl: '1m' }));
        app.use((ctx) => void (ctx.body = { n: 1 }));
        await request(app.callback()).get('/me').timeout(3000).expect(200, { n: 1 });
        const hit = await request(app.callback()).get('/me').timeout(3000).expect(200, { n: 1 });
        assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
        await request(app.callback()).get('/me').set('x-fail', '1').timeout(3000).expect(502);
      });

      it("a respond accessor of a plugin's on app.context is left alone by a fill: what the app sets and Koa reads go through it", async () => {
        const app = new (Framework as typeof Koa)();
        app.silent = true;
        const said = new WeakMap<object, unknown>();
        const heard: unknown[] = [];
        Object.defineProperty(app.context, 'respond', {
          configurable: true,
          get(this: object) {
            heard.push(said.get(this));
            return said.get(this);
          },
          set(this: object, value: unknown) {
            said.set(this, value);
          },
        });
        app.use(koaCache(cleanup.track(createCache({ namespace: `koa-upstream${process.pid}-${++counter}`, redis: false })), { ttl: '1m' }));
        app.use((ctx) => {
          ctx.respond = false;
          setImmediate(() => {
            ctx.res.statusCode = 200;
            ctx.res.setHeader('content-type', 'text/plain');
            // An upstream's member, said as the app answers: Koa's read cannot be heard here, so it is taken as the upstream's.
            ctx.res.setHeader('cache-status', 'ExampleCDN; hit');
            ctx.res.end('own answer');
          });
        });
        const fill = await request(app.callback()).get('/me').timeout(3000).expect(200, 'own answer');
        assert.equal(fill.headers['cache-status'], 'ExampleCDN; hit, tiercache; fwd=miss; stored');
        assert.ok(heard.includes(false), `Koa's read did not go through the plugin's accessor (it read ${JSON.stringify(heard)})`);
      });
    });
  }
});
