// Why this test exists: a 5xx whose stale entry local state cannot vouch for
// is held while Redis is asked (CaptureHooks.hold): the handler's calls are
// queued and run once Redis answered. A Koa handler that ends ctx.res itself
// (without ctx.respond = false) is followed by Koa's own respond(), which
// ends the response again when res.writableEnded is false, as it is while
// the first end() is held. Both were queued; run again, the second reached
// node after the first had ended the response: ERR_STREAM_WRITE_AFTER_END,
// emitted as an 'error' on the response, which nothing listens to (the
// process's uncaughtException). Without the hold Koa sees the response ended
// and writes nothing. Found by a hostile review (h83). Koa 3 and 2, on an
// instance whose bus never subscribes (SUBSCRIBE denied by an ACL).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import Koa from 'koa';
import Router from '@koa/router';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { koaCache } from '../../../src/koa.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { openDeafCache } from '../../support/deaf-cache.js';

const require = createRequire(import.meta.url);
const Koa2 = require('koa2') as typeof Koa;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('stale-if-error hold: a second end() while the first is held', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'sie-hold-end', flush: true });

  const deafB = (): Promise<TierCache> => openDeafCache(ctx);

  for (const [name, Factory] of [['Koa 3', Koa], ['Koa 2', Koa2]] as const) {
    it(`${name}: the handler's own res.end() of a 5xx, then Koa's respond(), with the entry invalidated meanwhile: one 5xx, no error on the response`, async () => {
      const a = await ctx.open();
      const b = await deafB();
      const state = { failing: false };
      const errors: Error[] = [];
      const app = (cache: TierCache) => {
        const k = new Factory();
        k.silent = true;
        k.use(async (c, next) => {
          c.res.on('error', (err) => errors.push(err));
          await next();
        });
        const router = new Router();
        router.get('/item/:id', koaCache(cache, { ttl: 200, staleIfError: '1h', tags: (c) => [`item:${(c as unknown as { params: { id: string } }).params.id}`] }) as never, (async (c: Koa.Context) => {
          if (!state.failing) return void (c.body = { v: 'OLD' });
          assert.equal((await a.invalidateTags(['item:1'])).delivered, true);
          c.res.statusCode = 500;
          c.res.end('raw end');
        }) as never);
        k.use(router.routes() as never);
        return k.callback();
      };
      assert.deepEqual((await request(app(a)).get('/item/1')).body, { v: 'OLD' });
      await sleep(250);
      state.failing = true;
      const res = await request(app(b)).get('/item/1');
      assert.equal(res.status, 500);
      assert.equal(res.text, 'raw end');
      await sleep(50);
      assert.deepEqual(errors.map((e) => (e as Error & { code?: string }).code), []);
    });
  }
});
