// Koa: what the cache's middleware returns is what an async middleware
// returns, a promise of the request's own. koa-compose hands it unchanged to
// the middleware in front as next()'s promise (Promise.resolve of a native
// promise is that promise), so one shared by every request answered at once
// (1cb5086's, for L1 hits) carried what a middleware in front put on it to
// every later hit's (a request id, a span), and a WeakMap keyed by it (a
// tracer's, a timeout helper's) mixed up concurrent requests. A throw before
// the core decides is the promise's rejection, not a throw.
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { createCache } from '../../../src/index.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup } from '../../support/cache-context.js';
import { Koa2 } from './apps.js';

let counter = 0;

async function get(server: Server, path: string, id: string): Promise<string> {
  const { port } = server.address() as AddressInfo;
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { 'x-request-id': id } });
  return `${res.headers.get('cache-status') ?? ''} ${await res.text()}`;
}

describe('middleware: the promise the Koa middleware returns', () => {
  const cleanup = useCleanup();

  for (const [name, Framework] of [
    ['koa3', Koa],
    ['koa2', Koa2],
  ] as const) {
    describe(name, () => {
      it('is a promise of each request its own, hits included: what one request puts on it no other sees', async () => {
        const cache = cleanup.track(createCache({ namespace: `koa-returned-promise${process.pid}-${++counter}`, redis: false }));
        const app = new (Framework as typeof Koa)();
        app.silent = true;
        const returned: Array<Promise<unknown>> = [];
        const found: unknown[] = [];
        app.use(async (ctx, next) => {
          const p = next() as Promise<unknown> & { requestId?: string };
          returned.push(p);
          found.push(p.requestId);
          p.requestId = ctx.get('x-request-id');
          await p;
        });
        app.use(koaCache(cache, { ttl: '1m' }) as Koa.Middleware);
        app.use((ctx) => {
          ctx.body = 'page';
        });
        const server = await cleanup.serve(app.callback());

        assert.match(await get(server, '/page', 'a'), /fwd=miss; stored page$/);
        assert.match(await get(server, '/page', 'b'), /hit; detail=L1 page$/);
        assert.match(await get(server, '/page', 'c'), /hit; detail=L1 page$/);
        assert.deepEqual(found, [undefined, undefined, undefined], 'a request found what an earlier one put on the promise next() gave it');
        assert.equal(new Set(returned).size, 3, 'two requests were given one promise by next()');
      });

      it('rejects what is thrown before the core decides, as an async function does, and throws nothing', async () => {
        const cache = cleanup.track(createCache({ namespace: `koa-returned-promise${process.pid}-${++counter}`, redis: false }));
        const middleware = koaCache(cache, { ttl: '1m' }) as unknown as (ctx: unknown, next: () => Promise<unknown>) => Promise<void>;
        const app = new (Framework as typeof Koa)();
        const ctx = app.createContext({ url: '/page', method: 'GET', headers: {}, socket: {} } as never, {} as never);
        // The request's originalUrl is read first: a getter that throws stands for anything that throws there.
        Object.defineProperty(ctx.req, 'originalUrl', {
          get() {
            throw new Error('boom at once');
          },
        });
        let returned: Promise<void> | undefined;
        assert.doesNotThrow(() => {
          returned = middleware(ctx, () => Promise.resolve());
        });
        assert.ok(returned instanceof Promise);
        await assert.rejects(returned, /boom at once/);
      });
    });
  }
});
