// Public surface of 'tiercache': createCache, its types and errors.
export {
  createCache,
  TierCache,
  DEFAULT_DATA_TTL,
  type CacheStats,
  type CacheHealth,
  type SetOptions,
  type InvalidateEvent,
  type InvalidateOptions,
  type InvalidateResult,
  type TierCacheEvents,
  type KeyEvent,
  type HitEvent,
  type MissEvent,
  type StoreEvent,
  type BypassEvent,
  type ErrorEvent,
  type StateEvent,
} from './cache/tier-cache.js';
export type { CacheTier, ErrorSource, InvalidationKind } from './observe/events.js';
export type { DataCache } from './cache/cache-namespace.js';
export type { Loader, LoaderContext } from './cache/loader-context.js';
export type { CacheOptions, L1CacheOptions, L2CacheOptions, Logger } from './cache/options.js';
export type { Serializer, SerializerName } from './cache/serializer.js';
export type { DataSource, DataSourceOptions, CachedSource } from './cache/data-source.js';
export type { Duration, DurationString, DurationUnit } from './keys/duration.js';
export type { Jitter } from './keys/jitter.js';
export type { RouteRuleInput, RouteRuleOptions } from './keys/route-table.js';
export type { RedisClient } from './store/redis-client.js';
export { TierCacheError, TierCacheConfigError, TierCacheInvalidationError, TierCacheClosedError } from './errors.js';
