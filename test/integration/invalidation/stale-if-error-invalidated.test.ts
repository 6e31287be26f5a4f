// stale-if-error hands a failing fill the stale entry its request found. That
// entry was valid when found; an invalidation of one of its tags may arrive
// while the handler runs. Then it is no answer any more: not for the filling
// request, and not for a request that waited on that fill (one that arrived
// after the invalidation had resolved). Found by a hostile review: both got
// the invalidated body, on the invalidating instance and on another one. The
// same for a request whose answer is never stored (a HEAD, a request with
// no-store), which stale-if-error answers apart: the 500 is its failure (any
// 5xx is), unless the entry was invalidated while the handler ran.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { useCleanup, useRedisCaches } from '../../support/cache-context.js';
import { adapters, buildApp, type Adapter, type TestApp } from '../middleware/apps.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const USER = 'u42';
let counter = 0;

/** /me, scoped to USER, 200 ms fresh and 1 h of stale-if-error; while `failing`, the handler takes 300 ms and answers 500. */
function profileApp(adapter: Adapter, cache: TierCache) {
  const state = { failing: false, version: 1 };
  const app = buildApp(adapter, cache, {
    routes: [
      {
        path: '/me',
        mw: { ttl: 200, staleIfError: '1h', user: () => USER },
        handler: async (io) => {
          if (state.failing) {
            await sleep(300);
            io.status(500);
            io.send('db error');
            return;
          }
          io.send(`profile v${state.version}`);
        },
      },
    ],
  });
  return { app, state };
}

const get = (app: TestApp) => request(app.target).get('/me').then((res) => ({ status: res.status, body: res.text }));

/**
 * Fills /me on `serving`, lets it go stale, starts a failing fill there and,
 * while its handler runs, calls invalidateUser on `invalidating` (waiting
 * until `serving` has the message); then asks again on `serving`, which waits
 * on the running fill. Neither answer may be the invalidated body.
 */
async function failWhileInvalidated(serving: { cache: TierCache; adapter: Adapter }, invalidating: TierCache): Promise<void> {
  const { app, state } = profileApp(serving.adapter, serving.cache);
  const old = await get(app);
  assert.deepEqual(old, { status: 200, body: 'profile v1' });
  await sleep(300); // stale, well within stale-if-error
  state.failing = true;
  const first = get(app);
  await sleep(100); // the handler is running
  state.version = 2;
  const received = serving.cache.bus?.received;
  await invalidating.invalidateUser(USER);
  if (received !== undefined && serving.cache !== invalidating) {
    const deadline = performance.now() + 2000; // a "does not hang" bound
    while (serving.cache.bus!.received === received && performance.now() < deadline) await sleep(2);
    assert.ok(serving.cache.bus!.received > received, 'the invalidation did not reach the serving instance');
  }
  const waiter = get(app);
  const [a, b] = await Promise.all([first, waiter]);
  assert.notEqual(a.body, old.body, 'the failing fill answered with the entry invalidated while its handler ran');
  assert.notEqual(b.body, old.body, 'a request sent after invalidateUser resolved got the invalidated entry from the fill it waited on');
  assert.equal(a.status, 500);
}

describe('stale-if-error and an invalidation that arrives while the failing handler runs', () => {
  describe('L1 only', () => {
    const cleanup = useCleanup();
    for (const adapter of adapters) {
      it(`${adapter.name}: neither the filling request nor its waiter gets the invalidated entry`, async function () {
        this.timeout(10_000);
        const cache = cleanup.track(createCache({ namespace: `sie-inv${process.pid}-${++counter}`, redis: false }));
        await failWhileInvalidated({ cache, adapter }, cache);
      });
    }
  });

  describe('a HEAD and a no-store request (never stored), L1 only', () => {
    const cleanup = useCleanup();

    it("the handler's 500 gets the stale entry; once the entry is invalidated while the handler runs, the 500 itself", async function () {
      this.timeout(10_000);
      const cache = cleanup.track(createCache({ namespace: `sie-inv${process.pid}-${++counter}`, redis: false }));
      const { app, state } = profileApp(adapters[0]!, cache);
      const head = () => request(app.target).head('/me');
      const noStore = () => request(app.target).get('/me').set('Cache-Control', 'no-store');
      for (const [name, send] of [['a HEAD', head], ['a no-store request', noStore]] as const) {
        state.failing = false;
        assert.equal((await get(app)).status, 200);
        await sleep(300); // stale, well within stale-if-error
        state.failing = true;
        assert.equal((await send()).status, 200, `${name} got the 500 where stale-if-error answers`);
        const answer = send().then((r) => r);
        await sleep(100); // the handler is running
        await cache.invalidateUser(USER);
        assert.equal((await answer).status, 500, `${name} got the entry invalidated while its handler ran`);
      }
    });
  });

  describe('two instances on one real Redis', () => {
    const ctx = useRedisCaches({ prefix: 'sieinv', flush: true });
    const express5 = adapters.find((a) => a.name === 'express5')!;
    const koa3 = adapters.find((a) => a.name === 'koa3')!;

    it('A invalidates, A serves (its entry also in L2): no invalidated answer', async function () {
      this.timeout(10_000);
      const a = await ctx.open();
      await failWhileInvalidated({ cache: a, adapter: express5 }, a);
    });

    it('A invalidates, B serves (Koa): no invalidated answer once the message reached B', async function () {
      this.timeout(10_000);
      const a = await ctx.open();
      const b = await ctx.open();
      await failWhileInvalidated({ cache: b, adapter: koa3 }, a);
    });
  });
});
