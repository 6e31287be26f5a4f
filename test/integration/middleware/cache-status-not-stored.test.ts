// Cache-Status says `stored` only for an answer that is stored. Two answers
// said so and were dropped (found by a hostile review): one whose handler took
// longer than the TTL (it lands expired), and, with L1 alone, a body within
// maxBodyBytes but bigger than l1.maxBytes (L1 refuses it whole). And the
// other side of those bounds (mutation testing, http-cache.ts): an entry of
// exactly l1.maxBytes is kept; with Redis beside L1 a body over l1.maxBytes is
// stored in L2; a reason found before the TTL ran out is the one given; with
// cacheStatus: false nothing is said.
import assert from 'node:assert/strict';
import { get } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { missStatus } from '../../../src/middleware/cache-status.js';
import { useCleanup, useRedisCaches } from '../../support/cache-context.js';
import { adapters, buildApp } from './apps.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
let counter = 0;

describe('middleware: Cache-Status of answers that are not stored', () => {
  const cleanup = useCleanup();
  const newCache = (options: object = {}) => cleanup.track(createCache({ namespace: `not-stored-${process.pid}-${++counter}`, redis: false, ...options }));

  for (const adapter of adapters) {
    it(`${adapter.name}: a handler slower than the TTL says detail=expired, and the next request runs it again`, async () => {
      const app = buildApp(adapter, newCache(), {
        routes: [
          {
            path: '/slow',
            mw: { ttl: 100 },
            handler: async (io) => {
              await sleep(200);
              io.send('slow');
            },
          },
        ],
      });
      for (let i = 0; i < 2; i++) {
        const res = await request(app.target).get('/slow');
        assert.equal(res.text, 'slow');
        assert.equal(res.headers['cache-status'], missStatus('expired'));
      }
      assert.equal(app.runs('/slow'), 2);
    });
  }

  it('a handler slower than the TTL whose answer may not be stored anyway (private) says why: private, not expired', async () => {
    const app = buildApp(adapters[0]!, newCache(), {
      routes: [{ path: '/slow', mw: { ttl: 100 }, handler: async (io) => (await sleep(200), io.set('Cache-Control', 'private'), io.send('mine')) }],
    });
    assert.equal((await request(app.target).get('/slow')).headers['cache-status'], missStatus('private'));
  });

  it('a handler slower than the TTL but within its stale window is stored, and says so', async () => {
    const app = buildApp(adapters[0]!, newCache(), {
      routes: [{ path: '/slow', mw: { ttl: 100, staleWhileRevalidate: '1m' }, handler: async (io) => (await sleep(200), io.send('slow')) }],
    });
    assert.equal((await request(app.target).get('/slow')).headers['cache-status'], 'tiercache; fwd=miss; stored');
  });

  for (const adapter of adapters) {
    it(`${adapter.name}: with L1 alone, a body within maxBodyBytes but over l1.maxBytes says detail=too-large`, async () => {
      const cache = newCache({ l1: { maxBytes: 64 * 1024 } });
      const app = buildApp(adapter, cache, { routes: [{ path: '/big', mw: { ttl: '1m' }, handler: (io) => io.send(Buffer.alloc(100 * 1024, 'b')) }] });
      for (let i = 0; i < 2; i++) {
        const res = await request(app.target).get('/big');
        assert.equal(res.status, 200);
        assert.equal(res.headers['cache-status'], missStatus('too-large'));
      }
      assert.equal(app.runs('/big'), 2);
    });
  }
  it('with L1 alone, a body just under l1.maxBytes that L1 would still refuse (its head and bookkeeping on top) says detail=too-large; one well under is stored', async () => {
    const cache = newCache({ l1: { maxBytes: 64 * 1024 } });
    const app = buildApp(adapters[0]!, cache, {
      routes: [
        { path: '/near', mw: { ttl: '1m' }, handler: (io) => io.send(Buffer.alloc(64 * 1024 - 200, 'n')) },
        { path: '/under', mw: { ttl: '1m' }, handler: (io) => io.send(Buffer.alloc(60 * 1024, 'u')) },
      ],
    });
    for (let i = 0; i < 2; i++) assert.equal((await request(app.target).get('/near')).headers['cache-status'], missStatus('too-large'));
    assert.equal((await request(app.target).get('/under')).headers['cache-status'], 'tiercache; fwd=miss; stored');
    assert.equal((await request(app.target).get('/under')).headers['cache-status'], 'tiercache; hit; detail=L1');
  });

  it('with L1 alone, a body well under l1.maxBytes whose headers take it over (L1 would refuse it) says detail=too-large, not stored', async () => {
    const cache = newCache({ l1: { maxBytes: 256 * 1024 } });
    const app = buildApp(adapters[0]!, cache, {
      routes: [
        {
          path: '/heavy',
          mw: { ttl: '1m' },
          handler: (io) => {
            // Half as single values, half as one repeated field (an array): both count.
            for (let i = 0; i < 8; i++) io.set(`x-pad-${i}`, 'h'.repeat(10_000));
            io.set('x-pads', Array.from({ length: 8 }, () => 'a'.repeat(10_000)));
            io.send(Buffer.alloc(100 * 1024, 'b'));
          },
        },
      ],
    });
    const server = await cleanup.serve(app.target as never);
    const { port } = server.address() as AddressInfo;
    const statusOf = () =>
      new Promise<string>((resolve, reject) => {
        get({ host: '127.0.0.1', port, path: '/heavy', maxHeaderSize: 1_000_000 }, (res) => {
          res.resume();
          res.on('end', () => resolve(String(res.headers['cache-status'])));
        }).on('error', reject);
      });
    assert.equal(await statusOf(), missStatus('too-large'), 'L1 cannot keep this answer, and it said so');
    assert.equal(await statusOf(), missStatus('too-large'));
    assert.equal(app.runs('/heavy'), 2);
  });

  it('with L1 alone and cacheStatus: false, a body L1 would refuse says nothing (no Cache-Status), and is not stored', async () => {
    const cache = newCache({ l1: { maxBytes: 64 * 1024 } });
    const app = buildApp(adapters[0]!, cache, { routes: [{ path: '/near', mw: { ttl: '1m', cacheStatus: false }, handler: (io) => io.send(Buffer.alloc(64 * 1024 - 200, 'n')) }] });
    for (let i = 0; i < 2; i++) {
      const res = await request(app.target).get('/near');
      assert.equal(res.status, 200);
      assert.equal(res.headers['cache-status'], undefined);
    }
    assert.equal(app.runs('/near'), 2);
  });

  it('with L1 alone, an entry of exactly l1.maxBytes is stored and served (the bound is inclusive)', async () => {
    // The entry's size, measured on a cache that has room: the same namespace, key and answer give the same size.
    // Not public (a key option): the public case, with its route label, is the next test.
    const namespace = `not-stored-${process.pid}-${++counter}`;
    const route = (cache: ReturnType<typeof newCache>) =>
      buildApp(adapters[0]!, cache, { routes: [{ path: '/exact', mw: { ttl: '1m', key: () => 'exact' }, handler: (io) => io.send(Buffer.alloc(70 * 1024, 'x')) }] });
    const roomy = newCache({ namespace, l1: { maxBytes: 10_000_000 } });
    assert.equal((await request(route(roomy).target).get('/exact')).headers['cache-status'], 'tiercache; fwd=miss; stored');
    const { bytes, entries } = roomy.stats().l1;
    assert.equal(entries, 1);
    await roomy.close();
    const app = route(newCache({ namespace, l1: { maxBytes: bytes } }));
    assert.equal((await request(app.target).get('/exact')).headers['cache-status'], 'tiercache; fwd=miss; stored', `an entry of ${bytes} bytes, l1.maxBytes ${bytes}`);
    assert.equal((await request(app.target).get('/exact')).headers['cache-status'], 'tiercache; hit; detail=L1');
    assert.equal(app.runs('/exact'), 1);
  });

  it('with L1 alone, a public entry is sized with its route label: one byte over l1.maxBytes is not said stored', async () => {
    const namespace = `not-stored-${process.pid}-${++counter}`;
    // Public (no key option), mounted on its route: it stores the route's pattern as its label.
    const route = (cache: ReturnType<typeof newCache>) =>
      buildApp(adapters[0]!, cache, { routes: [{ path: '/labelled', mw: { ttl: '1m' }, handler: (io) => io.send(Buffer.alloc(70 * 1024, 'x')) }] });
    const roomy = newCache({ namespace, l1: { maxBytes: 10_000_000 } });
    assert.equal((await request(route(roomy).target).get('/labelled')).headers['cache-status'], 'tiercache; fwd=miss; stored');
    const { bytes } = roomy.stats().l1;
    await roomy.close();
    const exact = route(newCache({ namespace, l1: { maxBytes: bytes } }));
    assert.equal((await request(exact.target).get('/labelled')).headers['cache-status'], 'tiercache; fwd=miss; stored');
    assert.equal((await request(exact.target).get('/labelled')).headers['cache-status'], 'tiercache; hit; detail=L1');
    const over = route(newCache({ namespace, l1: { maxBytes: bytes - 1 } }));
    assert.notEqual((await request(over.target).get('/labelled')).headers['cache-status'], 'tiercache; fwd=miss; stored', `an entry of ${bytes} bytes, l1.maxBytes ${bytes - 1}`);
  });

  describe('with Redis', () => {
    const ctx = useRedisCaches({ prefix: 'not-stored' });

    it('a body over l1.maxBytes (within maxBodyBytes) is stored in L2 all the same, and served from there', async () => {
      const cache = await ctx.open({ l1: { maxBytes: 64 * 1024 } });
      const app = buildApp(adapters[0]!, cache, { routes: [{ path: '/big', mw: { ttl: '1m' }, handler: (io) => io.send(Buffer.alloc(100 * 1024, 'b')) }] });
      assert.equal((await request(app.target).get('/big')).headers['cache-status'], 'tiercache; fwd=miss; stored');
      const hit = await request(app.target).get('/big');
      assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L2');
      assert.equal(hit.body.length, 100 * 1024);
      assert.equal(app.runs('/big'), 1);
    });
  });
});
