// A 304 the handler sends itself (an app that answers conditionals of its
// own, which reach it on requests the cache does not store) passes through
// as sent: RFC 9110 §8.6 forbids a Content-Length on a 304 other than the 200's
// length, so the cache, which adds Content-Length to answers that lack one,
// must not add `0` here; and a 304 is never stored.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp } from './apps.js';

describe('middleware: a 304 sent by the handler', () => {
  const cleanup = useCleanup();

  for (const adapter of adapters) {
    it(`${adapter.name}: passes through without a Content-Length, and is not stored`, async () => {
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
  }
});
