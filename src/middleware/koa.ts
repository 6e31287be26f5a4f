// Koa adapter (Koa 2 and 3): translates ctx/next into the core. Hits are
// written straight to ctx.res (ctx.respond = false), so middleware in front
// cannot alter bytes that were stored as sent.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TierCache } from '../cache/tier-cache.js';
import { assertCache } from './express.js';
import { HttpCache } from './http-cache.js';
import { dispatchFor, type Dispatch, type NodeHandler } from './refresh.js';
import { resolveMiddlewareOptions, type MiddlewareOptions } from './options.js';

/** The parts of a Koa context the middleware reads (typed loosely so Koa 2 and 3 both fit). */
export interface KoaContext {
  req: IncomingMessage;
  res: ServerResponse;
  originalUrl: string;
  respond?: boolean;
  status: number;
  params?: Record<string, string>;
  get(name: string): string;
  // Apps and routers add their own fields (ctx.state, ctx.params, ...); option callbacks may read them.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  [key: string]: any;
}

/** What the returned middleware needs from ctx (any Koa 2/3 context has it). */
export interface KoaRuntimeContext {
  app?: unknown;
  req: IncomingMessage;
  res: ServerResponse;
  originalUrl: string;
  respond?: boolean;
}

export type KoaCacheOptions<Ctx = KoaContext> = MiddlewareOptions<Ctx>;

/** Background refreshes re-enter the Koa app the request came through. */
function koaDispatch(app: unknown): Dispatch | undefined {
  if (typeof app !== 'object' || app === null || typeof (app as { callback?: unknown }).callback !== 'function') return undefined;
  return dispatchFor(app as { callback(): NodeHandler }, (a) => a.callback());
}

/**
 * Whether `fn` is in the stack of a matched @koa/router route
 * (router.get(path, fn, handler)) rather than app-wide or in router.use(),
 * whose layers match every method. Route facts left on ctx by earlier
 * routers (`_matchedRoute`) do not say how this middleware was mounted.
 */
function mountedOnRoute(matched: unknown, fn: unknown): boolean {
  if (!Array.isArray(matched)) return false;
  for (const layer of matched) {
    const l = layer as { methods?: unknown; stack?: unknown } | null;
    if (Array.isArray(l?.methods) && l.methods.length > 0 && Array.isArray(l.stack) && l.stack.includes(fn)) return true;
  }
  return false;
}

/**
 * Koa middleware that serves repeat GETs from the cache and stores the
 * downstream answer. `app.use(koaCache(cache))` takes TTLs from the route
 * table; `router.get(path, koaCache(cache, { ttl: '5m' }), handler)` caches one route.
 * Options are those of expressCache, with `ctx` in place of `req`.
 * @throws TierCacheConfigError for unknown or ill-typed options.
 */
export function koaCache<Ctx = KoaContext>(cache: TierCache, options?: KoaCacheOptions<Ctx>): (ctx: KoaRuntimeContext, next: () => Promise<unknown>) => Promise<void> {
  assertCache('koaCache', cache);
  const core = new HttpCache<Ctx>(cache, resolveMiddlewareOptions('koaCache', options), koaDispatch);
  return async function tiercache(ctx: KoaRuntimeContext, next: () => Promise<unknown>): Promise<void> {
    const perRoute = mountedOnRoute((ctx as { matched?: unknown }).matched, tiercache);
    const result = core.handle({ arg: ctx as Ctx, req: ctx.req, res: ctx.res, url: ctx.originalUrl, perRoute, app: ctx.app }, next);
    const answered = typeof result === 'boolean' ? result : await result;
    if (answered) {
      ctx.respond = false;
    }
  };
}
