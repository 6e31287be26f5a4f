// The `route` of HTTP events and metrics, bounded so that it can be a metric
// label: the matched table prefix, else the framework's route pattern
// (Express `req.baseUrl + req.route.path`, @koa/router's matched route),
// else 'other' — never a raw URL or a user id.
import type { RouteTable } from '../keys/route-table.js';

export const OTHER_ROUTE = 'other';

/** The route pattern a framework matched, if any (given by each adapter). */
export type RoutePatternOf<R> = (arg: R) => string | undefined;

export function routeLabel(table: RouteTable, normalizedPath: string, pattern: string | undefined): string {
  return table.matchNormalized(normalizedPath)?.prefix ?? pattern ?? OTHER_ROUTE;
}

/** Express: the matched route's path, under the router's mount path. */
export function expressRoutePattern(req: unknown): string | undefined {
  const r = req as { route?: { path?: unknown }; baseUrl?: unknown };
  const path = r.route?.path;
  if (path === undefined) return undefined;
  const base = typeof r.baseUrl === 'string' ? r.baseUrl : '';
  return base + (typeof path === 'string' ? path : String(path));
}

/** Koa with @koa/router: the matched route's path. */
export function koaRoutePattern(ctx: unknown): string | undefined {
  const matched = (ctx as { _matchedRoute?: unknown })._matchedRoute;
  if (matched === undefined || matched === null) return undefined;
  return typeof matched === 'string' ? matched : String(matched);
}
