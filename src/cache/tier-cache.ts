// TierCache: owns the tiers (L1, L2), the tag versions and, later, the
// invalidation bus; exposes the data API and the invalidation helpers that
// the HTTP middleware builds on.
import { EventEmitter } from 'node:events';
import { debuglog } from 'node:util';
import { TierCacheError, TierCacheInvalidationError } from '../errors.js';
import { parseDuration, type Duration } from '../keys/duration.js';
import { keyTag, prefixTag, userTag } from '../keys/tags.js';
import { buildRequestKey, normalizedHeaderValue, REQUEST_KEY } from '../keys/request-key.js';
import { normalizeRoutePath, pathOf } from '../keys/path-normalize.js';
import type { FillStamp } from '../store/entry.js';
import { L1Store, type L1Slot, type SlotMemo } from '../store/l1-store.js';
import { coarseNow } from '../store/coarse-clock.js';
import { MAP_SLOT_BYTES, RecentMap, stringBytes } from '../store/recent-map.js';
import { FillLock } from '../store/fill-lock.js';
import { InvalidationBus, type BusMessage } from '../store/invalidation-bus.js';
import { L2Store } from '../store/l2-store.js';
import { openRedis, type OpenedRedis, type RedisClient } from '../store/redis-client.js';
import { RedisVersionSource } from '../store/redis-versions.js';
import { TagVersions } from '../store/tag-versions.js';
import { TieredStore, UNDECIDED } from '../store/tiered-store.js';
import { createCachedSource, type CachedSource, type DataSource, type DataSourceOptions } from './data-source.js';
import { dataStoreKey, MAX_DATA_KEY_LENGTH } from './data-key.js';
import { decodeValue, encodeValue, resolvedValue } from './data-value.js';
import { resolveOptions, type CacheOptions, type ResolvedOptions } from './options.js';
import { SingleFlight } from './single-flight.js';

const debug = debuglog('tiercache');
const RESOLVED_UNDEFINED: Promise<undefined> = Promise.resolve(undefined);
/** Without L1, per-key bookkeeping is bounded as for the default l1.maxBytes. */
const DEFAULT_BOOKKEEPING_BASE = 64 * 1024 * 1024;

/** What the cache remembers of a data-API key it was asked for: its store key and its L1 slot. */
class DataKeyHandle implements SlotMemo {
  slot: L1Slot | undefined = undefined;
  constructor(readonly storeKey: string) {}
}

/** A DataKeyHandle object: header and two fields. */
const HANDLE_BYTES = 40;

/** Heap of one remembered data key: its Map slot, the handle and both strings. */
function dataKeyBytes(key: string, handle: DataKeyHandle): number {
  return MAP_SLOT_BYTES + HANDLE_BYTES + stringBytes(key.length) + stringBytes(handle.storeKey.length);
}

/** Lifetime of data-API values when neither the call nor the cache sets one. */
export const DEFAULT_DATA_TTL = 60_000;
/** How long ready() waits for a first connection before resolving anyway. */
const READY_WAIT_MS = 5_000;

export interface SetOptions {
  /** How long the value lives. @default the cache's ttl, else 60 s */
  ttl?: Duration;
  /** Tags: invalidateTags() of any of them drops the value everywhere. */
  tags?: readonly string[];
}

export interface CacheStats {
  l1: { hits: number; misses: number; entries: number; bytes: number; evictions: number };
  l2: { hits: number; misses: number; errors: number };
  /** Values produced by a loader (getOrSet) or a handler and stored. */
  fills: number;
  /** Callers that waited on another caller's fill instead of running their own. */
  coalesced: number;
  /** invalidate*() / clear() calls made on this instance. */
  invalidations: number;
}

export interface CacheHealth {
  l1: 'ok' | 'disabled';
  /** 'down' also before the first connection is made. */
  l2: 'ok' | 'down' | 'disabled';
  bus: 'ok' | 'reconnecting' | 'disabled';
}

export interface InvalidateEvent {
  readonly tags?: readonly string[];
  readonly key?: string;
  readonly clear?: boolean;
  /** True when another instance sent it (through the bus). */
  readonly remote?: boolean;
}

function toEvent(message: BusMessage): InvalidateEvent {
  if (message.epoch !== undefined) return { clear: true };
  if (message.keys !== undefined) return { key: message.keys[0] };
  return { tags: (message.tags ?? []).map(([t]) => t) };
}

