// What may be served from and stored in the cache (DESIGN.md section 3), as
// small pure predicates over request and response headers.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { BypassReason, MissReason } from './cache-status.js';
import { hasAccessToken } from '../keys/canonical-query.js';
import { parseDirectives, splitList, type FieldValue } from '../keys/header-list.js';
import { pathOf } from '../keys/path-normalize.js';
import { CDN_CACHE_CONTROL, responseDirectives, SURROGATE_CONTROL, TIERCACHE_CACHE_CONTROL, type TargetedFields } from './origin/directives.js';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) and their obsolete relatives: never
 * stored. HTTP2-Settings is connection-specific too (RFC 7540 §3.2.1): node
 * refuses it over HTTP/2, so an answer filled over HTTP/1.1 that kept it
 * threw at every HTTP/2 hit (out of the front door: an uncaught exception).
 */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings']);
/**
 * Headers recomputed on every answer or never stored. Date is kept (Age is
 * computed against the origin's); Content-Length too, in its place, since only
 * a body of exactly that length is ever stored; so is an upstream cache's
 * Cache-Status (ours is added on every answer, after it: cache-status.ts).
 */
const NOT_STORED = new Set(['age', 'set-cookie', 'cache-groups']);
const STORABLE_STATUS = new Set([200, 203, 204, 300, 301, 308]);
const NEGATIVE_STATUS = new Set([404, 405, 410, 414, 501]);

/** Cache-Control directives, lower-cased names; a directive without a value maps to ''. Quoted values may hold commas. */
export function parseCacheControl(value: FieldValue): Map<string, string> | undefined {
  // Stryker disable next-line ConditionalExpression: a shortcut: no value parses to no directives, which every caller reads as no Cache-Control
  return value === undefined ? undefined : parseDirectives(value);
}

/**
 * Why a request must bypass the cache (neither served nor stored), or
 * undefined. `scoped` = user-scoped route or `shared: true`. `target` is the
 * request target: an `access_token` query parameter (RFC 6750 §2.3) is a
 * credential like Authorization; undefined for a target known to pass both of
 * its checks (the front door's remembered URLs: they read the target alone).
 * `dataFollows`: see http2DataFollows (http2-body.ts).
 */
export function requestBypassReason(headers: IncomingHttpHeaders, method: string, originalMethod: string | undefined, scoped: boolean, target: string | undefined, dataFollows = false): BypassReason | undefined {
  if (originalMethod !== undefined && originalMethod !== method) return 'method-override';
  // Each name read at a site of its own: one site reading the three in turn goes megamorphic, a cost on every request.
  if (headers['x-http-method-override'] !== undefined || headers['x-http-method'] !== undefined || headers['x-method-override'] !== undefined) return 'method-override';
  const length = headers['content-length'];
  if (dataFollows || (length !== undefined && length !== '0') || headers['transfer-encoding'] !== undefined) return 'body';
  if (target !== undefined && hasDotSegment(target)) return 'path';
  // A stored whole answer answers neither a part (the 206 a media player needs, a 416) nor a
  // precondition only the app can judge (If-Match, If-Unmodified-Since: a 412): the app does.
  if (headers.range !== undefined) return 'range';
  if (headers['if-match'] !== undefined || headers['if-unmodified-since'] !== undefined) return 'precondition';
  if (scoped) return undefined;
  if (headers.authorization !== undefined) return 'authorization';
  if (headers.cookie !== undefined) return 'cookie';
  if (target !== undefined && queryHasAccessToken(target)) return 'access-token';
  return undefined;
}

/** A '.' or '..' segment, also percent-encoded, in the path of a request target. */
const DOT_SEGMENT = /\/(?:\.|%2e){1,2}(?:\/|$)/i;

/**
 * Whether the path of a request target holds a dot segment. Express's and
 * Koa's routers match such a path as it is, while the route table resolves it
 * (normalizeRoutePath): `/api/admin/../movies` reaches the admin router and
 * the table's `/api` rule. Neither is the safe reading, so such a request is
 * never answered from or stored in the cache.
 */
export function hasDotSegment(target: string): boolean {
  // A dot segment begins right after a '/': most targets have neither '/.' nor '/%2'.
  // Stryker disable next-line ConditionalExpression,StringLiteral,UnaryOperator: a shortcut; the test below gives the same answer for such targets
  if (target.indexOf('/.') === -1 && target.indexOf('/%2') === -1) return false;
  return DOT_SEGMENT.test(pathOf(target));
}

/** Whether the query of a request target carries `access_token`. */
export function queryHasAccessToken(target: string): boolean {
  const q = target.indexOf('?');
  if (q === -1 || (target.indexOf('access_token', q) === -1 && target.indexOf('%', q) === -1)) return false;
  // What follows a raw '#' is no part of the query the app parses (the key drops it too).
  const hash = target.indexOf('#');
  // Stryker disable next-line ConditionalExpression,EqualityOperator: a shortcut: with '#' before '?' the slice below is empty (and hash never equals q)
  if (hash !== -1 && hash < q) return false;
  return hasAccessToken(hash === -1 ? target.slice(q + 1) : target.slice(q + 1, hash));
}

