// What every miss scenario shares (bench/http/miss.mjs): the route handler,
// which builds its JSON for the URL's `miss` value on every request (the same
// work with and without a cache: only the cache in front differs), and the
// tiercache configuration (route table { '/api': '1m' }, default L1 bounds;
// with L2, Redis from $REDIS_URL).
import type { Request, Response } from 'express';
import etag from 'etag';
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

/** What koaMandatedFloor keeps per URL: enough to replay the answer as DESIGN.md section 3 asks. */
interface FloorEntry {
  status: number;
  /** The answer's fields as sent (name, value), Cache-Status aside. */
  fields: Array<[string, string | number | string[]]>;
  body: Buffer;
  /** When the fill began, ms: Age counts from it. */
  began: number;
}

let floorSecond = -1;
let floorDate = '';
/** The HTTP Date of now, made once a second (any cache can do that much). */
function floorDateNow(now: number): string {
  const s = Math.floor(now / 1000);
  if (s !== floorSecond) {
    floorSecond = s;
    floorDate = new Date(s * 1000).toUTCString();
  }
  return floorDate;
}

/** Cache-Control directives DESIGN.md section 3 forbids storing in table mode. */
const UNSTORABLE_CONTROL = /(?:^|,)\s*(?:no-store|private|no-cache)\s*(?:[=,]|$)/i;

/**
 * A floor for what the contract itself asks of a Koa miss, not a product:
 * minimalKoaCache plus what DESIGN.md section 3 requires of every stored
 * answer, each done the plainest way. The filling answer gets an ETag from
 * the `etag` package (unless the handler set one), a Date (kept, so a hit
 * replays the origin's) and `Cache-Status: tiercache; fwd=miss; stored`; it is
 * stored only if its headers pass the storage rules (status 200, no
 * Cache-Control no-store / private / no-cache, no Set-Cookie, no `Vary: *`),
 * with its fields, replayed on a hit with Age and a hit Cache-Status. No
 * canonical query key, no tags, no coalescing, no capture of late headers, no
 * L2 encoding: what tiercache costs beyond this is its own design's.
 */
export function koaMandatedFloor(): Middleware {
  const lru = new LRUCache<string, FloorEntry>({ maxSize: 32 * 1024 * 1024, sizeCalculation: (e) => e.body.length + 64 * e.fields.length, ttl: 60_000 });
  return async (ctx: Context, next: Next) => {
    if (ctx.method !== 'GET') return next();
    const hit = lru.get(ctx.url);
    if (hit !== undefined) {
      ctx.status = hit.status;
      for (const [name, value] of hit.fields) ctx.set(name, value as string | string[]);
      ctx.set('Age', String(Math.max(0, Math.floor((Date.now() - hit.began) / 1000))));
      ctx.set('Cache-Status', 'tiercache; hit; detail=L1');
      ctx.body = hit.body;
      return;
    }
    const began = Date.now();
    await next();
    if (ctx.status !== 200 || ctx.body === undefined || ctx.body === null) return;
    const bytes = Buffer.from(typeof ctx.body === 'string' ? ctx.body : JSON.stringify(ctx.body));
    ctx.body = bytes;
    const res = ctx.res;
    const control = res.getHeader('cache-control');
    const vary = res.getHeader('vary');
    const storable = (control === undefined || !UNSTORABLE_CONTROL.test(String(control))) && res.getHeader('set-cookie') === undefined && (vary === undefined || !/(?:^|,)\s*\*\s*(?:,|$)/.test(String(vary)));
    if (res.getHeader('etag') === undefined) res.setHeader('ETag', etag(bytes));
    res.setHeader('Date', floorDateNow(began));
    if (storable) {
      const headers = res.getHeaders();
      const fields: FloorEntry['fields'] = [];
      for (const name in headers) fields.push([name, headers[name]!]);
      lru.set(ctx.url, { status: ctx.status, fields, body: bytes, began });
      res.setHeader('Cache-Status', 'tiercache; fwd=miss; stored');
    } else {
      res.setHeader('Cache-Status', 'tiercache; fwd=miss');
    }
  };
}
