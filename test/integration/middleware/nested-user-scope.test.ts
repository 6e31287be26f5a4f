// An app-wide middleware and, further in, a per-route one with `user` (the
// user known from a header the app-wide one does not treat as a credential:
// an API key, a gateway's header). The per-route one decides (DESIGN.md,
// "Settled details"), but the app-wide one answered from L1 before the
// router ran: the anonymous answer, stored under the key both share, went
// to every user. Found by a hostile review. An entry stored by a middleware
// with per-request options is now served only by such a middleware.
import assert from 'node:assert/strict';
import Router from '@koa/router';
import express from 'express';
import Koa from 'koa';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { HIT_L1 } from '../../../src/middleware/cache-status.js';
import { useCleanup, useRedisCaches } from '../../support/cache-context.js';

type Target = Parameters<typeof request>[0];

function expressApp(cache: TierCache, outer: Parameters<typeof expressCache>[1] = {}): Target {
  const app = express();
  app.use(expressCache(cache, outer));
  app.get('/api/me', expressCache(cache, { user: (req) => req.get('x-user') }), (req, res) => void res.json({ user: req.get('x-user') ?? 'anonymous' }));
  return app;
}

function koaApp(cache: TierCache): Koa {
  const app = new Koa();
  const router = new Router();
  router.get('/api/me', koaCache(cache, { user: (ctx) => ctx.get('x-user') || undefined }), (ctx) => {
    ctx.body = { user: ctx.get('x-user') || 'anonymous' };
  });
  app.use(koaCache(cache));
  app.use(router.routes());
  return app;
}

const me = async (target: Target, user?: string) => {
  const req = request(target).get('/api/me');
  const res = await (user === undefined ? req : req.set('x-user', user));
  assert.equal(res.status, 200);
  return { user: (res.body as { user: string }).user, cacheStatus: res.headers['cache-status'] as string | undefined };
};

/** alice, anonymous, then alice, bob and anonymous again: each gets their own answer. */
async function eachTheirOwn(first: Target, next: Target = first): Promise<void> {
  assert.equal((await me(first, 'alice')).user, 'alice');
  assert.equal((await me(first)).user, 'anonymous');
  assert.equal((await me(next, 'alice')).user, 'alice', 'alice got the anonymous answer');
  assert.equal((await me(next, 'bob')).user, 'bob', 'bob got the anonymous answer');
  const anonymous = await me(next);
  assert.equal(anonymous.user, 'anonymous');
}

describe('middleware: app-wide, and per route with `user` further in', () => {
  describe('L1 only', () => {
    const cleanup = useCleanup();
    const newCache = (name: string) => cleanup.track(createCache({ namespace: `nested-user-${name}-${process.pid}`, redis: false, routes: { '/api': '5m' } }));

    it('Express: every user gets their own answer, and the anonymous one is still cached', async () => {
      const app = expressApp(newCache('express'));
      await eachTheirOwn(app);
      assert.equal((await me(app)).cacheStatus, HIT_L1, 'the per-route middleware no longer serves its entry');
    });

    const outers: Array<[string, Parameters<typeof expressCache>[1]]> = [
      ['query', { query: ['page'] }],
      ['key', { key: (req) => (req as unknown as { path: string }).path }],
    ];
    for (const [what, outer] of outers) {
      it(`Express, the app-wide middleware with its own \`${what}\` option: every user still gets their own answer`, async () => {
        await eachTheirOwn(expressApp(newCache(`express-${what}`), outer));
      });
    }

    it('Express: a hit passed on to the per-route middleware is counted once, as one L1 hit', async () => {
      const cache = newCache('express-count');
      const app = expressApp(cache);
      await me(app); // the anonymous entry, under the key the app-wide middleware looks up for every user
      await me(app, 'alice');
      const before = cache.stats().l1.hits;
      for (let i = 0; i < 3; i++) assert.equal((await me(app, 'alice')).cacheStatus, HIT_L1);
      assert.equal(cache.stats().l1.hits - before, 3);
    });

    it('Koa (@koa/router): every user gets their own answer, and the anonymous one is still cached', async () => {
      const server = await cleanup.serve(koaApp(newCache('koa')).callback());
      await eachTheirOwn(server);
      assert.equal((await me(server)).cacheStatus, HIT_L1);
    });
  });

  describe('two instances on one real Redis', () => {
    const ctx = useRedisCaches({ prefix: 'nesteduser', flush: true });

    it("Express: B's app-wide middleware finds A's entries in L2 and leaves them to the per-route one", async () => {
      const a = expressApp(await ctx.open({ routes: { '/api': '5m' } }));
      const b = expressApp(await ctx.open({ routes: { '/api': '5m' } }));
      await eachTheirOwn(a, b);
    });
  });
});
