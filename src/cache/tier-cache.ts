// TierCache: owns the tiers (L1, L2), the tag versions, the invalidation bus
// and the queue of invalidations on their way to Redis; exposes the data API
// and the invalidation helpers that the HTTP middleware builds on. A Redis
// outage never turns into an error thrown at a caller (unless it asks with
// `strict`); going down and coming back are reported once each.
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { debuglog } from 'node:util';
import { TierCacheClosedError, TierCacheError, TierCacheInvalidationError } from '../errors.js';
import { parseTtl, type Duration } from '../keys/duration.js';
import { jitteredTtl } from '../keys/jitter.js';
import { keyTag, prefixTags, userTag, wellFormedTag } from '../keys/tags.js';
import { buildRequestKey, REQUEST_KEY, requestHeader, varyValue } from '../keys/request-key.js';
import { normalizeRoutePath, pathOf } from '../keys/path-normalize.js';
import type { FillStamp, StoredEntry } from '../store/entry.js';
import { L1Store } from '../store/l1-store.js';
import { coarseNow } from '../store/coarse-clock.js';
import { FillLock } from '../store/fill-lock.js';
import { InvalidationBus, type BusMessage } from '../store/invalidation-bus.js';
import { InvalidationQueue, type Invalidation } from '../store/invalidation-queue.js';
import { L2Store } from '../store/l2-store.js';
import { openRedis, type OpenedRedis, type RedisClient } from '../store/redis-client.js';
import { RedisVersionSource, TAG_COUNTER_TTL_MS } from '../store/redis-versions.js';
import { loadScripts } from '../store/redis-scripts.js';
import { TagVersions } from '../store/tag-versions.js';
import { L1_ONLY, NO_TICKET, TAKE_UNANSWERED, TieredStore, UNDECIDED, UNREACHED, UNSENT, type TieredHit } from '../store/tiered-store.js';
import type { ClaimSettled } from '../store/fill-protocol.js';
import { CacheNamespace, type DataCache } from './cache-namespace.js';
import { checkSourceOptions, createCachedSource, type CachedSource, type DataSource, type DataSourceOptions } from './data-source.js';
import { DataScope, invalidKey, type DataKeyHandle } from './data-scope.js';
import { decodeValue, encodeValue, resolvedValue, restampValue, type EncodedValue } from './data-value.js';
import { LoadContext, type Loader } from './loader-context.js';
import { DEFAULT_LOCK_TIMEOUT, resolveOptions, type CacheOptions, type ResolvedOptions } from './options.js';
import type { ResolvedSerializer } from './serializer.js';
import { OVERDUE, SingleFlight, type Flight } from './single-flight.js';
import { attachDebugLog } from '../observe/debug-log.js';
import { DATA_ROUTE, type CacheTier, type ErrorSource, type HitEvent, type InvalidateEvent, type MissEvent, type StoreEvent, type TierCacheEvents } from '../observe/events.js';
import { localInvalidation, remoteInvalidation } from '../observe/invalidation-kind.js';
import { OutcomeCounters, type CacheStats, type PubSubReport } from '../observe/stats.js';

/** A middleware whose fills close() waits for. */
interface FillSource {
  pendingFills(): Array<Promise<unknown>>;
}

const debug = debuglog('tiercache');
const RESOLVED_UNDEFINED: Promise<undefined> = Promise.resolve(undefined);
/** Without L1, per-key bookkeeping is bounded as for the default l1.maxBytes. */
const DEFAULT_BOOKKEEPING_BASE = 64 * 1024 * 1024;

/** The stamp of a value that is never stored (the cache is disabled). */
const UNSTAMPED: FillStamp = Object.freeze({ epoch: 0, tags: Object.freeze([]), versions: Object.freeze([]) });

/** Lifetime of data-API values when neither the call nor the cache sets one. */
export const DEFAULT_DATA_TTL = 60_000;
/** What to do instead of a data-API ttl of 0 (a value that is never served). */
const DATA_TTL_INSTEAD = "use delete() to remove a value, or getOrSet's ctx.skip() to return one without storing it";
/** How many times a set() that Redis refused (a counter moved under its stamp) is stamped again and retried. */
const SET_RESTAMPS = 2;
/** How long ready() waits for a first connection before resolving anyway. */
const READY_WAIT_MS = 5_000;
/** How long close() waits for fills under way to be stored and queued invalidations to be delivered. */
export const CLOSE_WAIT_MS = 2_000;
/** The longest close() waits for each QUIT (the bus's, the client's) within CLOSE_WAIT_MS. */
const QUIT_WAIT_MS = 500;

export interface InvalidateOptions {
  /**
   * Reject with a TierCacheInvalidationError when Redis cannot take the
   * invalidation now, instead of resolving `{ delivered: false }` (it is
   * applied locally and queued either way). @default false
   */
  strict?: boolean | undefined;
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

/** Whether a getOrSet() caller may join a loader's run under way (see TierCache.handedOver). */
const Joins = {
  /** May join; handed nothing by the run (an invalidation overtook it, or Redis could not vouch for it), it joins once more. */
  Rejoin: 0,
  /** May join once, only a run begun since it came (handed over without Redis's word). */
  Once: 1,
  /** Loads on its own. */
  Alone: 2,
} as const;
type Joins = (typeof Joins)[keyof typeof Joins];

export interface SetOptions {
  /** How long the value lives; at least 1 ms once rounded to whole milliseconds (0 or 0.4 throws TierCacheConfigError). @default the cache's ttl, else 60 s */
  ttl?: Duration | undefined;
  /** Tags: invalidateTags() of any of them drops the value everywhere. */
  tags?: readonly string[] | undefined;
}

export type { BypassEvent, ErrorEvent, HitEvent, InvalidateEvent, KeyEvent, MissEvent, StateEvent, StoreEvent, TierCacheEvents } from '../observe/events.js';
export type { CacheStats, PubSubReport } from '../observe/stats.js';

/** 'closed' for every configured tier once close() was called. */
export interface CacheHealth {
  l1: 'ok' | 'disabled' | 'closed';
  /** 'down' also before the first connection is made. */
  l2: 'ok' | 'down' | 'disabled' | 'closed';
  bus: 'ok' | 'reconnecting' | 'disabled' | 'closed';
  /** As in stats(). */
  pubsub: PubSubReport;
}

/** Typed listeners: `cache.on('hit', (e) => e.tier)`. */
export interface TierCache {
  on<E extends keyof TierCacheEvents>(event: E, listener: (payload: TierCacheEvents[E]) => void): this;
  once<E extends keyof TierCacheEvents>(event: E, listener: (payload: TierCacheEvents[E]) => void): this;
  off<E extends keyof TierCacheEvents>(event: E, listener: (payload: TierCacheEvents[E]) => void): this;
}

/**
 * The cache: two tiers, the data API, invalidation and the events. Made by
 * createCache(); members marked internal are for the middleware and are not
 * in the published types.
 */
/** The tags every value of `storeKey` records: its own key tag, then its view's. */
function ownTags(scope: DataScope, storeKey: string): readonly string[] {
  return scope.tags.length === 0 ? [keyTag(storeKey)] : [keyTag(storeKey), ...scope.tags];
}

export class TierCache extends EventEmitter implements DataCache {
  /** The `namespace` option: prefixes every Redis key and the pub/sub channel. */
  readonly prefix: string;
  /** false: every middleware passes through and the data API misses (the enabled option, TIERCACHE_ENABLED). */
  readonly enabled: boolean;
  /** @internal Resolved options (frozen), for the middleware. */
  readonly options: ResolvedOptions;
  /** @internal the tiers; used by the middleware. */
  readonly store: TieredStore;
  /** @internal counted here and by the middleware; read them with stats(). */
  fills = 0;
  /** @internal */
  coalesced = 0;
  /** @internal */
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
  /**
   * Middleware that keeps its own fills under way (asked only when closing: no cost per fill), held weakly:
   * an app may build middleware per request, and one whose fills are under way is held by them.
   */
  private readonly fillSources = new Set<WeakRef<FillSource>>();
  /** fillSources' size after its last sweep of collected middleware. */
  private sweptAt = 0;
  private closing: Promise<void> | undefined;
  private readonly flights: SingleFlight<unknown, FillStamp>;
  /** Where the data API's own keys live (views have scopes of their own). */
  private readonly root: DataScope;
  private readonly serializer: ResolvedSerializer | undefined;
  /** @internal outcomes no tier counts (stale serves, bypasses by reason); read them with stats(). */
  readonly outcomes = new OutcomeCounters();
  /** @internal Whether anyone listens to 'hit' (kept up to date: the L1 hit path checks it). */
  hitListened = false;
  private readonly now = coarseNow;
  private isClosed = false;

