// Why this exists: the cache computes an ETag for an answer that has none only
// in table mode and only for a 200 (http-cache.ts headers(); storeStamped
// does the same for the stored copy). Mutation testing showed that nothing
// checked the filling answer itself: an ETag invented on an origin-mode
// answer, or on a 404 stored for negativeTtl, went unnoticed, and so did an
// absent ETag read as the string "undefined" when If-None-Match: * was
// answered on a fill. The filling answer must carry what its hits carry.
import assert from 'node:assert/strict';
import computeEtag from 'etag';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp, type AnyMiddlewareOptions, type HandlerIO } from './apps.js';

const STORED = 'tiercache; fwd=miss; stored';
const HIT_L1 = 'tiercache; hit; detail=L1';
let counter = 0;

describe('middleware: ETags are computed only for table-mode 200 answers, on the fill as on hits', () => {
  const cleanup = useCleanup();

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      function app(mw: AnyMiddlewareOptions, handler: (io: HandlerIO) => void) {
        const cache = cleanup.track(createCache({ namespace: `etag-where${process.pid}-${++counter}`, redis: false }));
        return buildApp(adapter, cache, { routes: [{ path: '/p', mw, handler }] });
      }

      it('origin mode: an answer without validators goes out and is replayed without an ETag', async () => {
        // Raw end(): Express's res.send would add an ETag of its own.
        const built = app({ freshness: 'origin' }, (io) => (io.set('Cache-Control', 'max-age=60'), io.end('no validator')));
        const miss = await request(built.target).get('/p');
        assert.equal(miss.headers['cache-status'], STORED);
        assert.equal(miss.headers['etag'], undefined, 'the cache invented an ETag the origin did not give');
        const hit = await request(built.target).get('/p');
        assert.equal(hit.headers['cache-status'], HIT_L1);
        assert.equal(hit.headers['etag'], undefined);
      });

      it('origin mode: If-None-Match: * on the filling request for an answer without an ETag gets the full answer, as a hit does', async () => {
        const built = app({ freshness: 'origin' }, (io) => (io.set('Cache-Control', 'max-age=60'), io.end('no validator')));
        const fill = await request(built.target).get('/p').set('If-None-Match', '*');
        assert.equal(fill.headers['cache-status'], STORED);
        assert.equal(fill.status, 200, 'an absent ETag matched If-None-Match: *');
        assert.equal(fill.text, 'no validator');
        const hit = await request(built.target).get('/p').set('If-None-Match', '*');
        assert.equal(hit.headers['cache-status'], HIT_L1);
        assert.equal(hit.status, 200);
      });

      it('table mode: a 404 stored for negativeTtl goes out without an ETag, as its hits do', async () => {
        const built = app({ ttl: '1m', negativeTtl: '1m' }, (io) => (io.status(404), io.end('missing')));
        const miss = await request(built.target).get('/p');
        assert.equal(miss.status, 404);
        assert.equal(miss.headers['cache-status'], STORED);
        assert.equal(miss.headers['etag'], undefined, 'an ETag was computed for a 404');
        const hit = await request(built.target).get('/p');
        assert.equal(hit.headers['cache-status'], HIT_L1);
        assert.equal(hit.headers['etag'], undefined);
      });

      it('table mode: a body sent as a string beyond ASCII gets the ETag of its UTF-8 bytes, and its hit those bytes', async () => {
        // A lone surrogate too: node sends it as EF BF BD, and the ETag and the stored bytes must say the same.
        const text = `{"name":"Jos\u00e9 \u2713 \ud83d\ude00 \ud800"}`;
        for (const [how, answer] of [['end()', (io: HandlerIO) => io.end(text)], ['the framework', (io: HandlerIO) => (io.set('Content-Type', 'application/json'), io.send(text))]] as const) {
          const built = app({ ttl: '1m' }, answer);
          const bytes = Buffer.from(text, 'utf8');
          const miss = await request(built.target).get('/p').buffer(true).parse((res, done) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => done(null, Buffer.concat(chunks)));
          });
          assert.equal(miss.headers['cache-status'], STORED, how);
          assert.deepEqual(miss.body, bytes, how);
          // Express's res.send says its own (weak) ETag of the same bytes.
          assert.equal(String(miss.headers['etag']).replace(/^W\//, ''), computeEtag(bytes), how);
          const hit = await request(built.target).get('/p').buffer(true).parse((res, done) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => done(null, Buffer.concat(chunks)));
          });
          assert.equal(hit.headers['cache-status'], HIT_L1, how);
          assert.deepEqual(hit.body, bytes, how);
          assert.equal(hit.headers['etag'], miss.headers['etag'], how);
          assert.equal(hit.headers['content-length'], String(bytes.length), how);
        }
      });
    });
  }
});
