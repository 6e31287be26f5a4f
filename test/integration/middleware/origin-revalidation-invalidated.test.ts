// Origin mode: an entry invalidated while the handler answers its
// revalidation with 304 is not stored again (the fill's stamp moved: the
// store refuses it, as it refuses a 200 invalidated meanwhile). The client
// still gets the stored answer the 304 validated, but its Cache-Status said
// `fwd=stale; fwd-status=304; stored` (found by helper-88), a store that never
// happened (RFC 9211 §2.5): it says `fwd=stale; fwd-status=304; detail=invalidated` now.
import assert from 'node:assert/strict';
import request from 'supertest';
import { useRedisCaches } from '../../support/cache-context.js';
import { adapters, buildApp } from './apps.js';

describe('middleware: origin-mode revalidation of an entry invalidated meanwhile', function () {
  const ctx = useRedisCaches({ prefix: 'origin-reval-invalidated' });

  for (const adapter of adapters) {
    for (const tiers of ['L1', 'L1+L2'] as const) {
      it(`${adapter.name}, ${tiers}: the 304 answers the client, is not stored, and does not say stored`, async () => {
        const cache = await ctx.open(tiers === 'L1' ? { redis: false, freshness: 'origin', ttl: '1h' } : { freshness: 'origin', ttl: '1h' });
        let revalidating: (() => void) | undefined;
        let reached!: () => void;
        const handlerReached = new Promise<void>((resolve) => (reached = resolve));
        const app = buildApp(adapter, cache, {
          routes: [
            {
              path: '/v',
              mw: { tags: () => ['t'] },
              handler: async (io) => {
                // Stale at once: the next request revalidates, with no wait for a max-age to run out.
                io.set('cache-control', 'max-age=0');
                io.set('etag', '"e"');
                if (io.header('if-none-match') === '"e"' && revalidating === undefined) {
                  // The revalidation: held until the test has invalidated the entry.
                  await new Promise<void>((resolve) => {
                    revalidating = resolve;
                    reached();
                  });
                  io.status(304);
                  return io.end();
                }
                io.send('body');
              },
            },
          ],
        });
        assert.equal((await request(app.target).get('/v')).text, 'body');
        const pending = request(app.target).get('/v').then((r) => r);
        await handlerReached;
        await cache.invalidateTags(['t']);
        revalidating!();
        const res = await pending;
        assert.equal(res.status, 200);
        assert.equal(res.text, 'body');
        assert.equal(res.headers['cache-status'], 'tiercache; fwd=stale; fwd-status=304; detail=invalidated');
        // Nothing stored: the next request runs the handler in full.
        assert.equal((await request(app.target).get('/v')).headers['cache-status'], 'tiercache; fwd=miss; stored');
        assert.equal(app.runs('/v'), 3);
      });
    }
  }
});
