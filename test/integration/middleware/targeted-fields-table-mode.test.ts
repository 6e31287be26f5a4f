// A targeted field (RFC 9213) that keeps an answer from this cache is heard in
// table mode too. Before, only Cache-Control decided storing there: a handler
// that said `Tiercache-Cache-Control: no-store` (or `private`) to keep a
// personal answer out of tiercache while browsers or a CDN keep it was stored
// and served to the next client (found by helper-99's review). In table mode
// such a field only forbids: lifetimes stay the table's, and a Cache-Control
// that forbids storing still does.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { missStatus } from '../../../src/middleware/cache-status.js';
import { useCleanup } from '../../support/cache-context.js';
import { setAsHeadGoesOut } from '../../support/head-hook.js';
import { adapters, buildApp, type AnyMiddlewareOptions } from './apps.js';

let counter = 0;

describe('middleware, table mode: targeted fields that forbid storing', () => {
  const cleanup = useCleanup();
  const newCache = () => cleanup.track(createCache({ namespace: `targeted-table-${process.pid}-${++counter}`, redis: false }));

  /** Two GETs of a route whose handler answers with `headers`: the Cache-Status of each and how often the handler ran. */
  async function twice(adapter: (typeof adapters)[number], headers: Record<string, string>, mw: AnyMiddlewareOptions = { ttl: '1m' }) {
    let served = 0;
    const app = buildApp(adapter, newCache(), {
      routes: [
        {
          path: '/me',
          mw,
          handler: (io) => {
            for (const [name, value] of Object.entries(headers)) io.set(name, value);
            io.send(`answer ${++served}`);
          },
        },
      ],
    });
    const first = await request(app.target).get('/me');
    const second = await request(app.target).get('/me');
    return { statuses: [first.headers['cache-status'], second.headers['cache-status']], bodies: [first.text, second.text], runs: app.runs('/me') };
  }

  for (const adapter of adapters) {
    it(`${adapter.name}: Tiercache-Cache-Control: no-store or private keeps the answer out, whatever Cache-Control lets others keep`, async () => {
      for (const [field, reason] of [
        ['no-store', 'no-store'],
        ['private', 'private'],
        ['no-cache', 'no-cache'],
      ] as const) {
        const got = await twice(adapter, { 'Cache-Control': 'public, max-age=600', 'Tiercache-Cache-Control': field });
        assert.deepEqual(got.statuses, [missStatus(reason), missStatus(reason)], `Tiercache-Cache-Control: ${field}`);
        assert.deepEqual(got.bodies, ['answer 1', 'answer 2'], `Tiercache-Cache-Control: ${field}: the second client got the first's answer`);
        assert.equal(got.runs, 2);
      }
    });
  }

  it('a targeted field that forbids nothing leaves the table to decide, and an invalid one is ignored (RFC 9213 §2.1)', async () => {
    for (const field of ['max-age=5', 'no-store=?0', 'no-store, ,,max-age=(']) {
      const got = await twice(adapters[0]!, { 'Tiercache-Cache-Control': field });
      assert.deepEqual(got.statuses, ['tiercache; fwd=miss; stored', 'tiercache; hit; detail=L1'], `Tiercache-Cache-Control: ${field}`);
      assert.equal(got.runs, 1);
    }
  });

  it('a private targeted field on a user-scoped route is stored, as private Cache-Control is there', async () => {
    const got = await twice(adapters[0]!, { 'Tiercache-Cache-Control': 'private' }, { ttl: '1m', user: () => 'u1' });
    assert.deepEqual(got.statuses, ['tiercache; fwd=miss; stored', 'tiercache; hit; detail=L1']);
  });

  it('CDN-Cache-Control is read only where the middleware says so (cdnCacheControl: true)', async () => {
    const unread = await twice(adapters[0]!, { 'CDN-Cache-Control': 'no-store' });
    assert.deepEqual(unread.statuses, ['tiercache; fwd=miss; stored', 'tiercache; hit; detail=L1']);
    const read = await twice(adapters[0]!, { 'CDN-Cache-Control': 'no-store' }, { ttl: '1m', cdnCacheControl: true });
    assert.deepEqual(read.statuses, [missStatus('no-store'), missStatus('no-store')]);
    // Tiercache-Cache-Control comes first: a CDN's no-store does not forbid what is targeted at this cache.
    const both = await twice(adapters[0]!, { 'CDN-Cache-Control': 'no-store', 'Tiercache-Cache-Control': 'max-age=60' }, { ttl: '1m', cdnCacheControl: true });
    assert.deepEqual(both.statuses, ['tiercache; fwd=miss; stored', 'tiercache; hit; detail=L1']);
  });

  it('a targeted private set as the head goes out is heard as private: stored by a middleware with `user`, for that user', async () => {
    const express = (await import('express')).default;
    const { expressCache } = await import('../../../src/express.js');
    const app = express();
    let served = 0;
    app.use((_req, res, next) => {
      setAsHeadGoesOut(res, 'Tiercache-Cache-Control', 'private');
      next();
    });
    app.get('/me', expressCache(newCache(), { ttl: '1m', user: (req) => req.get('x-user') }), (req, res) => void res.send(`${req.get('x-user')} ${++served}`));
    assert.equal((await request(app).get('/me').set('x-user', 'ann')).text, 'ann 1');
    const again = await request(app).get('/me').set('x-user', 'ann');
    assert.equal(again.text, 'ann 1', `not stored: ${String(again.headers['cache-status'])}`);
    assert.equal((await request(app).get('/me').set('x-user', 'bob')).text, 'bob 2');
  });

  it('a targeted no-store set as the head goes out (a hook mounted before the cache) is heard too', async () => {
    const express = (await import('express')).default;
    const { expressCache } = await import('../../../src/express.js');
    const cache = newCache();
    const app = express();
    let served = 0;
    app.use((_req, res, next) => {
      setAsHeadGoesOut(res, 'Tiercache-Cache-Control', 'no-store');
      next();
    });
    app.get('/late', expressCache(cache, { ttl: '1m' }), (_req, res) => void res.send(`answer ${++served}`));
    assert.equal((await request(app).get('/late')).text, 'answer 1');
    assert.equal((await request(app).get('/late')).text, 'answer 2', 'an answer its hook kept from the cache was served to the next client');
  });
});
