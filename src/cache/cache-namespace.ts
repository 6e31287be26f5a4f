// cache.namespace('users'): a view of the data API whose keys live apart from
// the root's and from other views', on the same tiers, bus and invalidation
// queue. Every value stored through a view records the view's tag (and its
// parents'), so clear() on a view drops them all, on every instance, with one
// version bump, whatever their number; the cache's own clear() drops them too.
import type { CachedSource, DataSource, DataSourceOptions } from './data-source.js';
import type { DataScope } from './data-scope.js';
import type { Loader } from './loader-context.js';
import type { InvalidateOptions, InvalidateResult, SetOptions, TierCache } from './tier-cache.js';

/** The data API: the cache itself, or a namespace() view of it. */
export interface DataCache {
  /** The value under `key`, or undefined on a miss (or when Redis fails). */
  get<T = unknown>(key: string): Promise<T | undefined>;
  /** Stores `value` in both tiers. Redis failures are reported, not thrown. */
  set(key: string, value: unknown, options?: SetOptions): Promise<void>;
  /**
   * The cached value, or the loader's result stored for next time: one loader
   * run per key at a time on this instance, and across instances while the
   * fill lock holds. Every call returns the value as a hit returns it.
   */
  getOrSet<T>(key: string, load: Loader<T>, options?: SetOptions): Promise<T>;
  /** Whether a fresh value is stored under `key`. */
  has(key: string): Promise<boolean>;
  /** The value under `key`, removed from every tier on every instance; of concurrent pulls of a key, one alone gets it (see TierCache.pull). */
  pull<T = unknown>(key: string): Promise<T | undefined>;
  /** Removes `key` from every tier, on every instance. */
  delete(key: string, options?: InvalidateOptions): Promise<InvalidateResult>;
  /** Removes every key of `keys`, on every instance, in one invalidation. */
  deleteMany(keys: readonly string[], options?: InvalidateOptions): Promise<InvalidateResult>;
  /** Drops every value of this cache (or view), on every instance. */
  clear(options?: InvalidateOptions): Promise<InvalidateResult>;
  /** A view whose keys live apart, cleared together; views nest. */
  namespace(name: string): DataCache;
  /** Read-through / write-through helper over a data source. */
  source<Id, T>(source: DataSource<Id, T>, options?: DataSourceOptions<Id, T>): CachedSource<Id, T>;
}

/** A view of `cache` in `scope`: every call goes to the cache's scoped methods. */
export class CacheNamespace implements DataCache {
  constructor(
    private readonly cache: TierCache,
    private readonly scope: DataScope,
  ) {}

  /** The view's names, joined by ':'. */
  get name(): string {
    return this.scope.name!;
  }

  get<T = unknown>(key: string): Promise<T | undefined> {
    return this.cache.getIn<T>(this.scope, key);
  }

  set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    return this.cache.setIn(this.scope, key, value, options);
  }

  getOrSet<T>(key: string, load: Loader<T>, options?: SetOptions): Promise<T> {
    return this.cache.getOrSetIn<T>(this.scope, key, load, options);
  }

  async has(key: string): Promise<boolean> {
    return (await this.get(key)) !== undefined;
  }

  pull<T = unknown>(key: string): Promise<T | undefined> {
    return this.cache.pullIn<T>(this.scope, key);
  }

  delete(key: string, options?: InvalidateOptions): Promise<InvalidateResult> {
    return this.cache.deleteManyIn(this.scope, [key], options, 'delete');
  }

  deleteMany(keys: readonly string[], options?: InvalidateOptions): Promise<InvalidateResult> {
    return this.cache.deleteManyIn(this.scope, keys, options, 'deleteMany');
  }

  clear(options?: InvalidateOptions): Promise<InvalidateResult> {
    return this.cache.clearIn(this.scope, options);
  }

  namespace(name: string): DataCache {
    return new CacheNamespace(this.cache, this.scope.child(name));
  }

  source<Id, T>(source: DataSource<Id, T>, options?: DataSourceOptions<Id, T>): CachedSource<Id, T> {
    return this.cache.sourceIn(this, source, options);
  }
}
