// Request coalescing in the HTTP middleware (DESIGN.md section 3, "Stampede";
// issue 3, Deliver 5): concurrent misses for one key on one instance run the
// handler once and the others are answered from its result; a waiter that
// cannot reuse that result (it failed, turned out private, set a cookie, or
// varies on a header the waiter sent differently) runs the handler itself,
// and nobody hangs. Every case runs against Express 5 and 4, Koa 3 and 2, with
// a real redis-server behind the cache.
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders, RequestListener } from 'node:http';
import { performance } from 'node:perf_hooks';
import Router from '@koa/router';
import express5 from 'express';
import Koa3 from 'koa';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { COALESCE_WAIT_MS } from '../../../src/middleware/http-cache.js';
import type { MiddlewareOptions } from '../../../src/middleware/options.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { express4, Koa2 } from './apps.js';

const STORED = 'tiercache; fwd=miss; stored';
const COLLAPSED = 'tiercache; fwd=miss; collapsed';
const MISS = 'tiercache; fwd=miss';
const miss = (reason: string) => `${MISS}; detail=${reason}`;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Holds a fill's handler until `count` other requests have looked the key up
 * in L2 (so on a loaded machine none arrives after the fill and hits or fills
 * by itself), or until `ms` have passed; the test's assertions then say what
 * went wrong. A waiter's lookup is counted when Redis answers it, and no I/O
 * lies between that and its joining the fill under way: the poll's timer runs
 * after it has joined. The fill's own lookup is the one more. stats().coalesced
 * alone cannot tell: a waiter is counted there once answered, so waiting on it
 * held every handler for the whole 2 s.
 */
async function waitersJoined(cache: TierCache, count: number, ms = 2_000): Promise<void> {
  const until = performance.now() + ms;
  const joined = () => {
    const { l2, coalesced } = cache.stats();
    return l2.hits + l2.misses >= count + 1 || coalesced >= count;
  };
  while (!joined() && performance.now() < until) await sleep(5);
}

// ---------------------------------------------------------------------------
// A small app factory: one GET route behind the cache, in each framework.

interface HandlerRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}
interface Reply {
  readonly status?: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body: string;
}
/** Framework-neutral handler; throwing (or rejecting) makes the framework answer 500. */
type Handler = (req: HandlerRequest) => Reply | Promise<Reply>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Options = MiddlewareOptions<any>;

interface Adapter {
  readonly name: string;
  /** `GET path` with the cache mounted on that route. */
  route(cache: TierCache, path: string, options: Options, handler: Handler): RequestListener;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

function expressAdapter(name: string, express: typeof express5, nativeAsync: boolean): Adapter {
  return {
    name,
    route(cache, path, options, handler) {
      const app = express();
      const send = (res: Any, reply: Reply) => {
        res.status(reply.status ?? 200);
        for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v);
        res.send(reply.body);
      };
      const toReq = (req: Any): HandlerRequest => ({ method: req.method, url: req.originalUrl, headers: req.headers });
      // Express 5 answers a rejected handler itself; Express 4 needs next(err).
      const h = nativeAsync
        ? async (req: Any, res: Any) => send(res, await handler(toReq(req)))
        : (req: Any, res: Any, next: Any) => {
            Promise.resolve()
              .then(() => handler(toReq(req)))
              .then((reply) => send(res, reply), next);
          };
      app.get(path, expressCache(cache, options), h);
      app.use((_err: unknown, _req: Any, res: Any, _next: Any) => {
        res.status(500).send('handler failed');
      });
      return app as unknown as RequestListener;
    },
  };
}

function koaAdapter(name: string, Koa: typeof Koa3): Adapter {
  return {
    name,
    route(cache, path, options, handler) {
      const app = new Koa();
      app.silent = true; // the throwing-handler test would log every 500
      const router = new Router();
      router.get(path, koaCache(cache, options) as Any, async (ctx: Any) => {
        const reply = await handler({ method: ctx.method, url: ctx.originalUrl, headers: ctx.headers });
        ctx.status = reply.status ?? 200;
        for (const [k, v] of Object.entries(reply.headers ?? {})) ctx.set(k, v);
        ctx.body = reply.body;
      });
      app.use(router.routes() as Any);
      return app.callback() as RequestListener;
    },
  };
}

const ADAPTERS: readonly Adapter[] = [
  expressAdapter('Express 5', express5, true),
  expressAdapter('Express 4', express4, false),
  koaAdapter('Koa 3', Koa3),
  koaAdapter('Koa 2', Koa2),
];

/** Resolves once, the first time `signal()` is called. */
function firstCall(): { signal(): void; reached: Promise<void> } {
  let signal!: () => void;
  const reached = new Promise<void>((resolve) => (signal = resolve));
  return { signal, reached };
}

/** Rejects if `work` is not done within `ms`: a hung request fails the test instead of the suite timeout. */
async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not all requests were answered within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, bound]);
  } finally {
    clearTimeout(timer);
  }
}

