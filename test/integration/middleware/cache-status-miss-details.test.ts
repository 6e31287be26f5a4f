// Why this exists: every answer the cache did not store says why in its
// Cache-Status detail (cache-status.ts). Mutation testing found two details
// nothing checked: an answer that the handler's own headers keep out of the
// cache keeps that reason even when an invalidation also overtook it (the
// first reason found is the one said, http-cache.ts headers()), and a 304 the
// handler sends by itself, with no revalidation of a stored entry under way,
// is passed on as a status the cache does not store.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp } from './apps.js';

let counter = 0;

describe('middleware: the Cache-Status detail of answers not stored', () => {
  const cleanup = useCleanup();

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      const open = () => cleanup.track(createCache({ namespace: `miss-detail${process.pid}-${++counter}`, redis: false }));

      it("says the answer's own reason (no-store), not 'invalidated', when an invalidation also overtook it", async () => {
        const cache = open();
        const app = buildApp(adapter, cache, {
          routes: [{
            path: '/movie',
            mw: { tags: () => ['movie:7'] },
            handler: async (io) => {
              await cache.invalidateTags(['movie:7']); // a write elsewhere, while this answer was being built
              io.set('Cache-Control', 'no-store');
              io.send('old movie');
            },
          }],
        });
        const res = await request(app.target).get('/movie');
        assert.equal(res.headers['cache-status'], 'tiercache; fwd=miss; detail=no-store');
      });

      for (const freshness of ['table', 'origin'] as const) {
        it(`${freshness} mode: a 304 the handler sends by itself (no stored entry revalidated) passes as not stored, detail=status`, async () => {
          const cache = open();
          const app = buildApp(adapter, cache, {
            routes: [{ path: '/n', mw: { ttl: '1m', freshness }, handler: (io) => (io.status(304), io.end()) }],
          });
          const res = await request(app.target).get('/n');
          assert.equal(res.status, 304);
          assert.equal(res.headers['cache-status'], 'tiercache; fwd=miss; detail=status');
          assert.equal((await request(app.target).get('/n')).status, 304);
          assert.equal(app.runs('/n'), 2);
        });
      }
    });
  }
});