export class TierCache extends EventEmitter {
  readonly namespace: string;
  readonly enabled: boolean;
  /** Resolved options (frozen), for the middleware. */
  readonly options: ResolvedOptions;
  /** @internal the tiers; used by the middleware. */
  readonly store: TieredStore;
  fills = 0;
  coalesced = 0;
  invalidations = 0;
  private readonly redis: OpenedRedis | undefined;
  /** @internal the invalidation bus (with an L2 only). */
  readonly bus: InvalidationBus | undefined;
  /** @internal the cross-instance fill lock (with an L2 and l2.lockTimeout > 0). */
  readonly fillLock: FillLock | undefined;
  private readonly flights = new SingleFlight<unknown, FillStamp>();
  private readonly dataKeys: RecentMap<string, DataKeyHandle>;
  /** Whether anyone listens to 'hit' (kept up to date: the L1 hit path checks it). */
  hitListened = false;
  private readonly now = coarseNow;
  private closed = false;

  constructor(options?: CacheOptions) {
    super();
    // 'newListener' comes just before the listener is added, 'removeListener' just after it is gone.
    this.on('newListener', (name) => {
      if (name === 'hit') this.hitListened = true;
    });
    this.on('removeListener', () => {
      this.hitListened = this.listenerCount('hit') > 0;
    });
    const resolved = resolveOptions(options);
    this.options = resolved;
    this.namespace = resolved.namespace;
    this.enabled = resolved.enabled;
    // Per-key bookkeeping outside L1 is bounded by bytes as well as by count, in proportion to L1.
    const bookkeepingBase = resolved.l1?.maxBytes ?? DEFAULT_BOOKKEEPING_BASE;
    this.dataKeys = new RecentMap(Math.max(1_000, resolved.l1?.maxEntries ?? 10_000), Math.max(64 * 1024, bookkeepingBase / 16), dataKeyBytes);
    const l1 = resolved.l1 ? new L1Store({ ...resolved.l1, now: this.now }) : undefined;
    let l2: L2Store | undefined;
    if (resolved.redis !== undefined) {
      this.redis = openRedis(resolved.redis, resolved.commandTimeout);
      l2 = new L2Store(this.redis.client, {
        commandTimeout: resolved.commandTimeout,
        breakerCooldown: resolved.breakerCooldown,
        clientBoundsCommands: this.redis.boundsCommands,
        now: this.now,
        onFailure: (err) => this.reportError(err, 'Redis command failed'),
      });
    }
    const versions = new TagVersions({
      source: l2 ? new RedisVersionSource(l2, this.namespace) : undefined,
      maxTags: Math.max(10_000, (resolved.l1?.maxEntries ?? 0) * 4),
      maxBytes: Math.max(256 * 1024, bookkeepingBase / 8),
    });
    this.store = new TieredStore({ l1, l2, versions, now: this.now });
    if (l2 !== undefined && resolved.lockTimeout > 0) this.fillLock = new FillLock(l2, resolved.lockTimeout);
    if (l2 !== undefined) {
      this.bus = new InvalidationBus({
        namespace: this.namespace,
        l2,
        l1,
        versions,
        onError: (err, message) => this.reportError(err, message),
        onMessage: (message) => this.emit('invalidate', { ...toEvent(message), remote: true }),
      });
    }
  }

  /** The Redis client in use (given or opened), if any. */
  get redisClient(): RedisClient | undefined {
    return this.redis?.client;
  }

  /** The store key of a data-API key: `namespace:d:key`, escaped, or a digest of a long key (see data-key.ts). */
  dataKey(key: string): string {
    return this.dataKeyHandle(key).storeKey;
  }

  /**
   * The handle of a data-API key, remembered: a freshly concatenated store
   * key must be flattened and hashed again on every Map lookup, and the
   * handle's L1 slot spares the lookup altogether (the main costs of an L1 hit).
   */
  private dataKeyHandle(key: string): DataKeyHandle {
    const known = this.dataKeys.get(key);
    if (known !== undefined) return known;
    if (typeof key !== 'string' || key === '') throw new TypeError(`tiercache: a cache key must be a non-empty string; got ${typeof key === 'string' ? '""' : typeof key}`);
    const handle = new DataKeyHandle(dataStoreKey(this.namespace, key));
    // A long key is digested on every call instead: kept, it would hold its characters twice.
    if (key.length <= MAX_DATA_KEY_LENGTH) this.dataKeys.set(key, handle);
    return handle;
  }

