// Answers that carry no body (204, 304, an empty 200): the cache adds
// Content-Length to answers that lack one, and must not add it to a 204 or 304. RFC 9110 §8.6: a 204
// has none, and a 304 carries one only with the 200's length, so `0` there
// would tell a client the representation is empty.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp } from './apps.js';

const STORED = 'tiercache; fwd=miss; stored';
const HIT_L1 = 'tiercache; hit; detail=L1';

describe('middleware: answers without a body', () => {
  const cleanup = useCleanup();

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      it('a 304 the handler sends itself (answering conditionals of its own) passes through without a Content-Length, and is not stored', async () => {
        const cache = cleanup.track(createCache({ redis: false }));
        const app = buildApp(adapter, cache, {
          routes: [{ path: '/n', mw: {}, handler: (io) => { io.status(304); io.set('ETag', '"v1"'); io.send(''); } }],
        });
        for (let i = 1; i <= 2; i++) {
          const res = await request(app.target).get('/n');
          assert.equal(res.status, 304);
          assert.equal(res.headers['content-length'], undefined, `request ${i}: Content-Length`);
          assert.equal(res.headers.etag, '"v1"');
          assert.equal(app.runs('/n'), i, 'not stored');
        }
      });

      it('a stored 204 is replayed without a Content-Length', async () => {
        const cache = cleanup.track(createCache({ redis: false }));
        const app = buildApp(adapter, cache, {
          routes: [{ path: '/e', mw: {}, handler: (io) => { io.status(204); io.set('X-Kind', 'empty'); io.send(''); } }],
        });
        const first = await request(app.target).get('/e');
        assert.equal(first.headers['cache-status'], STORED);
        const hit = await request(app.target).get('/e');
        assert.equal(hit.status, 204);
        assert.equal(hit.headers['cache-status'], HIT_L1);
        assert.equal(hit.headers['x-kind'], 'empty');
        assert.equal(hit.headers['content-length'], undefined, 'the hit: Content-Length');
        assert.equal(app.runs('/e'), 1);
      });

      it('an empty 200 declared with Content-Length: 0 is stored, and replayed with it', async () => {
        const cache = cleanup.track(createCache({ redis: false }));
        const app = buildApp(adapter, cache, {
          routes: [{ path: '/z', mw: {}, handler: (io) => { io.set('Content-Length', '0'); io.end(); } }],
        });
        const first = await request(app.target).get('/z');
        assert.equal(first.headers['cache-status'], STORED);
        const hit = await request(app.target).get('/z');
        assert.equal(hit.status, 200);
        assert.equal(hit.headers['cache-status'], HIT_L1);
        assert.equal(hit.headers['content-length'], '0');
        assert.equal(app.runs('/z'), 1);
      });
    });
  }
});
