// Middleware options, shared by both adapters. Validated once, when the
// middleware is created; per-request functions receive the framework's own
// request object (Express `req`, Koa `ctx`).
import { TierCacheConfigError } from '../errors.js';
import { parseDuration, parseTtl, type Duration } from '../keys/duration.js';
import { parseJitter, type Jitter } from '../keys/jitter.js';
import { NEVER_CACHE_NEGATIVE, resolveHeaderList } from '../keys/route-table.js';
import type { TargetedFields } from './origin/directives.js';
import { resolveRequestDirectives, type RequestDirectiveOptions, type ResolvedRequestDirectives } from './origin/request-directives.js';

export interface MiddlewareOptions<R> {
  /** Lifetime of stored responses; beats the route table. @default table rule, else cache ttl, else 60 s per route */
  ttl?: Duration | undefined;
  /** Tags for the entry, e.g. `req => ['movie:' + req.params.id]`. */
  tags?: ((req: R) => readonly string[] | undefined) | undefined;
  /** User scope: entries are private to the returned id; undefined, null or an empty string = not scoped for this request. */
  user?: ((req: R) => string | number | null | undefined) | undefined;
  /** Request headers whose values enter the key. @default [] (plus the table rule's vary) */
  vary?: readonly string[] | undefined;
  /** Replaces the path-and-query part of the key (namespace, method and user scope still apply). */
  key?: ((req: R) => string) | undefined;
  /** After the TTL, serve stale for this long while one request refreshes the entry in the background. */
  staleWhileRevalidate?: Duration | undefined;
  /** After the TTL, serve stale for this long when the handler fails (throws or answers 5xx). */
  staleIfError?: Duration | undefined;
  /** Largest body kept for the cache; bigger responses stream through and are not stored. @default 1 MiB */
  maxBodyBytes?: number | undefined;
  /** Methods whose answers are stored. HEAD is always answered from GET entries. @default ['GET'] */
  methods?: readonly string[] | undefined;
  /** TTL for 404, 405, 410, 414 and 501 answers; without it they are not stored. */
  negativeTtl?: Duration | undefined;
  /** Store answers to requests that carry Authorization or Cookie (the route does not depend on them). @default false */
  shared?: boolean | undefined;
  /** Allow-list of query parameters that enter the key; others are dropped from it. @default all */
  query?: readonly string[] | undefined;
  /**
   * Send the RFC 9211 Cache-Status header, with a `detail` saying why an answer
   * was not served from or stored in the cache. `'verbose'` also marks requests
   * the cache leaves alone (`fwd=bypass; detail=no-rule`, `method`, `disabled`,
   * `closed`), for debugging. @default true
   */
  cacheStatus?: boolean | 'verbose' | undefined;
  /**
   * Return true to neither serve this request from the cache nor store its
   * answer (`Cache-Status: tiercache; fwd=bypass; detail=app`, a 'bypass'
   * event): a per-request switch, such as a `?nocache` for admins or a preview mode.
   */
  bypass?: ((req: R) => boolean | undefined) | undefined;
  /** Shortens each stored entry's TTL by a random part of up to this share ('10%'). @default the route rule's, else the cache's */
  jitter?: Jitter | undefined;
  /** Where lifetimes come from: the table, or the response's own headers (RFC 9111 shared cache). @default the rule's, else the cache's */
  freshness?: 'table' | 'origin' | undefined;
  /** Origin mode: which request Cache-Control directives are honoured (true: all, false: none, or per directive). @default true */
  requestDirectives?: boolean | RequestDirectiveOptions | undefined;
  /** Origin mode: read `CDN-Cache-Control` as a targeted field (RFC 9213) after `Tiercache-Cache-Control`. @default false */
  cdnCacheControl?: boolean | undefined;
  /**
   * Origin mode: read `Surrogate-Control` (W3C Edge Architecture) directives addressed to all
   * surrogates or to this device name (`true`: 'tiercache'), after the RFC 9213 fields. @default false
   */
  surrogateControl?: boolean | string | undefined;
}

export interface ResolvedMiddlewareOptions<R> {
  readonly ttl: number | undefined;
  readonly tags: ((req: R) => readonly string[] | undefined) | undefined;
  readonly user: ((req: R) => string | number | null | undefined) | undefined;
  readonly vary: readonly string[];
  readonly key: ((req: R) => string) | undefined;
  readonly staleWhileRevalidate: number | undefined;
  readonly staleIfError: number | undefined;
  readonly maxBodyBytes: number;
  readonly methods: ReadonlySet<string>;
  readonly negativeTtl: number | undefined;
  readonly shared: boolean | undefined;
  readonly query: ReadonlySet<string> | undefined;
  readonly cacheStatus: boolean;
  /** cacheStatus: 'verbose'. */
  readonly verboseStatus: boolean;
  readonly bypass: ((req: R) => boolean | undefined) | undefined;
  readonly jitter: number | undefined;
  readonly freshness: 'table' | 'origin' | undefined;
  readonly requestDirectives: ResolvedRequestDirectives;
  /** Origin mode: the targeted fields read (cdnCacheControl, surrogateControl). */
  readonly targeted: TargetedFields;
}

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** The device name Surrogate-Control directives address with `surrogateControl: true`. */
export const DEFAULT_SURROGATE = 'tiercache';

const KNOWN = new Set(['ttl', 'tags', 'user', 'vary', 'key', 'staleWhileRevalidate', 'staleIfError', 'maxBodyBytes', 'methods', 'negativeTtl', 'shared', 'query', 'cacheStatus', 'bypass', 'jitter', 'freshness', 'requestDirectives', 'cdnCacheControl', 'surrogateControl']);
const METHOD = /^[A-Z]+$/;
/**
 * Unsafe methods (RFC 9110 §9.2.1): listed in `methods`, a POST was cached
 * like a read (its answer keyed without its body) and no longer invalidated
 * what it changed.
 */
