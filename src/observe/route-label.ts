// The `route` of HTTP events and metrics, bounded so that it can be a metric
// label: the matched table prefix, else the framework's route pattern
// (Express `req.route.path` under its mounts' patterns, @koa/router's matched route),
// else 'other' — never a raw URL or a user id.
import type { RouteTable } from '../keys/route-table.js';

export const OTHER_ROUTE = 'other';

/** The route pattern a framework matched, if any (given by each adapter). */
export type RoutePatternOf<R> = (arg: R) => string | undefined;

export function routeLabel(table: RouteTable, normalizedPath: string, pattern: string | undefined): string {
  return table.matchNormalized(normalizedPath)?.prefix ?? pattern ?? OTHER_ROUTE;
}

/** Express: the matched route's path, under the patterns its routers and sub-apps were mounted at. */
export function expressRoutePattern(req: unknown): string | undefined {
  const r = req as { route?: { path?: unknown }; baseUrl?: unknown; app?: unknown };
  const route = r.route;
  const path = route?.path;
  if (path === undefined) return undefined;
  const own = typeof path === 'string' ? path : String(path);
  if (typeof r.baseUrl !== 'string' || r.baseUrl === '') return own;
  // req.baseUrl is the text that matched the mounts (a user id for '/users/:uid', the client's
  // case for '/shop'): never a label. The mounts' own patterns are found once per route.
  let mount = routeMounts.get(route!);
  if (mount === undefined) routeMounts.set(route!, (mount = mountPatternOf(r.app, route!)));
  if (mount === STATIC_MOUNTS) return r.baseUrl.toLowerCase() + own;
  return mount === UNKNOWN_MOUNT ? own : mount + own;
}

/** Every mount on the way is a literal path (Express 4 keeps no pattern text): the matched text, in one case, is it. */
const STATIC_MOUNTS = Symbol('static mounts');
/** Mounted where no pattern text can be had (a RegExp, an array of paths, twice): the route's own path alone. */
const UNKNOWN_MOUNT = Symbol('unknown mount');
type Mount = string | typeof STATIC_MOUNTS | typeof UNKNOWN_MOUNT;
const routeMounts = new WeakMap<object, Mount>();

interface ExpressLayer {
  readonly route?: unknown;
  readonly handle?: { readonly stack?: unknown };
  /** The path it was mounted at (router 2.3, Express 5). */
  readonly rawPath?: unknown;
  /** Express 4, which keeps no rawPath: the pattern made from the path, and its parameters. */
  readonly regexp?: { readonly source?: unknown; readonly fast_slash?: unknown };
  readonly keys?: unknown;
}

/**
 * What path-to-regexp 0.1 (Express 4) makes of a mount at a literal path
 * ('/shop', '/a-b.c'): each segment's characters, escaped, and the mount's
 * own ending. A RegExp mount (/^\/u\/\d+/), an array of paths, '?', '*'
 * or a parameter make other sources.
 */
const LITERAL_MOUNT = /^\^(?:\\\/(?:[A-Za-z0-9_~%-]|\\\.)+)+\\\/\?\(\?=\\\/\|\$\)$/;

/** Express 4: whether a layer was mounted at a literal path (the matched text is then the path, in some case). */
function literalMount(layer: ExpressLayer): boolean {
  if (!Array.isArray(layer.keys) || layer.keys.length !== 0) return false;
  const regexp = layer.regexp;
  return regexp?.fast_slash === true || (typeof regexp?.source === 'string' && LITERAL_MOUNT.test(regexp.source));
}

/** Where `route` sits: the mount patterns on the way down to it, or undefined past a mount that keeps none (Express 4). */
interface Way {
  readonly path: string | undefined;
  /** Every mount that keeps no pattern was a literal path (no parameters). */
  readonly literal: boolean;
}

/** The mount patterns above `route` in `app`: its sub-app mount paths, then its routers'. */
function mountPatternOf(app: unknown, route: object): Mount {
  let prefix = '';
  for (let a = app as { mountpath?: unknown; parent?: unknown } | undefined; a?.parent !== undefined; a = a.parent as typeof a) {
    if (typeof a.mountpath !== 'string') return UNKNOWN_MOUNT;
    prefix = (a.mountpath === '/' ? '' : a.mountpath) + prefix;
  }
  const root = app as { _router?: { stack?: unknown }; router?: { stack?: unknown } } | undefined;
  // Express 4 makes its router lazily, as _router; Express 5 has `router`.
  const ways: Way[] = [];
  walk(root?._router?.stack ?? root?.router?.stack, route, { path: '', literal: true }, ways, new Set());
  // Mounted twice (or not found from here): no one pattern says which.
  if (ways.length !== 1) return UNKNOWN_MOUNT;
  const way = ways[0]!;
  if (way.path !== undefined) return prefix + way.path;
  return way.literal && !/[:*?()+[\]{}]/.test(prefix) ? STATIC_MOUNTS : UNKNOWN_MOUNT;
}

/** Every way down the router stacks to `route` (two are enough to know it is ambiguous). */
function walk(stack: unknown, route: object, way: Way, ways: Way[], seen: Set<unknown>): void {
  if (!Array.isArray(stack) || seen.has(stack)) return;
  seen.add(stack);
  for (const layer of stack as ExpressLayer[]) {
    if (ways.length > 1) break;
    if (layer.route === route) ways.push(way);
    const inner = layer.handle?.stack;
    if (!Array.isArray(inner)) continue;
    const raw = layer.rawPath;
    let next: Way;
    if (typeof raw === 'string') next = { path: way.path === undefined ? undefined : way.path + (raw === '/' ? '' : raw), literal: way.literal };
    else if (raw !== undefined) next = { path: undefined, literal: false };
    else next = { path: undefined, literal: way.literal && literalMount(layer) };
    walk(inner, route, next, ways, seen);
  }
  seen.delete(stack);
}

/** Koa with @koa/router: the matched route's path. */
export function koaRoutePattern(ctx: unknown): string | undefined {
  const matched = (ctx as { _matchedRoute?: unknown })._matchedRoute;
  if (matched === undefined || matched === null) return undefined;
  return typeof matched === 'string' ? matched : String(matched);
}