  constructor(options?: CacheOptions) {
    super();
    // 'newListener' comes just before the listener is added, 'removeListener' just after it is gone.
    super.on('newListener', (name) => {
      if (name === 'hit') this.hitListened = true;
    });
    super.on('removeListener', () => {
      this.hitListened = this.listenerCount('hit') > 0;
    });
    const resolved = resolveOptions(options);
    this.options = resolved;
    this.prefix = resolved.namespace;
    this.enabled = resolved.enabled;
    // Per-key bookkeeping outside L1 is bounded by bytes as well as by count, in proportion to L1.
    const bookkeepingBase = resolved.l1?.maxBytes ?? DEFAULT_BOOKKEEPING_BASE;
    this.root = new DataScope(this.prefix, '', [], undefined, Math.max(1_000, resolved.l1?.maxEntries ?? 10_000), Math.max(64 * 1024, bookkeepingBase / 16));
    this.serializer = resolved.serializer;
    // Callers on this instance wait on a loader as long as other instances wait on its lock; a
    // lockTimeout of 0 turns the lock off, not single-flight within the instance.
    this.flights = new SingleFlight(resolved.lockTimeout > 0 ? resolved.lockTimeout : DEFAULT_LOCK_TIMEOUT);
    const l1 = resolved.l1 ? new L1Store({ ...resolved.l1, now: this.now }) : undefined;
    let l2: L2Store | undefined;
    if (resolved.redis !== undefined) {
      this.redis = openRedis(resolved.redis, resolved.commandTimeout);
      l2 = new L2Store(this.redis.client, {
        commandTimeout: resolved.commandTimeout,
        breakerCooldown: resolved.breakerCooldown,
        clientBoundsCommands: this.redis.boundsCommands,
        check: (client) => this.checkServer(client),
        onDown: (err) => {
          this.reportError(err, 'Redis (L2) is unreachable: answering from L1 and the handlers until it is back', 'l2');
          this.emitSafely('l2', { state: 'down', err });
        },
        onUp: (recovered) => {
          if (recovered) {
            this.reportInfo('Redis (L2) is reachable again');
            this.emitSafely('l2', { state: 'up' });
          }
          this.queue?.onL2Up();
        },
        onFailure: (err) => this.reportError(err, 'Redis command failed', 'l2'),
      });
    }
    const versions = new TagVersions({
      source: l2 ? new RedisVersionSource(l2, this.prefix) : undefined,
      maxTags: Math.max(10_000, (resolved.l1?.maxEntries ?? 0) * 4),
      maxBytes: Math.max(256 * 1024, bookkeepingBase / 8),
    });
    this.store = new TieredStore({ l1, l2, versions, now: this.now, counterTtl: TAG_COUNTER_TTL_MS });
    if (l2 !== undefined && resolved.lockTimeout > 0) this.fillLock = new FillLock(l2, resolved.lockTimeout);
    if (l2 !== undefined) {
      this.bus = new InvalidationBus({
        namespace: this.prefix,
        l2,
        l1,
        versions,
        onError: (err, message) => this.reportError(err, message, 'bus'),
        onDown: (err) => {
          this.reportError(err, 'the invalidation bus is disconnected: L1 is not trusted (every hit checks Redis) until it is back', 'bus');
          this.emitSafely('bus', { state: 'down', err });
        },
        onUp: () => {
          this.reportInfo('the invalidation bus is connected again (L1 flushed)');
          this.emitSafely('bus', { state: 'up' });
        },
        onMessage: (message) => {
          if (this.listenerCount('invalidate') > 0) this.emitSafely('invalidate', remoteInvalidation(message));
        },
      });
      // The first connection's server check and the bus's first subscription each forget what was
      // learned before them (another Redis, a message missed), and with it every fill stamped before:
      // the first fills wait for both, no longer than one command may take from now, instead of being
      // refused (their answers said detail=invalidated, though nothing was). With Redis unreachable
      // nothing is waited for past the first: the fill's own lookup fails as it would. A fill's wait
      // here counts in its lookup's command timeout (L2Store.run): it waits one in all.
      const bus = this.bus;
      const gateBy = performance.now() + resolved.commandTimeout;
      this.store.holdFillsUntil(l2.waitReady(resolved.commandTimeout).then((up) => (up ? bus.waitSubscribed(gateBy - performance.now()) : undefined)));
      this.queue = new InvalidationQueue({
        versions,
        l2,
        bus: this.bus,
        onReplayed: (count) => this.reportInfo(`${count} invalidation(s) queued while Redis was unreachable were delivered`),
      });
    }
    if (resolved.logger !== undefined) attachDebugLog(this, resolved.logger);
  }

  /** Whether close() was called: every call then rejects with TierCacheClosedError; the middleware reads it to pass requests through. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** The Redis client in use (given or opened), if any. */
  get redisClient(): RedisClient | undefined {
    return this.redis?.client;
  }

  /** @internal The store key of a data-API key: `namespace:d:key`, escaped, or a digest of a long key (see data-key.ts). */
  dataKey(key: string): string {
    return this.root.handle(key).storeKey;
  }

  /** The value under `key`, or undefined on a miss (or when Redis fails). Rejects with a TypeError for a key that is not a non-empty string. */
  get<T = unknown>(key: string): Promise<T | undefined> {
    return this.getIn<T>(this.root, key);
  }

  /** @internal get() in a scope: the root, or a namespace() view. */
  getIn<T>(scope: DataScope, key: string): Promise<T | undefined> {
    const handle = scope.find(key);
    // An invalid key rejects, as in every other data-API call (none throws synchronously).
    if (handle === undefined) return Promise.reject(invalidKey(key));
    const storeKey = handle.storeKey;
    if (this.isClosed) return this.rejectClosed('get');
    if (!this.enabled) return RESOLVED_UNDEFINED;
    // The L1 hit is answered without awaiting anything.
    const local = this.store.lookupL1(storeKey, true, handle);
    if (local === undefined || local === UNDECIDED) return this.getBeyondL1<T>(scope, key, storeKey, local === UNDECIDED);
    const value = resolvedValue<T>(local, this.serializer);
    if (value === undefined) return this.unreadable(scope, key, storeKey, local);
    if (this.hitListened) this.emitSafely('hit', hitEvent(scope, key, 'L1'));
    return value;
  }

  /** `reportMiss` false: the caller reports the lookup's outcome itself (a getOrSet() goes on to load). */
  private async getBeyondL1<T>(scope: DataScope, key: string, storeKey: string, undecided: boolean, reportMiss = true): Promise<T | undefined> {
    // The tags every value of this key records (its own, its view's): read with it from L2 when not known here.
    const hit = undecided ? await this.store.get(storeKey) : await this.store.getL2(storeKey, ownTags(scope, storeKey));
    // An L1 value Redis could not vouch for is a miss, as in the middleware: this instance cannot tell an outage from
    // being cut off alone while others invalidate (DESIGN §4: with the bus down it trusts neither L1 nor its versions).
    const value = hit === undefined || hit.unverified === true ? undefined : this.readHit<T>(storeKey, hit);
    if (value === undefined) {
      if (reportMiss && this.listenerCount('miss') > 0) this.emitSafely('miss', missEvent(scope, key));
      return undefined;
    }
    if (this.hitListened) this.emitSafely('hit', hitEvent(scope, key, hit!.tier));
    return value;
  }