/** Whether the request forbids storing its answer (Cache-Control: no-store). */
export function requestForbidsStore(headers: IncomingHttpHeaders): boolean {
  const cc = headers['cache-control'];
  return cc !== undefined && parseCacheControl(cc)?.has('no-store') === true;
}

/** Whether an answer of this status is storable without negativeTtl (what a route answers when it works). */
export function storableStatus(status: number): boolean {
  return STORABLE_STATUS.has(status);
}

/** The TTL a response status may be stored for, or undefined if it may not be. */
export function ttlForStatus(status: number, ttl: number, negativeTtl: number | undefined): number | undefined {
  if (STORABLE_STATUS.has(status)) return ttl;
  // Stryker disable next-line ConditionalExpression: without negativeTtl this returns undefined either way
  if (negativeTtl !== undefined && NEGATIVE_STATUS.has(status)) return negativeTtl;
  return undefined;
}

/** Why response headers forbid storing, or undefined. `userScoped` allows `private`. */
export function responseForbidsStore(headers: OutgoingHttpHeaders, userScoped: boolean): MissReason | undefined {
  if (headers['set-cookie'] !== undefined) return 'set-cookie';
  // Trailer fields follow the body; a hit could not send them.
  if (headers.trailer !== undefined) return 'trailer';
  const cc = parseCacheControl(headers['cache-control']);
  if (cc !== undefined) {
    if (cc.has('no-store')) return 'no-store';
    if (cc.has('no-cache')) return 'no-cache';
    if (cc.has('private') && !userScoped) return 'private';
  }
  if (varyOf(headers) === '*') return 'vary-star';
  return undefined;
}

/**
 * Table mode: why a targeted field (RFC 9213 `Tiercache-Cache-Control`; `CDN-Cache-Control` and
 * Surrogate-Control where the middleware reads them) forbids storing, or undefined. Lifetimes stay the
 * table's, but a handler that keeps an answer from this cache alone (`Tiercache-Cache-Control: no-store`,
 * while browsers or a CDN may keep it) is heard, as origin mode hears it. Such a field only forbids here:
 * a `Cache-Control` that forbids storing still does (responseForbidsStore).
 */
export function targetedForbidsStore(headers: OutgoingHttpHeaders, targeted: TargetedFields, userScoped: boolean): MissReason | undefined {
  if (headers[TIERCACHE_CACHE_CONTROL] === undefined && !(targeted.cdnCacheControl && headers[CDN_CACHE_CONTROL] !== undefined) && !(targeted.surrogate !== undefined && headers[SURROGATE_CONTROL] !== undefined)) return undefined;
  // The first valid targeted field, else Cache-Control again (responseForbidsStore judged that already).
  const d = responseDirectives(headers, targeted).values;
  if (d.has('no-store')) return 'no-store';
  if (d.has('no-cache')) return 'no-cache';
  if (d.has('private') && !userScoped) return 'private';
  return undefined;
}

/** The request headers a response varies on (lower-case, sorted), '*' for Vary: *, [] for none. */
export function varyOf(headers: OutgoingHttpHeaders): string[] | '*' {
  const value = headers.vary;
  // Stryker disable next-line ConditionalExpression: a shortcut: splitList(undefined) is empty
  if (value === undefined) return [];
  const names = new Set<string>();
  for (const element of splitList(value)) {
    const name = element.toLowerCase();
    if (name === '*') return '*';
    if (name !== '') names.add(name);
  }
  return [...names].sort();
}

/**
 * Response headers as stored: pairs, hop-by-hop and per-answer headers removed.
 * `headers` is keyed by lower-case names, as getHeaders() gives them (node, and
 * HTTP/2's compatibility API, lower-case a name as it is set) and as every
 * storage rule reads them: a name is not lower-cased again (a new string per
 * field of every fill, even of one already in lower case).
 */
export function storedHeaders(headers: OutgoingHttpHeaders): Array<[string, string]> {
  const connection = headers.connection;
  // Fields Connection names are hop-by-hop too; most answers have no Connection field (a Set per fill otherwise).
  let listed: Set<string> | undefined;
  if (connection !== undefined) {
    listed = new Set<string>();
    for (const n of splitList(connection)) listed.add(n.toLowerCase());
  }
  const out: Array<[string, string]> = [];
  for (const name of Object.keys(headers)) {
    if (HOP_BY_HOP.has(name) || NOT_STORED.has(name) || listed?.has(name) === true) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push([name, String(v)]);
    else out.push([name, String(value)]);
  }
  return out;
}
