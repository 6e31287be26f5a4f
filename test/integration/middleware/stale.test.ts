// Stale answers (DESIGN.md section 3, "Staleness"): stale-if-error serves an
// expired entry in place of a failing handler (a 5xx or a thrown error)
// within its window and not after it; stale-while-revalidate serves it at once
// within its own window while a refresh runs; past both windows a healthy
// handler runs for the request itself, even when the stale-if-error window is
// longer. Each alone and together. Express 5 and 4, Koa 3 and 2, L1 only.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp, type AnyMiddlewareOptions, type HandlerIO } from './apps.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const STALE = /^tiercache; hit; ttl=-\d+; detail=L1$/;
let counter = 0;

type Mode = 'ok' | '503' | 'throw';

describe('middleware: stale answers', function () {
  const cleanup = useCleanup();

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      /** A route whose handler answers `run N` and fails as `mode` says, with the given stale windows. */
      function route(options: AnyMiddlewareOptions) {
        const state = { mode: 'ok' as Mode, runs: 0 };
        const cache = cleanup.track(createCache({ namespace: `stale${process.pid}-${++counter}`, redis: false }));
        const handler = (io: HandlerIO) => {
          state.runs++;
          if (state.mode === 'throw') throw new Error('upstream down');
          if (state.mode === '503') {
            io.status(503);
            io.send('unavailable');
            return;
          }
          io.send(`run ${state.runs}`);
        };
        const app = buildApp(adapter, cache, { routes: [{ path: '/s', mw: { ttl: 100, ...options }, handler }] });
        return { state, get: () => request(app.target).get('/s'), target: app.target };
      }

      for (const failure of ['503', 'throw'] as const) {
        it(`stale-if-error alone: a ${failure === '503' ? '5xx' : 'thrown error'} within the window gets the stale entry, after it the failure`, async () => {
          const { state, get } = route({ staleIfError: 300 });
          assert.equal((await get()).text, 'run 1');
          await sleep(150);
          state.mode = failure;
          const stale = await get();
          assert.equal(stale.status, 200);
          assert.equal(stale.text, 'run 1');
          assert.match(String(stale.headers['cache-status']), STALE);
          await sleep(300); // past ttl + staleIfError
          const failed = await get();
          assert.equal(failed.status, failure === '503' ? 503 : 500, 'served stale past the stale-if-error window');
        });
      }

      it('stale-if-error also answers a HEAD and a request with Cache-Control: no-store (neither is stored); past the window they get the failure', async () => {
        const { state, get, target: app } = route({ staleIfError: 300 });
        assert.equal((await get()).text, 'run 1');
        await sleep(150);
        state.mode = '503';
        const runs = state.runs;
        const head = await request(app).head('/s');
        assert.equal(head.status, 200, 'a HEAD got the failure where a GET gets the stale answer');
        assert.match(String(head.headers['cache-status']), STALE);
        assert.equal(head.headers['content-length'], '5');
        assert.equal(head.text, undefined);
        const noStore = await request(app).get('/s').set('Cache-Control', 'no-store');
        assert.equal(noStore.status, 200, 'a no-store request got the failure where a GET gets the stale answer');
        assert.equal(noStore.text, 'run 1');
        assert.match(String(noStore.headers['cache-status']), STALE);
        assert.equal(state.runs, runs + 2, 'the handler did not run for them');
        state.mode = 'ok';
        const healthyHead = await request(app).head('/s');
        assert.equal(healthyHead.status, 200);
        assert.equal(healthyHead.headers['cache-status'], 'tiercache; fwd=miss; detail=head', 'a healthy HEAD is answered by the handler, unstored');
        assert.equal((await get()).text, `run ${runs + 4}`, 'a HEAD or no-store answer was stored');
        state.mode = '503';
        await sleep(450); // past ttl + staleIfError of the new entry
        assert.equal((await request(app).head('/s')).status, 503, 'a HEAD served stale past the window');
      });

      it('stale-if-error alone: a healthy handler past the TTL runs for the request itself, not a stale answer', async () => {
        const { get } = route({ staleIfError: '10s' });
        assert.equal((await get()).text, 'run 1');
        await sleep(150);
        const fresh = await get();
        assert.equal(fresh.text, 'run 2', 'a stale answer was served though the handler was healthy');
        assert.equal(fresh.headers['cache-status'], 'tiercache; fwd=miss; stored');
      });

      it('stale-while-revalidate with a longer stale-if-error: stale at once within the first window, past it the healthy handler runs for the request, a failing one gets stale', async () => {
        const { state, get } = route({ staleWhileRevalidate: 200, staleIfError: '10s' });
        assert.equal((await get()).text, 'run 1');
        await sleep(150); // within ttl + staleWhileRevalidate
        const stale = await get();
        assert.equal(stale.text, 'run 1');
        assert.match(String(stale.headers['cache-status']), STALE);
        for (let i = 0; i < 20 && state.runs < 2; i++) await sleep(10); // the background refresh
        assert.equal(state.runs, 2);
        await sleep(400); // past ttl + staleWhileRevalidate of the refreshed entry
        const fresh = await get();
        assert.equal(fresh.text, 'run 3', 'past the stale-while-revalidate window a stale answer was served to a healthy handler');
        assert.equal(fresh.headers['cache-status'], 'tiercache; fwd=miss; stored');
        await sleep(400);
        state.mode = '503';
        const covered = await get();
        assert.equal(covered.status, 200);
        assert.equal(covered.text, 'run 3');
        assert.match(String(covered.headers['cache-status']), STALE);
      });
    });
  }
});