  /** The value of a hit, if fresh and readable here; one that is not readable (another serializer's, corrupt) is dropped. */
  private readHit<T>(storeKey: string, hit: TieredHit): T | undefined {
    if (hit.entry.freshUntil <= this.now()) return undefined;
    const value = decodeValue<T>(hit.entry, this.serializer);
    if (value === undefined) this.store.discard(storeKey, hit.entry);
    // Read from L2 into L1 by its bytes; now parsed, it holds what the parsed value costs.
    else if (hit.tier === 'L2') this.store.l1?.recharge(storeKey, hit.entry);
    return value;
  }

  /** An L1 entry this instance cannot read (written under another serializer, corrupt): dropped, and a miss. */
  private unreadable(scope: DataScope, key: string, storeKey: string, entry: StoredEntry): Promise<undefined> {
    this.store.discard(storeKey, entry);
    if (this.listenerCount('miss') > 0) this.emitSafely('miss', missEvent(scope, key));
    return RESOLVED_UNDEFINED;
  }

  /** Whether a fresh value is stored under `key`. */
  async has(key: string): Promise<boolean> {
    return (await this.get(key)) !== undefined;
  }

  /**
   * Stores `value` (JSON-serializable or Buffer, or what the serializer takes)
   * in this instance's L1 and in L2. Other instances' L1 copies are not told:
   * they serve theirs until their L1 lifetime ends (delete() first to reach
   * them). Stored even right after another instance's invalidation of it (see
   * setValue); a loader of the key that began before, here or on another
   * instance, stores nothing over it (Redis refuses it: see TieredStore.set).
   * Redis failures are reported, not thrown.
   */
  set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    return this.setIn(this.root, key, value, options);
  }

  /** @internal set() in a scope. */
  async setIn(scope: DataScope, key: string, value: unknown, options: SetOptions | undefined): Promise<void> {
    const storeKey = scope.handle(key).storeKey;
    const { ttl, tags } = this.resolveSetOptions(scope, storeKey, options);
    this.assertOpen('set');
    if (!this.enabled) return;
    await this.trackFill(this.setValue(scope, key, storeKey, value, tags, ttl));
  }

  /**
   * A set() is the caller's value now. When Redis refuses the store because a
   * counter its stamp recorded moved (an invalidation from another instance
   * whose message has not arrived yet), the versions are forgotten here and it
   * is stamped again, from Redis, and stored again: at most SET_RESTAMPS times.
   */
  private async setValue(scope: DataScope, key: string, storeKey: string, value: unknown, tags: readonly string[], ttl: number): Promise<void> {
    const startedAt = this.now();
    const calledAt = performance.now();
    const versions = this.store.versions;
    const life = jitteredTtl(ttl, this.options.jitter);
    const queue = this.queue;
    // Invalidations queued before this call come before it: a delete of the key that waits still (see supersede).
    const mark = queue?.mark;
    const l2 = this.store.l2;
    // An invalidation of one of its tags (or a clear) made here before this call and not in Redis yet (queued while
    // Redis was down): stamped now, the store is refused (the pending marker), or, for its key's tag alone (a
    // deleteMany), stored and then made invalid everywhere by that invalidation's replay. The caller called it after
    // that invalidation, so it is stored after it or not at all. (A delete() of this key alone: see supersede.)
    const behind = queue !== undefined && queueCovers(queue, versions, tags);
    if (behind) {
      // Waits for the replay under way to deliver those, if one is: not one it starts (while Redis refuses the
      // replay, an ACL, each set() would send one more attempt). One command timeout in all, the store included
      // (see since below).
      const until = calledAt + l2!.callerWait;
      for (let left = l2!.callerWait; left > 0 && queueCovers(queue, versions, tags) && l2!.state === 'ok' && queue.replaying !== undefined; left = until - performance.now()) {
        await settledWithin([queue.delivery()], left);
      }
      if (queueCovers(queue, versions, tags)) {
        // Still not replayed: never stored in order. As one Redis could not take, and never sent.
        // Redis known down: the queued delete's own error names this set() already.
        if (l2!.state === 'ok') this.reportUnstored(key, 'invalidations of its tags made on this instance before it were still on their way to Redis');
        void this.dropKey(storeKey, `set(${JSON.stringify(key)})`, key, scope.name, false, undefined, await this.instantBetween(calledAt), l2?.clock?.steps).catch(() => undefined);
        return;
      }
    }
    // After a wait for the replay, what its stamp asks Redis waits only what is left of the set()'s one command timeout.
    let encoded = encodeValue(key, value, await versions.stamp(tags, behind ? calledAt : undefined), this.now(), life, this.serializer);
    // A loader of this key running here began before this value was given: it must not store over it.
    this.flights.supersede(storeKey);
    for (let restamps = 0; ; restamps++) {
      // On Redis's clock, no earlier than now and no later than the end of this store's wait: a set() stored
      // past it, on any instance, came after this one was called (and after it was answered, if it was).
      const now = performance.now();
      const deadline = l2?.clock?.between(now, (behind ? calledAt : now) + l2.callerWait);
      // A delete of the key queued before this call (Redis down then) must not undo it once replayed.
      const stored = await this.store.set(storeKey, encoded.entry, encoded.l1Entry, queue === undefined || queue.length === 0 ? undefined : (version) => queue.supersede(storeKey, mark!, version), behind ? calledAt : undefined);
      if (stored === UNREACHED || stored === UNSENT) {
        // Redis could not take it: L2 may still hold an older value, which other instances read now
        // and this one again once its bus reconnects and flushes L1 (its own set() undone). So it
        // becomes a delete() of the key, queued and replayed like one: the key misses everywhere
        // until it is loaded or set again, never the value from before. Applied here at once (dropKey
        // marks it before its first await); the set() does not wait for Redis a second time to deliver it.
        // A set() stored past that instant (another instance's, while this delete waited) is newer and
        // stays (see InvalidationQueue).
        // Never sent (Redis known down), nothing of it can land: what is older than it was stored before it was
        // called, what is newer after it returns, not after the end of a wait it never had (a set() the caller
        // makes right after, on any instance, stored within that wait, must stay).
        const before = stored === UNSENT ? await this.instantBetween(calledAt) : deadline;
        void this.dropKey(storeKey, `set(${JSON.stringify(key)})`, key, scope.name, false, undefined, before, l2?.clock?.steps).catch(() => undefined);
        return;
      }
      if (stored === L1_ONLY) {
        await this.keepInL1Only(scope, key, storeKey, encoded, tags, startedAt);
        return;
      }
      if (stored) {
        if (this.listenerCount('store') > 0) this.emitSafely('store', this.storeEvent(scope, key, storeKey, encoded.entry.body.length, startedAt));
        return;
      }
      if (restamps === SET_RESTAMPS || encoded.entry.staleUntil <= this.now()) {
        // Overtaken every time (a storm of invalidations of its tags), or over by now: stored nowhere, and not
        // reported as stored. Redis still holds the value from before, valid under its own tags, which must not
        // answer for this set(): it becomes a delete() of the key, as when Redis cannot take it.
        // Not awaited: delivered after what is queued before it, which the caller does not wait for.
        // No 'error': invalidations made while the set() ran may be ordered after it, and then its value, stored,
        // would be invalid at once: the caller lost nothing (under a storm a third of set()s would report one).
        void this.dropKey(storeKey, `set(${JSON.stringify(key)})`, key, scope.name, false).catch(() => undefined);
        return;
      }
      encoded = restampValue(encoded, await versions.stamp(tags), this.now(), life);
    }
  }

