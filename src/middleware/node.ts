// The front door: wraps any node (req, res) handler — an Express app, Koa's
// app.callback() — and answers L1 hits before the framework runs at all. It
// serves only public entries (filled without Authorization or Cookie, on a
// route keyed by the table alone, not user-scoped) to requests that carry
// neither (nor an access_token query parameter), computes the key the
// middleware computes, and passes everything else through untouched; the
// middleware still fills and serves the rest.
import type { IncomingMessage, OutgoingHttpHeader, ServerResponse } from 'node:http';
import type { TierCache } from '../cache/tier-cache.js';
import { normalizeRoutePath, pathOf } from '../keys/path-normalize.js';
import { buildRequestKey, requestHeader, variantKey, varyValue } from '../keys/request-key.js';
import type { StoredEntry } from '../store/entry.js';
import { coarseNow } from '../store/coarse-clock.js';
import { UNDECIDED } from '../store/tiered-store.js';
import { HIT_L1 } from './cache-status.js';
import { assertCache } from './express.js';
import { httpValueOf, PreparedResponse, VaryManifest } from './http-entry.js';
import { resolveMiddlewareOptions } from './options.js';
import { OUT_HEADERS, replay } from './replay.js';
import { requestBypassReason } from './storage-rules.js';
import { http2DataFollows } from './http2-body.js';
import { routeLabel } from '../observe/route-label.js';
import { TierCacheConfigError } from '../errors.js';

export type NodeRequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface FrontOptions {
  /** Send the RFC 9211 Cache-Status header on hits. @default true */
  cacheStatus?: boolean | undefined;
  /** Return true to pass the request to the app without looking in the cache (mirror the middleware's own `bypass`). */
  bypass?: ((req: IncomingMessage) => boolean | undefined) | undefined;
}

/**
 * The keys of URLs the front door answered, by method and URL as sent, for
 * routes that vary on no request header: such a key is a function of the URL
 * alone (the route table and namespace are fixed), and building it (the path
 * normalized, the table matched, the query made canonical, the key escaped)
 * was most of what a hit does beyond raw node. Filled on hits only, so a scan
 * of new URLs (misses) adds nothing; bounded by count and URL length, and
 * emptied when full, so it holds the URLs being hit now.
 */
interface FrontKeys {
  readonly get: Map<string, string>;
  readonly head: Map<string, string>;
}

/** At most this many URLs per method, each of at most FRONT_KEY_URL_MAX units: a few MiB of URLs and keys at most. */
const FRONT_KEYS_MAX = 1_024;
const FRONT_KEY_URL_MAX = 512;

function remember(memo: Map<string, string>, url: string, key: string): void {
  if (url.length > FRONT_KEY_URL_MAX) return;
  if (memo.size >= FRONT_KEYS_MAX) memo.clear();
  memo.set(url, key);
}

/** The fresh public entry L1 holds for this request, if any (no I/O). */
function publicHit(cache: TierCache, req: IncomingMessage, now: number, keys: FrontKeys): { response: PreparedResponse; entry: StoredEntry; key: string; lookups: number } | undefined {
  const method = req.method;
  if (method !== 'GET' && method !== 'HEAD') return undefined;
  const headers = req.headers;
  // Stryker disable next-line ConditionalExpression,LogicalOperator: a shortcut: requestBypassReason below turns both away too
  if (headers.authorization !== undefined || headers.cookie !== undefined) return undefined;
  // Stryker disable next-line StringLiteral: a request a node server hands over always has its url
  const url = req.url ?? '/';
  const memo = method === 'GET' ? keys.get : keys.head;
  let key = memo.get(url);
  // Absolute form, a '#' and other odd targets go to the app, whose middleware decides (request-target.ts).
  if (key === undefined && (url.charCodeAt(0) !== 47 /* / */ || url.indexOf('#') !== -1)) return undefined;
  // Also turns away an access_token in the query: a credential, like Authorization. A remembered URL passed the
  // target's checks when it was remembered, and they read the URL alone: only the request's fields are checked again.
  if (requestBypassReason(headers, method, undefined, false, key === undefined ? url : undefined, http2DataFollows(req)) !== undefined) return undefined;
  // Set when the key is built here and took no request header: remembered below once it hits.
  let memoable = false;
  if (key === undefined) {
    const rule = cache.options.routes.matchNormalized(normalizeRoutePath(pathOf(url)));
    // Stryker disable next-line ConditionalExpression: a shortcut: nothing is stored under a never-cache rule, so the lookup below misses
    if (rule !== undefined && !rule.cache) return undefined;
    const vary = rule?.vary?.map((name): [string, string | undefined] => [name, varyValue(headers, name)]);
    key = buildRequestKey({ namespace: cache.prefix, method, url, vary, queryAllow: rule?.query });
    memoable = vary === undefined || vary.length === 0;
  }
  const store = cache.store;
  // Nothing counted yet: the request may still go to the app, whose middleware counts what it finds.
  let entry = store.lookupL1(key, false, undefined, false);
  if (entry === undefined || entry === UNDECIDED) return undefined;
  let value = httpValueOf(entry);
  let usedKey = key;
  if (value instanceof VaryManifest) {
    // Stryker disable next-line ConditionalExpression,BooleanLiteral: a shortcut: the variant a private manifest names is private too, and refused below
    if (!value.isPublic) return undefined;
    usedKey = variantKey(key, value.headers.map((n): [string, string | undefined] => [n, varyValue(headers, n)]));
    entry = store.lookupL1(usedKey, false, undefined, false);
    if (entry === undefined || entry === UNDECIDED) return undefined;
    value = httpValueOf(entry);
  }
  if (!(value instanceof PreparedResponse) || !value.isPublic || entry.freshUntil <= now) return undefined;
  // An origin-mode entry (RFC 9111): what a request asks of it (Cache-Control, Pragma) is the middleware's to decide.
  if (value.staleRules !== undefined && (headers['cache-control'] !== undefined || headers.pragma !== undefined)) return undefined;
  if (memoable) remember(memo, url, key);
  // Two lookups for a varied entry (its manifest, then the variant), counted as the middleware counts them.
  // Events name the request's key (cache.keyFor), not its variant's, as the middleware's do.
  return { response: value, entry, key, lookups: usedKey === key ? 1 : 2 };
}

