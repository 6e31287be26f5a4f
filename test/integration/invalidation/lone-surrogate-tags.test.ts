// Tags holding a lone UTF-16 surrogate (a user id, an app's tag). Redis, the
// invalidation bus and L2 entries carry tags as UTF-8, where a lone surrogate
// becomes U+FFFD; an invalidation must still reach every entry that recorded
// the tag, on the instance that made it and on the others, whether the entry
// was filled there or read from L2 (where its tags were decoded from UTF-8).
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import express from 'express';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { HIT_L1 } from '../../../src/middleware/cache-status.js';
import { useCleanup, useRedisCaches } from '../../support/cache-context.js';

const LONE_HIGH = '\uD800';
const LONE_LOW = '\uDC00';

let served = 0;

/** An app whose /profile is scoped to user LONE_HIGH and /tagged carries the tag `movie:<LONE_LOW>`. */
function appOf(cache: TierCache) {
  const app = express();
  const handler = (_req: express.Request, res: express.Response) => {
    res.type('text/plain').send(`#${++served}`);
  };
  app.get('/profile', expressCache(cache, { ttl: '1m', user: () => LONE_HIGH }), handler);
  app.get('/tagged', expressCache(cache, { ttl: '1m', tags: () => ['movie:' + LONE_LOW] }), handler);
  return async (url: string) => {
    const res = await request(app).get(url);
    assert.equal(res.status, 200);
    return { body: res.text, cacheStatus: res.headers['cache-status'] as string | undefined };
  };
}

/** Waits (at most 2 s: a "does not hang" bound) until `to`'s bus has received a message past `received`. */
async function delivered(to: TierCache, received: number): Promise<void> {
  const deadline = performance.now() + 2000;
  while (to.bus!.received === received && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
  assert.ok(to.bus!.received > received, "B did not receive A's invalidation");
}

describe('invalidation: tags holding a lone UTF-16 surrogate', () => {
  describe('L1 only', () => {
    const { track } = useCleanup();

    for (const [what, url, invalidate] of [
      ['invalidateUser(id)', '/profile', (cache: TierCache) => cache.invalidateUser(LONE_HIGH)],
      ['invalidateTags([tag])', '/tagged', (cache: TierCache) => cache.invalidateTags(['movie:' + LONE_LOW])],
    ] as const) {
      it(`${what}: the entry, hit once since its fill, is not served again`, async () => {
        const cache = track(createCache({ redis: false }));
        const get = appOf(cache);
        const old = (await get(url)).body;
        const hit = await get(url);
        assert.deepEqual(hit, { body: old, cacheStatus: HIT_L1 });
        await invalidate(cache);
        assert.notEqual((await get(url)).body, old, 'the old answer was served after the invalidation');
      });
    }
  });

  describe('two instances on one real Redis', () => {
    const ctx = useRedisCaches({ prefix: 'lone', flush: true });

    for (const [what, url, invalidate] of [
      ['invalidateUser(id)', '/profile', (cache: TierCache) => cache.invalidateUser(LONE_HIGH)],
      ['invalidateTags([tag])', '/tagged', (cache: TierCache) => cache.invalidateTags(['movie:' + LONE_LOW])],
    ] as const) {
      it(`${what} on A: neither A (its own fill) nor B (read from L2) serves the old answer`, async () => {
        const a = await ctx.open();
        const b = await ctx.open();
        const getA = appOf(a);
        const getB = appOf(b);
        const old = (await getA(url)).body;
        assert.deepEqual(await getA(url), { body: old, cacheStatus: HIT_L1 }, 'A: its own fill, from L1');
        assert.equal((await getB(url)).body, old, 'B: read from L2');
        assert.deepEqual(await getB(url), { body: old, cacheStatus: HIT_L1 }, 'B: from L1');
        const received = b.bus!.received;
        await invalidate(a);
        await delivered(b, received);
        assert.notEqual((await getA(url)).body, old, 'A served the old answer');
        assert.notEqual((await getB(url)).body, old, 'B served the old answer');
      });
    }

    it("data API: a value B set (its own L1 copy) with the tag is gone from B after A's invalidateTags of it", async () => {
      const a = await ctx.open();
      const b = await ctx.open();
      await b.set('k', 'old', { tags: ['t' + LONE_HIGH] });
      assert.equal(await b.get('k'), 'old');
      const received = b.bus!.received;
      await a.invalidateTags(['t' + LONE_HIGH]);
      await delivered(b, received);
      assert.equal(await b.get('k'), undefined);
    });
  });
});
