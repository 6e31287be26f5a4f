// Why this exists: a write's Location invalidates the path it names only when
// it names this origin (RFC 9111 §4.4). A protocol-relative reference
// ("//elsewhere.example/p") names another authority, yet read as a path it
// would be "/elsewhere.example/p" here. Mutation testing showed that no test
// gave a write such a Location.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp } from './apps.js';

const HIT_L1 = 'tiercache; hit; detail=L1';
let counter = 0;

/** Resolves on the next 'invalidate' event of `cache`. */
const nextInvalidation = (cache: TierCache) => new Promise<void>((resolve) => cache.once('invalidate', () => resolve()));

describe('middleware: a write whose Location names another authority', () => {
  const cleanup = useCleanup();

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      it('a protocol-relative Location (//host/path) invalidates nothing here; the write target itself is invalidated', async () => {
        const cache = cleanup.track(createCache({ namespace: `loc-authority${process.pid}-${++counter}`, redis: false, ttl: '1m' }));
        const app = buildApp(adapter, cache, {
          appLevel: true,
          routes: [
            { path: '/elsewhere.example/p', handler: (io) => io.send(`p ${Date.now()}`) },
            { path: '/api/movies', handler: (io) => io.send(`list ${Date.now()}`) },
            { path: '/api/movies', method: 'post', handler: (io) => (io.status(201), io.set('Location', '//elsewhere.example/p'), io.send('created')) },
          ],
        });
        const p = (await request(app.target).get('/elsewhere.example/p')).text;
        const list = (await request(app.target).get('/api/movies')).text;
        assert.equal((await request(app.target).get('/elsewhere.example/p')).headers['cache-status'], HIT_L1);
        const heard = nextInvalidation(cache);
        assert.equal((await request(app.target).post('/api/movies')).status, 201);
        await heard;
        assert.notEqual((await request(app.target).get('/api/movies')).text, list, 'the write target was not invalidated');
        const after = await request(app.target).get('/elsewhere.example/p');
        assert.equal(after.headers['cache-status'], HIT_L1, 'a Location on another authority invalidated a path here');
        assert.equal(after.text, p);
      });
    });
  }
});
