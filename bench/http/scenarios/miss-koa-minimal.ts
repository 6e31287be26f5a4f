// A floor for what caching a Koa miss costs, not a product: the least a cache
// that keeps what it stores can do. The URL is the key; after the handler the
// body is serialized once, kept as bytes in an LRU bounded by bytes (32 MiB,
// tiercache's default L1 bound) and sent. No ETag, Date, Age, Cache-Status,
// storage rules, tags or coalescing: every one of those is tiercache's work
// on top of this (DESIGN.md section 6 asks 0.85x of the app without cache).
import Koa from 'koa';
import type { Context, Next } from 'koa';
import { LRUCache } from 'lru-cache';
import { koaCatalog } from '../miss-app.js';
import { serve } from '../serve.js';

const lru = new LRUCache<string, Buffer>({ maxSize: 32 * 1024 * 1024, sizeCalculation: (b) => b.length, ttl: 60_000 });
const app = new Koa();
app.use(async (ctx: Context, next: Next) => {
  if (ctx.method !== 'GET') return next();
  const hit = lru.get(ctx.url);
  if (hit !== undefined) {
    ctx.type = 'json';
    ctx.body = hit;
    return;
  }
  await next();
  if (ctx.status !== 200 || ctx.body === undefined || ctx.body === null) return;
  const bytes = Buffer.from(typeof ctx.body === 'string' ? ctx.body : JSON.stringify(ctx.body));
  lru.set(ctx.url, bytes);
  ctx.body = bytes;
});
app.use(koaCatalog);
serve('koa-minimal', app.callback());