  /** The value under `key`, or undefined on a miss (or when Redis fails). */
  get<T = unknown>(key: string): Promise<T | undefined> {
    const handle = this.dataKeyHandle(key);
    const storeKey = handle.storeKey;
    if (!this.enabled) return RESOLVED_UNDEFINED;
    // The L1 hit is answered without awaiting anything.
    const local = this.store.lookupL1(storeKey, true, handle);
    if (local !== undefined && local !== UNDECIDED) {
      if (this.hitListened) this.emit('hit', { key, tier: 'L1' });
      return resolvedValue<T>(local);
    }
    return this.getBeyondL1<T>(key, storeKey, local === UNDECIDED);
  }

  private async getBeyondL1<T>(key: string, storeKey: string, undecided: boolean): Promise<T | undefined> {
    const hit = undecided ? await this.store.get(storeKey) : await this.store.getL2(storeKey);
    if (hit === undefined || hit.entry.freshUntil <= this.now()) {
      this.emit('miss', { key });
      return undefined;
    }
    const value = decodeValue<T>(hit.entry);
    // Read from L2 into L1 by its bytes; now parsed, it holds what the parsed value costs.
    if (hit.tier === 'L2') this.store.l1?.recharge(storeKey, hit.entry);
    this.emit('hit', { key, tier: hit.tier });
    return value;
  }

  /** Whether a fresh value is stored under `key`. */
  async has(key: string): Promise<boolean> {
    return (await this.get(key)) !== undefined;
  }

