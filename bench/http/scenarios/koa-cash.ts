// Competitor: koa-cash with an lru-cache store, following its README
// (get/set on an LRU, `if (await ctx.cashed()) return;` in the handler).
// setCachedHeader lets the runner check that answers come from the cache.
import Koa from 'koa';
import { BENCH_PATH, BODY_OBJECT } from '../body.mjs';
import { koaCashOnLru } from '../koa-cash-lru.js';
import { handlerRan, serve } from '../serve.js';

const app = new Koa();
app.use(koaCashOnLru(true));
app.use(async (ctx) => {
  if (ctx.path !== BENCH_PATH) return;
  if (await ctx.cashed()) return;
  handlerRan();
  ctx.body = BODY_OBJECT;
});
serve('koa-cash', app.callback());
