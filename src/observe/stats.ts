// What stats() reports, and the counters of outcomes that no tier counts
// itself (stale serves, bypasses by reason). Counting is a field increment:
// it runs whether or not anyone listens to events, and never on a fresh hit.

export interface CacheStats {
  l1: {
    hits: number;
    misses: number;
    entries: number;
    bytes: number;
    evictions: number;
    /** The bounds (0 without L1). */
    maxEntries: number;
    maxBytes: number;
  };
  l2: {
    hits: number;
    misses: number;
    /** Failed or timed-out Redis commands. */
    errors: number;
    state: 'ok' | 'down' | 'disabled' | 'closed';
    /** 'open' while Redis is skipped after a timeout, until a probe gets an answer. */
    breaker: 'closed' | 'open' | 'disabled';
  };
  bus: {
    state: 'ok' | 'reconnecting' | 'disabled' | 'closed';
    /** Invalidation messages published by this instance. */
    sent: number;
    /** Messages from other instances applied here. */
    received: number;
    /** Gaps in another instance's sequence (a message was missed: L1 was flushed). */
    gaps: number;
  };
  /** Answers served past their TTL (stale-while-revalidate, stale-if-error). */
  stale: number;
  /** Requests passed through untouched, by Cache-Status detail token (the reasons Cache-Status says). */
  bypasses: Record<string, number>;
  /** Values produced by a loader (getOrSet) or a handler and stored. */
  fills: number;
  /** Callers that waited on another caller's fill instead of running their own. */
  coalesced: number;
  /** invalidate*() / delete*() / clear() calls made on this instance. */
  invalidations: number;
  /** Invalidations applied here that Redis has not taken yet (replayed when it answers). */
  queuedInvalidations: number;
}

/** Outcomes counted outside the tiers (see TierCache.outcomes). */
export class OutcomeCounters {
  stale = 0;
  private readonly bypassCounts = new Map<string, number>();

  bypassed(reason: string): void {
    this.bypassCounts.set(reason, (this.bypassCounts.get(reason) ?? 0) + 1);
  }

  bypasses(): Record<string, number> {
    return Object.fromEntries(this.bypassCounts);
  }
}
