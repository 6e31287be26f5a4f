// The route TTL table: path prefix -> caching rule. The longest prefix that
// matches on whole path segments wins, so '/api/movies' never covers
// '/api/moviesX'. Lookup walks up the normalized path, one Map probe per
// segment, so its cost grows with path depth, not with the table's size.
// Prefixes are literal: router patterns ('/api/movies/:id', '/api/*') and a
// TTL of 0 would never match or never serve, so they are refused up front.
import { TierCacheConfigError } from '../errors.js';
import { parseDuration, parseTtl, type Duration } from './duration.js';
import { parseJitter, type Jitter } from './jitter.js';
import { normalizeRoutePath, parentPath } from './path-normalize.js';

/** A rule in the `routes` table, written as an object. */
export interface RouteRuleOptions {
  /** How long a stored response is fresh. */
  ttl?: Duration | undefined;
  /** After the TTL, serve stale for this long while one request refreshes the entry. */
  staleWhileRevalidate?: Duration | undefined;
  /** After the TTL, serve stale for this long when the handler fails. */
  staleIfError?: Duration | undefined;
  /** Request headers whose values enter the key. */
  vary?: readonly string[] | undefined;
  /** TTL for 404, 405, 410, 414 and 501 answers; they are not stored without it. */
  negativeTtl?: Duration | undefined;
  /** Store answers to requests with Authorization or Cookie (the route does not depend on them). */
  shared?: boolean | undefined;
  /** Allow-list of query parameters that enter the key; others are dropped from it. */
  query?: readonly string[] | undefined;
  /** Where lifetimes come from: the table (default) or the response's own headers (RFC 9111). */
  freshness?: 'table' | 'origin' | undefined;
  /** Shortens each stored entry's TTL by a random part of up to this share ('10%'). */
  jitter?: Jitter | undefined;
}

/** A `routes` table entry: a TTL, `false` (never cache), or a rule object. */
export type RouteRuleInput = Duration | false | RouteRuleOptions;

/** A validated rule, durations in milliseconds. `cache: false` means "never cache". */
export interface RouteRule {
  readonly prefix: string;
  readonly cache: boolean;
  readonly ttl?: number;
  readonly staleWhileRevalidate?: number;
  readonly staleIfError?: number;
  readonly vary?: readonly string[];
  readonly negativeTtl?: number;
  readonly shared?: boolean;
  readonly query?: ReadonlySet<string>;
  readonly freshness?: 'table' | 'origin';
  /** Share of the TTL taken off at random. */
  readonly jitter?: number;
}

const RULE_KEYS = new Set(['ttl', 'staleWhileRevalidate', 'staleIfError', 'vary', 'negativeTtl', 'shared', 'query', 'freshness', 'jitter']);

export class RouteTable {
  readonly size: number;
  private readonly rules = new Map<string, RouteRule>();

  /** @throws TierCacheConfigError for a prefix not starting with '/', duplicates, or a bad rule. */
  constructor(routes: Readonly<Record<string, RouteRuleInput>> | undefined, option = 'routes') {
    if (routes === undefined) {
      this.size = 0;
      return;
    }
    if (routes === null || typeof routes !== 'object' || Array.isArray(routes)) {
      throw new TierCacheConfigError(option, routes, 'must be an object mapping path prefixes to a TTL, false, or a rule object');
    }
    let size = 0;
    for (const [prefix, input] of Object.entries(routes)) {
      const name = `${option}['${prefix}']`;
      if (!prefix.startsWith('/')) throw new TierCacheConfigError(name, prefix, "must be a path prefix starting with '/'");
      assertLiteralPrefix(name, prefix);
      // As written, and as clients send it (percent-encoded past ASCII): paths arrive in either form.
      const normalized = normalizeRoutePath(prefix);
      const sent = normalizeRoutePath(asSent(name, prefix));
      const rule = resolveRule(name, prefix, input);
      for (const form of sent === normalized ? [normalized] : [normalized, sent]) {
        const existing = this.rules.get(form);
        if (existing) {
          throw new TierCacheConfigError(name, prefix, `must not repeat the prefix '${existing.prefix}' (prefixes match case-insensitively, trailing slash ignored)`);
        }
        this.rules.set(form, rule);
      }
      size++;
    }
    this.size = size;
  }

  /** The rule of the longest prefix covering `normalizedPath` (see normalizeRoutePath), if any. */
  matchNormalized(normalizedPath: string): RouteRule | undefined {
    if (this.size === 0) return undefined;
    let p: string | undefined = normalizedPath;
    while (p !== undefined) {
      const rule = this.rules.get(p);
      if (rule) return rule;
      p = parentPath(p);
    }
    return undefined;
  }

  /** The rule of the longest prefix covering a raw request path (no query). */
  match(path: string): RouteRule | undefined {
    return this.size === 0 ? undefined : this.matchNormalized(normalizeRoutePath(path));
  }
}

/**
 * A prefix as clients send it: what URLs percent-encode in a path (WHATWG's
 * path percent-encode set: controls, space, '"', '<', '>', '`', '{', '}',
 * and everything past ASCII, as UTF-8) encoded, as a request path arrives.
 * '/café' never matched: clients send '/caf%C3%A9'.
 */
