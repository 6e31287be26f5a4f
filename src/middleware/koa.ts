// Koa adapter (Koa 2 and 3): translates ctx/next into the core. Hits are
// written straight to ctx.res (ctx.respond = false), so middleware in front
// cannot alter bytes that were stored as sent.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DefaultContext, DefaultState, ParameterizedContext } from 'koa';
import type { TierCache } from '../cache/tier-cache.js';
import { assertCache } from './express.js';
import { HttpCache } from './http-cache.js';
import { koaRoutePattern } from '../observe/route-label.js';
import { dispatchFor, type Dispatch, type NodeHandler } from './refresh.js';
import { resolveMiddlewareOptions, type MiddlewareOptions } from './options.js';

/** What a router (@koa/router, koa-router) puts on ctx for a matched route. */
export interface KoaRouterParams {
  /** The route's parameters (`/movies/:id` -> `ctx.params.id`); only set under a router. */
  params: Record<string, string>;
}

/**
 * The ctx the option callbacks receive by default: Koa's own context, with
 * what the app declared on Koa's `DefaultState` and `DefaultContext`
 * (`declare module 'koa' { interface DefaultState { user?: User } }` types
 * `ctx.state.user`) and a router's `ctx.params`. A callback written with
 * another type, `(ctx: RouterContext<AppState>) => ...`, gets that type
 * instead: no generic to pass.
 */
export type KoaContext<StateT = DefaultState, ContextT = DefaultContext> = ParameterizedContext<StateT, ContextT & KoaRouterParams>;

/** What the returned middleware needs from ctx (any Koa 2/3 context has it). */
export interface KoaRuntimeContext {
  app?: unknown;
  req: IncomingMessage;
  res: ServerResponse;
  originalUrl: string;
  respond?: boolean;
}

export type KoaCacheOptions<Ctx = KoaContext> = MiddlewareOptions<Ctx>;

/** What koaCache returns: a Koa middleware (typed on what it reads so Koa 2 and 3 both take it). */
export type KoaCacheMiddleware = (ctx: KoaRuntimeContext, next: () => Promise<unknown>) => Promise<void>;

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

// The return type takes any context that has what the middleware reads: one
// typed on the app's state would make router.get infer its own state from it.
/**
 * Koa middleware that serves repeat GETs from the cache and stores the
 * downstream answer. `app.use(koaCache(cache))` takes TTLs from the route
 * table; `router.get(path, koaCache(cache, { ttl: '5m' }), handler)` caches one route.
 * Options are those of expressCache, with `ctx` in place of `req`.
 * @throws TierCacheConfigError for unknown or ill-typed options.
 */
export function koaCache<Ctx = KoaContext>(cache: TierCache, options?: KoaCacheOptions<Ctx>): KoaCacheMiddleware {
  assertCache('koaCache', cache);
  const core = new HttpCache<Ctx>(cache, resolveMiddlewareOptions('koaCache', options), koaDispatch, koaRoutePattern);
  return async function tiercache(ctx: KoaRuntimeContext, next: () => Promise<unknown>): Promise<void> {
    const perRoute = mountedOnRoute((ctx as { matched?: unknown }).matched, tiercache);
    // Mounted in Express or Connect (expressApp.use('/v1', koa.callback())), ctx.originalUrl is the mount-relative
    // req.url Koa was handed: keys and the route table take the full target, as under Express itself.
    const url = (ctx.req as { originalUrl?: unknown }).originalUrl;
    const result = core.handle({ arg: ctx as Ctx, req: ctx.req, res: ctx.res, url: typeof url === 'string' ? url : ctx.originalUrl, perRoute, app: ctx.app }, next);
    // Stryker disable next-line ConditionalExpression: awaiting a boolean gives the boolean (one microtask later)
    const answered = typeof result === 'boolean' ? result : await result;
    if (answered) {
      ctx.respond = false;
    }
  };
}
