// TierCache: owns the tiers (L1, L2), the tag versions, the invalidation bus
// and the queue of invalidations on their way to Redis; exposes the data API
// and the invalidation helpers that the HTTP middleware builds on. A Redis
// outage never turns into an error thrown at a caller (unless it asks with
// `strict`); going down and coming back are reported once each.
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { debuglog } from 'node:util';
import { TierCacheClosedError, TierCacheInvalidationError } from '../errors.js';
import { parseDuration, type Duration } from '../keys/duration.js';
import { keyTag, prefixTags, userTag } from '../keys/tags.js';
import { buildRequestKey, normalizedHeaderValue, REQUEST_KEY } from '../keys/request-key.js';
import { normalizeRoutePath, pathOf } from '../keys/path-normalize.js';
import type { FillStamp } from '../store/entry.js';
import { L1Store, type L1Slot, type SlotMemo } from '../store/l1-store.js';
import { coarseNow } from '../store/coarse-clock.js';
import { MAP_SLOT_BYTES, RecentMap, stringBytes } from '../store/recent-map.js';
import { FillLock } from '../store/fill-lock.js';
import { InvalidationBus, type BusMessage } from '../store/invalidation-bus.js';
import { InvalidationQueue, type Invalidation } from '../store/invalidation-queue.js';
import { L2Store } from '../store/l2-store.js';
import { openRedis, type OpenedRedis, type RedisClient } from '../store/redis-client.js';
import { RedisVersionSource, TAG_COUNTER_TTL_MS } from '../store/redis-versions.js';
import { loadScripts } from '../store/redis-scripts.js';
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
/** How long close() waits for fills under way to be stored and queued invalidations to be delivered. */
export const CLOSE_WAIT_MS = 2_000;

export interface InvalidateOptions {
  /**
   * Reject with a TierCacheInvalidationError when Redis cannot take the
   * invalidation now, instead of resolving `{ delivered: false }` (it is
   * applied locally and queued either way). @default false
   */
  strict?: boolean;
}

export interface InvalidateResult {
  /**
   * true: Redis took it (its version bump is in L2 and the other instances
   * are being told). false: applied on this instance and queued; replayed
   * when Redis answers again. Always true without Redis.
   */
  readonly delivered: boolean;
}

const DELIVERED: InvalidateResult = Object.freeze({ delivered: true });
const QUEUED: InvalidateResult = Object.freeze({ delivered: false });

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