  /**
   * A set() whose entry Redis cannot hold (reported as such): kept in this
   * instance's L1 alone, but the key's value from before, which Redis still
   * holds, must not answer for it (on other instances; here once L1 lets this
   * one go). The key is dropped everywhere as by delete(), then the value is
   * put back in L1 recording the key version that drop moved to, unless
   * another value took its place here meanwhile. While Redis cannot take the
   * drop (queued then), the value is nowhere.
   */
  private async keepInL1Only(scope: DataScope, key: string, storeKey: string, encoded: EncodedValue, tags: readonly string[], startedAt: number): Promise<void> {
    const l1 = this.store.l1;
    const { delivered } = await this.dropKey(storeKey, `set(${JSON.stringify(key)})`, key, scope.name, false);
    if (!delivered || l1 === undefined || l1.peek(storeKey) !== undefined) return;
    const { entry } = encoded;
    // Its stamp with the key's own version (tags[0], see ownTags) as that drop moved it: stamping every tag again
    // would read them all from Redis once more (thousands, when their number is what Redis could not hold).
    const own = await this.store.versions.stamp([tags[0]!]);
    const versions = entry.versions.slice();
    versions[0] = own.versions[0]!;
    const kept = restampValue(encoded, { epoch: entry.epoch, tags: entry.tags, versions }, entry.createdAt, entry.freshUntil - entry.createdAt);
    if (l1.peek(storeKey) !== undefined || kept.entry.staleUntil <= this.now()) return;
    l1.set(storeKey, kept.l1Entry);
    if (this.listenerCount('store') > 0) this.emitSafely('store', this.storeEvent(scope, key, storeKey, entry.body.length, startedAt, true));
  }

  /**
   * An instant on Redis's clock (µs) no earlier than `from` and no later than
   * the return (performance.now() instants): undefined without a clock sample
   * bounding Redis's clock within half a command timeout. Until the sample's
   * bounds tell the two apart (a round trip of the sample, well under a
   * millisecond on a LAN) the caller waits.
   */
  private async instantBetween(from: number): Promise<number | undefined> {
    const l2 = this.store.l2!;
    const clock = l2.clock;
    for (;;) {
      const now = performance.now();
      const instant = clock?.between(from, now, now, l2.callerWait);
      if (instant !== undefined || clock?.deadline(now, now, l2.callerWait) === undefined || now - from > l2.callerWait / 2) return instant;
      await sleep(1);
    }
  }

  /**
   * Removes `key` from every tier, on every instance. Applied here at once;
   * if Redis cannot take it now it is queued (see invalidateTags).
   */
  delete(key: string, options?: InvalidateOptions): Promise<InvalidateResult> {
    return this.deleteManyIn(this.root, [key], options, 'delete');
  }

  /** Removes every key of `keys` from every tier, on every instance: one invalidation (see invalidateTags for the result). */
  deleteMany(keys: readonly string[], options?: InvalidateOptions): Promise<InvalidateResult> {
    return this.deleteManyIn(this.root, keys, options, 'deleteMany');
  }

  /** @internal delete() and deleteMany() in a scope. */
  async deleteManyIn(scope: DataScope, keys: readonly string[], options: InvalidateOptions | undefined, method: 'delete' | 'deleteMany'): Promise<InvalidateResult> {
    if (!Array.isArray(keys)) throw new TypeError('tiercache: deleteMany needs an array of keys');
    const storeKeys = keys.map((key) => scope.handle(key).storeKey);
    const strict = strictOption(options);
    this.assertOpen(method);
    const what = `${method}(${JSON.stringify(method === 'delete' ? keys[0] : keys)})`;
    if (storeKeys.length === 1) return this.dropKey(storeKeys[0]!, what, keys[0]!, scope.name, strict);
    if (storeKeys.length === 0) return DELIVERED;
    this.invalidations++;
    for (const storeKey of storeKeys) this.store.l1?.delete(storeKey);
    let delivered = false;
    try {
      // Deleting the entries only frees Redis memory sooner (in slices, per Cluster slot: see dropManyFromL2),
      // and is done before the bump: after its message, another instance may set() a key anew, and a
      // deletion landing then would drop that newer value. A value stored in between is older than the bump.
      await this.store.dropManyFromL2(storeKeys);
      // One bump of every key tag (and one message for them all) makes the values invalid everywhere.
      const result = await this.invalidate({ kind: 'tags', tags: storeKeys.map(keyTag) }, what, strict);
      delivered = result.delivered;
      return result;
    } finally {
      if (this.listenerCount('invalidate') > 0) {
        for (let i = 0; i < keys.length; i++) this.emitSafely('invalidate', localInvalidation([keyTag(storeKeys[i]!)], delivered, { key: keys[i]!, namespace: scope.name }));
      }
    }
  }

  /**
   * The value under `key`, removed from the cache on every instance (as
   * delete() removes it). Of concurrent pulls of one key, on any instances
   * sharing the Redis, one alone gets the value: it claims the entry in Redis
   * and deletes it while the claim is still its own (TieredStore.takeFromL2),
   * unless a set() replaced it since it was read: that newer value stays.
   * With an L2 the value is taken from Redis only, never from an L1 copy
   * (another caller may have taken it already), so a pull while Redis cannot
   * be reached misses, and the value stays.
   */
  pull<T = unknown>(key: string): Promise<T | undefined> {
    return this.pullIn<T>(this.root, key);
  }

  /** @internal pull() in a scope. */
  async pullIn<T>(scope: DataScope, key: string): Promise<T | undefined> {
    const storeKey = scope.handle(key).storeKey;
    this.assertOpen('pull');
    if (!this.enabled) return undefined;
    const store = this.store;
    let value: T | undefined;
    let tier: CacheTier = 'L2';
    let taken: ClaimSettled | undefined;
    if (store.l2 === undefined) {
      // L1 alone: found and removed before anything awaits, so a concurrent pull here finds nothing.
      const local = store.lookupL1(storeKey);
      store.l1?.delete(storeKey);
      if (local !== undefined && local !== UNDECIDED && local.freshUntil > this.now()) value = decodeValue<T>(local, this.serializer);
      tier = 'L1';
    } else {
      const hit = await store.takeFromL2(storeKey, ownTags(scope, storeKey));
      if (hit === TAKE_UNANSWERED) {
        // Redis may have taken it (its answer lost) and nobody would tell the other instances, whose L1 copies
        // would serve it until their lifetime ends: they drop them (queued, like any invalidation, when Redis
        // cannot take the message now) and read Redis again, which still has it if the take never ran. Its
        // Redis side is left as it is (the claim it needed is gone either way); not awaited, as this caller
        // waited on Redis once already.
        void this.dropKey(storeKey, `pull(${JSON.stringify(key)})`, key, scope.name, false, { keys: [storeKey] }).catch(() => undefined);
        if (this.listenerCount('miss') > 0) this.emitSafely('miss', missEvent(scope, key));
        return undefined;
      }
      // Neither kept in L1 nor recharged: it is gone.
      if (hit !== undefined && hit.entry.freshUntil > this.now()) value = decodeValue<T>(hit.entry, this.serializer);
      taken = hit?.key;
      // Taken by another caller, or never there: a copy here is of a value that is gone.
      if (value === undefined) store.l1?.delete(storeKey);
    }
    if (value === undefined) {
      if (this.listenerCount('miss') > 0) this.emitSafely('miss', missEvent(scope, key));
      return undefined;
    }
    if (this.hitListened) this.emitSafely('hit', hitEvent(scope, key, tier));
    // Every instance's L1 copy, and any fill of the key under way, as delete() does; its Redis side was done
    // by the take, unless the key's counter was missing there (then bumped now, as by delete()).
    await this.dropKey(storeKey, `pull(${JSON.stringify(key)})`, key, scope.name, false, taken?.version === undefined ? undefined : this.pulledMessage(storeKey, keyTag(storeKey), taken));
    return value;
  }

