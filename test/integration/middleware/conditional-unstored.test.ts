// A conditional GET whose answer the cache does not store still gets its 304
// (found by helper-68: the fill sets the request's If-None-Match and
// If-Modified-Since aside so the handler answers in full, and only a stored
// answer was matched against them). A private answer and one past
// maxBodyBytes, matched on the handler's own validators; not one that sets
// a cookie: it goes whole. A streamed answer with its own validator gets its
// 304 too, and is stored (see filling-304-fields). Express 5 and 4, Koa 3 and 2.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { useCleanup } from '../../support/cache-context.js';
import express from 'express';
import { expressCache } from '../../../src/express.js';
import { adapters, buildApp } from './apps.js';

let counter = 0;

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
