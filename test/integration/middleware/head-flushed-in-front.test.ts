// A middleware in front of the cache that sends the head early (Koa's
// ctx.flushHeaders(), Express's res.flushHeaders(): a page whose head goes out
// before it is rendered) left no room for a hit (found by helper-95): the
// stored head could not be written after it, node threw ERR_HTTP_HEADERS_SENT,
// and the client of a hit waited forever (Koa) or got a connection cut short
// (Express), where the app alone answers. Such a request is passed through
// untouched: the app answers under the head that left, as without the cache.
import assert from 'node:assert/strict';
import express from 'express';
import Koa from 'koa';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup, type Cleanup } from '../../support/cache-context.js';
import { express4, Koa2 } from './apps.js';
import { wireText } from '../../support/http-wire.js';

/** Generous: an answer that does not come within it never will. */
const DOES_NOT_HANG_MS = 3_000;
let counter = 0;

interface Built {
  readonly target: express.Express | ReturnType<Koa['callback']>;
  readonly runs: () => number;
  readonly errors: string[];
}

const newCache = (cleanup: Cleanup): TierCache => cleanup.track(createCache({ namespace: `head-flushed${process.pid}-${++counter}`, redis: false }));

/** An app whose middleware in front of the cache flushes the head of requests that send X-Flush. */
const frameworks: ReadonlyArray<readonly [string, (cleanup: Cleanup) => Built]> = [
  ...([
    ['koa3', Koa],
    ['koa2', Koa2],
  ] as const).map(([name, Framework]) => [name, (cleanup: Cleanup): Built => {
    const cache = newCache(cleanup);
    const app = new (Framework as typeof Koa)();
    const errors: string[] = [];
    app.silent = true;
    app.on('error', (err: Error & { code?: string }) => errors.push(err.code ?? err.message));
    let runs = 0;
    app.use(async (ctx, next) => {
      if (ctx.get('x-flush') !== '') {
        ctx.status = 200;
        ctx.type = 'text';
        ctx.flushHeaders();
      }
      await next();
    });
    app.use(koaCache(cache, { ttl: '1m' }) as Koa.Middleware);
    app.use((ctx) => {
      ctx.body = `page ${++runs}`;
    });
    return { target: app.callback(), runs: () => runs, errors };
  }] as const),
  ...([
    ['express5', express],
    ['express4', express4],
  ] as const).map(([name, factory]) => [name, (cleanup: Cleanup): Built => {
    const cache = newCache(cleanup);
    const app = factory();
    const errors: string[] = [];
    let runs = 0;
    app.use((req, res, next) => {
      if (req.get('x-flush') !== undefined) {
        res.setHeader('content-type', 'text/plain; charset=utf-8');
        res.flushHeaders();
      }
      next();
    });
    app.use(expressCache(cache, { ttl: '1m' }));
    // end(), not send(): send() sets its headers, which node refuses once the head has left, cache or not.
    app.get('/page', (_req, res) => void res.end(`page ${++runs}`));
    app.use((err: Error & { code?: string }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      errors.push(err.code ?? err.message);
      res.destroy();
    });
    return { target: app, runs: () => runs, errors };
  }] as const),
];
describe('middleware: a head flushed in front of the cache', () => {
  const cleanup = useCleanup();

  for (const [name, build] of frameworks) {
    it(`${name}: a request whose head left before the cache gets the app's answer, and the entry still serves the others`, async () => {
      const { target, runs, errors } = build(cleanup);
      const fill = await request(target).get('/page').timeout(DOES_NOT_HANG_MS);
      assert.equal(fill.headers['cache-status'], 'tiercache; fwd=miss; stored');
      const flushed = await request(target).get('/page').set('X-Flush', '1').timeout(DOES_NOT_HANG_MS);
      assert.equal(flushed.status, 200);
      assert.equal(flushed.text, 'page 2');
      assert.equal(flushed.headers['cache-status'], undefined);
      const hit = await request(target).get('/page').timeout(DOES_NOT_HANG_MS);
      assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
      assert.equal(hit.text, 'page 1');
      assert.equal(runs(), 2);
      assert.deepEqual(errors, []);
    });
  }
});

// The head a middleware in front flushes before next() may carry a status of its own (ctx.status = 404, then
// ctx.flushHeaders()): the cache passes such a request through, hit or not, and what goes out is byte for byte
// what the app alone sends under that head (checked, s36: no fix needed).
describe('middleware: Koa, a status set and the head flushed in front before next(), an entry stored behind', () => {
  const cleanup = useCleanup();
  for (const [name, Framework] of [
    ['koa3', Koa],
    ['koa2', Koa2],
  ] as const) {
    for (const status of [404, 204, 500]) {
      it(`${name}: ctx.status = ${status}, ctx.flushHeaders(): the app's answer under that head, as without the cache`, async () => {
        const answers = async (cache: TierCache | undefined) => {
          const app = new (Framework as typeof Koa)();
          app.silent = true;
          let runs = 0;
          app.use(async (ctx, next) => {
            if (ctx.get('x-flush') !== '') {
              ctx.status = status;
              ctx.flushHeaders();
            }
            await next();
          });
          if (cache !== undefined) app.use(koaCache(cache, { ttl: '1m' }) as Koa.Middleware);
          app.use((ctx) => void (ctx.body = { n: ++runs }));
          const server = await cleanup.serve(app.callback());
          const noDate = (text: string) => text.replace(/\r\ndate: [^\r]*/i, '');
          const fill = await wireText(server, '/page');
          const flushed = noDate(await wireText(server, '/page', { 'X-Flush': '1' }, { ms: 3_000 }));
          const after = await wireText(server, '/page');
          return { fill, flushed, after, runs };
        };
        const alone = await answers(undefined);
        const cached = await answers(newCache(cleanup));
        assert.match(cached.after, /cache-status: tiercache; hit/, 'the entry stored behind was not there to hit');
        assert.equal(cached.flushed, alone.flushed);
        assert.equal(cached.runs, 2);
      });
    }
  }
});