  /**
   * The cached value, or the loader's result stored for next time. Concurrent
   * callers for one key share one loader run (single-flight), and so do
   * instances sharing a Redis: one takes the fill lock and loads, the others
   * wait for its value up to l2.lockTimeout, then load themselves. A loader
   * that resolves undefined stores nothing; `ctx.setTtl()` and `ctx.skip()`
   * let it decide the lifetime, or that nothing is stored. Every call returns
   * the value as a hit returns it (frozen JSON, or a fresh copy).
   */
  getOrSet<T>(key: string, load: Loader<T>, options?: SetOptions): Promise<T> {
    return this.getOrSetIn<T>(this.root, key, load, options);
  }

  /** @internal getOrSet() in a scope. */
  async getOrSetIn<T>(scope: DataScope, key: string, load: Loader<T>, options: SetOptions | undefined): Promise<T> {
    const handle = scope.handle(key);
    const storeKey = handle.storeKey;
    if (typeof load !== 'function') throw new TypeError('tiercache: getOrSet needs a loader function');
    const { ttl, tags } = this.resolveSetOptions(scope, storeKey, options);
    this.assertOpen('getOrSet');
    if (!this.enabled) return this.loadUncached(key, load, ttl);
    // The L1 hit is answered here: no second async frame on the path most calls take.
    return this.getOrLoadPastL1<T>(scope, key, handle, load, ttl, tags);
  }

  /**
   * L1 first, even while a loader of the key runs here (a value stored since
   * is found, not waited for); then that loader's run, else a run of its own.
   */
  private getOrLoadPastL1<T>(scope: DataScope, key: string, handle: DataKeyHandle, load: Loader<T>, ttl: number, tags: readonly string[], joins: Joins = Joins.Rejoin, since?: number): T | Promise<T> {
    const storeKey = handle.storeKey;
    const local = this.store.lookupL1(storeKey, true, handle);
    if (local !== undefined && local !== UNDECIDED) {
      const value = resolvedValue<T>(local, this.serializer);
      if (value !== undefined) {
        if (this.hitListened) this.emitSafely('hit', hitEvent(scope, key, 'L1'));
        return value;
      }
      this.store.discard(storeKey, local);
    }
    return this.getOrLoad<T>(scope, key, handle, load, ttl, tags, local === UNDECIDED, joins, since ?? this.flights.begun);
  }

  /**
   * Past L1: Redis when L1 could not vouch for its entry (`undecided`), then a loader run, joined or its own.
   * `since`: SingleFlight.begun when the caller came (a run above it began after the caller asked).
   */
  private async getOrLoad<T>(scope: DataScope, key: string, handle: DataKeyHandle, load: Loader<T>, ttl: number, tags: readonly string[], undecided: boolean, joins: Joins, since: number): Promise<T> {
    const storeKey = handle.storeKey;
    if (undecided) {
      // The bus is down: the L1 entry is checked in Redis (L2 is asked again by the fill's lookup on a miss).
      const checked = await this.getBeyondL1<T>(scope, key, storeKey, true, false);
      if (checked !== undefined) return checked;
    }
    const joined = joins === Joins.Alone ? undefined : this.joinFlight(storeKey, joins === Joins.Once ? since : 0);
    if (joined !== undefined) {
      // A caller that waited on the run reports what the run was: a hit where it found the value stored, else
      // a collapsed miss, whatever its end (as an HTTP waiter is); one that outlived its wait goes on and
      // reports what it then finds itself.
      const result = await joined.wait().catch((err: unknown) => {
        this.reportWaited(scope, key, joined);
        throw err;
      });
      if (result !== OVERDUE) {
        const handed = this.handedOver(joined, since);
        if (handed === true || (handed !== false && (await handed))) {
          this.reportWaited(scope, key, joined);
          return result as T;
        }
        // Overtaken by an invalidation (its loader's own caller alone gets its value), or one Redis cannot vouch
        // for (this instance cut off): the callers it leaves share one run begun after they came, whose value
        // needs no word from Redis (see handedOver). Each loading alone instead would put every concurrent
        // caller's load on the data source at once for as long as Redis is out of reach.
        return this.getOrLoadPastL1<T>(scope, key, handle, load, ttl, tags, joins === Joins.Rejoin ? Joins.Once : Joins.Alone, since);
      }
      // The run outlived the wait, as another instance's lock would have: this caller goes on
      // without it, but takes its value if it still comes first (and may be handed it). Not its failure:
      // that belongs to the callers still waiting on it, and this one's own load may yet succeed.
      const ownLoad = this.getOrLoadPastL1<T>(scope, key, handle, load, ttl, tags, joins, since);
      return Promise.race([(joined.promise as Promise<T>).then(async (value) => ((await this.handedOver(joined, since)) ? value : ownLoad), () => ownLoad), ownLoad]);
    }
    const loading = this.flights.start(storeKey, (flight) => this.fillValue<T>(scope, key, storeKey, load, ttl, tags, flight)) as Promise<T>;
    return this.trackFill(loading);
  }

  /**
   * A getOrSet miss in L1: one round trip looks the value up in L2, takes the
   * fill lock and reads the counters of the stamp (the HTTP fill's protocol);
   * then the loader runs, or, when another instance holds the lock, its value
   * is awaited. The store releases the lock in the same round trip.
   */
  private async fillValue<T>(scope: DataScope, key: string, storeKey: string, load: Loader<T>, ttl: number, tags: readonly string[], flight: Flight<unknown, FillStamp>): Promise<T> {
    const store = this.store;
    const lock = this.fillLock;
    let stamp: FillStamp | undefined;
    let ticket = NO_TICKET;
    if (store.l2 !== undefined) {
      let lookup = await store.lookupForFill(storeKey, tags, lock?.request(storeKey));
      const found = lookup.hit === undefined ? undefined : this.readHit<T>(storeKey, lookup.hit);
      // A fresh entry this instance cannot read (another serializer's, corrupt: dropped by readHit) took no fill
      // step; they are taken now, as for any miss (HttpCache.startFill does the same): the loader runs once across
      // instances, not on every instance that found it.
      if (found === undefined && lookup.hit !== undefined && lookup.stamp === undefined) lookup = await store.lookupForFill(storeKey, tags, lock?.request(storeKey), true);
      ticket = lookup.ticket;
      if (found !== undefined) {
        store.abandonFill(ticket, flight.superseded);
        flight.foundIn = lookup.hit!.tier;
        if (this.hitListened) this.emitSafely('hit', hitEvent(scope, key, lookup.hit!.tier));
        return found;
      }
      if (this.listenerCount('miss') > 0) this.emitSafely('miss', missEvent(scope, key));
      stamp = lookup.stamp;
      if (lookup.lock === 'theirs' && lock !== undefined) {
        const filled = await lock.waitFor(storeKey, () => this.remoteValue<T>(storeKey), () => this.isClosed);
        if (filled !== undefined) {
          store.abandonFill(ticket, flight.superseded);
          this.coalesced++;
          return filled;
        }
      }
    } else if (this.listenerCount('miss') > 0) this.emitSafely('miss', missEvent(scope, key));
    stamp ??= store.versions.stampLocally(tags) ?? (await store.versions.stamp(tags));
    flight.meta = stamp;
    flight.startClock();
    const startedAt = this.now();
    const ctx = new LoadContext(key, ttl);
    let value: T;
    let encoded: ReturnType<typeof encodeValue> | undefined;
    let readBack: T | undefined;
    try {
      value = await load(ctx);
      if (value !== undefined) {
        encoded = encodeValue(key, value, stamp, startedAt, jitteredTtl(ctx.ttl, this.options.jitter), this.serializer);
        // What a hit returns, read before storing. undefined when the serializer cannot read what it
        // wrote (its deserialize() threw): the callers get the loader's own value, and nothing is stored.
        readBack = decodeValue<T>(encoded.l1Entry, this.serializer);
        if (readBack === undefined) this.reportUnreadable(key);
      }
    } catch (err) {
      store.abandonFill(ticket, flight.superseded);
      throw err;
    }
    // Superseded (a set() of the key here since the loader began): the set() value stays, with the counters it recorded.
    if (encoded === undefined || readBack === undefined || ctx.skipped || flight.superseded || !store.versions.stillCurrent(stamp)) store.abandonFill(ticket, flight.superseded);
    else {
      this.fills++;
      const stored = await store.storeFill([{ key: storeKey, entry: encoded.entry, l1Entry: encoded.l1Entry }], ticket);
      if (stored && this.listenerCount('store') > 0) this.emitSafely('store', this.storeEvent(scope, key, storeKey, encoded.entry.body.length, startedAt, stored === L1_ONLY));
    }
    return readBack === undefined ? value : readBack;
  }