/**
 * Wraps a node request handler so public L1 hits are answered before it runs.
 * @example http.createServer(front(cache, app)).listen(3000)
 * @throws TierCacheConfigError when `cache` is not a tiercache cache or an option is unknown.
 */
export function front(cache: TierCache, handler: NodeRequestHandler, options?: FrontOptions): NodeRequestHandler {
  assertCache('front', cache);
  if (typeof handler !== 'function') throw new TypeError('tiercache: front(cache, handler) needs a (req, res) handler, such as an Express app or koaApp.callback()');
  const resolved = resolveMiddlewareOptions('front', frontOptions(options));
  const cacheStatus = resolved.cacheStatus ? HIT_L1 : undefined;
  const bypass = resolved.bypass;
  const keys: FrontKeys = { get: new Map(), head: new Map() };
  return function tiercacheFront(req: IncomingMessage, res: ServerResponse): void {
    // Closed: nothing can invalidate what L1 still holds, so nothing is served from it (the middleware passes through too).
    if (cache.enabled && !cache.closed) {
      const now = coarseNow();
      let hit: ReturnType<typeof publicHit>;
      try {
        // The user's bypass may throw (a bad escape in the URL, say): the app answers, its middleware decides.
        if (bypass?.(req) !== true) hit = publicHit(cache, req, now, keys);
      } catch (err) {
        // never let the front door fail a request: hit stays undefined and the app answers it
        cache.reportError(err as Error, 'the front door could not look the request up; passing it to the app');
      }
      if (hit !== undefined && answer(cache, req, res, hit, now, cacheStatus)) return;
    }
    handler(req, res);
  };
}

/**
 * Replays a hit; false (nothing written) when a 'hit' listener or the replay
 * threw before the head went out: the app then answers, and its middleware
 * meets the same failure if it is one, as without the front door (Express:
 * a 500 from its error handler).
 */
function answer(cache: TierCache, req: IncomingMessage, res: ServerResponse, hit: NonNullable<ReturnType<typeof publicHit>>, now: number, cacheStatus: string | undefined): boolean {
  // Stryker disable next-line ConditionalExpression: a shortcut: emit() with no listener does nothing
  if (cache.hitListened) {
    try {
      cache.emit('hit', { key: hit.key, tier: 'L1', route: hit.response.route ?? frontRoute(cache, req), stale: false, front: true });
    } catch {
      return false;
    }
  }
  const before = fieldsBefore(res);
  try {
    replay(req, res, hit.response, hit.entry.createdAt, now, cacheStatus, undefined);
  } catch (err) {
    // A throw here would leave the request listener and end the process (a writeHead hook that fails, say).
    // Before the head is out the app answers, as without the front door: the response goes back to what it
    // was (a server that wraps the front door may have set fields first). After, it cannot be finished: cut it.
    if (res.headersSent) {
      cache.reportError(err as Error, 'the front door could not finish writing a hit; the response was cut');
      cache.store.noteL1Hits(hit.lookups);
      res.destroy();
      return true;
    }
    // Counted as a 'hit' listener's throw is: the app's middleware counts what it finds.
    cache.reportError(err as Error, 'the front door could not write a hit; passing the request to the app');
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    if (before !== undefined) for (const [name, value] of before) res.setHeader(name, value);
    return false;
  }
  cache.store.noteL1Hits(hit.lookups);
  return true;
}

type SetField = [name: string, value: OutgoingHttpHeader];

/**
 * The fields set on `res` before the front door ran, to put back when its replay fails, which sets and drops
 * fields: none (and no copy) on a response nothing touched yet, the usual case. node's slot holds one pair per
 * field, replaced, not changed, by setHeader(): the pairs as they are now are a copy.
 */
function fieldsBefore(res: ServerResponse): SetField[] | undefined {
  const set = OUT_HEADERS === undefined ? undefined : (res as unknown as Record<symbol, Record<string, SetField> | null | undefined>)[OUT_HEADERS];
  if (set === null) return undefined;
  // Not node's HTTP/1 response as this node version has it (HTTP/2's compatibility response): asked the public way.
  if (set === undefined) return res.getHeaderNames().map((name): SetField => [name, res.getHeader(name)!]);
  return Object.values(set);
}

const FRONT_OPTIONS = new Set(['cacheStatus', 'bypass']);

/** Only what the front door uses: a middleware option given here (ttl, user, vary ...) would be silently ignored. */
function frontOptions(options: FrontOptions | undefined): FrontOptions | undefined {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) return options;
  for (const k of Object.keys(options)) {
    if (!FRONT_OPTIONS.has(k)) {
      throw new TierCacheConfigError(`front.${k}`, (options as Record<string, unknown>)[k], `is not an option of the front door (it takes cacheStatus and bypass; the middleware mounted in the app takes the rest)`);
    }
  }
  return options;
}

/** The route label of a front-door hit whose entry kept none (see StoredHead.l): the table prefix (the framework has not routed it), else 'other'. */
function frontRoute(cache: TierCache, req: IncomingMessage): string {
  // Stryker disable next-line StringLiteral: as in publicHit, the url is always there
  return routeLabel(cache.options.routes, normalizeRoutePath(pathOf(req.url ?? '/')), undefined);
}
