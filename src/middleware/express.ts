// Express adapter (Express 4 and 5): translates req/res/next into the core.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request } from 'express';
import type { TierCache } from '../cache/tier-cache.js';
import { TierCacheConfigError } from '../errors.js';
import { HttpCache } from './http-cache.js';
import { expressRoutePattern } from '../observe/route-label.js';
import { dispatchFor, serverHandler, type Dispatch, type NodeHandler } from './refresh.js';
import { resolveMiddlewareOptions, type MiddlewareOptions } from './options.js';
import { readyRequest, readyResponse } from './slot-ready.js';

/**
 * The request the option callbacks receive by default: Express's own
 * `Request`, with whatever the app declared on it (`req.user` from
 * `declare global { namespace Express { interface Request { user?: User } } }`,
 * as passport and friends do). A callback written with a narrower type,
 * `(req: Request<{ id: string }>) => ...`, gets that type instead: no generic to pass.
 */
export type ExpressRequest = Request;

export type ExpressNext = (err?: unknown) => void;
export type ExpressCacheOptions<Req = ExpressRequest> = MiddlewareOptions<Req>;

/** What expressCache returns: an Express middleware (typed on node's request so Express 4 and 5 both take it). */
export type ExpressCacheMiddleware = (req: IncomingMessage, res: ServerResponse, next: ExpressNext) => void;

export function assertCache(factory: string, cache: unknown): asserts cache is TierCache {
  if (cache === null || typeof cache !== 'object' || typeof (cache as TierCache).store !== 'object' || typeof (cache as TierCache).invalidateTags !== 'function') {
    throw new TierCacheConfigError(`${factory}(cache)`, cache, 'must be a cache made by createCache()');
  }
}

/**
 * Background refreshes re-enter the Express app the request came through, at
 * the top: the full URL only routes from there. req.app is the sub-app a
 * request is in, and app.use sets its `parent`; one mounted through a Router
 * (router.use('/v1', sub)) has none, so the top is the server's own handler
 * where it has one (it routed the request), else the last parent.
 */
function expressDispatch(app: unknown, req: IncomingMessage): Dispatch | undefined {
  if (typeof app !== 'function') return undefined;
  let root = app as { parent?: unknown };
  while (typeof root.parent === 'function') root = root.parent as { parent?: unknown };
  return dispatchFor(serverHandler(req) ?? root, (a) => a as unknown as NodeHandler);
}

/**
 * Whether `fn` runs as part of the matched route (app.get(path, fn, handler))
 * rather than app-wide. Decided from the route's own stack: `req.route` alone
 * also stays set for middleware that runs after any route layer called next().
 */
function mountedOnRoute(route: unknown, fn: unknown): boolean {
  const stack = (route as { stack?: unknown } | undefined)?.stack;
  if (!Array.isArray(stack)) return false;
  for (const layer of stack) if ((layer as { handle?: unknown } | null)?.handle === fn) return true;
  return false;
}

// The return type names no route parameters on purpose: one that did would
// decide the params of the handlers mounted after it (app.get's P is inferred
// from every handler), and the route's own `RouteParameters` would be lost.
/**
 * Express middleware that serves repeat GETs from the cache and stores the
 * handler's answers. Mount it app-wide (`app.use(expressCache(cache))`: TTLs
 * from the route table, unmatched routes pass through) or per route
 * (`app.get(path, expressCache(cache, { ttl: '5m' }), handler)`).
 *
 * Options (all optional): `ttl`, `tags(req)`, `user(req)`, `vary`, `key(req)`,
 * `staleWhileRevalidate`, `staleIfError`, `maxBodyBytes` (1 MiB), `methods`
 * (['GET']), `negativeTtl`, `shared` (false), `query`, `cacheStatus` (true),
 * `bypass(req)`, `jitter` (the rule's, else the cache's). The callbacks get
 * Express's `Request`; annotate one (`(req: Request<{ id: string }>) => ...`)
 * for a narrower type.
 * @throws TierCacheConfigError for unknown or ill-typed options.
 * @example app.get('/api/me', expressCache(cache, { user: (req) => req.user?.id }), me);
 */
export function expressCache<Req extends IncomingMessage = ExpressRequest>(cache: TierCache, options?: ExpressCacheOptions<Req>): ExpressCacheMiddleware {
  assertCache('expressCache', cache);
  const core = new HttpCache<Req>(cache, resolveMiddlewareOptions('expressCache', options), expressDispatch, expressRoutePattern);
  return function tiercache(req: IncomingMessage, res: ServerResponse, next: ExpressNext): void {
    // Before the first look at req: Express's per-request objects are slow to read and extend until then (see
    // slot-ready). res too, also for a hit, which adds nothing to it: node's own writeHead and end run faster on it.
    readyRequest(req);
    readyResponse(res);
    const r = req as IncomingMessage & { originalUrl?: string; originalMethod?: string; route?: unknown; app?: unknown };
    const perRoute = mountedOnRoute(r.route, tiercache);
    let answered: boolean | Promise<boolean>;
    try {
      answered = core.handle({ arg: req as Req, req, res, url: r.originalUrl ?? req.url ?? '/', perRoute, originalMethod: r.originalMethod, app: r.app }, next);
    } catch (err) {
      next(err);
      return;
    }
    if (typeof answered !== 'boolean') answered.catch(next);
  };
}