  /**
   * A set() that Redis could take but that is stored nowhere, as it could not be
   * ordered after the invalidations before it: without this, its caller would
   * hear of it only as an 'invalidate' of the key, which a delete() gives too.
   * (One Redis cannot take is reported by its failure, or its queued delete.)
   */
  private reportUnstored(key: string, why: string): void {
    this.reportError(new TierCacheError(`tiercache: set(${JSON.stringify(key)}) was not stored: ${why}; it became a delete() of the key, which misses everywhere until it is set or loaded again`), 'a value was not stored', 'store');
  }

  /** A serializer that cannot read back what it wrote (its deserialize() threw): worth telling, since nothing is ever stored. */
  private reportUnreadable(key: string): void {
    const name = this.serializer?.name ?? 'json';
    const err = new TypeError(`tiercache: the '${name}' serializer's deserialize() could not read what its serialize() wrote for '${key}': getOrSet returned the loader's value and stored nothing`);
    this.reportError(err, 'a value was not stored', 'store');
  }

  /** What another instance's fill stored under `storeKey`, once it is there. */
  private async remoteValue<T>(storeKey: string): Promise<T | undefined> {
    const hit = await this.store.getL2(storeKey);
    return hit === undefined ? undefined : this.readHit<T>(storeKey, hit);
  }

  /** getOrSet with the cache disabled: the loader runs every time, and its value comes back as a cached one would. */
  private async loadUncached<T>(key: string, load: Loader<T>, ttl: number): Promise<T> {
    const value = await load(new LoadContext(key, ttl));
    if (value === undefined) return value;
    const readBack = decodeValue<T>(encodeValue(key, value, UNSTAMPED, this.now(), ttl, this.serializer).l1Entry, this.serializer);
    return readBack === undefined ? value : readBack;
  }

  /** A getOrSet that waited on a run of this instance: a hit where the run found the value stored, else a 'miss' with collapsed: true. */
  private reportWaited(scope: DataScope, key: string, flight: Flight<unknown, FillStamp>): void {
    const tier = flight.foundIn;
    if (tier !== undefined) {
      if (this.hitListened) this.emitSafely('hit', hitEvent(scope, key, tier));
    } else if (this.listenerCount('miss') > 0) this.emitSafely('miss', missEvent(scope, key, true));
  }

  /**
   * Whether a run's value may be handed to a caller that joined it: not when an invalidation known here
   * overtook its loader (DESIGN §4(3): the loader's own caller alone gets that value), nor, while the bus
   * is down and local state cannot tell, unless Redis vouches for it (as HttpCache.answerWaiter) or the
   * run began after the caller came (`since`): its loader read the source after the caller asked, so no
   * invalidation the caller could have been told of before asking is missing from it; one made while it ran
   * is concurrent with the caller, as with the loader's own caller. A run that found its value stored, or
   * took another instance's, loaded nothing (no stamp): handed over.
   */
  private handedOver(flight: Flight<unknown, FillStamp>, since: number): boolean | Promise<boolean> {
    const stamp = flight.meta;
    if (stamp === undefined) return true;
    const versions = this.store.versions;
    if (!versions.stillCurrent(stamp)) return stamp.generation === versions.currentGeneration() ? false : versions.vouch(stamp).then((word) => word === true);
    if (versions.trusted || flight.ordinal > since) return true;
    return versions.vouch(stamp).then((word) => word === true);
  }

  /**
   * The loader run under way for a key, unless an invalidation has overtaken it since it began, or its wait
   * is over; only one begun after `after` (a caller's second try: see Joins.Once).
   */
  private joinFlight(storeKey: string, after: number): Flight<unknown, FillStamp> | undefined {
    const flight = this.flights.current(storeKey);
    if (flight === undefined || flight.ordinal <= after) return undefined;
    if (flight.meta !== undefined && !this.store.versions.stillCurrent(flight.meta)) return undefined;
    this.coalesced++;
    return flight;
  }

  /**
   * A view of the data API whose keys live apart from the cache's own (and
   * from other views'), on the same tiers, bus and invalidation queue. Its
   * clear() drops every value stored through it, on every instance, in one
   * round trip. Views nest: `cache.namespace('users').namespace('admins')`.
   */
  namespace(name: string): DataCache {
    return new CacheNamespace(this, this.root.child(name));
  }

  /** @internal clear() of a namespace() view (the root's is clear()). */
  async clearIn(scope: DataScope, options: InvalidateOptions | undefined): Promise<InvalidateResult> {
    const tag = scope.ownTag;
    if (tag === undefined) return this.clear(options);
    const strict = strictOption(options);
    this.assertOpen('clear');
    this.invalidations++;
    let delivered = false;
    try {
      const result = await this.invalidate({ kind: 'tags', tags: [tag] }, `namespace(${JSON.stringify(scope.name)}).clear()`, strict);
      delivered = result.delivered;
      return result;
    } finally {
      if (this.listenerCount('invalidate') > 0) this.emitSafely('invalidate', localInvalidation([tag], delivered, { clear: true, namespace: scope.name }));
    }
  }

  /** Read-through / write-through helper over a data source (see DataSource). */
  source<Id, T>(source: DataSource<Id, T>, options?: DataSourceOptions<Id, T>): CachedSource<Id, T> {
    return this.sourceIn(this, source, options);
  }

  /** @internal source() over the cache or a view. */
  sourceIn<Id, T>(host: DataCache, source: DataSource<Id, T>, options: DataSourceOptions<Id, T> | undefined): CachedSource<Id, T> {
    checkSourceOptions(options);
    if (options?.ttl !== undefined) parseTtl('source ttl', options.ttl, DATA_TTL_INSTEAD);
    return createCachedSource<Id, T>(host, source, options);
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
    // node's request first: Express (or Connect) set its originalUrl, a Koa app mounted in one only the relative one.
    const url = req.originalUrl ?? holder.originalUrl ?? req.url ?? '/';
    const rule = this.options.routes.matchNormalized(normalizeRoutePath(pathOf(url)));
    const headers = req.headers ?? {};
    const vary = rule?.vary?.map((name): [string, string | undefined] => [name, varyValue(headers, name)]);
    return buildRequestKey({ namespace: this.prefix, method: req.method ?? 'GET', url, vary, queryAllow: rule?.query });
  }

