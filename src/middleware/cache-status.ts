// Cache-Status header values (RFC 9211), built once.

export const CACHE_STATUS = 'cache-status';
export const HIT_L1 = 'tiercache; hit; detail=L1';
export const HIT_L2 = 'tiercache; hit; detail=L2';
export const MISS = 'tiercache; fwd=miss';
export const MISS_STORED = 'tiercache; fwd=miss; stored';
export const MISS_COLLAPSED = 'tiercache; fwd=miss; collapsed';
export const BYPASS = 'tiercache; fwd=bypass';

/** A stale answer: `ttl` is the negative remaining freshness in whole seconds (at least -1). */
export function staleHit(tier: 'L1' | 'L2', secondsPastFresh: number): string {
  return `tiercache; hit; ttl=${-Math.max(1, Math.ceil(secondsPastFresh))}; detail=${tier}`;
}
