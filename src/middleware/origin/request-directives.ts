// Request Cache-Control directives (RFC 9111 §5.2.1) and Pragma: no-cache
// (§5.4), for origin mode. Each is honoured unless its option turns it off:
// a client that sends `no-cache` makes the cache go to the origin, so a
// cache in front of an origin that must be shielded can refuse that, and
// forced refreshes of one key are rate-limited either way.
import type { IncomingHttpHeaders } from 'node:http';
import { TierCacheConfigError } from '../../errors.js';
import { parseDuration, type Duration } from '../../keys/duration.js';
import { deltaSeconds, parseDirectives, type Directives } from './directives.js';

export interface RequestDirectiveOptions {
  /** `no-store`: store nothing of this exchange. @default true */
  noStore?: boolean | undefined;
  /** `no-cache`: revalidate before answering (`max-age=0` asks the same, and is `maxAge`'s; `Pragma: no-cache` is `pragma`'s). @default true */
  noCache?: boolean | undefined;
  /** `max-age=N`: no answer older than N seconds. @default true */
  maxAge?: boolean | undefined;
  /** `max-stale[=N]`: a stale answer is acceptable (not where the response forbids it). @default true */
  maxStale?: boolean | undefined;
  /** `min-fresh=N`: only answers fresh for N more seconds. @default true */
  minFresh?: boolean | undefined;
  /** `only-if-cached`: answer from the cache or 504, never ask the origin. @default true */
  onlyIfCached?: boolean | undefined;
  /** `Pragma: no-cache` without Cache-Control, as `no-cache`. @default true */
  pragma?: boolean | undefined;
  /** A key refreshed because a request asked (no-cache, max-age, min-fresh) is not refreshed that way again within this. @default '1s' */
  forcedRefreshInterval?: Duration | undefined;
}

export interface ResolvedRequestDirectives {
  readonly noStore: boolean;
  readonly noCache: boolean;
  readonly maxAge: boolean;
  readonly maxStale: boolean;
  readonly minFresh: boolean;
  readonly onlyIfCached: boolean;
  readonly pragma: boolean;
  readonly forcedRefreshInterval: number;
}

const DEFAULT_FORCED_REFRESH_INTERVAL = 1_000;
const FLAGS = ['noStore', 'noCache', 'maxAge', 'maxStale', 'minFresh', 'onlyIfCached', 'pragma'] as const;

export const HONOUR_ALL: ResolvedRequestDirectives = Object.freeze({
  noStore: true,
  noCache: true,
  maxAge: true,
  maxStale: true,
  minFresh: true,
  onlyIfCached: true,
  pragma: true,
  forcedRefreshInterval: DEFAULT_FORCED_REFRESH_INTERVAL,
});

/** `true`/undefined: honour all; `false`: none; an object: per directive. */
export function resolveRequestDirectives(name: string, input: unknown): ResolvedRequestDirectives {
  if (input === undefined || input === true) return HONOUR_ALL;
  if (input === false) return Object.freeze({ noStore: false, noCache: false, maxAge: false, maxStale: false, minFresh: false, onlyIfCached: false, pragma: false, forcedRefreshInterval: DEFAULT_FORCED_REFRESH_INTERVAL });
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new TierCacheConfigError(name, input, 'must be true, false or an object of booleans');
  const o = input as Record<string, unknown>;
  const out: Record<string, boolean | number> = { ...HONOUR_ALL };
  for (const k of Object.keys(o)) {
    if (k === 'forcedRefreshInterval') {
      if (o[k] !== undefined) out[k] = parseDuration(`${name}.${k}`, o[k]);
    } else if ((FLAGS as readonly string[]).includes(k)) {
      if (o[k] !== undefined && typeof o[k] !== 'boolean') throw new TierCacheConfigError(`${name}.${k}`, o[k], 'must be a boolean');
      if (o[k] !== undefined) out[k] = o[k] as boolean;
    } else throw new TierCacheConfigError(`${name}.${k}`, o[k], `is not a known option (known: ${[...FLAGS, 'forcedRefreshInterval'].join(', ')})`);
  }
  return Object.freeze(out as unknown as ResolvedRequestDirectives);
}

