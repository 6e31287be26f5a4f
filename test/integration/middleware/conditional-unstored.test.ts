// A conditional GET whose answer the cache does not store still gets its 304
// (found by helper-68: the fill sets the request's If-None-Match and
// If-Modified-Since aside so the handler answers in full, and only a stored
// answer was matched against them). A private answer and one past
// maxBodyBytes, matched on the handler's own validators; not one that sets
// a cookie: it goes whole. A streamed answer with its own validator gets its
// 304 too, and is stored (see filling-304-fields). Express 5 and 4, Koa 3 and 2.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { useCleanup, useRedisCaches } from '../../support/cache-context.js';
import express from 'express';
import { expressCache } from '../../../src/express.js';
import { adapters, buildApp, headerOf, type AnyMiddlewareOptions, type Handler, type HandlerIO } from './apps.js';

let counter = 0;

const FILE_DATE = 'Tue, 01 Dec 2026 10:00:00 GMT';

/** A file as a handler streams it: its size and ETag can change; what the handler read and how often it ran are counted. */
interface FileState {
  size: number;
  etag: string;
  vary?: string;
  written: number;
  runs: number;
}

/** Whether the request's conditionals match the validators set, as express.static and koa-conditional-get judge them. */
function fresh(io: HandlerIO): boolean {
  const native = io.native;
  if (native.framework === 'express') return native.req.fresh;
  native.ctx.status = 200; // Koa starts at 404 and judges freshness on a 2xx only
  return native.ctx.fresh;
}

async function* chunksOf(file: FileState): AsyncGenerator<Buffer> {
  for (let left = file.size; left > 0; left -= 1024) {
    const n = Math.min(1024, left);
    file.written += n;
    yield Buffer.alloc(n, 'f');
  }
}

/** A handler that answers conditionals itself (its own 304) and streams the file otherwise, as express.static does. */
function streamsFile(file: FileState): Handler {
  return (io) => {
    file.runs++;
    io.set('ETag', file.etag);
    io.set('Last-Modified', FILE_DATE);
    io.set('Content-Type', 'text/plain');
    if (file.vary !== undefined) io.set('Vary', file.vary);
    if (fresh(io)) {
      io.status(304);
      if (io.native.framework === 'express') io.native.res.end();
      return;
    }
    io.stream(chunksOf(file));
  };
}

