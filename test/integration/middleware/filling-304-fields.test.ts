// The 304 the cache makes on the filling request (the handler answered 200,
// the client's If-None-Match matched) carries the fields RFC 9110 §15.4.5
// lets a 304 carry (ETag, Cache-Control, Vary, Date, ...) and none of the
// 200's representation fields: no Content-Type, no Content-Length of a body
// that is not sent, none of the handler's own. Express 5 and 4, Koa 3 and 2.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp } from './apps.js';

describe('middleware: the 304 of a filling request', () => {
  const cleanup = useCleanup();

  for (const adapter of adapters) {
    it(`${adapter.name}: keeps ETag, Cache-Control and Vary, drops Content-Type, Content-Length and the handler's own fields`, async () => {
      const cache = cleanup.track(createCache({ redis: false }));
      const app = buildApp(adapter, cache, {
        routes: [
          {
            path: '/doc',
            mw: {},
            handler: (io) => {
              io.set('Cache-Control', 'public, max-age=60');
              io.set('Vary', 'Accept-Language');
              io.set('ETag', '"d1"');
              io.set('Content-Type', 'text/plain; charset=utf-8');
              io.set('X-Doc-Id', '42');
              io.send('the document');
            },
          },
        ],
      });
      const res = await request(app.target).get('/doc').set('If-None-Match', '"d1"');
      assert.equal(res.status, 304);
      assert.equal(res.headers.etag, '"d1"');
      assert.equal(res.headers['cache-control'], 'public, max-age=60');
      assert.equal(res.headers.vary, 'Accept-Language');
      for (const name of ['content-type', 'content-length', 'x-doc-id']) assert.equal(res.headers[name], undefined, `${name} on the 304`);
      const full = await request(app.target).get('/doc');
      assert.equal(full.status, 200);
      assert.equal(full.text, 'the document');
      assert.equal(full.headers['x-doc-id'], '42', 'the stored answer keeps its fields');
    });
  }
});
