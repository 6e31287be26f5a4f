// How a fill ends (DESIGN.md section 3: "A fill ends, and releases its waiters
// and its lock, however its request ends"): a client that hangs up before or
// during the answer, a body shorter than its Content-Length, a body that
// outgrows maxBodyBytes while its reader stalls, a handler that never answers,
// and a handler that fails while a stale entry may stand in (stale-if-error,
// for every request that waited too). Express 5 and 4, Koa 3 and 2, with a
// real redis-server behind the cache where the fill waits on Redis.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { RequestListener, Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import Router from '@koa/router';
import express5 from 'express';
import Koa3 from 'koa';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import type { MiddlewareOptions } from '../../../src/middleware/options.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { express4, Koa2 } from './apps.js';

const STORED = 'tiercache; fwd=miss; stored';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Options = MiddlewareOptions<any>;

/** What a route does, given the framework's own objects. */
interface Native {
  readonly framework: 'express' | 'koa';
  /** node's req / res. */
  readonly req: Any;
  readonly res: Any;
  /** Express `res` or Koa `ctx`. */
  readonly app: Any;
  /** Sends a string body the framework's way (res.send / ctx.body). */
  send(body: string, status?: number): void;
  /** Sends a stream the framework's way (pipe / ctx.body = stream). */
  stream(source: Readable): void;
}

type Route = (n: Native) => void | Promise<void>;

interface Adapter {
  readonly name: string;
  readonly framework: 'express' | 'koa';
  /** One GET route `path` with the cache mounted on it. */
  build(cache: TierCache, path: string, options: Options, route: Route): RequestListener;
}

function expressAdapter(name: string, express: typeof express5): Adapter {
  return {
    name,
    framework: 'express',
    build(cache, path, options, route) {
      const app = express();
      app.get(path, expressCache(cache, options), (req: Any, res: Any, next: Any) => {
        const n: Native = {
          framework: 'express',
          req,
          res,
          app: res,
          send: (body, status = 200) => void res.status(status).send(body),
          stream: (source) => void source.pipe(res),
        };
        Promise.resolve()
          .then(() => route(n))
          .catch(next);
      });
      app.use((_err: unknown, _req: Any, res: Any, _next: Any) => void res.status(500).send('handler failed'));
      return app as unknown as RequestListener;
    },
  };
}

function koaAdapter(name: string, Koa: typeof Koa3): Adapter {
  return {
    name,
    framework: 'koa',
    build(cache, path, options, route) {
      const app = new Koa();
      app.silent = true;
      const router = new Router();
      router.get(path, koaCache(cache, options) as Any, async (ctx: Any) => {
        await route({
          framework: 'koa',
          req: ctx.req,
          res: ctx.res,
          app: ctx,
          send: (body, status = 200) => {
            ctx.status = status;
            ctx.body = body;
          },
          stream: (source) => {
            ctx.body = source;
          },
        });
      });
      app.use(router.routes() as Any);
      return app.callback() as RequestListener;
    },
  };
}

const ADAPTERS: readonly Adapter[] = [expressAdapter('Express 5', express5), expressAdapter('Express 4', express4), koaAdapter('Koa 3', Koa3), koaAdapter('Koa 2', Koa2)];

function portOf(server: Server): number {
  return (server.address() as { port: number }).port;
}

/** Sends `GET path` on a raw socket and destroys the socket after `afterMs` (0: right after writing). */
function hangUp(server: Server, path: string, afterMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(portOf(server), '127.0.0.1', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      if (afterMs === 0) socket.destroy();
      else setTimeout(() => socket.destroy(), afterMs);
    });
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
}

/** GET `path` on a raw socket: the status line and everything that arrived before the server closed or `ms` passed. */
function rawGet(server: Server, path: string, ms = 1_000): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const socket = connect(portOf(server), '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    const timer = setTimeout(() => socket.destroy(), ms);
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.on('error', () => undefined);
  });
}

/** A request counter and a switch to change what the route does on later runs. */
function counted(route: (n: Native, run: number) => void | Promise<void>): { route: Route; runs(): number } {
  let runs = 0;
  return { route: (n) => route(n, ++runs), runs: () => runs };
}

