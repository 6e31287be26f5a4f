// Why this exists: in origin mode a stale entry with validators is revalidated
// by running the handler conditionally; its 304 refreshes the entry and the
// client gets the stored answer, or a 304 of its own when its conditionals
// match (http-cache.ts refresh()). Mutation testing showed that no test had a
// stored answer other than a 200 there: a 404 with an ETag must be sent whole
// to a client whose If-None-Match matches it, as RFC 9110 §13.2.1 has servers
// ignore preconditions for answers that are not 2xx.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp, type HandlerIO } from './apps.js';

const REVALIDATED = 'tiercache; fwd=stale; fwd-status=304; stored';
let counter = 0;

describe('middleware: origin-mode revalidation answered 304', () => {
  const cleanup = useCleanup();

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      it("a revalidated 404 is sent whole to a client whose If-None-Match matches its ETag (preconditions only for 2xx)", async () => {
        const cache = cleanup.track(createCache({ namespace: `reval404${process.pid}-${++counter}`, redis: false }));
        const handler = (io: HandlerIO) => {
          io.set('ETag', '"n"');
          io.set('Cache-Control', 'max-age=0');
          if (io.header('if-none-match') === '"n"') {
            io.status(304);
            io.end();
            return;
          }
          io.status(404);
          io.end('missing');
        };
        const app = buildApp(adapter, cache, { routes: [{ path: '/gone', mw: { ttl: '1m', freshness: 'origin' }, handler }] });
        assert.equal((await request(app.target).get('/gone')).status, 404);
        const res = await request(app.target).get('/gone').set('If-None-Match', '"n"');
        assert.equal(res.headers['cache-status'], REVALIDATED, 'the stored 404 was revalidated');
        assert.equal(res.status, 404, 'a 404 answered a matching If-None-Match with 304');
        assert.equal(res.text, 'missing');
      });
    });
  }
});
