// Why this test exists: an outage costs speed, never errors (DESIGN §3, §4;
// README "Stale answers", "When Redis is down"): with Redis and the bus both
// down, staleIfError's stale entry stands in for a failing handler. It did
// for a request already running when Redis went, and for a HEAD, but not for
// a GET that *arrived* in the outage: the middleware does not serve an L1
// entry only Redis could vouch for (the bus is down), the fill's lookup got
// no answer from Redis, and nothing was left to stand in: the client got the
// 500 (found by a hostile review, h83's outage-l1-stale). Now the L1 entry
// goes along with the fill for the 5xx alone, where the outage rule decides:
// it stands in, unless an invalidation this instance made (queued while Redis
// is down) covers it. It is never served for a 2xx, nor past its window.
// Real redis-servers, killed with SIGKILL (one test freezes it with SIGSTOP).
import assert from 'node:assert/strict';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { adapters, buildApp, type Adapter, type TestApp } from '../middleware/apps.js';
import type { AnyMiddlewareOptions } from '../middleware/apps.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const USER = 'u42';

interface Failing {
  /** 'ok': answers 'OLD' (then 'NEW' once `fresh`); '500': answers 500; 'throw': throws. */
  mode: 'ok' | '500' | 'throw';
  fresh?: boolean;
  /** Called as a failing handler starts. */
  started?: () => void;
  /** What a failing handler waits for before it fails. */
  gate?: Promise<void>;
}