  /** Stores `value` (JSON-serializable or Buffer) in both tiers. Redis failures are reported, not thrown. */
  async set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    const storeKey = this.dataKey(key);
    const { ttl, tags } = this.resolveSetOptions(storeKey, options);
    if (!this.enabled) return;
    const stamp = await this.store.versions.stamp(tags);
    await this.storeValue(key, storeKey, value, stamp, this.now(), ttl);
  }

  /** Removes `key` from every tier, on every instance. Rejects (after deleting locally) if Redis cannot be told. */
  async delete(key: string): Promise<void> {
    await this.dropKey(this.dataKey(key), `delete(${JSON.stringify(key)})`, key);
  }

  /** The value under `key`, removed from the cache (get then delete). */
  async pull<T = unknown>(key: string): Promise<T | undefined> {
    const value = await this.get<T>(key);
    if (value !== undefined) await this.delete(key);
    return value;
  }

  /**
   * The cached value, or the loader's result stored for next time. Concurrent
   * callers for one key share one loader run (single-flight). A loader that
   * resolves undefined stores nothing.
   */
  async getOrSet<T>(key: string, load: () => Promise<T> | T, options?: SetOptions): Promise<T> {
    const storeKey = this.dataKey(key);
    if (typeof load !== 'function') throw new TypeError('tiercache: getOrSet needs a loader function');
    const { ttl, tags } = this.resolveSetOptions(storeKey, options);
    if (!this.enabled) return load();
    const joined = this.joinFlight(storeKey);
    if (joined !== undefined) return joined as Promise<T>;
    const cached = await this.get<T>(key);
    if (cached !== undefined) return cached;
    const raced = this.joinFlight(storeKey);
    if (raced !== undefined) return raced as Promise<T>;
    return this.flights.start(storeKey, async (flight) => {
      const stamp = await this.store.versions.stamp(tags);
      flight.meta = stamp;
      const startedAt = this.now();
      const value = await load();
      if (value !== undefined && this.store.versions.stillCurrent(stamp)) {
        this.fills++;
        await this.storeValue(key, storeKey, value, stamp, startedAt, ttl);
      }
      return value;
    }) as Promise<T>;
  }

  /** The loader run under way for a key, unless an invalidation has overtaken it since it began. */
  private joinFlight(storeKey: string): Promise<unknown> | undefined {
    const flight = this.flights.current(storeKey);
    if (flight === undefined) return undefined;
    if (flight.meta !== undefined && !this.store.versions.stillCurrent(flight.meta)) return undefined;
    this.coalesced++;
    return flight.promise;
  }

  /** Read-through / write-through helper over a data source (see DataSource). */
  source<Id, T>(source: DataSource<Id, T>, options?: DataSourceOptions<Id, T>): CachedSource<Id, T> {
    if (options?.ttl !== undefined) parseDuration('source ttl', options.ttl);
    return createCachedSource<Id, T>(this, source, options);
  }

  /**
   * The key the middleware used for this request (Express `req` or Koa
   * `ctx`), for invalidateKey(). For a request no middleware handled, the key
   * default options would give (table vary headers, no user scope).
   */
  keyFor(reqOrCtx: object): string {
    type Holder = { req?: object; headers?: Record<string, string | string[] | undefined>; method?: string; url?: string; originalUrl?: string };
    const holder = reqOrCtx as Holder;
    // A Koa ctx carries node's request as ctx.req; the middleware marks that one.
    const inner = holder.req !== undefined && typeof holder.req === 'object' ? (holder.req as Holder) : undefined;
    const req = inner ?? holder;
    const used = (req as Record<symbol, unknown>)[REQUEST_KEY] ?? (holder as Record<symbol, unknown>)[REQUEST_KEY];
    if (typeof used === 'string') return used;
    const url = holder.originalUrl ?? req.originalUrl ?? req.url ?? '/';
    const rule = this.options.routes.matchNormalized(normalizeRoutePath(pathOf(url)));
    const headers = req.headers ?? {};
    const vary = rule?.vary?.map((name): [string, string | undefined] => [name, normalizedHeaderValue(headers[name])]);
    return buildRequestKey({ namespace: this.namespace, method: req.method ?? 'GET', url, vary, queryAllow: rule?.query });
  }

  /** Every entry scoped to user `id`, on every instance. */
  invalidateUser(id: string): Promise<void> {
    if (typeof id !== 'string' && typeof id !== 'number') throw new TypeError('tiercache: invalidateUser needs a user id (string)');
    return this.invalidateTags([userTag(String(id))]);
  }

  /** Every entry under a path prefix (whole segments), on every instance. */
  invalidatePrefix(prefix: string): Promise<void> {
    if (typeof prefix !== 'string' || !prefix.startsWith('/')) throw new TypeError(`tiercache: invalidatePrefix needs a path starting with '/'; got ${JSON.stringify(prefix)}`);
    const tag = prefixTag(prefix);
    return tag === undefined ? this.clear() : this.invalidateTags([tag]);
  }

  /** Every entry carrying any of `tags`, on every instance. Cost does not grow with the number of entries. */
  async invalidateTags(tags: readonly string[]): Promise<void> {
    if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string' || t === '')) {
      throw new TypeError('tiercache: invalidateTags needs an array of non-empty strings');
    }
    if (tags.length === 0) return;
    this.invalidations++;
    const what = `invalidateTags(${JSON.stringify(tags)})`;
    try {
      let versions: number[];
      try {
        versions = await this.store.versions.bump(tags);
      } catch (err) {
        this.forgetLocally();
        throw this.notBroadcast(what, err);
      }
      await this.broadcast({ tags: tags.map((t, i) => [t, versions[i]!] as const) }, what);
    } finally {
      this.emit('invalidate', { tags } satisfies InvalidateEvent);
    }
  }

  /** One entry, by the key the middleware reported (cache.keyFor), on every instance. */
  async invalidateKey(key: string): Promise<void> {
    if (typeof key !== 'string' || key === '') throw new TypeError('tiercache: invalidateKey needs a key');
    await this.dropKey(key, `invalidateKey(${JSON.stringify(key)})`, key);
  }

  /** Empties the namespace everywhere: one epoch bump, no key scan. */
  async clear(): Promise<void> {
    this.invalidations++;
    this.store.l1?.clear();
    try {
      let epoch: number;
      try {
        epoch = await this.store.versions.bumpEpoch();
      } catch (err) {
        this.forgetLocally();
        throw this.notBroadcast('clear()', err);
      }
      await this.broadcast({ epoch }, 'clear()');
    } finally {
      this.emit('invalidate', { clear: true } satisfies InvalidateEvent);
    }
  }

  stats(): CacheStats {
    const { l1, l2 } = this.store;
    return {
      l1: {
        hits: this.store.l1Hits,
        misses: this.store.l1Misses,
        entries: l1?.entries ?? 0,
        bytes: l1?.bytes ?? 0,
        evictions: l1?.evictions ?? 0,
      },
      l2: { hits: this.store.l2Hits, misses: this.store.l2Misses, errors: l2?.errors ?? 0 },
      fills: this.fills,
      coalesced: this.coalesced,
      invalidations: this.invalidations,
    };
  }

  health(): CacheHealth {
    const l2 = this.store.l2;
    return {
      l1: this.store.l1 ? 'ok' : 'disabled',
      l2: l2 ? (l2.state === 'ok' ? 'ok' : 'down') : 'disabled',
      bus: this.bus ? this.bus.health : 'disabled',
    };
  }

  /**
   * Resolves once L2 is connected and the namespace epoch is known; at once
   * without L2. Never rejects: if Redis cannot be reached it resolves anyway
   * and health(), stats() and 'error' events tell.
   */
  async ready(): Promise<void> {
    const l2 = this.store.l2;
    if (l2 === undefined) return;
    if (!(await l2.waitReady(READY_WAIT_MS))) return;
    await this.bus?.waitSubscribed(READY_WAIT_MS);
    await this.store.versions.stamp([]).catch(() => undefined);
  }

  /** Stops timers and closes the Redis client if tiercache opened it; never a client it was given. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.bus?.close();
    this.store.l2?.detach();
    if (this.redis?.owned) {
      const client = this.redis.client;
      try {
        await Promise.race([client.quit(), new Promise((resolve) => setTimeout(resolve, 500).unref())]);
      } catch {
        // already closed or unreachable
      }
      client.disconnect();
    }
  }

  /** @internal reports a failure to 'error' listeners (if any) and the logger. */
  reportError(err: Error, message: string): void {
    if (this.options.logger) this.options.logger.warn({ err }, `tiercache: ${message}`);
    else debug('%s: %s', message, err.message);
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /** Validated ttl and tags; the tags always start with the entry's own key tag. */
  private resolveSetOptions(storeKey: string, options: SetOptions | undefined): { ttl: number; tags: readonly string[] } {
    let ttl = this.options.ttl ?? DEFAULT_DATA_TTL;
    let tags: readonly string[] = [keyTag(storeKey)];
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') throw new TypeError('tiercache: options must be an object');
      for (const k of Object.keys(options)) {
        if (k !== 'ttl' && k !== 'tags') throw new TypeError(`tiercache: unknown option '${k}' (known: ttl, tags)`);
      }
      if (options.ttl !== undefined) ttl = parseDuration('ttl', options.ttl);
      if (options.tags !== undefined) {
        if (!Array.isArray(options.tags) || options.tags.some((t) => typeof t !== 'string' || t === '')) {
          throw new TypeError('tiercache: tags must be an array of non-empty strings');
        }
        tags = [...new Set([keyTag(storeKey), ...options.tags])];
      }
    }
    return { ttl, tags };
  }

  private async storeValue(key: string, storeKey: string, value: unknown, stamp: FillStamp, createdAt: number, ttl: number): Promise<void> {
    const { entry, l1Entry } = encodeValue(key, value, stamp, createdAt, ttl);
    await this.store.set(storeKey, entry, l1Entry);
    this.emit('store', { key });
  }

  /**
   * One key, everywhere: bumps its key tag (so fills of it under way anywhere
   * never land, and every L1 copy stops matching), deletes it from both
   * tiers here, and tells the other instances.
   */
  private async dropKey(storeKey: string, what: string, eventKey: string): Promise<void> {
    this.invalidations++;
    const tag = keyTag(storeKey);
    try {
      let versions: number[];
      try {
        versions = await this.store.versions.bump([tag]);
      } catch (err) {
        this.store.l1?.delete(storeKey);
        this.forgetLocally();
        throw this.notBroadcast(what, err);
      }
      if (!(await this.store.delete(storeKey))) throw this.notBroadcast(what, undefined);
      await this.broadcast({ tags: [[tag, versions[0]!]], keys: [storeKey] }, what);
    } finally {
      this.emit('invalidate', { key: eventKey } satisfies InvalidateEvent);
    }
  }

  private async broadcast(message: BusMessage, what: string): Promise<void> {
    if (this.bus === undefined) return;
    try {
      await this.bus.publish(message);
    } catch (err) {
      throw this.notBroadcast(what, err);
    }
  }

  /** When Redis cannot take an invalidation: drop everything local that it might cover. */
  private forgetLocally(): void {
    this.store.l1?.clear();
    this.store.versions.reset();
  }

  private notBroadcast(what: string, cause: unknown): TierCacheError {
    const err = new TierCacheInvalidationError(
      `tiercache: ${what} was applied on this instance only: Redis could not be reached, so other instances were not told (their L1 TTL bounds how long they may serve the old entries)`,
      { cause },
    );
    this.reportError(err, 'invalidation not broadcast');
    return err;
  }
}

/**
 * Creates a cache. See CacheOptions for every option and its default.
 * @throws TierCacheConfigError naming the option (or TIERCACHE_* variable) when a value is invalid.
 * @example
 * const cache = createCache({ namespace: 'shop', redis: process.env.REDIS_URL, ttl: '1m' });
 */
export function createCache(options?: CacheOptions): TierCache {
  return new TierCache(options);
}