describe('middleware: how a fill ends', function () {
  const redisCaches = useRedisCaches({ prefix: 'fillend' });

  for (const adapter of ADAPTERS) {
    describe(adapter.name, () => {
      it('a client that hangs up at once leaves the URL fast: the next request is answered at once and stored', async () => {
        const cache = await redisCaches.open({ ttl: '1m' });
        const dir = mkdtempSync(join(tmpdir(), 'tiercache-file-'));
        const file = join(dir, 'k.txt');
        writeFileSync(file, 'file body');
        try {
          const c = counted((n) => {
            // send, behind res.sendFile, never calls end() on a closed connection; Koa 2 neither.
            if (n.framework === 'express') n.res.sendFile(file);
            else n.send('file body');
          });
          const server = await redisCaches.serve(adapter.build(cache, '/k', {}, c.route));
          for (let i = 0; i < 3; i++) await hangUp(server, '/k', 0);
          await sleep(50);
          const started = performance.now();
          const res = await request(server).get('/k');
          const elapsed = performance.now() - started;
          assert.equal(res.text, 'file body');
          // A hung-up request that the server answered in full before it saw the close may have stored it.
          assert.match(String(res.headers['cache-status']), /^tiercache; (fwd=miss|hit; detail=L1)/);
          assert.ok(elapsed < 1_500, `the request after the hang-ups took ${Math.round(elapsed)} ms (it waited on an abandoned fill)`);
          assert.match(String((await request(server).get('/k')).headers['cache-status']), /^tiercache; hit; detail=L[12]$/);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });

      it('never stores an answer whose client left before it was sent', async () => {
        const cache = await redisCaches.open({ ttl: '1m' });
        const c = counted(async (n, run) => {
          await sleep(run === 1 ? 150 : 0);
          n.send(`full body ${run}`);
        });
        const server = await redisCaches.serve(adapter.build(cache, '/gone', {}, c.route));
        await hangUp(server, '/gone', 30);
        await sleep(250); // the first handler has answered into the closed connection
        const res = await request(server).get('/gone');
        assert.equal(res.headers['cache-status'], STORED, 'the abandoned answer was served from the cache');
        assert.equal(res.text, 'full body 2');
        assert.equal(c.runs(), 2);
      });

      it('never stores an answer written in parts, with its length declared, whose client left before it was sent', async () => {
        const cache = await redisCaches.open({ ttl: '1m' });
        const c = counted(async (n, run) => {
          await sleep(run === 1 ? 150 : 0);
          const res = n.res;
          if (n.framework === 'koa') n.app.respond = false;
          const body = `full body ${run}`;
          res.statusCode = 200;
          res.setHeader('Content-Length', String(body.length));
          res.write(body.slice(0, 5));
          res.end(body.slice(5));
        });
        const server = await redisCaches.serve(adapter.build(cache, '/gone-parts', {}, c.route));
        await hangUp(server, '/gone-parts', 30);
        await sleep(250); // the first handler has written into the closed connection
        assert.match(await rawGet(server, '/gone-parts'), /full body 2$/);
        assert.equal(c.runs(), 2, 'the abandoned answer was served from the cache');
      });

      it('never stores a body shorter than its declared Content-Length', async () => {
        const cache = await redisCaches.open({ ttl: '1m' });
        const c = counted((n, run) => {
          const res = n.res;
          if (n.framework === 'koa') n.app.respond = false;
          res.statusCode = 200;
          res.setHeader('Content-Length', '1000');
          res.write(Buffer.alloc(500, 0x61));
          // The upstream died halfway: end what was sent, then drop the connection.
          res.end();
          if (run === 1) setImmediate(() => res.socket?.destroy());
        });
        const server = await redisCaches.serve(adapter.build(cache, '/short', {}, c.route));
        const first = await rawGet(server, '/short');
        assert.match(first, /^HTTP\/1\.1 200/);
        await sleep(50);
        await rawGet(server, '/short', 300);
        assert.equal(c.runs(), 2, 'the truncated body was stored and replayed as complete');
      });

      it('releases the waiters of a fill that outgrows maxBodyBytes while its reader stalls', async () => {
        const cache = await redisCaches.open({ ttl: '1m' });
        const chunk = Buffer.alloc(64 * 1024, 0x62);
        const c = counted((n, run) => {
          if (run === 1) n.stream(Readable.from((function* () { for (let i = 0; i < 1024; i++) yield chunk; })()));
          else n.send('small');
        });
        const server = await redisCaches.serve(adapter.build(cache, '/big', { maxBodyBytes: 256 * 1024 }, c.route));
        // A client that asks and never reads.
        const stalled = connect(portOf(server), '127.0.0.1', () => stalled.write('GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
        stalled.pause();
        try {
          await sleep(200);
          const started = performance.now();
          const res = await request(server).get('/big');
          const elapsed = performance.now() - started;
          assert.equal(res.text, 'small');
          assert.ok(elapsed < 1_500, `the second request waited ${Math.round(elapsed)} ms on a fill that could never be stored`);
        } finally {
          stalled.destroy();
        }
      });

      it('close() waits for a fill under way to be stored; afterwards requests pass through untouched', async () => {
        const cache = await redisCaches.open({ ttl: '1m' });
        const c = counted(async (n, run) => {
          if (run === 1) await sleep(200);
          n.send(`run ${run}`);
        });
        const server = await redisCaches.serve(adapter.build(cache, '/closing', {}, c.route));
        const filling = request(server).get('/closing');
        const started = filling.then(() => undefined);
        await sleep(50);
        // Middleware built and dropped since: the cache's sweep of them keeps the one whose fill is under way.
        for (let i = 0; i < 100; i++) expressCache(cache, {});
        await cache.close();
        const first = await filling;
        await started;
        assert.equal(first.text, 'run 1');
        assert.equal(await redisCaches.admin.exists(cache.keyFor({ method: 'GET', url: '/closing', headers: {} })), 1, 'the fill under way was stored before close() resolved');
        const after = await request(server).get('/closing');
        assert.equal(after.text, 'run 2');
        assert.equal(after.headers['cache-status'], undefined, 'a closed cache still answered');
      });

      it('answers every request that waited on a failing fill with the stale entry, running the handler once (stale-if-error)', async () => {
        const cache = await redisCaches.open({});
        const c = counted(async (n, run) => {
          if (run === 1) return n.send('good');
          await sleep(50);
          if (run === 2 && n.framework === 'express') throw new Error('upstream down');
          n.send('upstream down', 503);
        });
        const server = await redisCaches.serve(adapter.build(cache, '/sie', { ttl: 100, staleIfError: '10s' }, c.route));
        assert.equal((await request(server).get('/sie')).text, 'good');
        await sleep(150);
        const answers = await Promise.all(Array.from({ length: 5 }, () => request(server).get('/sie')));
        for (const res of answers) {
          assert.equal(res.status, 200, `a waiter got ${res.status} ${res.text}`);
          assert.equal(res.text, 'good');
          assert.match(String(res.headers['cache-status']), /^tiercache; hit; ttl=-\d+; detail=L[12]$/);
        }
        assert.equal(c.runs(), 2, 'the failing handler ran once for the five requests');
      });
    });
  }

  for (const [name, express] of [['Express 5', express5], ['Express 4', express4]] as const) {
    it(`${name}: a client that hangs up at once on an express.static file leaves the URL fast`, async () => {
      const cache = await redisCaches.open({ ttl: '1m', routes: { '/static': '1m' } });
      const dir = mkdtempSync(join(tmpdir(), 'tiercache-static-'));
      writeFileSync(join(dir, 'a.txt'), 'static body');
      try {
        const app = express();
        app.use(expressCache(cache));
        app.use('/static', express.static(dir));
        const server = await redisCaches.serve(app as unknown as RequestListener);
        for (let i = 0; i < 3; i++) await hangUp(server, '/static/a.txt', 0);
        await sleep(50);
        const started = performance.now();
        const res = await request(server).get('/static/a.txt');
        const elapsed = performance.now() - started;
        assert.equal(res.text, 'static body');
        assert.ok(elapsed < 1_500, `the request after the hang-ups took ${Math.round(elapsed)} ms (it waited on an abandoned fill)`);
        assert.match(String((await request(server).get('/static/a.txt')).headers['cache-status']), /^tiercache; hit; detail=L[12]$/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('does not hold a request that arrives after the coalescing wait on a handler that never answers', async function () {
    this.timeout(15_000);
    const cache = redisCaches.track(createCache({ namespace: redisCaches.ns, redis: false, ttl: '1m' }));
    const hold: Array<() => void> = [];
    const c = counted(async (n, run) => {
      if (run === 1) await new Promise<void>((resolve) => hold.push(resolve)); // never answers while the test runs
      n.send(`run ${run}`);
    });
    const server = await redisCaches.serve(ADAPTERS[0]!.build(cache, '/slow', {}, c.route));
    const first = request(server).get('/slow').then(() => undefined, () => undefined);
    await sleep(100);
    const second = await request(server).get('/slow');
    assert.equal(second.text, 'run 2', 'the second request runs its own handler once the wait is over');
    const started = performance.now();
    const third = await request(server).get('/slow');
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 1_000, `a request after the wait was held ${Math.round(elapsed)} ms by the stuck fill`);
    assert.match(third.text, /^run [23]$/);
    for (const release of hold) release();
    await first;
  });
});
