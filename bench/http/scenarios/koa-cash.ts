// Competitor: koa-cash with an lru-cache store, following its README
// (get/set on an LRU, `if (await ctx.cashed()) return;` in the handler).
// setCachedHeader lets the runner check that answers come from the cache.
import Koa from 'koa';
import koaCash from 'koa-cash';
import { LRUCache } from 'lru-cache';
import { BENCH_PATH, BODY_OBJECT } from '../body.mjs';
import { handlerRan, serve } from '../serve.js';

declare module 'koa' {
  interface BaseContext {
    /** Added by koa-cash: true when the answer was served from its store. */
    cashed(maxAge?: number): Promise<boolean>;
  }
}

const lru = new LRUCache<string, object>({ max: 10_000, ttl: 60_000 });
const app = new Koa();
app.use(
  koaCash({
    setCachedHeader: true,
    get: (key: string) => lru.get(key),
    set: (key: string, value: object) => {
      lru.set(key, value);
    },
  }),
);
app.use(async (ctx) => {
  if (ctx.path !== BENCH_PATH) return;
  if (await ctx.cashed()) return;
  handlerRan();
  ctx.body = BODY_OBJECT;
});
serve('koa-cash', app.callback());