/** What a request asks of a stored answer; times in ms. */
export interface RequestNeeds {
  /** Revalidate before answering (no-cache, Pragma: no-cache). */
  readonly noCache: boolean;
  readonly maxAge: number | undefined;
  /** Infinity for a bare max-stale. */
  readonly maxStale: number | undefined;
  readonly minFresh: number | undefined;
  readonly onlyIfCached: boolean;
}

function ms(d: Directives, name: string): number | undefined {
  const s = deltaSeconds(d, name);
  // An invalid argument: the directive is ignored.
  return s === undefined || Number.isNaN(s) ? undefined : s * 1000;
}

/** The request's needs, or undefined when it asks nothing (most requests: no Cache-Control, no Pragma). */
export function requestNeeds(headers: IncomingHttpHeaders, o: ResolvedRequestDirectives): RequestNeeds | undefined {
  const cc = headers['cache-control'];
  if (cc === undefined) {
    const pragma = headers.pragma;
    if (pragma === undefined || !o.pragma || !/(?:^|,)\s*no-cache\s*(?:,|$)/i.test(pragma)) return undefined;
    return { noCache: true, maxAge: undefined, maxStale: undefined, minFresh: undefined, onlyIfCached: false };
  }
  const d = parseDirectives(cc);
  const v = d.values;
  let maxStale: number | undefined;
  if (o.maxStale && v.has('max-stale')) maxStale = v.get('max-stale') === '' ? Infinity : ms(d, 'max-stale');
  const noCache = o.noCache && v.has('no-cache');
  const maxAge = o.maxAge ? ms(d, 'max-age') : undefined;
  const minFresh = o.minFresh ? ms(d, 'min-fresh') : undefined;
  const onlyIfCached = o.onlyIfCached && v.has('only-if-cached');
  // Nothing honoured is asked (directives turned off, no-transform, extensions, invalid arguments): as a request
  // without the field. Needs that ask nothing would still cost it stale-while-revalidate (answered only after the
  // origin) and a stale answer made for another (it ran its own request: requestDirectives: false shielded nothing).
  if (!noCache && maxAge === undefined && maxStale === undefined && minFresh === undefined && !onlyIfCached) return undefined;
  return { noCache, maxAge, maxStale, minFresh, onlyIfCached };
}

/** How a stored answer fits a request. */
export const Fit = {
  /** Serve it. */
  Fresh: 0,
  /** Stale, and the request accepts it stale (max-stale): serve it. */
  StaleAccepted: 1,
  /** Fresh, but the request wants it revalidated (no-cache, max-age, min-fresh). */
  Forced: 2,
  /** Stale: revalidate (or serve stale where a stale window allows). */
  Stale: 3,
} as const;
export type Fit = (typeof Fit)[keyof typeof Fit];

/** Whether an entry of this age and freshness fits the request. `noStale`: the response forbids stale answers. */
export function fit(needs: RequestNeeds | undefined, createdAt: number, freshUntil: number, now: number, noStale: boolean): Fit {
  const fresh = freshUntil > now;
  if (needs === undefined) return fresh ? Fit.Fresh : Fit.Stale;
  if (needs.noCache) return fresh ? Fit.Forced : Fit.Stale;
  if (needs.maxAge !== undefined && now - createdAt > needs.maxAge) return fresh ? Fit.Forced : Fit.Stale;
  if (needs.minFresh !== undefined && freshUntil - now < needs.minFresh) return fresh ? Fit.Forced : Fit.Stale;
  if (fresh) return Fit.Fresh;
  if (needs.maxStale !== undefined && !noStale && now - freshUntil <= needs.maxStale) return Fit.StaleAccepted;
  return Fit.Stale;
}
