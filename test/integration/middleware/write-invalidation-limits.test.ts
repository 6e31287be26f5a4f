// Where invalidation by writes (RFC 9111 §4.4) does not apply: a disabled
// cache, a path where nothing could be cached (no rule, no cache-wide TTL, no
// middleware on the route), and answers that are no "non-error response"
// (RFC 9111 §4.4: a 2xx or 3xx) — a 400, or a final 1xx written by a broken
// handler. A write answered after the cache closed reports that its
// invalidation failed, except a write to '/', which had nothing to invalidate.
// Express 5, L1 only.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { createCache, type CacheOptions, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useCleanup } from '../../support/cache-context.js';
import { wireRequest } from '../../support/http-wire.js';

const HIT_L1 = 'tiercache; hit; detail=L1';
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('middleware: writes that invalidate nothing', function () {
  const { track, serve } = useCleanup();

  /** An app-wide middleware; GET /api/p and GET /other answer `<path> <n>`; POST answers (once `gate.held` resolves) with the status `?s=` names (default 201). */
  function app(options: CacheOptions) {
    const cache = track(createCache({ redis: false, ...options }));
    const invalidations: unknown[] = [];
    const errors: unknown[] = [];
    cache.on('invalidate', (e) => invalidations.push(e));
    cache.on('error', (e) => errors.push(e));
    let n = 0;
    const gate = { held: Promise.resolve() };
    const a = express();
    a.use(expressCache(cache));
    a.get(['/api/p', '/other'], (req, res) => void res.send(`${req.path} ${++n}`));
    a.post(['/', '/api/p', '/other'], async (req, res) => {
      await gate.held;
      const s = Number(req.query.s ?? 201);
      res.status(s).end();
    });
    return { cache, app: a, invalidations, errors, gate };
  }

  it('a disabled cache invalidates nothing on a successful write', async () => {
    const { app: a, invalidations } = app({ enabled: false, ttl: '1m' });
    assert.equal((await request(a).post('/api/p')).status, 201);
    await sleep(150);
    assert.deepEqual(invalidations, [], 'a write through a disabled cache invalidated');
  });

  it('a write to a path with no rule, under a cache without a TTL, invalidates nothing; one to a path with a rule does', async () => {
    const { app: a, invalidations } = app({ routes: { '/api': '1m' } });
    assert.equal((await request(a).post('/other')).status, 201);
    await sleep(150);
    assert.deepEqual(invalidations, [], 'a write to a path the cache never stores invalidated');
    assert.equal((await request(a).post('/api/p')).status, 201);
    for (let i = 0; i < 100 && invalidations.length === 0; i++) await sleep(5);
    assert.equal(invalidations.length, 1, 'a write to /api/p did not invalidate');
  });

  it('a write answered 400 leaves the entry of its path', async () => {
    const { app: a, invalidations } = app({ ttl: '1m' });
    const first = await request(a).get('/api/p');
    assert.equal((await request(a).post('/api/p?s=400')).status, 400);
    await sleep(150);
    assert.deepEqual(invalidations, []);
    const again = await request(a).get('/api/p');
    assert.equal(again.headers['cache-status'], HIT_L1, 'a 400 to a write invalidated the path');
    assert.equal(again.text, first.text);
  });

  it('a write a handler answers with a final 1xx status leaves the entry of its path', async () => {
    const { app: a, invalidations } = app({ ttl: '1m' });
    const first = await request(a).get('/api/p');
    const server = await serve(a);
    const answer = await wireRequest(server, '/api/p?s=199', { 'Content-Length': '0' }, { method: 'POST', ms: 300 });
    assert.equal(answer.status, 199);
    await sleep(150);
    assert.deepEqual(invalidations, []);
    const again = await request(a).get('/api/p');
    assert.equal(again.headers['cache-status'], HIT_L1, 'a 1xx answer to a write invalidated the path');
    assert.equal(again.text, first.text);
  });

  it("a write to '/' answered after close() reports no error (there was nothing to invalidate)", async () => {
    const { cache, app: a, errors, gate } = app({ ttl: '1m' });
    let release!: () => void;
    gate.held = new Promise<void>((resolve) => (release = resolve));
    const answered = request(a).post('/').then((r) => r.status);
    await sleep(50);
    await cache.close();
    release();
    assert.equal(await answered, 201);
    await sleep(150);
    assert.deepEqual(errors, []);
  });

  it('a write to a cached path answered after close() reports that its invalidation failed', async () => {
    const { cache, app: a, errors, gate } = app({ ttl: '1m' });
    let release!: () => void;
    gate.held = new Promise<void>((resolve) => (release = resolve));
    const answered = request(a).post('/api/p').then((r) => r.status);
    await sleep(50);
    await cache.close();
    release();
    assert.equal(await answered, 201);
    for (let i = 0; i < 100 && errors.length === 0; i++) await sleep(5);
    assert.equal(errors.length, 1, 'no error event for the invalidation that could not run');
    assert.equal((errors[0] as { where: string }).where, 'invalidation');
  });
});
