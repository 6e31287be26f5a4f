// Invalidation by writes (RFC 9111 §4.4, DESIGN.md section 3): a 2xx or 3xx
// answer to POST, PUT, PATCH or DELETE invalidates the entries of its target
// path — every query variant — and of a same-origin Location or
// Content-Location, on every instance; those paths only, never what lies below
// them (a login redirect must not flush a subtree), and never '/'.
// Two instances on one redis-server; Express 5 and 4, Koa 3 and 2.
import assert from 'node:assert/strict';
import { request as httpRequest, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { adapters, buildApp, type Adapter, type Handler, type HandlerIO, type TestApp } from './apps.js';

const HIT_L1 = 'tiercache; hit; detail=L1';
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves once the client of the request `io` answers has gone (its connection closed). */
function clientGone(io: HandlerIO): Promise<void> {
  const res: ServerResponse = io.native.framework === 'express' ? io.native.res : io.native.ctx.res;
  return new Promise((resolve) => (res.destroyed ? resolve() : res.once('close', () => resolve())));
}

/**
 * A handler for the write that waits for its client to leave (`leave`, called
 * by postAndLeave once the handler runs), then answers as `answer` does.
 */
function answersAfterClientLeft(answer: Handler) {
  let started: () => void = () => undefined;
  const running = new Promise<void>((resolve) => (started = resolve));
  const handler: Handler = async (io) => {
    started();
    await clientGone(io);
    await answer(io);
  };
  return { handler, running };
}

/** POSTs to `path` on `server`, and drops the connection once `running` resolves (the handler runs). */
async function postAndLeave(server: Server, path: string, running: Promise<void>): Promise<void> {
  const { port } = server.address() as AddressInfo;
  const req = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-length': '0' } });
  req.on('error', () => undefined);
  req.end();
  await running;
  req.destroy();
}

/** Resolves on the next 'invalidate' event of `cache` (or after `ms`, for writes that invalidate nothing). */
function nextInvalidation(cache: TierCache, ms = 1_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    cache.once('invalidate', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function movieApp(adapter: Adapter, cache: TierCache, write: Handler): TestApp {
  return buildApp(adapter, cache, {
    appLevel: true,
    routes: [
      { path: '/api/movies', handler: (io) => io.send(`list ${Date.now()}`) },
      { path: '/api/movies/:id', handler: (io) => io.send(`movie ${io.params.id} ${Date.now()}`) },
      { path: '/login', handler: (io) => io.send(`login ${Date.now()}`) },
      { path: '/api/movies', method: 'post', handler: write },
    ],
  });
}

describe('middleware: invalidation by writes', function () {
  const redisCaches = useRedisCaches({ prefix: 'writes' });

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      /** Two instances (caches and apps) on one Redis and namespace, the given paths cached on both. */
      async function twoInstances(write: Handler, paths: readonly string[]) {
        const options = { ttl: '1m', namespace: redisCaches.ns } as const;
        const a = await redisCaches.open(options);
        const b = await redisCaches.open(options);
        const apps = [movieApp(adapter, a, write), movieApp(adapter, b, write)] as const;
        const bodies = new Map<string, string>();
        for (const path of paths) {
          bodies.set(path, (await request(apps[0].target).get(path)).text);
          const fromB = await request(apps[1].target).get(path);
          assert.equal(fromB.text, bodies.get(path), `${path} is shared through L2`);
          assert.equal((await request(apps[1].target).get(path)).headers['cache-status'], HIT_L1);
        }
        return { a, b, apps, bodies };
      }

      it('a successful write invalidates its target path, every query variant, on every instance, and nothing below it', async () => {
        const paths = ['/api/movies', '/api/movies?page=2', '/api/movies/7'];
        const { b, apps, bodies } = await twoInstances((io) => (io.status(201), io.send('created')), paths);
        const heard = nextInvalidation(b);
        assert.equal((await request(apps[0].target).post('/api/movies')).status, 201);
        await heard;
        for (const app of apps) {
          assert.notEqual((await request(app.target).get('/api/movies')).text, bodies.get('/api/movies'));
          assert.notEqual((await request(app.target).get('/api/movies?page=2')).text, bodies.get('/api/movies?page=2'));
          const below = await request(app.target).get('/api/movies/7');
          assert.equal(below.text, bodies.get('/api/movies/7'), 'a write to /api/movies invalidated /api/movies/7');
        }
      });

      it('a write answered with a login redirect invalidates its target and the Location path exactly, not the subtree', async () => {
        const movies = Array.from({ length: 20 }, (_, i) => `/api/movies/${i}`);
        const { b, apps, bodies } = await twoInstances((io) => (io.status(302), io.set('Location', '/login'), io.send('')), [...movies, '/login']);
        const heard = nextInvalidation(b);
        assert.equal((await request(apps[0].target).post('/api/movies')).status, 302);
        await heard;
        for (const app of apps) {
          assert.notEqual((await request(app.target).get('/login')).text, bodies.get('/login'), 'the same-origin Location was not invalidated');
          for (const path of movies) assert.equal((await request(app.target).get(path)).headers['cache-status'], HIT_L1, `${path} was flushed by a login redirect`);
        }
      });

      it('a write whose client left before the answer invalidates on every instance, once its handler answers 2xx', async () => {
        const { handler, running } = answersAfterClientLeft((io) => (io.status(201), io.send('created')));
        const { b, apps, bodies } = await twoInstances(handler, ['/api/movies']);
        const heard = nextInvalidation(b, 2_000);
        await postAndLeave(await redisCaches.serve(apps[0].target), '/api/movies', running);
        await heard;
        for (const app of apps) {
          const res = await request(app.target).get('/api/movies');
          assert.notEqual(res.headers['cache-status'], HIT_L1, 'the abandoned write did not invalidate /api/movies');
          assert.notEqual(res.text, bodies.get('/api/movies'));
        }
        assert.equal(apps[0].runs('/api/movies'), 2, 'the handler ran again');
      });

      it('a write whose client left and whose handler then fails invalidates nothing', async () => {
        const { handler, running } = answersAfterClientLeft(() => {
          throw new Error('the write failed');
        });
        const { b, apps } = await twoInstances(handler, ['/api/movies']);
        const heard = nextInvalidation(b, 300);
        await postAndLeave(await redisCaches.serve(apps[0].target), '/api/movies', running);
        await heard;
        await sleep(50);
        for (const app of apps) assert.equal((await request(app.target).get('/api/movies')).headers['cache-status'], HIT_L1);
      });

      it('a write answered 4xx invalidates nothing', async () => {
        const { b, apps, bodies } = await twoInstances((io) => (io.status(403), io.send('no')), ['/api/movies']);
        const heard = nextInvalidation(b, 300);
        assert.equal((await request(apps[0].target).post('/api/movies')).status, 403);
        await heard;
        await sleep(50);
        for (const app of apps) assert.equal((await request(app.target).get('/api/movies')).text, bodies.get('/api/movies'));
      });
    });
  }
});