describe('stale-if-error for a request that arrives while Redis and the bus are down', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'sie-outage', serverPerTest: true, defaults: { l2: { commandTimeout: 200 } } });

  /** /item/:id, 200 ms fresh, `mw` on top (1 h of stale-if-error unless it says otherwise), failing as `state` says. */
  function itemApp(adapter: Adapter, cache: TierCache, state: Failing, mw: AnyMiddlewareOptions = {}): TestApp {
    return buildApp(adapter, cache, {
      routes: [
        {
          path: '/item/:id',
          mw: { ttl: 200, staleIfError: '1h', tags: () => ['item:1'], ...mw },
          handler: async (io) => {
            if (state.mode === 'ok') return io.send(state.fresh === true ? 'NEW' : 'OLD');
            state.started?.();
            await state.gate;
            if (state.mode === 'throw') throw new Error('upstream failed');
            io.status(500);
            io.send('upstream failed');
          },
        },
      ],
    });
  }

  /** Stores /item/1 ('OLD'), lets it go stale, then takes Redis away (`how`) until the cache reaches it on neither connection. */
  async function storedThenOutage(app: TestApp, cache: TierCache, how: 'kill' | 'freeze' = 'kill', staleAfter = 250): Promise<void> {
    const res = await request(app.target).get('/item/1');
    assert.equal(res.text, 'OLD');
    assert.match(String(res.headers['cache-status']), /stored/, `the premise: the entry is stored [${res.headers['cache-status']}]`);
    await sleep(staleAfter);
    if (how === 'kill') {
      ctx.redis.kill('SIGKILL');
      await ctx.redis.exited();
    } else ctx.redis.freeze();
    // The premise: L1 holds the entry, and only Redis could vouch for it (the bus is down too).
    await eventually(() => cache.health().l2 !== 'ok' && cache.health().bus !== 'ok' && !cache.store.versions.trusted, 'Redis and the bus both down', 8_000);
    if (how === 'kill') await eventually(() => cache.health().l2 === 'down', 'Redis known down', 5_000);
  }

  /** A cache whose reports of the outage are expected. */
  async function openCache(): Promise<TierCache> {
    const cache = await ctx.open();
    cache.on('error', () => undefined);
    return cache;
  }

  function assertStoodIn(res: request.Response, what: string): void {
    assert.equal(res.status, 200, `answered ${res.status} ${res.text} [${res.headers['cache-status']}]: ${what}`);
    assert.equal(res.text, 'OLD');
    assert.match(String(res.headers['cache-status']), /hit; ttl=-\d+; detail=L1/);
  }

  function assertFailed(res: request.Response, what: string): void {
    assert.equal(res.status, 500, `answered ${res.status} ${res.text} [${res.headers['cache-status']}]: ${what}`);
    assert.notEqual(res.text, 'OLD');
  }

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      for (const mode of ['500', 'throw'] as const) {
        it(`a GET whose handler ${mode === '500' ? 'answers 500' : 'throws'}: the stale entry stands in, for it and for a GET that waited on it`, async () => {
          const cache = await openCache();
          let open!: () => void;
          const state: Failing = { mode: 'ok', gate: new Promise<void>((resolve) => (open = resolve)) };
          const app = itemApp(adapter, cache, state);
          await storedThenOutage(app, cache);
          state.mode = mode;
          const running = new Promise<void>((resolve) => (state.started = resolve));
          const first = request(app.target).get('/item/1').then((r) => r);
          await running;
          const waiter = request(app.target).get('/item/1').then((r) => r);
          await sleep(50); // the waiter has joined the fill
          open();
          const [a, b] = await Promise.all([first, waiter]);
          assertStoodIn(a, 'an outage must cost no 5xx: the stale entry stands in');
          assertStoodIn(b, 'a request that waited on the failing fill gets its stand-in too');
          assert.equal(app.runs('/item/:id'), 2, 'the handler ran once for the two requests (and once to fill)');
        });
      }

      it('invalidateTags() while Redis is down (queued), before the GET: the 5xx goes out, not the invalidated entry', async () => {
        const cache = await openCache();
        const state: Failing = { mode: 'ok' };
        const app = itemApp(adapter, cache, state);
        await storedThenOutage(app, cache);
        assert.equal((await cache.invalidateTags(['item:1'])).delivered, false, 'the premise: the invalidation is queued');
        state.mode = '500';
        assertFailed(await request(app.target).get('/item/1'), 'this instance invalidated the entry itself');
      });

      it('invalidateUser() while Redis is down (queued), while the GET runs: the 5xx goes out, not the invalidated entry', async () => {
        const cache = await openCache();
        let open!: () => void;
        const state: Failing = { mode: 'ok', gate: new Promise<void>((resolve) => (open = resolve)) };
        const app = itemApp(adapter, cache, state, { user: () => USER, tags: () => [] });
        await storedThenOutage(app, cache);
        state.mode = '500';
        const running = new Promise<void>((resolve) => (state.started = resolve));
        const answer = request(app.target).get('/item/1').then((r) => r);
        await running;
        assert.equal((await cache.invalidateUser(USER)).delivered, false, 'the premise: the invalidation is queued');
        open();
        assertFailed(await answer, 'this instance invalidated the entry itself while the handler ran');
      });
    });
  }

  /**
   * Express 5: /item/1 stored (`mw` on the route), stale after `staleAfter`, then the outage (`how`); the
   * handler answers as `then` says, and resolves with the answer to `method`. Redis is thawed after a freeze.
   */
  async function afterOutage(then: Failing['mode'] | 'fresh', options: { mw?: AnyMiddlewareOptions; how?: 'kill' | 'freeze'; staleAfter?: number; method?: 'get' | 'head' } = {}): Promise<request.Response> {
    const cache = await openCache();
    const state: Failing = { mode: 'ok' };
    const app = itemApp(adapters[0]!, cache, state, options.mw);
    try {
      await storedThenOutage(app, cache, options.how, options.staleAfter);
      if (then === 'fresh') state.fresh = true;
      else state.mode = then;
      return await request(app.target)[options.method ?? 'get']('/item/1');
    } finally {
      if (options.how === 'freeze') ctx.redis.thaw();
    }
  }

  it('a GET whose handler answers 200 in the outage: its answer goes out, the entry is not served in its place', async () => {
    const res = await afterOutage('fresh');
    assert.equal(res.status, 200);
    assert.equal(res.text, 'NEW');
  });

  it('a HEAD in the outage still gets the stale stand-in', async () => {
    const res = await afterOutage('500', { method: 'head' });
    assert.equal(res.status, 200, `answered ${res.status} [${res.headers['cache-status']}]`);
    assert.match(String(res.headers['cache-status']), /hit/);
  });

  it('an entry past its stale-if-error window (kept in L1 for stale-while-revalidate): the 5xx goes out, nothing is served stale', async () => {
    assertFailed(await afterOutage('500', { mw: { staleIfError: 100, staleWhileRevalidate: '1h' }, staleAfter: 400 }), 'past its stale-if-error window');
  });

  it('a route without staleIfError, its entry still fresh: the 5xx goes out (the entry is no stand-in, and no hit)', async () => {
    assertFailed(await afterOutage('500', { mw: { ttl: '1h', staleIfError: 0 }, staleAfter: 0 }), 'no stale-if-error on the route');
  });

  it('Redis frozen (SIGSTOP) rather than gone, the bus given up on: the stale entry stands in', async () => {
    assertStoodIn(await afterOutage('500', { how: 'freeze' }), 'neither connection reaches Redis: an outage costs no 5xx');
  });
});
