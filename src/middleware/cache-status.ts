// Cache-Status header values (RFC 9211), built once. Every answer the cache
// did not serve, or did not store, says why in `detail`, with a token from
// the fixed lists below (README: "Why is this not cached?").

export const CACHE_STATUS = 'cache-status';
export const HIT_L1 = 'tiercache; hit; detail=L1';
export const HIT_L2 = 'tiercache; hit; detail=L2';
export const MISS = 'tiercache; fwd=miss';
export const MISS_STORED = 'tiercache; fwd=miss; stored';
export const MISS_COLLAPSED = 'tiercache; fwd=miss; collapsed';
export const BYPASS = 'tiercache; fwd=bypass';
/**
 * Origin mode, a revalidation (RFC 9211): `fwd=stale` for a stale entry, `fwd=request` for a fresh
 * one the request asked to revalidate, with the status the handler answered and whether it was stored.
 */
export function forwardedStatus(why: 'stale' | 'request', status: number, stored: boolean): string {
  return `tiercache; fwd=${why}; fwd-status=${status}${stored ? '; stored' : ''}`;
}

/** A stale entry revalidated with a 304 and served. */
export const REVALIDATED = forwardedStatus('stale', 304, true);

/**
 * Why a request was neither served from nor stored in the cache
 * (`fwd=bypass`). The first nine are always said (`app`: the middleware's
 * `bypass(req)` option asked for it); the last four only with
 * `cacheStatus: 'verbose'`, since they concern requests the cache was never
 * meant to handle.
 */
export const BYPASS_REASONS = ['authorization', 'cookie', 'access-token', 'method-override', 'body', 'authority', 'path', 'app', 'range', 'no-rule', 'method', 'disabled', 'closed'] as const;
export type BypassReason = (typeof BYPASS_REASONS)[number];

/** Bypass reasons said only with `cacheStatus: 'verbose'`. */
export const QUIET_BYPASS_REASONS: ReadonlySet<BypassReason> = new Set(['no-rule', 'method', 'disabled', 'closed']);

/** Why an answer the handler produced (`fwd=miss`) was not stored. */
export const MISS_REASONS = ['set-cookie', 'no-store', 'private', 'no-cache', 'vary-star', 'status', 'too-large', 'truncated', 'invalidated', 'expired', 'head', 'request-no-store', 'waited', 'authorization', 'only-if-cached', 'trailer', 'unreachable'] as const;
export type MissReason = (typeof MISS_REASONS)[number];

const bypassValues = new Map<string, string>(BYPASS_REASONS.map((r) => [r, `${BYPASS}; detail=${r}`]));
const missValues = new Map<string, string>(MISS_REASONS.map((r) => [r, `${MISS}; detail=${r}`]));

/** `tiercache; fwd=bypass; detail=<reason>`. */
export function bypassStatus(reason: BypassReason): string {
  return bypassValues.get(reason)!;
}

/** `tiercache; fwd=miss; detail=<reason>` (not stored, and why). */
export function missStatus(reason: MissReason): string {
  return missValues.get(reason)!;
}

/** A stale answer: `ttl` is the negative remaining freshness in whole seconds (at least -1). */
export function staleHit(tier: 'L1' | 'L2', secondsPastFresh: number): string {
  return `tiercache; hit; ttl=${-Math.max(1, Math.ceil(secondsPastFresh))}; detail=${tier}`;
}

/**
 * Origin mode: a fresh entry served because the revalidation the request
 * asked for (no-cache, max-age=0) failed with `status`. Forwarded, so no
 * `hit` (RFC 9211 §2.1); `ttl` is its remaining freshness in whole seconds.
 */
export function freshAfterFailedRefresh(tier: 'L1' | 'L2', status: number, secondsLeft: number): string {
  return `tiercache; fwd=request; fwd-status=${status}; ttl=${Math.floor(secondsLeft)}; detail=${tier}`;
}
