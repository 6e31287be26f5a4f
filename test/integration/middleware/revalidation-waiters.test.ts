// In origin mode a stale entry with validators is revalidated by running the
// handler conditionally; its 304 refreshes the entry, which is stored in Redis
// after the client got its answer (http-cache.ts refresh()). A request that
// arrives meanwhile waits for that fill and must get the refreshed entry once
// it is stored: the answer's 'close' used to release the waiters with nothing
// before the store was done, so each ran the handler itself. Found by
// mutation testing.
import assert from 'node:assert/strict';
import request from 'supertest';
import { useRedisCaches } from '../../support/cache-context.js';
import { adapters, buildApp, type HandlerIO } from './apps.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const REVALIDATED = 'tiercache; fwd=stale; fwd-status=304; stored';
const COLLAPSED = 'tiercache; fwd=miss; collapsed';

describe('middleware: origin-mode revalidation answered 304', function () {
  const redisCaches = useRedisCaches({ prefix: 'reval304' });

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      it('with Redis, a request arriving while the revalidation runs waits for it and gets the refreshed entry, without running the handler', async () => {
        const cache = await redisCaches.open({ namespace: redisCaches.ns });
        const handler = async (io: HandlerIO) => {
          if (io.header('if-none-match') === '"v"') {
            await sleep(200);
            io.status(304);
            io.set('ETag', '"v"');
            io.set('Cache-Control', 'max-age=60');
            io.end();
            return;
          }
          io.set('ETag', '"v"');
          io.set('Cache-Control', 'max-age=0');
          io.end('stored once');
        };
        const app = buildApp(adapter, cache, { routes: [{ path: '/r', mw: { ttl: '1m', freshness: 'origin' }, handler }] });
        assert.equal((await request(app.target).get('/r')).text, 'stored once');
        const revalidating = request(app.target).get('/r').then((r) => r);
        await sleep(60); // the revalidation's handler is running
        const waiter = await request(app.target).get('/r');
        const revalidated = await revalidating;
        assert.equal(revalidated.headers['cache-status'], REVALIDATED);
        assert.equal(revalidated.text, 'stored once');
        assert.equal(waiter.status, 200);
        assert.equal(waiter.text, 'stored once');
        assert.equal(waiter.headers['cache-status'], COLLAPSED, 'the waiter was released before the refreshed entry was stored');
        assert.equal(app.runs('/r'), 2, 'the waiter ran the handler itself');
      });

    });
  }
});
