// The events a cache emits and their payloads: what a metrics bridge, a log
// shipper or the status page needs, and nothing that costs work on the hit
// path when nobody listens (payloads are built only after a listener check).
// `route` is always bounded (see route-label.ts): never a raw URL or a user id.

/** 'L1' (in-process) or 'L2' (Redis). */
export type CacheTier = 'L1' | 'L2';

/** The `route` of data-API events (HTTP routes always start with '/', or are 'other'). */
export const DATA_ROUTE = 'data';

/** Payload of 'hit': served from the cache (HTTP or data API). */
export interface HitEvent {
  /** The data-API key as given, or the HTTP entry's key (see cache.keyFor). */
  readonly key: string;
  readonly tier: CacheTier;
  /** The matched table prefix, else the framework's route pattern, else 'other'; 'data' for the data API. */
  readonly route: string;
  /** Served past its TTL (staleWhileRevalidate, staleIfError). */
  readonly stale: boolean;
  /** Answered by the front door (tiercache/node), before the app ran. */
  readonly front?: boolean;
  /** The namespace() view the data-API key is in (names joined by ':'). */
  readonly namespace?: string;
}

/** Payload of 'miss': not in the cache; the handler or loader runs (or the request waits on one that does). */
export interface MissEvent {
  readonly key: string;
  readonly route: string;
  /** Waits on another request's fill of the same key instead of running its own (counted in stats().coalesced). */
  readonly collapsed?: boolean;
  readonly namespace?: string;
}

/** Payload of 'store': an answer or a value was stored. */
export interface StoreEvent {
  readonly key: string;
  readonly route: string;
  /** The tiers it went to: L2 only while Redis is reachable. */
  readonly tiers: readonly CacheTier[];
  /** Body bytes (HTTP) or encoded value bytes (data API). */
  readonly bytes: number;
  /** From the start of the fill (lookup, handler or loader) to the store, in ms. */
  readonly fillMs: number;
  readonly namespace?: string;
}

/** Payload of 'bypass': a request the middleware neither served from nor stored in the cache. */
export interface BypassEvent {
  readonly route: string;
  /** Why: a `Cache-Status` detail token (`authorization`, `cookie`, ..., `app` for the bypass option). */
  readonly reason: string;
  /** The request target (path and query; an `access_token` value in it reads `redacted`): may carry ids, so never use it as a metric label. */
  readonly url: string;
}

/**
 * What an invalidation was: `user` (invalidateUser), `prefix`
 * (invalidatePrefix), `tags` (invalidateTags, namespace().clear()), `key`
 * (invalidateKey, delete, deleteMany), `clear` (clear()). Remote ones are
 * classified from the tags they carry.
 */
export type InvalidationKind = 'tags' | 'user' | 'prefix' | 'key' | 'clear';

/** Payload of 'invalidate'. */
export interface InvalidateEvent {
  readonly kind: InvalidationKind;
  /** The tags bumped (user ids and keys appear in them as `user:<id>`, `key:<key>`); empty for clear. */
  readonly tags: readonly string[];
  /** True when another instance sent it (through the bus). */
  readonly remote: boolean;
  /** Redis took it (false: applied here and queued until Redis answers). Always true for remote ones. */
  readonly delivered: boolean;
  /** delete() / deleteMany() (one event a key), invalidateKey(). */
  readonly key?: string;
  /** clear(): of the whole cache, or of the namespace() view named by `namespace`. */
  readonly clear?: boolean;
  /** The namespace() view of `key` or `clear`. */
  readonly namespace?: string;
}

/** Where a reported failure happened. */
export type ErrorSource = 'l2' | 'bus' | 'invalidation' | 'store' | 'middleware' | 'refresh' | 'close';

/** Payload of 'error': never thrown into a request. */
export interface ErrorEvent {
  readonly err: Error;
  readonly where: ErrorSource;
}

/** Payload of 'l2' and 'bus': the connection went down or came back (once per change). */
export interface StateEvent {
  readonly state: 'down' | 'up';
  /** What took it down. */
  readonly err?: Error;
}

/** Every event a cache emits, and its payload. */
export interface TierCacheEvents {
  hit: HitEvent;
  miss: MissEvent;
  store: StoreEvent;
  bypass: BypassEvent;
  invalidate: InvalidateEvent;
  /** A Redis failure (reported once per outage), a queued invalidation, a failed store. */
  error: ErrorEvent;
  /** L2 (Redis commands) went down or came back. */
  l2: StateEvent;
  /** The invalidation bus (pub/sub) went down or came back. */
  bus: StateEvent;
}

/** Payload of 'miss' and 'store' before this version; kept as a name for the key part. */
export interface KeyEvent {
  readonly key: string;
  readonly namespace?: string;
}