describe('middleware: conditional GETs of answers the cache does not store', () => {
  const cleanup = useCleanup();

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      const build = () => {
        const cache = cleanup.track(createCache({ namespace: `cond-unstored${process.pid}-${++counter}`, redis: false }));
        let runs = 0;
        const built = buildApp(adapter, cache, {
          routes: [
            { path: '/private', mw: { ttl: '1m' }, handler: (io) => (runs++, io.set('ETag', '"p1"'), io.set('Cache-Control', 'private'), io.send('secret')) },
            { path: '/big', mw: { ttl: '1m', maxBodyBytes: 1024 }, handler: (io) => (runs++, io.set('ETag', '"b1"'), io.send('x'.repeat(4096))) },
            { path: '/dated', mw: { ttl: '1m', maxBodyBytes: 1024 }, handler: (io) => (runs++, io.set('Last-Modified', 'Tue, 01 Dec 2026 10:00:00 GMT'), io.send('y'.repeat(4096))) },
            { path: '/streamed', mw: { ttl: '1m' }, handler: (io) => (runs++, io.set('ETag', '"s1"'), io.set('Content-Type', 'text/plain'), io.stream(['part one, ', 'part two'])) },
            { path: '/cookie', mw: { ttl: '1m' }, handler: (io) => (runs++, io.set('ETag', '"c1"'), io.set('Set-Cookie', 'csrf=tok; Path=/'), io.send('with a cookie')) },
          ],
        });
        return { target: built.target, runs: () => runs };
      };

      it('a private answer: 304 on a matching If-None-Match, the full answer otherwise', async () => {
        const { target } = build();
        const hit = await request(target).get('/private').set('If-None-Match', '"p1"');
        assert.equal(hit.status, 304);
        assert.equal(hit.text, '');
        assert.equal(hit.headers['etag'], '"p1"');
        assert.equal(hit.headers['cache-status'], 'tiercache; fwd=miss; detail=private');
        const other = await request(target).get('/private').set('If-None-Match', '"p0"');
        assert.equal(other.status, 200);
        assert.equal(other.text, 'secret');
      });

      it('an answer past maxBodyBytes: 304 on If-None-Match and on If-Modified-Since, never stored', async () => {
        const { target, runs } = build();
        for (let i = 0; i < 2; i++) {
          const res = await request(target).get('/big').set('If-None-Match', 'W/"x", "b1"');
          assert.equal(res.status, 304);
          assert.equal(res.text, '');
          assert.equal(res.headers['cache-status'], 'tiercache; fwd=miss; detail=too-large');
        }
        const dated = await request(target).get('/dated').set('If-Modified-Since', 'Wed, 02 Dec 2026 10:00:00 GMT');
        assert.equal(dated.status, 304);
        assert.equal(dated.headers['content-length'], undefined);
        const older = await request(target).get('/dated').set('If-Modified-Since', 'Mon, 30 Nov 2026 10:00:00 GMT');
        assert.equal(older.status, 200);
        assert.equal(older.text.length, 4096);
        assert.equal(runs(), 4);
      });

      it('a streamed answer with its own ETag gets its 304 on its fill (the head waits for the end) and is stored; its hits answer 304', async () => {
        const { target, runs } = build();
        const conditional = await request(target).get('/streamed').set('If-None-Match', '"s1"');
        assert.equal(conditional.status, 304);
        assert.equal(conditional.text, '');
        assert.equal((await request(target).get('/streamed')).text, 'part one, part two');
        const hit = await request(target).get('/streamed').set('If-None-Match', '"s1"');
        assert.equal(hit.status, 304);
        assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
        assert.equal(runs(), 1);
      });

      describe('an answer streamed past maxBodyBytes (found by h178: each conditional request read the whole file for the 304 the app gives without reading it)', () => {
        const KB64 = 64 * 1024;
        const serve = (file: FileState, mw: AnyMiddlewareOptions = {}) => {
          const cache = cleanup.track(createCache({ namespace: `cond-big${process.pid}-${++counter}`, redis: false }));
          const app = buildApp(adapter, cache, { routes: [{ path: '/file', mw: { ttl: '1m', maxBodyBytes: 1024, ...mw }, handler: streamsFile(file) }] });
          return { cache, target: app.target };
        };

        it('the first conditional request reads it all for its 304; the next ones reach the app with their conditionals (If-None-Match, If-Modified-Since): its own 304, nothing read', async () => {
          const file: FileState = { size: KB64, etag: '"f1"', written: 0, runs: 0 };
          const { target } = serve(file);
          const first = await request(target).get('/file').set('If-None-Match', '"f1"');
          assert.equal(first.status, 304);
          assert.equal(file.written, KB64);
          file.written = 0;
          const second = await request(target).get('/file').set('If-None-Match', '"f1"');
          assert.equal(second.status, 304);
          assert.equal(file.written, 0, 'bytes the handler read for the second conditional request');
          assert.equal(second.headers['etag'], '"f1"');
          assert.equal(second.headers['cache-status'], 'tiercache; fwd=miss; detail=too-large');
          const dated = await request(target).get('/file').set('If-Modified-Since', FILE_DATE);
          assert.equal(dated.status, 304);
          assert.equal(file.written, 0, 'bytes the handler read for If-Modified-Since');
          const other = await request(target).get('/file').set('If-None-Match', '"f0"');
          assert.equal(other.status, 200);
          assert.equal(other.text.length, KB64);
          assert.equal(file.runs, 4);
        });

        it('a request without conditionals still fills; once the file fits, its fill is stored and the cache answers 304 again; past maxBodyBytes again, it is learned again', async () => {
          const file: FileState = { size: KB64, etag: '"f1"', written: 0, runs: 0 };
          const { cache, target } = serve(file);
          await request(target).get('/file').set('If-None-Match', '"f1"');
          file.written = 0;
          const plain = await request(target).get('/file');
          assert.equal(plain.text.length, KB64);
          assert.equal((await request(target).get('/file').set('If-None-Match', '"f1"')).status, 304);
          assert.equal(file.written, KB64, 'only the plain GET read the file');
          // Shorter now: the app's 200 to the old tag (made under the client's conditionals) is not stored, but its key is
          // forgotten: the next conditional miss sets them aside and fills, and the cache answers the new tag from then on.
          Object.assign(file, { size: 100, etag: '"f2"', written: 0 });
          const changed = await request(target).get('/file').set('If-None-Match', '"f1"');
          assert.equal(changed.status, 200);
          assert.equal(changed.text.length, 100);
          assert.equal(changed.headers['cache-status'], 'tiercache; fwd=miss; detail=too-large');
          const filled = await request(target).get('/file').set('If-None-Match', '"f2"');
          assert.equal(filled.status, 304);
          assert.notEqual(filled.headers['cache-status'], 'tiercache; fwd=miss; detail=too-large');
          const runs = file.runs;
          const hit = await request(target).get('/file').set('If-None-Match', '"f2"');
          assert.equal(hit.status, 304);
          assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
          assert.equal(file.runs, runs);
          // Past maxBodyBytes again: its path is still known (the store forgot its key alone), with the validators of the
          // answer that was too large: a revalidation of the old one goes to the app, of the new one is learned once more.
          await cache.clear();
          Object.assign(file, { size: KB64, etag: '"f3"', written: 0 });
          const old = await request(target).get('/file').set('If-None-Match', '"f1"');
          assert.deepEqual([old.status, old.text.length, file.written], [200, KB64, KB64]);
          assert.deepEqual([(await request(target).get('/file').set('If-None-Match', '"f3"')).status, file.written], [304, KB64]);
        });

        it("an answer made under the conditionals it kept is not stored: an app that sends only what is newer than If-Modified-Since (a feed) cannot give one client's answer to everyone", async () => {
          const file: FileState = { size: KB64, etag: '"f1"', written: 0, runs: 0 };
          const cache = cleanup.track(createCache({ namespace: `cond-feed${process.pid}-${++counter}`, redis: false }));
          const feed: Handler = (io) => {
            file.runs++;
            io.set('Content-Type', 'text/plain');
            // Not HTTP: a 200 with only the items since the client's date (no validator: Express's send() would answer 304).
            if (io.native.framework === 'express' ? io.native.req.headers['if-modified-since'] !== undefined : io.native.ctx.get('If-Modified-Since') !== '') return io.send('nothing new');
            io.set('Last-Modified', FILE_DATE);
            io.stream(chunksOf(file));
          };
          const { target } = buildApp(adapter, cache, { routes: [{ path: '/feed', mw: { ttl: '1m', maxBodyBytes: 1024 }, handler: feed }] });
          // Learned too large: the fill set the date aside, the whole feed went out, nothing stored.
          assert.equal((await request(target).get('/feed').set('If-Modified-Since', FILE_DATE)).status, 304);
          const kept = await request(target).get('/feed').set('If-Modified-Since', 'Mon, 07 Dec 2026 10:00:00 GMT');
          assert.deepEqual([kept.status, kept.text, kept.headers['cache-status']], [200, 'nothing new', 'tiercache; fwd=miss; detail=too-large']);
          const runs = file.runs;
          const plain = await request(target).get('/feed');
          assert.equal(plain.text.length, KB64, "a plain GET got the answer made for another client's If-Modified-Since");
          assert.equal(file.runs, runs + 1);
        });

        it('an answer sent whole that changed and is still too large is learned again from the 200 to the kept conditionals: the next revalidation, of its new tag, reaches the app with it, nothing made (found by h190: the key was forgotten and the new tag not learned, so it was made whole once more for the cache\'s 304)', async () => {
          const file = { etag: '"w1"', made: 0 };
          const cache = cleanup.track(createCache({ namespace: `cond-whole${process.pid}-${++counter}`, redis: false }));
          const whole: Handler = (io) => {
            io.set('ETag', file.etag);
            io.set('Content-Type', 'text/plain');
            if (fresh(io)) {
              io.status(304);
              if (io.native.framework === 'express') io.native.res.end();
              return;
            }
            file.made++;
            io.send(Buffer.alloc(4096, 'w'));
          };
          const { target } = buildApp(adapter, cache, { routes: [{ path: '/whole', mw: { ttl: '1m', maxBodyBytes: 1024 }, handler: whole }] });
          assert.equal((await request(target).get('/whole').set('If-None-Match', '"w1"')).status, 304);
          file.etag = '"w2"';
          const changed = await request(target).get('/whole').set('If-None-Match', '"w1"');
          assert.deepEqual([changed.status, changed.text.length, changed.headers['etag']], [200, 4096, '"w2"']);
          const made = file.made;
          const next = await request(target).get('/whole').set('If-None-Match', '"w2"');
          assert.equal(next.status, 304);
          assert.equal(file.made, made, 'the body made for the revalidation of the new tag');
          assert.equal(next.headers['cache-status'], 'tiercache; fwd=miss; detail=too-large');
        });

        it('learned for the path: another query (one the app ignores makes a new key for every request), another variant, another spelling keep their conditionals', async () => {
          const file: FileState = { size: KB64, etag: '"f1"', vary: 'Accept-Language', written: 0, runs: 0 };
          const { target } = serve(file);
          const ask = (path: string, lang: string) => request(target).get(path).set('Accept-Language', lang).set('If-None-Match', '"f1"');
          assert.equal((await ask('/file', 'en')).status, 304);
          assert.equal(file.written, KB64);
          const answers = [await ask('/file?x=1', 'en'), await ask('/file?x=2', 'en'), await ask('/file', 'fr'), await ask('/FILE/', 'de')];
          assert.equal(file.written, KB64, 'bytes the handler read after the first');
          assert.deepEqual(
            answers.map((a) => [a.status, a.headers['cache-status']]),
            answers.map(() => [304, 'tiercache; fwd=miss; detail=too-large']),
          );
        });

        it('on a user-scoped route, learned per user: what one user taught is not known for another', async () => {
          const file: FileState = { size: KB64, etag: '"f1"', written: 0, runs: 0 };
          const { target } = serve(file, { user: (arg: unknown) => headerOf(arg, 'x-user') });
          const ask = (path: string, user: string) => request(target).get(path).set('X-User', user).set('If-None-Match', '"f1"');
          await ask('/file', 'a');
          await ask('/file?x=1', 'a');
          assert.equal(file.written, KB64, "bytes the handler read for user a's two requests");
          const first = await ask('/file?x=2', 'b');
          assert.deepEqual([first.status, file.written], [304, 2 * KB64], "user b's first request is a fill of its own");
          const later = await ask('/file?x=3', 'b');
          assert.deepEqual([later.status, later.headers['cache-status'], file.written], [304, 'tiercache; fwd=miss; detail=too-large', 2 * KB64]);
        });

        it('one answer too large on a path does not keep the conditionals of revalidations of its other answers, which fit: their fill is stored and the next is a hit (found by h189: one large query an hour made every conditional miss on the path run the app and store nothing)', async () => {
          const cache = cleanup.track(createCache({ namespace: `cond-page${process.pid}-${++counter}`, redis: false }));
          const runs = new Map<string, number>();
          // A JSON list whose ETag is its content's, as Express's res.json makes one: it answers its own 304.
          const handler: Handler = (io) => {
            const n = Number(new URL(io.native.framework === 'express' ? io.native.req.originalUrl : io.native.ctx.url, 'http://x').searchParams.get('n'));
            runs.set(`n=${n}`, (runs.get(`n=${n}`) ?? 0) + 1);
            io.set('ETag', `"items-${n}"`);
            io.set('Content-Type', 'application/json');
            if (fresh(io)) {
              io.status(304);
              if (io.native.framework === 'express') io.native.res.end();
              return;
            }
            io.send(JSON.stringify(Array.from({ length: n }, (_, i) => i)));
          };
          const { target } = buildApp(adapter, cache, { routes: [{ path: '/items', mw: { ttl: '1m', maxBodyBytes: 1024 }, handler }] });
          // Anyone asks for a page too large to store, once.
          assert.equal((await request(target).get('/items?n=5000')).status, 200);
          // Clients revalidate a small page they got before (from another instance, or before its entry expired).
          const answers = [];
          for (let i = 0; i < 3; i++) answers.push(await request(target).get('/items?n=3').set('If-None-Match', '"items-3"'));
          assert.deepEqual(answers.map((a) => a.status), [304, 304, 304]);
          assert.equal(runs.get('n=3'), 1, 'the app ran for every revalidation of the small page: its conditionals were kept (path learned too large) and nothing was stored');
          assert.match(String(answers[2]!.headers['cache-status']), /^tiercache; hit\b/);
        });

        describe('a path whose answers carry only Last-Modified (koa-send, a list dated by its newest item)', () => {
          const SMALL_DATE = 'Thu, 03 Dec 2026 10:00:00 GMT';
          /** `/items?n=`: the large page dated FILE_DATE, the small ones SMALL_DATE; each streamed (no ETag made for it). */
          const serveDated = () => {
            const cache = cleanup.track(createCache({ namespace: `cond-dated${process.pid}-${++counter}`, redis: false }));
            const seen = { runs: new Map<string, number>(), written: 0, largeDate: FILE_DATE };
            const handler: Handler = (io) => {
              const url = new URL(io.native.framework === 'express' ? io.native.req.originalUrl : io.native.ctx.url, 'http://x');
              const n = Number(url.searchParams.get('n'));
              seen.runs.set(`n=${n}`, (seen.runs.get(`n=${n}`) ?? 0) + 1);
              io.set('Last-Modified', n > 100 ? seen.largeDate : SMALL_DATE);
              io.set('Content-Type', 'text/plain');
              if (fresh(io)) {
                io.status(304);
                if (io.native.framework === 'express') io.native.res.end();
                return;
              }
              io.stream(chunksOf({ size: n > 100 ? KB64 : 100, etag: '', written: 0, runs: 0 })); // counted below
              if (n > 100) seen.written += KB64;
            };
            const { target } = buildApp(adapter, cache, { routes: [{ path: '/items', mw: { ttl: '1m', maxBodyBytes: 1024 }, handler }] });
            return { target, seen };
          };

          it('revalidations of a small answer dated after the large one are filled and stored once the app\'s 304 shows they revalidate none of the large answers: the next is a hit (found by h189, left open: each ran the app and nothing was stored)', async () => {
            const { target, seen } = serveDated();
            assert.equal((await request(target).get('/items?n=5000')).status, 200);
            const answers = [];
            for (let i = 0; i < 3; i++) answers.push(await request(target).get('/items?n=3').set('If-Modified-Since', SMALL_DATE));
            assert.deepEqual(answers.map((a) => a.status), [304, 304, 304]);
            assert.deepEqual(
              answers.map((a) => a.headers['cache-status']),
              ['tiercache; fwd=miss; detail=too-large', 'tiercache; fwd=miss', 'tiercache; hit; detail=L1'],
              'the app ran for every revalidation of the small page: its conditionals were kept (the path\'s large answer meets its date) and nothing was stored',
            );
            assert.equal(seen.runs.get('n=3'), 2);
          });

          it('revalidations of the large answer under new queries, with its date or any later one, keep their conditionals: its 304 teaches nothing, nothing is read (h178\'s attack stays closed)', async () => {
            const { target, seen } = serveDated();
            await request(target).get('/items?n=5000');
            seen.written = 0;
            for (const [i, date] of [FILE_DATE, 'Mon, 07 Dec 2026 10:00:00 GMT', 'Fri, 01 Jan 2100 00:00:00 GMT'].entries()) {
              for (const again of [0, 1]) {
                const res = await request(target).get(`/items?n=5000&x=${i}`).set('If-Modified-Since', date);
                assert.deepEqual([res.status, res.headers['cache-status']], [304, 'tiercache; fwd=miss; detail=too-large'], `${date}, asked ${again + 1} times`);
              }
            }
            assert.equal(seen.written, 0, 'bytes the handler read for revalidations of the large answer');
          });

          it('a large answer that changed (a later date, not learned on this instance) is read whole once at most, and learned: revalidations of it under new queries, each asked twice, read nothing', async () => {
            const { target, seen } = serveDated();
            await request(target).get('/items?n=5000');
            seen.largeDate = 'Sat, 05 Dec 2026 10:00:00 GMT';
            seen.written = 0;
            // A client holding the new date from another instance: the app's 304 shows an answer this one has not learned.
            const asks = [];
            for (let i = 0; i < 3; i++) asks.push(await request(target).get('/items?n=5000&x=a').set('If-Modified-Since', seen.largeDate));
            assert.ok(seen.written <= KB64, `bytes the handler read for one key: ${seen.written}`);
            const once = seen.written;
            for (let i = 0; i < 3; i++) for (const _again of [0, 1]) asks.push(await request(target).get(`/items?n=5000&x=b${i}`).set('If-Modified-Since', seen.largeDate));
            assert.deepEqual(asks.map((a) => a.status), Array(9).fill(304));
            assert.equal(seen.written, once, 'bytes the handler read for revalidations under new queries, each asked twice');
          });
        });

        it('an answer that grew too large while a stale copy of it is kept (stale-if-error): its next revalidations reach the app with their conditionals, nothing read (found by h189: each read it whole for as long as the stale copy was kept)', async () => {
          const file: FileState = { size: 100, etag: '"s1"', written: 0, runs: 0 };
          const { target } = serve(file, { ttl: 100, staleIfError: '1h' });
          assert.equal((await request(target).get('/file')).text.length, 100);
          await new Promise((r) => setTimeout(r, 250));
          Object.assign(file, { size: KB64, etag: '"g1"', written: 0 });
          const first = await request(target).get('/file').set('If-None-Match', '"g1"');
          assert.deepEqual([first.status, file.written], [304, KB64]);
          const next = await request(target).get('/file').set('If-None-Match', '"g1"');
          assert.equal(next.status, 304);
          assert.equal(file.written, KB64, 'bytes the handler read for the second conditional request, the stale copy at hand');
          assert.equal(next.headers['cache-status'], 'tiercache; fwd=miss; detail=too-large');
        });

        it('requests that wait on such a fill: each gets its 304 from the app, nothing read', async () => {
          const file: FileState = { size: KB64, etag: '"f1"', written: 0, runs: 0 };
          const { target } = serve(file);
          await request(target).get('/file').set('If-None-Match', '"f1"');
          file.written = 0;
          const answers = await Promise.all([0, 1, 2, 3].map(() => request(target).get('/file').set('If-None-Match', '"f1"')));
          assert.deepEqual(answers.map((a) => a.status), [304, 304, 304, 304]);
          assert.equal(file.written, 0);
        });
      });

      it('an answer that sets a cookie goes whole, cookie and all (found by helper-69: a 304 of the cache keeps no Set-Cookie)', async () => {
        const { target } = build();
        const res = await request(target).get('/cookie').set('If-None-Match', '"c1"');
        assert.equal(res.status, 200);
        assert.equal(res.text, 'with a cookie');
        assert.match(String(res.headers['set-cookie']), /^csrf=tok/);
        assert.equal(res.headers['cache-status'], 'tiercache; fwd=miss; detail=set-cookie');
      });
    });
  }

  it('with the cache app-wide and on the route, the route’s layer sees the request’s conditionals (found by helper-71: the outer one set them aside and never gave them back)', async () => {
    const cache = cleanup.track(createCache({ namespace: `cond-nested${process.pid}`, redis: false, routes: { '/p': '1m' } }));
    const app = express();
    app.use(expressCache(cache));
    app.get('/p', expressCache(cache, { ttl: '1m' }), (_req, res) => void res.set('ETag', '"n1"').send('nested'));
    const res = await request(app).get('/p').set('If-None-Match', '"n1"');
    assert.equal(res.status, 304);
    assert.equal(res.headers['cache-status'], 'tiercache; fwd=miss; stored');
  });
});