  /** Every entry scoped to user `id`, on every instance. See invalidateTags for the result. */
  invalidateUser(id: string | number, options?: InvalidateOptions): Promise<InvalidateResult> {
    // Rejects, as invalidateTags() and every other call returning a promise do: `invalidateUser(id).catch(log)` must catch it.
    if (typeof id !== 'string' && (typeof id !== 'number' || !Number.isFinite(id))) return Promise.reject(new TypeError('tiercache: invalidateUser needs a user id (a string or a number)'));
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
    if (typeof prefix !== 'string' || !prefix.startsWith('/')) return Promise.reject(new TypeError(`tiercache: invalidatePrefix needs a path starting with '/'; got ${typeof prefix === 'string' ? JSON.stringify(prefix) : typeof prefix}`));
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
    const own = tags.map(wellFormedTag);
    let delivered = false;
    try {
      const result = await this.invalidate({ kind: 'tags', tags: own }, `invalidateTags(${JSON.stringify(tags)})`, strict);
      delivered = result.delivered;
      return result;
    } finally {
      if (this.listenerCount('invalidate') > 0) this.emitSafely('invalidate', localInvalidation(own, delivered));
    }
  }

  /** One entry, by the key the middleware reported (cache.keyFor), on every instance. See invalidateTags for the result. */
  async invalidateKey(key: string, options?: InvalidateOptions): Promise<InvalidateResult> {
    if (typeof key !== 'string' || key === '') throw new TypeError('tiercache: invalidateKey needs a key');
    const strict = strictOption(options);
    this.assertOpen('invalidateKey');
    return this.dropKey(key, `invalidateKey(${JSON.stringify(key)})`, key, undefined, strict);
  }

  /** Empties the namespace everywhere: one epoch bump, no key scan. See invalidateTags for the result. */
  async clear(options?: InvalidateOptions): Promise<InvalidateResult> {
    const strict = strictOption(options);
    this.assertOpen('clear');
    this.invalidations++;
    this.store.l1?.clear();
    let delivered = false;
    try {
      const result = await this.invalidate({ kind: 'clear' }, 'clear()', strict);
      delivered = result.delivered;
      return result;
    } finally {
      if (this.listenerCount('invalidate') > 0) this.emitSafely('invalidate', localInvalidation([], delivered, { clear: true }));
    }
  }

  /** Every outcome counted since the cache was made, and the state of each tier. */
  stats(): CacheStats {
    const { l1, l2 } = this.store;
    const health = this.health();
    const bounds = this.options.l1;
    const bus = this.bus;
    return {
      l1: {
        hits: this.store.l1Hits,
        misses: this.store.l1Misses,
        entries: l1?.entries ?? 0,
        bytes: l1?.bytes ?? 0,
        evictions: l1?.evictions ?? 0,
        maxEntries: bounds?.maxEntries ?? 0,
        maxBytes: bounds?.maxBytes ?? 0,
      },
      l2: {
        hits: this.store.l2Hits,
        misses: this.store.l2Misses,
        errors: l2?.errors ?? 0,
        state: health.l2,
        breaker: l2 === undefined ? 'disabled' : l2.breakerIsOpen ? 'open' : 'closed',
      },
      bus: { state: health.bus, sent: bus?.sent ?? 0, received: bus?.received ?? 0, gaps: bus?.gaps ?? 0 },
      stale: this.outcomes.stale,
      bypasses: this.outcomes.bypasses(),
      fills: this.fills,
      coalesced: this.coalesced,
      invalidations: this.invalidations,
      queuedInvalidations: this.queue?.length ?? 0,
      pubsub: this.pubsub,
    };
  }

  private get pubsub(): PubSubReport {
    return this.bus === undefined ? 'disabled' : this.isClosed ? 'closed' : (this.bus.mode ?? 'pending');
  }

