// Cache-Status says why (RFC 9211 `detail`): every answer the cache did not
// serve or did not store names its reason from the fixed lists in
// src/middleware/cache-status.ts. Requests on routes the cache is not meant
// for carry no header unless `cacheStatus: 'verbose'`. The storage and
// bypass rules themselves are tested in storage-rules.test.ts; this file
// covers the tokens not asserted there. Express 5 and 4, Koa 3 and 2.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache, type CacheOptions } from '../../../src/index.js';
import { BYPASS_REASONS, MISS_REASONS } from '../../../src/middleware/cache-status.js';
import { useCleanup } from '../../support/cache-context.js';
import { wireRequest, valuesOf } from '../../support/http-wire.js';
import { adapters, buildApp, type AnyMiddlewareOptions } from './apps.js';

let counter = 0;

describe('middleware: Cache-Status reasons', function () {
  const cleanup = useCleanup();
  const open = (options: CacheOptions = {}) => cleanup.track(createCache({ namespace: `status${process.pid}-${++counter}`, redis: false, ...options }));

  it('documents a fixed list of tokens, each once', () => {
    for (const list of [BYPASS_REASONS, MISS_REASONS]) assert.equal(new Set<string>(list).size, list.length);
  });

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      const app = (appLevel: AnyMiddlewareOptions | true, options: CacheOptions = {}) =>
        buildApp(adapter, open({ routes: { '/api': '1m', '/admin': false }, ...options }), {
          appLevel,
          routes: [
            { path: '/api/big', handler: (io) => io.send('x'.repeat(2048)) },
            { path: '/api/short', handler: (io) => (io.set('Content-Length', '1000'), io.end('only some bytes')) },
            { path: '/api/later', handler: (io) => (io.set('Cache-Control', 'no-cache'), io.send('later')) },
            { path: '/admin', handler: (io) => io.send('admin') },
            { path: '/other', handler: (io) => io.send('other') },
            { path: '/api/write', method: 'post', handler: (io) => io.send('written') },
          ],
        });

      it('names too-large, truncated and no-cache on answers it did not store', async () => {
        const a = app({ maxBodyBytes: 1024 });
        assert.equal((await request(a.target).get('/api/big')).headers['cache-status'], 'tiercache; fwd=miss; detail=too-large');
        assert.equal((await request(a.target).get('/api/later')).headers['cache-status'], 'tiercache; fwd=miss; detail=no-cache');
        const server = await cleanup.serve(a.target);
        const short = await wireRequest(server, '/api/short', {}, { ms: 500 });
        assert.deepEqual(valuesOf(short, 'cache-status'), ['tiercache; fwd=miss; detail=truncated']);
        assert.equal(a.runs('/api/big') + a.runs('/api/later') + a.runs('/api/short'), 3);
        await request(a.target).get('/api/big');
        assert.equal(a.runs('/api/big'), 2, 'the oversized answer was stored');
      });

      it('adds no header to requests it leaves alone, unless verbose: no-rule, method, disabled, closed', async () => {
        const quiet = app(true);
        for (const path of ['/admin', '/other']) assert.equal((await request(quiet.target).get(path)).headers['cache-status'], undefined, path);
        assert.equal((await request(quiet.target).post('/api/write')).headers['cache-status'], undefined);

        const verbose = app({ cacheStatus: 'verbose' });
        for (const path of ['/admin', '/other']) assert.equal((await request(verbose.target).get(path)).headers['cache-status'], 'tiercache; fwd=bypass; detail=no-rule', path);
        assert.equal((await request(verbose.target).post('/api/write')).headers['cache-status'], 'tiercache; fwd=bypass; detail=method');

        const disabled = app({ cacheStatus: 'verbose' }, { enabled: false });
        assert.equal((await request(disabled.target).get('/api/big')).headers['cache-status'], 'tiercache; fwd=bypass; detail=disabled');

        const closing = open({ routes: { '/api': '1m' } });
        const closed = buildApp(adapter, closing, { appLevel: { cacheStatus: 'verbose' }, routes: [{ path: '/api/x', handler: (io) => io.send('x') }] });
        await closing.close();
        assert.equal((await request(closed.target).get('/api/x')).headers['cache-status'], 'tiercache; fwd=bypass; detail=closed');
      });
    });
  }
});