// A fill that keeps its conditionals stores nothing, yet its lookup took the Redis fill lock: another
// instance's request for the key waited for that fill, then ran its handler unlocked. Two caches on one
// real redis-server; the kept fill's handler is held until the other instance's has run (3 s at most).
describe('middleware: a fill that keeps the conditionals, with another instance on the same Redis', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'cond-kept-lock' });

  /**
   * Origin mode: /file answered no-cache by a handler that runs `before` first, stored while it fits ("f1"), then
   * grown past maxBodyBytes ("f2", 4 KiB): learned too large, the stale copy kept to revalidate.
   */
  async function grownPastBound(adapter: (typeof adapters)[number], before: () => Promise<void>) {
    const file = { size: 100, etag: '"f1"' };
    const handler: Handler = async (io) => {
      await before();
      io.set('ETag', file.etag);
      io.set('Cache-Control', 'no-cache');
      io.set('Content-Type', 'text/plain');
      if (fresh(io)) {
        io.status(304);
        if (io.native.framework === 'express') io.native.res.end();
        return;
      }
      io.send(Buffer.alloc(file.size, 'f'));
    };
    const cache = await ctx.open({ l2: { commandTimeout: '3s', lockTimeout: '10s' } });
    const target = buildApp(adapter, cache, { routes: [{ path: '/file', mw: { freshness: 'origin', maxBodyBytes: 1024 }, handler }] }).target;
    assert.equal((await request(target).get('/file')).headers['cache-status'], 'tiercache; fwd=miss; stored');
    Object.assign(file, { size: 4096, etag: '"f2"' });
    assert.equal((await request(target).get('/file')).text.length, 4096);
    return { cache, target };
  }

  for (const adapter of adapters) {
    it(`${adapter.name}: takes no fill lock: a request for the key on the other instance fills at once, not held behind it`, async () => {
      const file: FileState = { size: 4096, etag: '"f1"', written: 0, runs: 0 };
      const order: string[] = [];
      let released!: () => void;
      let gate: Promise<void> | undefined;
      const held = (name: string): Handler => {
        const inner = streamsFile(file);
        return async (io) => {
          if (name === 'a' && gate !== undefined) {
            order.push('a begins');
            await Promise.race([gate, new Promise((resolve) => setTimeout(resolve, 3_000))]);
            order.push('a ends');
          } else if (name === 'b') {
            order.push('b runs');
            released?.();
          }
          return inner(io);
        };
      };
      const open = (name: string) => ctx.open({ l2: { commandTimeout: '3s', lockTimeout: '10s' } }).then((cache) => buildApp(adapter, cache, { routes: [{ path: '/file', mw: { ttl: '1m', maxBodyBytes: 1024 }, handler: held(name) }] }).target);
      const a = await open('a');
      const b = await open('b');
      // A learns the answer too large (its fill set the conditionals aside, read it all, stored nothing).
      assert.equal((await request(a).get('/file').set('If-None-Match', '"f1"')).status, 304);
      gate = new Promise<void>((resolve) => (released = resolve));
      const kept = request(a).get('/file').set('If-None-Match', '"f1"').then((r) => r);
      while (!order.includes('a begins')) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.deepEqual(await ctx.admin.keys(`*${ctx.ns}*:lock`), [], 'the fill that keeps the conditionals holds the Redis fill lock');
      const other = await request(b).get('/file');
      const answered = await kept;
      assert.deepEqual([answered.status, answered.headers['cache-status']], [304, 'tiercache; fwd=miss; detail=too-large']);
      assert.deepEqual([other.status, other.text.length], [200, 4096]);
      assert.deepEqual(order, ['a begins', 'b runs', 'a ends'], "the other instance's request was held behind a fill that stores nothing");
    });

    it(`${adapter.name}: origin mode, a stale copy found to revalidate: the fill sets them aside after all, and holds the lock while it may store`, async () => {
      let locksSeen: string[] | undefined;
      let watch = false;
      const a = await grownPastBound(adapter, async () => {
        if (watch) locksSeen = await ctx.admin.keys(`*${ctx.ns}*:lock`);
      });
      watch = true;
      const revalidated = await request(a.target).get('/file').set('If-None-Match', '"f2"');
      assert.equal(revalidated.status, 304);
      assert.equal(locksSeen?.length, 1, 'the fill that revalidates the stale copy ran without the lock');
    });

    // A waiter whose fill's client left (or stalled) fills in its place (takeRefill): fill() looks up for it
    // itself, with the stale copy at hand. One whose conditionals are kept but that revalidates that copy may
    // store: it must take the lock in that lookup too.
    it(`${adapter.name}: origin mode, a waiter that fills in place of a fill whose client left, a stale copy to revalidate: it holds its own lock while it may store`, async () => {
      const lockOf = async () => {
        const [key] = await ctx.admin.keys(`*${ctx.ns}*:lock`);
        return key === undefined ? undefined : ((await ctx.admin.get(key)) ?? undefined);
      };
      const tokens: Array<string | undefined> = [];
      let watch = false;
      let leaving: (() => void) | undefined;
      let began!: () => void;
      const leaverIn = new Promise<void>((resolve) => (began = resolve));
      const a = await grownPastBound(adapter, async () => {
        if (!watch) return;
        tokens.push(await lockOf());
        if (leaving !== undefined) return;
        began();
        // The first fill's handler outlives its client (who hangs up meanwhile).
        await new Promise<void>((resolve) => (leaving = resolve));
      });
      watch = true;
      const server = await ctx.serve(a.target as never);
      const { port } = server.address() as AddressInfo;
      const leaver = connect(port, '127.0.0.1', () => leaver.write('GET /file HTTP/1.1\r\nHost: x\r\n\r\n'));
      leaver.on('error', () => undefined);
      await leaverIn;
      // Known too large, its conditionals would be kept; it waits on the fill under way.
      const waiter = request(server).get('/file').set('If-None-Match', '"f2"').then((r) => r);
      const connections = () => new Promise<number>((resolve) => server.getConnections((_err, n) => resolve(n)));
      while ((await connections()) < 2) await new Promise((resolve) => setTimeout(resolve, 5));
      await new Promise((resolve) => setTimeout(resolve, 50));
      leaver.destroy();
      const answered = await waiter;
      leaving?.();
      assert.equal(answered.status, 304);
      assert.equal(a.cache.stats().coalesced, 1, 'the second request did not wait on the first fill (premise: it fills in place of the one whose client left)');
      assert.equal(tokens.length, 2, `the handler ran ${tokens.length} times`);
      assert.ok(tokens[0] !== undefined, 'the first fill ran without the lock (premise)');
      assert.ok(tokens[1] !== undefined && tokens[1] !== tokens[0], `the waiter that filled in place revalidated the stale copy without a lock of its own (lock: ${tokens[1] === undefined ? 'none' : 'the first fill\'s'})`);
    });
  }
});