  health(): CacheHealth {
    const l2 = this.store.l2;
    if (this.isClosed) {
      return { l1: this.store.l1 ? 'closed' : 'disabled', l2: l2 ? 'closed' : 'disabled', bus: this.bus ? 'closed' : 'disabled', pubsub: this.pubsub };
    }
    return {
      l1: this.store.l1 ? 'ok' : 'disabled',
      l2: l2 ? (l2.state === 'ok' ? 'ok' : 'down') : 'disabled',
      bus: this.bus ? this.bus.health : 'disabled',
      pubsub: this.pubsub,
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

  /** @internal a middleware whose fills close() waits for (it lists them only then). */
  addFillSource(source: FillSource): void {
    const sources = this.fillSources;
    sources.add(new WeakRef(source));
    // Sweeps when the set has doubled since the last: each build costs a constant share of a sweep.
    if (sources.size >= 2 * this.sweptAt + 64) {
      for (const ref of sources) if (ref.deref() === undefined) sources.delete(ref);
      this.sweptAt = sources.size;
    }
  }

  /** @internal Registers a store under way, so close() waits for it. Returns `fill`. */
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
    for (const ref of this.fillSources) {
      const source = ref.deref();
      if (source !== undefined) pending.push(...source.pendingFills());
    }
    if (pending.length > 0) await settledWithin(pending, CLOSE_WAIT_MS);
    const left = (await this.queue?.close(Math.max(0, deadline - performance.now()))) ?? 0;
    if (left > 0) {
      // Named, so that they can be made again once Redis answers (another instance, the next start).
      const err = new TierCacheInvalidationError(`tiercache: closed with ${left} invalidation(s) that Redis could not take (${describeLost(this.queue!.pending())}); other instances were not told (their L1 TTL bounds how long they may serve the old entries)`);
      this.reportError(err, 'invalidations lost at close()', 'close');
    }
    // QUIT gets what is left of CLOSE_WAIT_MS (half a second at most each): close() keeps to its bound.
    const quitWithin = () => Math.min(QUIT_WAIT_MS, Math.max(0, deadline - performance.now()));
    await this.bus?.close(quitWithin());
    this.store.l2?.detach();
    if (this.redis?.owned) {
      const client = this.redis.client;
      // Its own ready check may still fail after this (a Redis that answered nothing: the check times out
      // about when a caller's one command timeout ends): an 'error' nobody listens to, which ioredis
      // prints to stderr as unhandled. Closed is closed: nothing left to report.
      client.on('error', () => undefined);
      try {
        await Promise.race([client.quit(), new Promise((resolve) => setTimeout(resolve, quitWithin()).unref())]);
      } catch {
        // already closed or unreachable
      }
      client.disconnect();
    }
    this.store.l1?.clear();
  }

  /** @internal reports a failure to 'error' listeners (if any) and the logger. */
  reportError(err: Error, message: string, where: ErrorSource = 'middleware'): void {
    redactCredentials(err);
    if (this.options.logger) this.log('warn', { err, where }, message);
    else debug('%s: %s', message, err.message);
    if (this.listenerCount('error') > 0) this.emitSafely('error', { err, where });
  }

  /**
   * @internal The tiers a store of `key` just made reached: L1 if it holds the
   * key now (it refuses an entry over its bound, dropping any older copy), L2
   * while Redis is reachable, unless the store left L2 out (`l1Only`: Redis
   * cannot hold the entry).
   */
  storedTiers(key: string, l1Only = false): readonly CacheTier[] {
    const { l1, l2 } = this.store;
    const inL2 = !l1Only && l2 !== undefined && l2.state === 'ok';
    if (l1?.peek(key) === undefined) return L2_ONLY;
    return inL2 ? BOTH_TIERS : L1_ONLY_TIERS;
  }

  /** The 'store' event of a data-API value (`l1Only`: Redis cannot hold it, see storedTiers). */
  private storeEvent(scope: DataScope, key: string, storeKey: string, bytes: number, startedAt: number, l1Only = false): StoreEvent {
    const event: StoreEvent = { key, route: DATA_ROUTE, tiers: this.storedTiers(storeKey, l1Only), bytes, fillMs: Math.max(0, this.now() - startedAt) };
    return scope.name === undefined ? event : { ...event, namespace: scope.name };
  }

  /**
   * Emits every event of the cache itself: what Redis's callbacks report (a
   * state change, another instance's invalidation, a failure), every 'error',
   * and the data API's and invalidations' outcomes. A listener that throws is
   * logged, never thrown into ioredis (where nothing catches it and the
   * process ends) nor at a caller: a metrics bug must not fail a get() (at
   * once, out of an L1 hit), nor leave a getOrSet()'s fill lock held for
   * other instances to wait out.
   */
  private emitSafely<E extends keyof TierCacheEvents>(event: E, payload: TierCacheEvents[E]): void {
    try {
      this.emit(event, payload);
    } catch (err) {
      if (this.options.logger) this.log('warn', { err, event }, `a '${event}' listener threw`);
      else debug("a '%s' listener threw: %s", event, (err as Error)?.message);
    }
  }

  /** Worth an info line (a recovery, say); nothing is emitted. */
  private reportInfo(message: string): void {
    if (this.options.logger) this.log('info', {}, message);
    else debug('%s', message);
  }

  /**
   * A line to the logger, which runs in Redis's callbacks and in calls: one that throws (a broken
   * destination, a serializer that fails on the error) is left for debuglog, never thrown into ioredis
   * (where nothing catches it and the process ends) or at a caller.
   */
  private log(level: 'warn' | 'info', obj: object, message: string): void {
    try {
      this.options.logger![level](obj, `tiercache: ${message}`);
    } catch (err) {
      debug('the logger threw on "%s": %s', message, (err as Error)?.message);
    }
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

  /** Validated ttl and tags; the tags always start with the entry's own key tag, then the scope's. */
  private resolveSetOptions(scope: DataScope, storeKey: string, options: SetOptions | undefined): { ttl: number; tags: readonly string[] } {
    let ttl = this.options.ttl ?? DEFAULT_DATA_TTL;
    let tags: readonly string[] = ownTags(scope, storeKey);
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') throw new TypeError('tiercache: options must be an object');
      for (const k of Object.keys(options)) {
        if (k !== 'ttl' && k !== 'tags') throw new TypeError(`tiercache: unknown option '${k}' (known: ttl, tags)`);
      }
      if (options.ttl !== undefined) ttl = parseTtl('ttl', options.ttl, DATA_TTL_INSTEAD);
      if (options.tags !== undefined) {
        if (!Array.isArray(options.tags) || options.tags.some((t) => typeof t !== 'string' || t === '')) {
          throw new TypeError('tiercache: tags must be an array of non-empty strings');
        }
        tags = [...new Set([...tags, ...options.tags.map(wellFormedTag)])];
      }
    }
    return { ttl, tags };
  }

  /**
   * One key, everywhere: drops it from L1 here, bumps its key tag (so fills of
   * it under way anywhere never land, and every L1 copy stops matching),
   * deletes it from L2 and tells the other instances. `bumped`: the message
   * alone is left to send (a pull's take did the Redis side, or may have).
   * `setBefore`: it stands for a set() Redis could not take (see Invalidation).
   */
  private async dropKey(storeKey: string, what: string, key: string, namespace: string | undefined, strict: boolean, bumped?: BusMessage, setBefore?: number, steps?: number): Promise<InvalidateResult> {
    this.invalidations++;
    this.store.l1?.delete(storeKey);
    const tag = keyTag(storeKey);
    let delivered = false;
    try {
      const op: Invalidation = setBefore === undefined ? { kind: 'key', key: storeKey, tag } : { kind: 'key', key: storeKey, tag, setBefore, steps };
      const result = await this.invalidate(op, what, strict, bumped);
      delivered = result.delivered;
      return result;
    } finally {
      if (this.listenerCount('invalidate') > 0) this.emitSafely('invalidate', localInvalidation([tag], delivered, { key, namespace }));
    }
  }

  /**
   * The message of a pull whose second step took its entry at the key
   * version it read and moved the counter on (see CLAIM): every L1 copy of
   * the key is dropped. Or, when a set() had replaced the entry since, the
   * version that set() moved the counter to, which L1 copies of the pulled
   * value recorded less than: they stop matching, the newer value's do not.
   */
  private pulledMessage(storeKey: string, tag: string, pulled: ClaimSettled): BusMessage {
    const version = pulled.version!;
    const versions = this.store.versions;
    if (pulled.replaced) {
      versions.raise(tag, version);
      return { tags: [[tag, version]] };
    }
    versions.bumpedInRedis(tag, version);
    return { tags: [[tag, version]], keys: [storeKey] };
  }

  /**
   * Applies `op` here and hands it to the queue (with an L2); reports it when
   * Redis could not take it. `bumped`: its message, its Redis side done.
   */
  private async invalidate(op: Invalidation, what: string, strict: boolean, bumped?: BusMessage): Promise<InvalidateResult> {
    const queue = this.queue;
    if (queue === undefined) {
      // L1 only: local versions are the whole truth.
      const versions = this.store.versions;
      if (op.kind === 'clear') await versions.bumpEpoch();
      else await versions.bump(op.kind === 'tags' ? op.tags : [op.tag]);
      return DELIVERED;
    }
    const { delivered, error } = await queue.submit(op, bumped);
    if (delivered) return DELIVERED;
    const err = new TierCacheInvalidationError(
      `tiercache: ${what} was applied on this instance and queued: Redis could not take it, so other instances will be told when it answers again (${queue.length} invalidation(s) waiting)`,
      { cause: error },
    );
    this.reportError(err, 'invalidation queued until Redis answers again', 'invalidation');
    if (strict) throw err;
    return QUEUED;
  }
}

/** How many of the tags close() could not deliver its error names: the backlog holds up to MAX_QUEUED. */
const LOST_NAMED = 20;

/** The tags (a key's is `key:<store key>`) and clears of undelivered invalidations, for an error message; the first LOST_NAMED tags. */
function describeLost(lost: readonly Invalidation[]): string {
  const names: string[] = [];
  let count = 0;
  for (const op of lost) {
    const tags = op.kind === 'clear' ? ['clear()'] : op.kind === 'tags' ? op.tags.map((t) => JSON.stringify(t)) : [JSON.stringify(op.tag)];
    for (const name of tags) if (count++ < LOST_NAMED) names.push(name);
  }
  return count > LOST_NAMED ? `${names.join(', ')} and ${count - LOST_NAMED} more` : names.join(', ');
}

/** Whether an invalidation still queued makes a set() of a value with `tags` wait for it (see InvalidationQueue.covers). */
function queueCovers(queue: InvalidationQueue, versions: TagVersions, tags: readonly string[]): boolean {
  return queue.length !== 0 && versions.pendingAmong(tags) && queue.covers(tags);
}

/**
 * ioredis errors carry the command they answer: the arguments of AUTH (and
 * of HELLO, which may authenticate) are the password, which a logger's error
 * serializer would write out. Masked in place before the error is reported.
 */
function redactCredentials(err: Error): void {
  const command = (err as { command?: { name?: unknown; args?: unknown } } | null)?.command;
  if (typeof command !== 'object' || command === null || !Array.isArray(command.args)) return;
  const name = typeof command.name === 'string' ? command.name.toLowerCase() : '';
  if (name === 'auth' || name === 'hello') command.args = command.args.map(() => '***');
}

const L1_ONLY_TIERS: readonly CacheTier[] = Object.freeze(['L1']);
const L2_ONLY: readonly CacheTier[] = Object.freeze(['L2']);
const BOTH_TIERS: readonly CacheTier[] = Object.freeze(['L1', 'L2']);

/** A data-API hit; the view's name for a namespace() view's key. */
function hitEvent(scope: DataScope, key: string, tier: CacheTier): HitEvent {
  const namespace = scope.name;
  return namespace === undefined ? { key, tier, route: DATA_ROUTE, stale: false } : { key, tier, route: DATA_ROUTE, stale: false, namespace };
}

function missEvent(scope: DataScope, key: string, collapsed = false): MissEvent {
  const namespace = scope.name;
  const event: MissEvent = collapsed ? { key, route: DATA_ROUTE, collapsed } : { key, route: DATA_ROUTE };
  return namespace === undefined ? event : { ...event, namespace };
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