function asSent(name: string, prefix: string): string {
  try {
    return prefix.replace(/[\u{0}-\u{20}\u{7f}-\u{10ffff}"<>`{}]/gu, (ch) => encodeURIComponent(ch));
  } catch {
    // encodeURIComponent refuses a lone surrogate, which no UTF-8 request path holds.
    throw new TierCacheConfigError(name, prefix, 'must be a path a request can have (it holds a lone surrogate)');
  }
}

/** A segment starting with ':' (a route parameter), or a character routers read as pattern syntax. */
const PATTERN_SYNTAX = /(?:^|\/)(:)|[*?()[\]{}#]/;

/** Refuses router pattern syntax in a table prefix, saying which literal prefix to write instead. */
function assertLiteralPrefix(name: string, prefix: string): void {
  const match = PATTERN_SYNTAX.exec(prefix);
  if (match === null) return;
  const at = match[1] !== undefined ? match.index + match[0].length - 1 : match.index;
  // The segments before the pattern, as written (the table matches whatever is below them).
  const literal = prefix.slice(0, prefix.lastIndexOf('/', at - 1)).replace(/\/+$/, '');
  const instead =
    literal === ''
      ? "write '/' to cover every path, or leave it out of the table and pass { ttl } to the middleware on that route"
      : `write the literal prefix instead: '${literal}' (it covers '${literal}' and every path below it)`;
  throw new TierCacheConfigError(name, prefix, `is a router pattern ('${match[1] ?? match[0]}'), but table prefixes are literal path prefixes matched on whole segments, so it would never match; ${instead}`);
}

const NEVER_CACHE = 'use false to never cache this prefix';
/** What to write instead of a cache-wide ttl of 0. */
export const CACHE_TTL_INSTEAD = 'leave ttl out so only the routes table decides, and use false in the table for what must never be cached';
/** How to say "do not store 404s": negativeTtl is off unless set. */
export const NEVER_CACHE_NEGATIVE = 'leave negativeTtl out to never cache 404, 405, 410, 414 and 501 answers';

/** Validates one table entry (also used for per-route middleware options). */
export function resolveRule(name: string, prefix: string, input: RouteRuleInput): RouteRule {
  if (input === false) return Object.freeze({ prefix, cache: false });
  if (typeof input === 'number' || typeof input === 'string') {
    return Object.freeze({ prefix, cache: true, ttl: parseTtl(name, input, NEVER_CACHE) });
  }
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new TierCacheConfigError(name, input, 'must be a TTL (number of ms or a string like "5m"), false, or a rule object');
  }
  for (const key of Object.keys(input)) {
    if (!RULE_KEYS.has(key)) {
      throw new TierCacheConfigError(`${name}.${key}`, (input as Record<string, unknown>)[key], `is not a known rule option (known: ${[...RULE_KEYS].join(', ')})`);
    }
  }
  const rule: { -readonly [K in keyof RouteRule]: RouteRule[K] } = { prefix, cache: true };
  if (input.ttl !== undefined) rule.ttl = parseTtl(`${name}.ttl`, input.ttl, `${NEVER_CACHE} (the whole rule: '${prefix}': false)`);
  if (input.staleWhileRevalidate !== undefined) rule.staleWhileRevalidate = parseDuration(`${name}.staleWhileRevalidate`, input.staleWhileRevalidate);
  if (input.staleIfError !== undefined) rule.staleIfError = parseDuration(`${name}.staleIfError`, input.staleIfError);
  if (input.negativeTtl !== undefined) rule.negativeTtl = parseTtl(`${name}.negativeTtl`, input.negativeTtl, NEVER_CACHE_NEGATIVE);
  if (input.vary !== undefined) rule.vary = resolveHeaderList(`${name}.vary`, input.vary);
  if (input.query !== undefined) rule.query = new Set(resolveStringList(`${name}.query`, input.query));
  if (input.shared !== undefined) {
    if (typeof input.shared !== 'boolean') throw new TierCacheConfigError(`${name}.shared`, input.shared, 'must be a boolean');
    rule.shared = input.shared;
  }
  if (input.freshness !== undefined) {
    if (input.freshness !== 'table' && input.freshness !== 'origin') {
      throw new TierCacheConfigError(`${name}.freshness`, input.freshness, "must be 'table' or 'origin'");
    }
    rule.freshness = input.freshness;
  }
  if (input.jitter !== undefined) rule.jitter = parseJitter(`${name}.jitter`, input.jitter);
  return Object.freeze(rule);
}

function resolveStringList(name: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v === '')) {
    throw new TierCacheConfigError(name, value, 'must be an array of non-empty strings');
  }
  return [...(value as string[])];
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Validates a list of request header names and returns them lower-cased, without duplicates. */
export function resolveHeaderList(name: string, value: unknown): readonly string[] {
  const list = resolveStringList(name, value);
  for (const header of list) {
    if (!HEADER_NAME.test(header)) throw new TierCacheConfigError(name, value, `must hold HTTP header names; '${header}' is not one`);
  }
  return Object.freeze([...new Set(list.map((h) => h.toLowerCase()))]);
}
