// What every miss scenario shares (bench/http/miss.mjs): the route handler,
// which builds its JSON for the URL's `miss` value on every request (the same
// work with and without a cache: only the cache in front differs), and the
// tiercache configuration (route table { '/api': '1m' }, default L1 bounds;
// with L2, Redis from $REDIS_URL).
import type { Request, Response } from 'express';
import type { Context, Middleware, Next } from 'koa';
import { LRUCache } from 'lru-cache';
import { createCache, type TierCache } from '../../src/index.js';
import { BENCH_PATH, catalogFor } from './body.mjs';
import { handlerRan } from './serve.js';

/** The Express route handler: res.json of a freshly built document. */
export function expressCatalog(req: Request, res: Response): void {
  handlerRan();
  res.json(catalogFor(String(req.query['miss'])));
}

/** The Koa handler (last middleware): ctx.body set to a freshly built document. */
export function koaCatalog(ctx: Context): void {
  if (ctx.path !== BENCH_PATH) return;
  handlerRan();
  ctx.body = catalogFor(String(ctx.query['miss']));
}

/** $REDIS_URL, which the runner sets for Redis scenarios; `scenario` names who asked, for the error. */
export function redisUrl(scenario: string): string {
  const url = process.env['REDIS_URL'];
  if (url === undefined || url === '') throw new Error(`${scenario}: REDIS_URL must be set`);
  return url;
}

/** tiercache for a miss scenario: L1 only, or L1 and L2 (`redis`), ready to serve. */
export async function missCache(redis: string | false): Promise<TierCache> {
  const cache = createCache({ redis, namespace: 'bench-miss', routes: { '/api': '1m' } });
  await cache.ready();
  return cache;
}

/**
 * A floor for what caching a Koa miss costs, not a product: the least a cache
 * that keeps what it stores can do. The URL is the key; after the handler the
 * body is serialized once, kept as bytes in an LRU bounded by bytes (32 MiB,
 * tiercache's default L1 bound) and sent. No ETag, Date, Age, Cache-Status,
 * storage rules, tags or coalescing: every one of those is tiercache's work on top.
 */
export function minimalKoaCache(): Middleware {
  const lru = new LRUCache<string, Buffer>({ maxSize: 32 * 1024 * 1024, sizeCalculation: (b) => b.length, ttl: 60_000 });
  return async (ctx: Context, next: Next) => {
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
  };
}