/** 'closed' for every configured tier once close() was called. */
export interface CacheHealth {
  l1: 'ok' | 'disabled' | 'closed';
  /** 'down' also before the first connection is made. */
  l2: 'ok' | 'down' | 'disabled' | 'closed';
  bus: 'ok' | 'reconnecting' | 'disabled' | 'closed';
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
  /** Invalidations on their way to Redis (with an L2 only). */
  private readonly queue: InvalidationQueue | undefined;
  /** Stores under way (middleware fills, data-API sets and loads), for close() to wait on. */
  private readonly fillsInFlight = new Set<Promise<unknown>>();
  /** Middleware that keeps its own fills under way (asked only when closing: no cost per fill). */
  private readonly fillSources = new Set<{ pendingFills(): Array<Promise<unknown>> }>();
  private closing: Promise<void> | undefined;
  private readonly flights = new SingleFlight<unknown, FillStamp>();
  private readonly dataKeys: RecentMap<string, DataKeyHandle>;
  /** Whether anyone listens to 'hit' (kept up to date: the L1 hit path checks it). */
  hitListened = false;
  private readonly now = coarseNow;
  private isClosed = false;

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
        check: (client) => this.checkServer(client),
        onDown: (err) => this.reportError(err, 'Redis (L2) is unreachable: answering from L1 and the handlers until it is back'),
        onUp: (recovered) => {
          if (recovered) this.reportInfo('Redis (L2) is reachable again');
          this.queue?.onL2Up();
        },
        onFailure: (err) => this.reportError(err, 'Redis command failed'),
      });
    }
    const versions = new TagVersions({
      source: l2 ? new RedisVersionSource(l2, this.namespace) : undefined,
      maxTags: Math.max(10_000, (resolved.l1?.maxEntries ?? 0) * 4),
      maxBytes: Math.max(256 * 1024, bookkeepingBase / 8),
    });
    this.store = new TieredStore({ l1, l2, versions, now: this.now, counterTtl: TAG_COUNTER_TTL_MS });
    if (l2 !== undefined && resolved.lockTimeout > 0) this.fillLock = new FillLock(l2, resolved.lockTimeout);
    if (l2 !== undefined) {
      this.bus = new InvalidationBus({
        namespace: this.namespace,
        l2,
        l1,
        versions,
        onError: (err, message) => this.reportError(err, message),
        onDown: (err) => this.reportError(err, 'the invalidation bus is disconnected: L1 is not trusted (every hit checks Redis) until it is back'),
        onUp: () => this.reportInfo('the invalidation bus is connected again (L1 flushed)'),
        onMessage: (message) => this.emit('invalidate', { ...toEvent(message), remote: true }),
      });
      this.queue = new InvalidationQueue({
        versions,
        l2,
        bus: this.bus,
        onReplayed: (count) => this.reportInfo(`${count} invalidation(s) queued while Redis was unreachable were delivered`),
      });
    }
  }

  /** Whether close() was called: every call then rejects with TierCacheClosedError; the middleware reads it to pass requests through. */
  get closed(): boolean {
    return this.isClosed;
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
    if (this.isClosed) return this.rejectClosed('get');
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
    this.assertOpen('set');
    if (!this.enabled) return;
    await this.trackFill(this.setValue(key, storeKey, value, tags, ttl));
  }

  private async setValue(key: string, storeKey: string, value: unknown, tags: readonly string[], ttl: number): Promise<void> {
    const stamp = await this.store.versions.stamp(tags);
    await this.storeValue(key, storeKey, value, stamp, this.now(), ttl);
  }

  /**
   * Removes `key` from every tier, on every instance. Applied here at once;
   * if Redis cannot take it now it is queued (see invalidateTags).
   */
  async delete(key: string, options?: InvalidateOptions): Promise<InvalidateResult> {
    const storeKey = this.dataKey(key);
    const strict = strictOption(options);
    this.assertOpen('delete');
    return this.dropKey(storeKey, `delete(${JSON.stringify(key)})`, key, strict);
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
    this.assertOpen('getOrSet');
    if (!this.enabled) return load();
    const joined = this.joinFlight(storeKey);
    if (joined !== undefined) return joined as Promise<T>;
    const cached = await this.get<T>(key);
    if (cached !== undefined) return cached;
    const raced = this.joinFlight(storeKey);
    if (raced !== undefined) return raced as Promise<T>;
    const loading = this.flights.start(storeKey, async (flight) => {
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
    return this.trackFill(loading);
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

  /** Every entry scoped to user `id`, on every instance. See invalidateTags for the result. */
  invalidateUser(id: string, options?: InvalidateOptions): Promise<InvalidateResult> {
    if (typeof id !== 'string' && typeof id !== 'number') throw new TypeError('tiercache: invalidateUser needs a user id (string)');
    if (this.isClosed) return this.rejectClosed('invalidateUser');
    return this.invalidateTags([userTag(String(id))], options);
  }

  /**
   * Every entry under a path prefix (whole segments), on every instance. The
   * prefix may be written as the client sent it (`/users/jos%C3%A9`) or as the
   * app sees it, with decoded `req.params` values (`/users/josé`). See
   * invalidateTags for the result.
   */
  invalidatePrefix(prefix: string, options?: InvalidateOptions): Promise<InvalidateResult> {
    if (typeof prefix !== 'string' || !prefix.startsWith('/')) throw new TypeError(`tiercache: invalidatePrefix needs a path starting with '/'; got ${JSON.stringify(prefix)}`);
    if (this.isClosed) return this.rejectClosed('invalidatePrefix');
    const tags = prefixTags(prefix);
    return tags === undefined ? this.clear(options) : this.invalidateTags(tags, options);
  }

  /**
   * Every entry carrying any of `tags`, on every instance. Cost does not grow
   * with the number of entries. Applied on this instance at once; resolves
   * `{ delivered: true }` once Redis has it, or, when Redis cannot take it
   * now, `{ delivered: false }` after queueing it (replayed in order when
   * Redis answers again; an 'error' event says so). With `{ strict: true }`
   * it rejects with a TierCacheInvalidationError instead.
   */
  async invalidateTags(tags: readonly string[], options?: InvalidateOptions): Promise<InvalidateResult> {
    if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string' || t === '')) {
      throw new TypeError('tiercache: invalidateTags needs an array of non-empty strings');
    }
    const strict = strictOption(options);
    this.assertOpen('invalidateTags');
    if (tags.length === 0) return DELIVERED;
    this.invalidations++;
    try {
      return await this.invalidate({ kind: 'tags', tags: [...tags] }, `invalidateTags(${JSON.stringify(tags)})`, strict);
    } finally {
      this.emit('invalidate', { tags } satisfies InvalidateEvent);
    }
  }

  /** One entry, by the key the middleware reported (cache.keyFor), on every instance. See invalidateTags for the result. */
  async invalidateKey(key: string, options?: InvalidateOptions): Promise<InvalidateResult> {
    if (typeof key !== 'string' || key === '') throw new TypeError('tiercache: invalidateKey needs a key');
    const strict = strictOption(options);
    this.assertOpen('invalidateKey');
    return this.dropKey(key, `invalidateKey(${JSON.stringify(key)})`, key, strict);
  }

  /** Empties the namespace everywhere: one epoch bump, no key scan. See invalidateTags for the result. */
  async clear(options?: InvalidateOptions): Promise<InvalidateResult> {
    const strict = strictOption(options);
    this.assertOpen('clear');
    this.invalidations++;
    this.store.l1?.clear();
    try {
      return await this.invalidate({ kind: 'clear' }, 'clear()', strict);
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
    if (this.isClosed) {
      return { l1: this.store.l1 ? 'closed' : 'disabled', l2: l2 ? 'closed' : 'disabled', bus: this.bus ? 'closed' : 'disabled' };
    }
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
    if (l2 === undefined || this.isClosed) return;
    if (!(await l2.waitReady(READY_WAIT_MS))) return;
    await this.bus?.waitSubscribed(READY_WAIT_MS);
    await this.store.versions.stamp([]).catch(() => undefined);
  }

  /**
   * Closes the cache: from now on every call rejects with TierCacheClosedError
   * and health() says 'closed'. Waits (at most CLOSE_WAIT_MS in all) for
   * fills under way to be stored and for queued invalidations to reach Redis,
   * then stops timers and closes the Redis client if tiercache opened it;
   * never a client it was given.
   */
  close(): Promise<void> {
    this.isClosed = true;
    this.closing ??= this.shutDown();
    return this.closing;
  }

  /**
   * @internal Registers a store under way (the middleware's fill), so close()
   * waits for it. Returns `fill`.
   */
  /** @internal a middleware whose fills close() waits for (it lists them only then). */
  addFillSource(source: { pendingFills(): Array<Promise<unknown>> }): void {
    this.fillSources.add(source);
  }

  trackFill<T>(fill: Promise<T>): Promise<T> {
    const fills = this.fillsInFlight;
    fills.add(fill);
    const done = () => fills.delete(fill);
    fill.then(done, done);
    return fill;
  }

  private async shutDown(): Promise<void> {
    const deadline = performance.now() + CLOSE_WAIT_MS;
    const pending: Array<Promise<unknown>> = [...this.fillsInFlight];
    for (const source of this.fillSources) pending.push(...source.pendingFills());
    if (pending.length > 0) await settledWithin(pending, CLOSE_WAIT_MS);
    const left = (await this.queue?.close(Math.max(0, deadline - performance.now()))) ?? 0;
    if (left > 0) {
      const err = new TierCacheInvalidationError(`tiercache: closed with ${left} invalidation(s) that Redis could not take; other instances were not told (their L1 TTL bounds how long they may serve the old entries)`);
      this.reportError(err, 'invalidations lost at close()');
    }
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
    this.store.l1?.clear();
  }

  /** @internal reports a failure to 'error' listeners (if any) and the logger. */
  reportError(err: Error, message: string): void {
    if (this.options.logger) this.options.logger.warn({ err }, `tiercache: ${message}`);
    else debug('%s: %s', message, err.message);
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /** Worth an info line (a recovery, say); nothing is emitted. */
  private reportInfo(message: string): void {
    if (this.options.logger) this.options.logger.info({}, `tiercache: ${message}`);
    else debug('%s', message);
  }

  private assertOpen(method: string): void {
    if (this.isClosed) throw closedError(method);
  }

  private rejectClosed(method: string): Promise<never> {
    return Promise.reject(closedError(method));
  }

  /**
   * L2's check on every new connection, before other commands go through:
   * when another Redis process serves the namespace than last time (a
   * restart, maybe from an old snapshot; a failover), the check moved the
   * epoch and nothing learned here may be trusted.
   */
  private async checkServer(client: RedisClient): Promise<void> {
    await loadScripts(client);
    const versions = this.store.versions;
    const { epoch, previous } = await versions.serverEpoch(client);
    if (previous !== 'same') {
      this.store.l1?.clear();
      versions.reset();
    }
    if (previous === 'other') this.reportInfo('another Redis process serves this namespace than before (a restart, maybe from a snapshot, or a failover): the epoch moved, so nothing cached before is served');
    versions.raiseEpoch(epoch);
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
   * One key, everywhere: drops it from L1 here, bumps its key tag (so fills of
   * it under way anywhere never land, and every L1 copy stops matching),
   * deletes it from L2 and tells the other instances.
   */
  private async dropKey(storeKey: string, what: string, eventKey: string, strict: boolean): Promise<InvalidateResult> {
    this.invalidations++;
    this.store.l1?.delete(storeKey);
    try {
      return await this.invalidate({ kind: 'key', key: storeKey, tag: keyTag(storeKey) }, what, strict);
    } finally {
      this.emit('invalidate', { key: eventKey } satisfies InvalidateEvent);
    }
  }

  /** Applies `op` here and hands it to the queue (with an L2); reports it when Redis could not take it. */
  private async invalidate(op: Invalidation, what: string, strict: boolean): Promise<InvalidateResult> {
    const queue = this.queue;
    if (queue === undefined) {
      // L1 only: local versions are the whole truth.
      const versions = this.store.versions;
      if (op.kind === 'clear') await versions.bumpEpoch();
      else await versions.bump(op.kind === 'tags' ? op.tags : [op.tag]);
      return DELIVERED;
    }
    const { delivered, error } = await queue.submit(op);
    if (delivered) return DELIVERED;
    const err = new TierCacheInvalidationError(
      `tiercache: ${what} was applied on this instance and queued: Redis could not take it, so other instances will be told when it answers again (${queue.length} invalidation(s) waiting)`,
      { cause: error },
    );
    this.reportError(err, 'invalidation queued until Redis answers again');
    if (strict) throw err;
    return QUEUED;
  }
}

function closedError(method: string): TierCacheClosedError {
  return new TierCacheClosedError(`tiercache: ${method}() was called after close()`);
}

function strictOption(options: InvalidateOptions | undefined): boolean {
  if (options === undefined) return false;
  if (options === null || typeof options !== 'object') throw new TypeError('tiercache: invalidation options must be an object');
  for (const k of Object.keys(options)) {
    if (k !== 'strict') throw new TypeError(`tiercache: unknown invalidation option '${k}' (known: strict)`);
  }
  if (options.strict !== undefined && typeof options.strict !== 'boolean') throw new TypeError('tiercache: strict must be a boolean');
  return options.strict === true;
}

/** Resolves once every promise has settled or `ms` has passed, whichever is first. */
async function settledWithin(promises: ReadonlyArray<Promise<unknown>>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([Promise.allSettled(promises), timeout]);
  clearTimeout(timer);
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
