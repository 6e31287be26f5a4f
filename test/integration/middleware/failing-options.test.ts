// Option functions that throw (`user`, `key`, `tags`): the cache's own
// failures never reach the request (DESIGN.md section 4, CONVENTIONS.md 4), so
// the handler answers as if no cache were mounted, nothing is stored, and the
// failure is reported through the 'error' event. L1 only and with L2 (where
// the fill's lookup and its start fail in turn), Express 5 and 4, Koa 3 and 2.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { adapters, buildApp, type AnyMiddlewareOptions, type Adapter } from './apps.js';

const boom = (): never => {
  throw new Error('option function failed');
};

/** Every 'error' event of `cache`, as messages. */
function errorsOf(cache: TierCache): string[] {
  const seen: string[] = [];
  cache.on('error', (e: { err: Error }) => seen.push(e.err.message));
  return seen;
}

describe('middleware: option functions that throw', function () {
  const redisCaches = useRedisCaches({ prefix: 'failing-options' });

  /** /r per route with `mw`; two GETs answered by the handler, each its own body. */
  async function twoGets(adapter: Adapter, cache: TierCache, mw: AnyMiddlewareOptions) {
    let n = 0;
    const app = buildApp(adapter, cache, { routes: [{ path: '/r', mw, handler: (io) => io.send(`fresh ${++n}`) }] });
    const first = await request(app.target).get('/r');
    const second = await request(app.target).get('/r');
    return { first, second, runs: app.runs('/r') };
  }

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      for (const option of ['user', 'key'] as const) {
        it(`a throwing ${option}() passes the request through untouched and reports the error`, async () => {
          const cache = redisCaches.track(createCache({ redis: false, namespace: redisCaches.ns }));
          const errors = errorsOf(cache);
          const { first, second, runs } = await twoGets(adapter, cache, { [option]: boom });
          assert.equal(first.status, 200);
          assert.equal(first.text, 'fresh 1');
          assert.equal(first.headers['cache-status'], undefined, 'a request the cache could not plan is passed on without a Cache-Status');
          assert.equal(second.text, 'fresh 2', 'an answer was stored although its request could not be planned');
          assert.equal(runs, 2);
          assert.deepEqual(errors, ['option function failed', 'option function failed']);
          assert.equal(cache.stats().l1.entries, 0);
        });
      }

      it('a throwing tags() (L1 only): the handler answers, nothing is stored, the error is reported', async () => {
        const cache = redisCaches.track(createCache({ redis: false, namespace: redisCaches.ns }));
        const errors = errorsOf(cache);
        const { first, second, runs } = await twoGets(adapter, cache, { tags: boom });
        assert.equal(first.status, 200);
        assert.equal(first.text, 'fresh 1');
        assert.equal(second.text, 'fresh 2');
        assert.equal(runs, 2);
        assert.deepEqual(errors, ['option function failed', 'option function failed']);
        assert.equal(cache.stats().l1.entries, 0);
      });

      it('a throwing tags() (with L2): the lookup and the fill each report it, the handler answers, nothing is stored in either tier', async () => {
        const cache = await redisCaches.open({});
        const before = (await redisCaches.admin.keys(`${redisCaches.ns}*`)).sort();
        const errors = errorsOf(cache);
        const { first, second, runs } = await twoGets(adapter, cache, { tags: boom });
        assert.equal(first.status, 200);
        assert.equal(first.text, 'fresh 1');
        assert.equal(second.text, 'fresh 2', 'an answer was stored although its tags could not be read');
        assert.equal(runs, 2);
        assert.deepEqual(errors, Array(4).fill('option function failed'), 'each request: the failed lookup, then the failed fill');
        assert.equal(cache.stats().l1.entries, 0);
        assert.deepEqual((await redisCaches.admin.keys(`${redisCaches.ns}*`)).sort(), before, 'the failed fills left keys in Redis');
      });

      it('a throwing tags() (with L2): concurrent requests for the key do not wait on a fill that never started', async () => {
        const cache = await redisCaches.open({});
        let n = 0;
        const app = buildApp(adapter, cache, { routes: [{ path: '/r', mw: { tags: boom }, handler: (io) => io.send(`fresh ${++n}`) }] });
        const started = Date.now();
        const answers = await Promise.all([request(app.target).get('/r'), request(app.target).get('/r'), request(app.target).get('/r')]);
        assert.ok(Date.now() - started < 2_000, 'a request waited on a fill that never started');
        assert.deepEqual(answers.map((a) => a.text).sort(), ['fresh 1', 'fresh 2', 'fresh 3']);
      });
    });
  }
});
