// Koa's peer on misses: koa-cash 5 with an lru-cache store, per its README
// (`if (await ctx.cashed()) return;` at the top of the handler); every
// never-seen URL runs the handler and is stored (evicting once the LRU is full).
import Koa from 'koa';
import type { Context } from 'koa';
import { koaCashOnLru } from '../koa-cash-lru.js';
import { koaCatalog } from '../miss-app.js';
import { serve } from '../serve.js';

const app = new Koa();
app.use(koaCashOnLru(false));
app.use(async (ctx: Context) => {
  if (await ctx.cashed()) return;
  koaCatalog(ctx);
});
serve('koa-cash', app.callback());