function countBy<T>(values: readonly T[]): Map<T, number> {
  const counts = new Map<T, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
}

// ---------------------------------------------------------------------------

describe('middleware: request coalescing', function () {
  const { open: openCache, serve } = useRedisCaches({ prefix: 'coalesce' });

  for (const adapter of ADAPTERS) {
    describe(adapter.name, () => {
      it('runs the handler once for 50 concurrent cold requests and answers the other 49 from its result', async () => {
        const cache = await openCache();
        let runs = 0;
        const server = await serve(
          adapter.route(cache, '/item', { ttl: '1m' }, async () => {
            runs++;
            const run = runs;
            await waitersJoined(cache, 49);
            return { headers: { 'content-type': 'text/plain' }, body: `payload from run ${run}` };
          }),
        );

        const responses = await within(
          5_000,
          '50 cold requests',
          Promise.all(Array.from({ length: 50 }, () => request(server).get('/item'))),
        );

        assert.equal(runs, 1, 'the handler ran more than once');
        for (const res of responses) {
          assert.equal(res.status, 200);
          assert.equal(res.text, 'payload from run 1');
        }
        const statuses = countBy(responses.map((r) => r.headers['cache-status']));
        assert.equal(statuses.get(STORED), 1);
        assert.equal(statuses.get(COLLAPSED), 49, JSON.stringify(Object.fromEntries(statuses)));
        assert.equal(cache.stats().coalesced, 49);
        assert.equal(cache.stats().fills, 1);
      });

      it('answers every waiter when the first handler throws: each runs its own handler, none hangs, nothing is stored', async () => {
        const cache = await openCache();
        let runs = 0;
        const first = firstCall();
        const server = await serve(
          adapter.route(cache, '/fragile', { ttl: '1m' }, async () => {
            runs++;
            const run = runs;
            if (run === 1) {
              first.signal();
              await waitersJoined(cache, 20);
              throw new Error('the first run fails');
            }
            await sleep(20);
            return { headers: { 'content-type': 'text/plain' }, body: `ok from run ${run}` };
          }),
        );

        const started = performance.now();
        const failing = request(server).get('/fragile').then((r) => r);
        await first.reached;
        const waiters = Array.from({ length: 20 }, () => request(server).get('/fragile').then((r) => r));
        const [failed, ...answered] = await within(5_000, 'failing fill with 20 waiters', Promise.all([failing, ...waiters]));
        const elapsed = performance.now() - started;

        assert.equal(failed!.status, 500, 'the first request should get the error answer');
        assert.equal(answered.length, 20);
        for (const res of answered) {
          assert.equal(res.status, 200, `a waiter got ${res.status}: ${res.text}`);
          assert.match(res.text, /^ok from run \d+$/);
          assert.equal(res.headers['cache-status'], miss('waited'));
        }
        assert.equal(new Set(answered.map((r) => r.text)).size, 20, 'each waiter should get the answer of its own handler run');
        assert.equal(runs, 21, 'the failing run plus one run per waiter');
        // Released by the failure, not by the coalescing wait running out.
        assert.ok(elapsed < COALESCE_WAIT_MS, `waiters were answered after ${Math.round(elapsed)} ms (coalescing wait is ${COALESCE_WAIT_MS} ms)`);
        assert.equal(cache.stats().coalesced, 20);
        assert.equal(cache.stats().fills, 0, 'nothing should be stored from the failing run (nor from the waiters)');

        // The next request is a fresh fill, not a replay of the 500.
        const next = await request(server).get('/fragile');
        assert.equal(next.status, 200);
        assert.equal(next.text, 'ok from run 22', JSON.stringify(next.headers));
        assert.equal(next.headers['cache-status'], STORED);
        const hit = await request(server).get('/fragile');
        assert.equal(hit.text, 'ok from run 22');
        assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
        assert.equal(runs, 22);
      });

      it('collapses waiters that sent the same Vary header value and runs the handler for those that sent another', async () => {
        const cache = await openCache();
        let runs = 0;
        const first = firstCall();
        const server = await serve(
          adapter.route(cache, '/greeting', { ttl: '1m' }, async (req) => {
            runs++;
            first.signal();
            await waitersJoined(cache, 20);
            return {
              headers: { 'content-type': 'text/plain', vary: 'Accept-Language' },
              body: `hello in ${String(req.headers['accept-language'])}`,
            };
          }),
        );

        const filling = request(server).get('/greeting').set('Accept-Language', 'en').then((r) => r);
        await first.reached;
        const langs = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? 'en' : 'fr'));
        const waiters = langs.map((lang) => request(server).get('/greeting').set('Accept-Language', lang).then((r) => r));
        const [filled, ...answered] = await within(5_000, 'Vary waiters', Promise.all([filling, ...waiters]));

        assert.equal(filled!.text, 'hello in en');
        assert.equal(filled!.headers['cache-status'], STORED);
        answered.forEach((res, i) => {
          const lang = langs[i]!;
          assert.equal(res.status, 200);
          assert.equal(res.text, `hello in ${lang}`, `a waiter with Accept-Language: ${lang} got another language`);
          assert.equal(res.headers['cache-status'], lang === 'en' ? COLLAPSED : miss('waited'), `Cache-Status of a waiter with ${lang}`);
        });
        assert.equal(runs, 11, 'one run for the fill plus one per fr waiter');
      });

      it('makes waiters run their own handler when the first response turns out private', async () => {
        const cache = await openCache();
        let runs = 0;
        const first = firstCall();
        const server = await serve(
          adapter.route(cache, '/account', { ttl: '1m' }, async () => {
            runs++;
            const run = runs;
            first.signal();
            await waitersJoined(cache, 10);
            return { headers: { 'content-type': 'text/plain', 'cache-control': 'private' }, body: `account page ${run}` };
          }),
        );

        const filling = request(server).get('/account').then((r) => r);
        await first.reached;
        const waiters = Array.from({ length: 10 }, () => request(server).get('/account').then((r) => r));
        const all = await within(5_000, 'private fill with waiters', Promise.all([filling, ...waiters]));

        assert.equal(runs, 11);
        for (const res of all) {
          assert.equal(res.status, 200);
          assert.match(String(res.headers['cache-status']), /^tiercache; fwd=miss; detail=(waited|private)$/);
        }
        assert.equal(new Set(all.map((r) => r.text)).size, 11, 'a waiter was given another request’s private answer');
        assert.equal(cache.stats().fills, 0);
        const after = await request(server).get('/account');
        assert.equal(after.text, 'account page 12', 'a private answer was stored');
      });

      it('makes waiters run their own handler when the first response sets a cookie', async () => {
        const cache = await openCache();
        let runs = 0;
        const first = firstCall();
        const server = await serve(
          adapter.route(cache, '/welcome', { ttl: '1m' }, async () => {
            runs++;
            const run = runs;
            first.signal();
            await waitersJoined(cache, 10);
            return { headers: { 'content-type': 'text/plain', 'set-cookie': `sid=${run}` }, body: `welcome ${run}` };
          }),
        );

        const filling = request(server).get('/welcome').then((r) => r);
        await first.reached;
        const waiters = Array.from({ length: 10 }, () => request(server).get('/welcome').then((r) => r));
        const all = await within(5_000, 'cookie fill with waiters', Promise.all([filling, ...waiters]));

        assert.equal(runs, 11);
        for (const res of all) {
          assert.equal(res.status, 200);
          assert.match(String(res.headers['cache-status']), /^tiercache; fwd=miss; detail=(waited|set-cookie)$/);
          const run = /^welcome (\d+)$/.exec(res.text)?.[1];
          assert.ok(run !== undefined, `unexpected body ${res.text}`);
          assert.deepEqual(res.headers['set-cookie'], [`sid=${run}`], 'each client gets the cookie of its own run');
        }
        assert.equal(new Set(all.map((r) => r.text)).size, 11);
        assert.equal(cache.stats().fills, 0);
      });

      it('does not start a fill for HEAD: concurrent HEADs each run the handler and a GET during a HEAD fills by itself', async () => {
        const cache = await openCache();
        let runs = 0;
        let firstHead = firstCall();
        const server = await serve(
          adapter.route(cache, '/doc', { ttl: '1m' }, async (req) => {
            runs++;
            const run = runs;
            if (req.method === 'HEAD') firstHead.signal();
            await sleep(200);
            return { headers: { 'content-type': 'text/plain' }, body: `document ${run}` };
          }),
        );

        const heads = await within(5_000, 'concurrent HEADs', Promise.all(Array.from({ length: 5 }, () => request(server).head('/doc').then((r) => r))));
        for (const res of heads) {
          assert.equal(res.status, 200);
          assert.equal(res.headers['cache-status'], miss('head'));
        }
        assert.equal(runs, 5, 'a HEAD was collapsed onto another HEAD');
        assert.equal(cache.stats().fills, 0, 'a HEAD stored an entry');
        assert.equal(cache.stats().coalesced, 0);

        // A GET arriving while a HEAD runs is not a waiter of it: it runs the handler and stores.
        firstHead = firstCall();
        const head = request(server).head('/doc').then((r) => r);
        await firstHead.reached;
        const get = await within(5_000, 'GET during a HEAD', request(server).get('/doc').then((r) => r));
        await head;
        assert.equal(runs, 7);
        assert.equal(get.status, 200);
        assert.equal(get.text, 'document 7');
        assert.equal(get.headers['cache-status'], STORED);
        assert.equal(cache.stats().coalesced, 0);

        // The GET's entry answers HEAD from now on.
        const cachedHead = await request(server).head('/doc');
        assert.equal(cachedHead.headers['cache-status'], 'tiercache; hit; detail=L1');
        assert.equal(runs, 7);
      });
    });
  }
});
