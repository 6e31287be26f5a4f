// Koa's peer on misses: koa-cash 5 with an lru-cache store, per its README
// (`if (await ctx.cashed()) return;` at the top of the handler); every
// never-seen URL runs the handler and is stored (evicting once the LRU is full).
import Koa from 'koa';
import type { Context } from 'koa';
import koaCash from 'koa-cash';
import { LRUCache } from 'lru-cache';
import { koaCatalog } from '../miss-app.js';
import { serve } from '../serve.js';

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
    get: (key: string) => lru.get(key),
    set: (key: string, value: object) => {
      lru.set(key, value);
    },
  }),
);
app.use(async (ctx: Context) => {
  if (await ctx.cashed()) return;
  koaCatalog(ctx);
});
serve('koa-cash', app.callback());