const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'CONNECT']);

function fn<T>(name: string, value: unknown): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw new TierCacheConfigError(name, value, 'must be a function');
  return value as T;
}

function duration(name: string, value: unknown): number | undefined {
  return value === undefined ? undefined : parseDuration(name, value);
}

/** @throws TierCacheConfigError naming `${factory}.option` for unknown or ill-typed options. */
export function resolveMiddlewareOptions<R>(factory: string, options: MiddlewareOptions<R> | undefined): ResolvedMiddlewareOptions<R> {
  const o = (options ?? {}) as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new TierCacheConfigError(factory, options, 'options must be an object');
  for (const k of Object.keys(o)) {
    if (!KNOWN.has(k)) throw new TierCacheConfigError(`${factory}.${k}`, o[k], `is not a known option (known: ${[...KNOWN].join(', ')})`);
  }
  const name = (k: string) => `${factory}.${k}`;
  let maxBodyBytes = DEFAULT_MAX_BODY_BYTES;
  if (o.maxBodyBytes !== undefined) {
    if (typeof o.maxBodyBytes !== 'number' || !Number.isSafeInteger(o.maxBodyBytes) || o.maxBodyBytes < 0) {
      throw new TierCacheConfigError(name('maxBodyBytes'), o.maxBodyBytes, 'must be a whole number of bytes >= 0');
    }
    maxBodyBytes = o.maxBodyBytes;
  }
  let methods: ReadonlySet<string> = new Set(['GET']);
  if (o.methods !== undefined) {
    if (!Array.isArray(o.methods) || o.methods.length === 0 || o.methods.some((m) => typeof m !== 'string' || !METHOD.test(m.toUpperCase()))) {
      throw new TierCacheConfigError(name('methods'), o.methods, "must be a non-empty array of HTTP method names such as ['GET']");
    }
    methods = new Set((o.methods as string[]).map((m) => m.toUpperCase()));
    const unsafe = [...methods].filter((m) => WRITE_METHODS.has(m));
    if (unsafe.length > 0) {
      throw new TierCacheConfigError(name('methods'), o.methods, `must not name ${unsafe.join(', ')}: a write's answer is not reused (its body is not in the key) and a successful one invalidates its target path instead (RFC 9111 §4.4)`);
    }
  }
  if (o.shared !== undefined && typeof o.shared !== 'boolean') throw new TierCacheConfigError(name('shared'), o.shared, 'must be a boolean');
  if (o.cacheStatus !== undefined && typeof o.cacheStatus !== 'boolean' && o.cacheStatus !== 'verbose') {
    throw new TierCacheConfigError(name('cacheStatus'), o.cacheStatus, "must be true, false or 'verbose'");
  }
  let query: ReadonlySet<string> | undefined;
  if (o.query !== undefined) {
    if (!Array.isArray(o.query) || o.query.some((q) => typeof q !== 'string' || q === '')) {
      throw new TierCacheConfigError(name('query'), o.query, 'must be an array of query parameter names');
    }
    query = new Set(o.query as string[]);
  }
  if (o.freshness !== undefined && o.freshness !== 'table' && o.freshness !== 'origin') throw new TierCacheConfigError(name('freshness'), o.freshness, "must be 'table' or 'origin'");
  if (o.cdnCacheControl !== undefined && typeof o.cdnCacheControl !== 'boolean') throw new TierCacheConfigError(name('cdnCacheControl'), o.cdnCacheControl, 'must be a boolean');
  if (o.surrogateControl !== undefined && typeof o.surrogateControl !== 'boolean' && (typeof o.surrogateControl !== 'string' || !/^[a-z0-9_.-]+$/i.test(o.surrogateControl))) {
    throw new TierCacheConfigError(name('surrogateControl'), o.surrogateControl, 'must be a boolean or a device name (letters, digits, _ . -)');
  }
  return Object.freeze({
    ttl: o.ttl === undefined ? undefined : parseTtl(name('ttl'), o.ttl, 'to never cache a route, mount no cache middleware on it (or give it a routes rule set to false)'),
    tags: fn<(req: R) => readonly string[] | undefined>(name('tags'), o.tags),
    user: fn<(req: R) => string | number | null | undefined>(name('user'), o.user),
    vary: o.vary === undefined ? [] : resolveHeaderList(name('vary'), o.vary),
    key: fn<(req: R) => string>(name('key'), o.key),
    staleWhileRevalidate: duration(name('staleWhileRevalidate'), o.staleWhileRevalidate),
    staleIfError: duration(name('staleIfError'), o.staleIfError),
    maxBodyBytes,
    methods,
    negativeTtl: o.negativeTtl === undefined ? undefined : parseTtl(name('negativeTtl'), o.negativeTtl, NEVER_CACHE_NEGATIVE),
    shared: o.shared as boolean | undefined,
    query,
    cacheStatus: o.cacheStatus !== false,
    verboseStatus: o.cacheStatus === 'verbose',
    bypass: fn<(req: R) => boolean | undefined>(name('bypass'), o.bypass),
    jitter: parseJitter(name('jitter'), o.jitter),
    freshness: o.freshness as 'table' | 'origin' | undefined,
    requestDirectives: resolveRequestDirectives(name('requestDirectives'), o.requestDirectives),
    targeted: Object.freeze({
      cdnCacheControl: o.cdnCacheControl === true,
      surrogate: o.surrogateControl === true ? DEFAULT_SURROGATE : typeof o.surrogateControl === 'string' ? o.surrogateControl.toLowerCase() : undefined,
    }),
  });
}
