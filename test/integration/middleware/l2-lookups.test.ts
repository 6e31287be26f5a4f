// Lookups that go past L1 without starting a fill (a HEAD, or a request that
// says no-store), on an instance whose L1 has never seen the entry: they follow
// a Vary manifest in L2 to the request's own variant, and the front door
// reports its hits as 'hit' events with a bounded route label. Two instances
// on one redis-server; Express 5 and 4, Koa 3 and 2.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import request from 'supertest';
import express from 'express';
import type { HitEvent } from '../../../src/observe/events.js';
import { EntryKind } from '../../../src/store/entry.js';
import { expressCache } from '../../../src/express.js';
import { front } from '../../../src/node.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { adapters, buildApp, type HandlerIO } from './apps.js';

const HIT_L2 = 'tiercache; hit; detail=L2';

/** Answers in the request's language, varying on it. */
function greeting(io: HandlerIO): void {
  io.set('Vary', 'Accept-Language');
  io.send(io.header('accept-language') === 'de' ? 'Hallo' : 'Hello');
}

describe('middleware: lookups past L1', function () {
  const redisCaches = useRedisCaches({ prefix: 'l2-lookups' });

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      it("a HEAD on another instance follows L2's Vary manifest to its own variant, without running the handler", async () => {
        const options = { ttl: '1m', namespace: redisCaches.ns } as const;
        const a = buildApp(adapter, await redisCaches.open(options), { routes: [{ path: '/hi', mw: {}, handler: greeting }] });
        const b = buildApp(adapter, await redisCaches.open(options), { routes: [{ path: '/hi', mw: {}, handler: greeting }] });
        assert.equal((await request(a.target).get('/hi').set('Accept-Language', 'de')).text, 'Hallo');
        assert.equal((await request(a.target).get('/hi').set('Accept-Language', 'en')).text, 'Hello');

        const de = await request(b.target).head('/hi').set('Accept-Language', 'de');
        assert.equal(de.status, 200);
        assert.equal(de.headers['cache-status'], HIT_L2);
        assert.equal(de.headers['content-length'], '5', "the HEAD was answered with another variant's head");
        const en = await request(b.target).head('/hi').set('Accept-Language', 'en');
        assert.equal(en.headers['cache-status'], HIT_L2);
        assert.equal(b.runs('/hi'), 0, 'the handler ran for a HEAD that L2 could answer');

        // A variant nobody filled: the manifest leads nowhere, the handler answers.
        const fr = await request(b.target).head('/hi').set('Accept-Language', 'fr');
        assert.equal(fr.status, 200);
        assert.notEqual(fr.headers['cache-status'], HIT_L2);
        assert.equal(b.runs('/hi'), 1);
      });

      it('a request with Cache-Control: no-store on another instance is served the variant it asks for from L2', async () => {
        const options = { ttl: '1m', namespace: redisCaches.ns } as const;
        const a = buildApp(adapter, await redisCaches.open(options), { routes: [{ path: '/hi', mw: {}, handler: greeting }] });
        const b = buildApp(adapter, await redisCaches.open(options), { routes: [{ path: '/hi', mw: {}, handler: greeting }] });
        await request(a.target).get('/hi').set('Accept-Language', 'de');
        const de = await request(b.target).get('/hi').set('Accept-Language', 'de').set('Cache-Control', 'no-store');
        assert.equal(de.headers['cache-status'], HIT_L2);
        assert.equal(de.text, 'Hallo');
        assert.equal(b.runs('/hi'), 0);
      });
    });
  }

  for (const [what, plant] of [
    ['a data-API value', (body: Buffer) => ({ kind: EntryKind.Json, head: Buffer.alloc(0), body })],
    ['an HTTP entry whose head is not JSON', (body: Buffer) => ({ kind: EntryKind.Http, head: Buffer.from('{not json'), body })],
    ['an HTTP entry whose head is JSON null', (body: Buffer) => ({ kind: EntryKind.Http, head: Buffer.from('null'), body })],
  ] as const) {
    it(`${what} under a response's key, in L1 and L2, is a miss: the handler answers, its answer replaces it, and no error is reported`, async () => {
      for (const l1 of [true, false]) {
        const id = l1 ? 7 : 8;
        const cache = await redisCaches.open({ routes: { '/api/movies': '1m' }, ...(l1 ? {} : { l1: false }) });
        const errors: unknown[] = [];
        cache.on('error', (err) => errors.push(err));
        const app = express();
        let runs = 0;
        let key = '';
        app.get('/api/movies/:id', expressCache(cache), (req, res) => {
          key = cache.keyFor(req);
          void res.send(`movie ${req.params.id} run ${++runs}`);
        });
        const stored = once(cache, 'store');
        assert.equal((await request(app).get(`/api/movies/${id}`)).text, `movie ${id} run 1`);
        await stored;
        const now = Date.now();
        const epoch = cache.store.versions.knownEpoch!;
        const corrupt = { createdAt: now, freshUntil: now + 60_000, staleUntil: now + 60_000, epoch, tags: [], versions: [], ...plant(Buffer.from('planted')) };
        await cache.store.set(key, corrupt);
        // A HEAD looks past L1 without starting a fill: the planted entry is no answer for it either.
        const head = await request(app).head(`/api/movies/${id}`);
        assert.equal(head.status, 200);
        assert.equal(head.headers['content-length'], String(`movie ${id} run 2`.length), 'a HEAD was answered from the planted entry');
        const res = await request(app).get(`/api/movies/${id}`);
        assert.equal(res.status, 200);
        assert.equal(res.text, `movie ${id} run 3`, `served the planted entry (L1 ${l1 ? 'on' : 'off'})`);
        assert.equal((await request(app).get(`/api/movies/${id}`)).text, `movie ${id} run 3`, 'the answer did not replace the planted entry');
        assert.deepEqual(errors, [], `the planted entry was reported as an error (L1 ${l1 ? 'on' : 'off'})`);
      }
    });
  }

  it("the front door's hits are 'hit' events marked front, with the table prefix as route", async () => {
    const cache = await redisCaches.open({ routes: { '/api/movies': '1m' } });
    const app = express();
    app.use(expressCache(cache));
    app.get('/api/movies/:id', (req, res) => void res.send(`movie ${req.params.id}`));
    const server = createServer(front(cache, app));
    const hits: HitEvent[] = [];
    cache.on('hit', (e: HitEvent) => hits.push(e));
    await request(server).get('/api/movies/7');
    const hit = await request(server).get('/api/movies/7');
    assert.equal(hit.text, 'movie 7');
    assert.equal(hits.length, 1);
    assert.equal(hits[0]!.front, true);
    assert.equal(hits[0]!.route, '/api/movies');
    assert.equal(hits[0]!.tier, 'L1');
    assert.equal(hits[0]!.stale, false);
    assert.match(hits[0]!.key, /:GET:\/api\/movies\/7$/);
  });
});
