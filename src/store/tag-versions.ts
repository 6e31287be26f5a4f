// Tag versions and the namespace epoch, as this instance knows them. An entry
// may be served only if the epoch and every tag version it recorded at fill
// time are still current. The local map makes that check free on an L1 hit;
// Redis is the source of truth, asked when a tag is unknown here or when the
// invalidation bus is not connected (then nothing local is trusted).
// Invalidations Redis has not taken yet (see invalidation-queue.ts) are
// pending here: until they are delivered, an entry that recorded a version of
// a pending tag from before the invalidation is invalid, whatever Redis says.
import { MAP_SLOT_BYTES, RecentMap, stringBytes } from './recent-map.js';
import type { RedisClient } from './redis-client.js';
import type { FillStamp } from './entry.js';

/**
 * The epoch as L2's server check found it, and who served the namespace
 * before: the 'same' Redis process (nothing moved), an 'other' one (a
 * restart, maybe from a snapshot, or a failover), or 'none' recorded (a new
 * namespace, FLUSHALL). Unless 'same', the epoch moved past everything before.
 */
export interface ServerEpoch {
  readonly epoch: number;
  readonly previous: 'same' | 'other' | 'none';
  /** The server's clock (TIME, µs) as the check ran. */
  readonly time?: number;
}

/** Where versions live when there is an L2: Redis counters (see redis-scripts.ts). */
export interface VersionSource {
  /** Current epoch and versions of `tags` (missing counters are created). `since`: see L2Store.run. */
  read(tags: readonly string[], since?: number): Promise<{ epoch: number; versions: number[] }>;
  /** Increments the counters of `tags` (each past its floor, when given); returns the new versions. */
  bump(tags: readonly string[], floors?: readonly number[]): Promise<number[]>;
  /** Increments the namespace epoch (past `floor`); returns the new epoch. */
  bumpEpoch(floor?: number): Promise<number>;
  /** The epoch, moved past `floor` and everything before unless the same Redis process serves the namespace as last time. */
  serverEpoch(floor: number, client?: RedisClient): Promise<ServerEpoch>;
  /** The Redis key of a tag's counter, and of the epoch: a fill reads them in its own first round trip. */
  counterKey(tag: string): string;
  readonly epochKey: string;
}

/** What a fill's stamp needs from Redis (see TagVersions.needs). */
export interface StampNeeds {
  /** Tags whose versions are not known here. */
  readonly tags: readonly string[];
  /** Whether the epoch must be read too. */
  readonly epoch: boolean;
  /** TagVersions' generation when asked (see FillStamp.generation). */
  readonly generation: number;
}

/** Counter values read from Redis for `needs`; `epoch` when it was read. */
export interface StampRead {
  readonly epoch: number | undefined;
  readonly versions: ReadonlyArray<number | undefined>;
}

export const Validity = {
  Valid: 0,
  Invalid: 1,
  /** Not decidable from local state: ask the source. */
  Unknown: 2,
} as const;
export type Validity = (typeof Validity)[keyof typeof Validity];

export interface TagVersionsOptions {
  readonly source: VersionSource | undefined;
  /** How many tag versions to keep locally. */
  readonly maxTags: number;
  /**
   * How many bytes of tags to keep locally: one key tag per stored key,
   * of any length, so a count alone does not bound the memory they hold.
   */
  readonly maxBytes?: number;
}

/** Heap of one tag in the local map: its slot and, at worst, a string of its own. */
function tagBytes(tag: string): number {
  return MAP_SLOT_BYTES + stringBytes(tag.length);
}

const EMPTY: readonly number[] = [];
const EMPTY_TAGS: readonly string[] = [];

/** Buckets of TagVersions.ownFloors (32 KiB). */
const OWN_FLOOR_BUCKETS = 4096;

/**
 * A tag's bucket in ownFloors: FNV-1a over its UTF-16 code units, then
 * murmur3's finalizer (FNV's low bits depend on the low bits alone, and
 * tags that differ in their last characters, `key:...?page=1` and `=2`,
 * crowded into few buckets).
 */
function bucketOf(tag: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < tag.length; i++) h = Math.imul(h ^ tag.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % OWN_FLOOR_BUCKETS;
}

export class TagVersions {
  /**
   * Whether local state may be trusted without asking Redis: always without
   * an L2; with one, only while the invalidation bus is connected.
   */
  trusted: boolean;
  /** The namespace epoch as known here; undefined until read from Redis. */
  private epoch: number | undefined;
  private readonly map: RecentMap<string, number>;
  private readonly source: VersionSource | undefined;
  /**
   * Versions this instance makes up itself (no L2, or Redis unreachable while
   * stamping): always larger than any value it handed out before, so a tag
   * forgotten by the bounded map comes back with a version no entry recorded.
   */
  private localClock = 0;
  /**
   * Without an L2, only invalidated tags are kept; any other tag's version is
   * this floor: a version below it may have been bumped and forgotten since,
   * so it is invalid. It rises to the largest version the bounded map drops,
   * so per-URL tags (key:...) cost nothing until someone invalidates them.
   */
  private floor = 0;
  /**
   * With an L2: per bucket of tags (a hash of the tag), the highest version
   * of a tag this instance invalidated itself and then let go (the bounded
   * map dropped it, or it was too long to keep). Read only when Redis cannot
   * vouch for an L1 entry (servableInOutage): an entry below its tag's bucket, for a tag no longer
   * known here, may be one this instance invalidated (DESIGN §4(1)). Per
   * bucket, as versions of different tags (each counter starts from the clock
   * when it is made) say nothing about each other; a collision only refuses
   * more. Versions learned from others or from reads raise nothing: that
   * would refuse nearly every L1 entry in an outage after ordinary traffic.
   */
  private readonly ownFloors = new Float64Array(OWN_FLOOR_BUCKETS);
  /** With an L2: tags this instance bumped, with the version, while the map may still hold them. */
  private readonly ownBumps = new Map<string, number>();
  private readonly maxOwnBumps: number;
  /** Bumped by reset(); see FillStamp.generation. */
  private generation = 0;
  /** The highest epoch ever known here (survives reset): the floor of epoch bumps. */
  private highestEpoch = 0;
  /**
   * Tags of invalidations not yet delivered to Redis, each with a marker
   * version (from localClock: below every Redis version) that fills begun
   * after the invalidation record instead of a real one. An entry with any
   * other version of a pending tag predates the invalidation.
   */
  private readonly pendingTags = new Map<string, number>();
  /** Marker epoch of a clear() not yet delivered (same rule, for every entry). */
  private pendingEpoch: number | undefined;
  /** pendingTags.size, or 1 with a pending clear: the hot path tests this one field. */
  private pendingCount = 0;
  /**
   * With an L2: tags forget() dropped, with the version known then. Versions
   * only rise, so an entry that recorded less is still invalid: only whether
   * one that recorded as much is current must be read again. Read only for a
   * tag the map does not hold (never on a hit the map decides).
   */
  private readonly forgotten: RecentMap<string, number>;

  constructor(options: TagVersionsOptions) {
    this.source = options.source;
    this.trusted = options.source === undefined;
    this.epoch = options.source === undefined ? 0 : undefined;
    this.maxOwnBumps = options.maxTags;
    this.map = new RecentMap<string, number>(options.maxTags, options.maxBytes, tagBytes, (dropped) => (this.source === undefined ? this.raiseFloor(dropped) : this.raiseOwnFloor(dropped)));
    // Filled by refused stores only (rare): a quarter of the map's bounds.
    this.forgotten = new RecentMap<string, number>(Math.ceil(options.maxTags / 4), options.maxBytes === undefined ? undefined : options.maxBytes / 4, tagBytes);
  }

  /** Bytes the local map holds (bounded by maxBytes). */
  get localBytes(): number {
    return this.map.bytes;
  }

  /** The epoch as known here (undefined until read). */
  get knownEpoch(): number | undefined {
    return this.epoch;
  }

  /**
   * The epoch in Redis, moved first (past every epoch known here) unless the
   * same Redis process serves the namespace as last time. Learns nothing: a
   * moved epoch means local state must be dropped first (the caller's job).
   */
  async serverEpoch(client?: RedisClient): Promise<ServerEpoch> {
    if (this.source === undefined) return { epoch: 0, previous: 'same' };
    return this.source.serverEpoch(this.highestEpoch, client);
  }

  /**
   * Applies an invalidation of `tags` locally before Redis has it: entries
   * recording older versions stop being valid here at once, and fills that
   * begin from now on record a fresh marker version.
   */
  markPending(tags: readonly string[]): void {
    for (const tag of tags) this.pendingTags.set(tag, ++this.localClock);
    // Stryker disable next-line ConditionalExpression,EqualityOperator: the count is only compared with 0, and a pending epoch or tag makes it non-zero either way
    this.pendingCount = this.pendingEpoch !== undefined ? 1 : this.pendingTags.size;
  }

  /** The same for clear(): every entry from before is invalid here until the queue is delivered. */
  markPendingClear(): void {
    this.pendingTags.clear();
    this.pendingEpoch = ++this.localClock;
    this.pendingCount = 1;
  }

  /** Whether an invalidation not yet delivered covers an entry with `tags` (one of them, or a clear()). */
  pendingAmong(tags: readonly string[]): boolean {
    if (this.pendingCount === 0) return false;
    if (this.pendingEpoch !== undefined) return true;
    for (const tag of tags) if (this.pendingTags.has(tag)) return true;
    return false;
  }

  /**
   * Every invalidation of `tags` (and, with `epoch`, every clear()) reached
   * Redis, its new versions learned: they are pending no more, though others
   * still are. Entries that recorded their markers are invalid from now on,
   * as after clearPending().
   */
  settlePending(tags: readonly string[], epoch: boolean): void {
    if (this.pendingCount === 0) return;
    for (const tag of tags) this.pendingTags.delete(tag);
    if (epoch) this.pendingEpoch = undefined;
    this.pendingCount = this.pendingEpoch !== undefined ? 1 : this.pendingTags.size;
  }

  /** Every pending invalidation reached Redis (and its new versions were learned). */
  clearPending(): void {
    this.pendingTags.clear();
    this.pendingEpoch = undefined;
    this.pendingCount = 0;
  }

  /** The generation now: it moves whenever local state is reset (messages may have been missed). */
  currentGeneration(): number {
    return this.generation;
  }

  /**
   * Decides from local state alone (the L1-hit path: no I/O, no allocation).
   * Known versions only ever rise, so "older than known" is final even when
   * local state is not trusted; "current" needs trust (the bus connected).
   */
  check(entry: FillStamp): Validity {
    if (this.pendingCount !== 0) return this.checkWhilePending(entry);
    const epoch = this.epoch;
    // Read once: an L1 entry (packed-entry.ts) reads it from its bytes each time.
    const recorded = entry.epoch;
    // Unknown (read again after a reset or a refused store), the epoch is still past every one known before.
    if (recorded < (epoch ?? this.highestEpoch)) return Validity.Invalid;
    // An entry's epoch is a number: equal to an unknown (undefined) epoch never.
    const decided = this.trusted && recorded === epoch;
    return this.checkTags(entry, decided);
  }

  /** check() while invalidations wait for Redis: their tags (or, after clear(), the epoch) must carry the current marker. */
  private checkWhilePending(entry: FillStamp): Validity {
    const tags = entry.tags;
    // Stryker disable next-line EqualityOperator: one index past the end reads undefined, which matches nothing
    for (let i = 0; i < tags.length; i++) {
      const marker = this.pendingTags.get(tags[i]!);
      if (marker !== undefined && entry.versions[i] !== marker) return Validity.Invalid;
    }
    const pendingEpoch = this.pendingEpoch;
    if (pendingEpoch !== undefined) {
      if (entry.epoch !== pendingEpoch) return Validity.Invalid;
      return this.checkTags(entry, this.trusted);
    }
    const epoch = this.epoch;
    if (entry.epoch < (epoch ?? this.highestEpoch)) return Validity.Invalid;
    return this.checkTags(entry, this.trusted && entry.epoch === epoch);
  }

  /** The tag part of check(); pending tags were checked by the caller. */
  private checkTags(entry: FillStamp, decided: boolean): Validity {
    const tags = entry.tags;
    const versions = entry.versions;
    // Stryker disable next-line ConditionalExpression: a shortcut: the pending map is empty when nothing is pending
    const pending = this.pendingCount !== 0;
    for (let i = 0; i < tags.length; i++) {
      if (pending && this.pendingTags.has(tags[i]!)) continue;
      const current = this.map.get(tags[i]!);
      const recorded = versions[i]!;
      if (current === undefined) {
        if (this.source === undefined) {
          if (recorded < this.floor) return Validity.Invalid;
          continue;
        }
        // Forgotten after a refused store: what was known then still bounds it from below.
        const floor = this.forgotten.get(tags[i]!);
        if (floor !== undefined && recorded < floor) return Validity.Invalid;
        decided = false;
        continue;
      }
      if (recorded < current) return Validity.Invalid;
      // An entry never records a version that was not current somewhere, so a
      // larger one means this instance missed a bump: learn it (only from an
      // entry of the current epoch: older ones may come from a Redis that lost
      // increments since, and would teach a version Redis will not reach soon).
      if (
        // Stryker disable next-line ConditionalExpression,EqualityOperator: recorded >= current here (a smaller one returned above): setting an equal version changes nothing
        recorded > current &&
        entry.epoch === this.epoch &&
        this.source !== undefined
      ) {
        this.map.set(tags[i]!, recorded);
      }
    }
    return decided ? Validity.Valid : Validity.Unknown;
  }

  /**
   * Decides, asking Redis when local state cannot: undefined when Redis did not
   * answer either (an L1 entry may then be served as servableInOutage says; an
   * L2 entry never is).
   */
  async vouch(entry: FillStamp): Promise<boolean | undefined> {
    const local = this.check(entry);
    if (local !== Validity.Unknown) return local === Validity.Valid;
    if (this.source === undefined) return false;
    return this.askRedis(entry);
  }

  /**
   * Whether `entry`, which local state cannot vouch for, may be served while
   * Redis cannot be asked: yes (an outage costs freshness bounded by the L1
   * TTL, never availability), unless it recorded, for a tag the bounded map
   * let go, a version below one this instance invalidated and let go (ownFloors).
   */
  servableInOutage(entry: FillStamp): boolean {
    return !this.belowFloor(entry);
  }

  /**
   * Redis's word on `entry` (one round trip, under L2's timeout), whatever
   * local state says: true when its epoch and every version it recorded are
   * current there, false when one moved, undefined when Redis did not answer.
   * With an L2 only.
   */
  async askRedis(entry: FillStamp): Promise<boolean | undefined> {
    const generation = this.generation;
    let current: { epoch: number; versions: number[] };
    try {
      current = await this.source!.read(entry.tags);
    } catch {
      return undefined;
    }
    // Local state was forgotten while the read was out: its answer may predate what was missed.
    if (generation !== this.generation) return false;
    this.learn(entry.tags, current.epoch, current.versions);
    if (entry.epoch !== current.epoch) return false;
    // Stryker disable next-line EqualityOperator: one index past the end reads undefined, which matches nothing
    for (let i = 0; i < entry.tags.length; i++) {
      if (entry.versions[i] !== current.versions[i]) return false;
    }
    return true;
  }

  /**
   * Whether a fill stamped with `stamp` may still be stored: false once an
   * invalidation known here has overtaken it (storing it would only push out
   * a newer entry, and it could never be served).
   */
  stillCurrent(stamp: FillStamp): boolean {
    if (stamp.generation !== undefined && stamp.generation !== this.generation) return false;
    return this.check(stamp) !== Validity.Invalid;
  }

  /**
   * The epoch and versions a fill that begins now records. `since`: when the
   * fill began waiting on Redis, if before (its lookup failed): what Redis is
   * asked here waits only what is left of that one command timeout (L2Store.run).
   */
  async stamp(tags: readonly string[], since?: number): Promise<FillStamp> {
    const local = this.stampLocally(tags);
    if (local !== undefined) return local;
    const generation = this.generation;
    let stamp: FillStamp;
    try {
      const current = await this.source!.read(tags, since);
      if (generation === this.generation) this.learn(tags, current.epoch, current.versions);
      stamp = { epoch: current.epoch, tags, versions: current.versions, generation };
    } catch {
      stamp = { epoch: this.epoch ?? 0, tags, versions: tags.map((t) => this.map.get(t) ?? this.makeUp()), generation };
    }
    return this.pendingCount === 0 ? stamp : this.withMarkers(stamp);
  }

  /**
   * What Redis must tell before a fill of an entry with `tags` can be
   * stamped: nothing when local state is trusted and knows them all, else the
   * unknown tags (all of them, and the epoch, while local state is not trusted).
   */
  needs(tags: readonly string[]): StampNeeds {
    const generation = this.generation;
    if (this.source === undefined) return { tags: EMPTY_TAGS, epoch: false, generation };
    if (!this.trusted || this.epoch === undefined) return { tags, epoch: true, generation };
    let unknown: string[] | undefined;
    for (const tag of tags) {
      if (this.map.get(tag) === undefined) (unknown ??= []).push(tag);
    }
    return { tags: unknown ?? EMPTY_TAGS, epoch: false, generation };
  }

  /**
   * Forgets what is known of `tags`: Redis refused a store that recorded those
   * versions (a counter moved, or expired while this instance still knew it;
   * with `epoch`, the epoch moved: a FLUSHALL), so the next fill reads them
   * again. Never makes an entry valid, nor undecided where it was invalid:
   * what was known stays a floor (forgotten, highestEpoch), or an entry from
   * before an invalidation made or heard here a moment before would look
   * current again to what takes an undecided entry (a waiter on a fill).
   */
  forget(tags: readonly string[], epoch = false): void {
    for (const tag of tags) {
      const known = this.map.get(tag);
      if (known === undefined) continue;
      this.map.delete(tag);
      if (this.source !== undefined) this.forgotten.set(tag, known);
      // Stryker disable next-line ConditionalExpression,EqualityOperator: the floor is read only without Redis; raising it to its own value changes nothing
      if (this.source === undefined && known > this.floor) this.floor = known;
      this.letGo(tag);
    }
    // Unknown until read again (the next fill's lookup reads it): never lower, and never trusted meanwhile.
    // Stryker disable next-line ConditionalExpression: forget() follows a store Redis refused, so it is never called without an L2, whose epoch this would drop
    if (epoch && this.source !== undefined) this.epoch = undefined;
  }

  /** A store found every counter `stamp` recorded still current in Redis: learn them (unless local state was reset since). */
  learnStored(stamp: FillStamp): void {
    if (stamp.generation !== undefined && stamp.generation !== this.generation) return;
    this.learn(stamp.tags, stamp.epoch, stamp.versions);
  }

  /** The Redis keys of what `needs` names: the epoch first when it is needed, then the tags' counters. */
  counterKeys(needs: StampNeeds): string[] {
    const source = this.source!;
    const keys = needs.epoch ? [source.epochKey] : [];
    for (const tag of needs.tags) keys.push(source.counterKey(tag));
    return keys;
  }

  /** The Redis key of a tag's counter (with an L2). */
  counterKeyOf(tag: string): string {
    return this.source!.counterKey(tag);
  }

  epochCounterKey(): string {
    return this.source!.epochKey;
  }

  /**
   * The stamp of a fill whose `needs` Redis answered with `read` (in the same
   * round trip as the lookup); learns what was read, but for the counters
   * the lookup created (`created`). Tags forgotten here
   * since get versions no entry can match (the fill is then not stored in L2).
   */
  stampFrom(tags: readonly string[], needs: StampNeeds, read: StampRead, created: readonly string[] = EMPTY_TAGS): FillStamp {
    const current = needs.generation === this.generation;
    if (current) {
      if (read.epoch !== undefined) this.raiseEpoch(read.epoch);
      needs.tags.forEach((tag, i) => {
        const v = read.versions[i];
        // A counter this lookup made is not learned: it may be deleted again when the fill
        // stores nothing, and other fills here must read it (and so share it) meanwhile.
        if (v !== undefined && !created.includes(tag)) this.raise(tag, v);
      });
    }
    // Stryker disable next-line ArrayDeclaration: preallocated for speed; every index is assigned
    const versions: number[] = new Array(tags.length);
    // Stryker disable next-line EqualityOperator: one index past the end adds a version that no tag has and nothing reads
    for (let i = 0; i < tags.length; i++) {
      const at = needs.tags.indexOf(tags[i]!);
      // A tag the lookup did not read (at -1) reads undefined. One known when the lookup was asked for and
      // forgotten since (another fill's store was refused: all its tags go, shared ones too) records what was
      // known: a made-up version would be refused here once the tag is read again, unmoved, and that refusal
      // would make the next fills forget the tag in turn. Redis's STORE still refuses it if the tag moved.
      versions[i] = read.versions[at] ?? this.map.get(tags[i]!) ?? this.forgotten.get(tags[i]!) ?? this.makeUp();
    }
    const stamp: FillStamp = { epoch: read.epoch ?? this.epoch ?? 0, tags, versions, generation: needs.generation };
    return this.pendingCount === 0 ? stamp : this.withMarkers(stamp);
  }

  /**
   * Decides an entry found in Redis together with the counters `needs`
   * named: learns them, then checks locally and, where local state still
   * cannot decide, against what was read. undefined when that is not enough
   * (the entry has tags that were not read): ask vouch().
   */
  decide(entry: FillStamp, needs: StampNeeds, read: StampRead): boolean | undefined {
    if (needs.generation === this.generation) {
      if (read.epoch !== undefined) this.raiseEpoch(read.epoch);
      needs.tags.forEach((tag, i) => {
        const v = read.versions[i];
        if (v !== undefined) this.raise(tag, v);
      });
    }
    const local = this.check(entry);
    if (local !== Validity.Unknown) return local === Validity.Valid;
    if (needs.generation !== this.generation) return undefined;
    const epoch = read.epoch ?? (this.trusted ? this.epoch : undefined);
    // An entry past the epoch known here (not read this time) may record one Redis moved to without a message
    // reaching this instance yet (its epoch check reads it once a second): Redis decides.
    if (epoch === undefined) return undefined;
    if (entry.epoch < epoch) return false;
    // An entry never records a version that was not current, so one read below it was read before the entry's own
    // fill saw it (on a Cluster, a script of another slot that ran first): a stale read, not an invalidation.
    // Redis decides (askRedis reads them again: on a Redis that went back, lower again, and refused there).
    let undecided = entry.epoch > epoch;
    for (let i = 0; i < entry.tags.length; i++) {
      const at = needs.tags.indexOf(entry.tags[i]!);
      const v = at === -1 ? (this.trusted ? this.map.get(entry.tags[i]!) : undefined) : read.versions[at];
      if (v === undefined || v < entry.versions[i]!) undecided = true;
      else if (v !== entry.versions[i]) return false;
    }
    return undecided ? undefined : true;
  }

  /** A stamp from local state when it is trusted and complete; undefined otherwise. */
  stampLocally(tags: readonly string[]): FillStamp | undefined {
    const generation = this.generation;
    if (this.source === undefined) {
      // Stryker disable next-line ConditionalExpression: a shortcut: mapping no tags gives an empty array too
      const versions = tags.length === 0 ? EMPTY : tags.map((t) => this.map.get(t) ?? this.makeUp());
      return { epoch: this.epoch!, tags, versions, generation };
    }
    if (!this.trusted || this.epoch === undefined) return undefined;
    let versions: readonly number[] = EMPTY;
    // Stryker disable next-line ConditionalExpression: a shortcut: no tags give an empty array too
    if (tags.length !== 0) {
      // Stryker disable next-line ArrayDeclaration: preallocated for speed; every index is assigned
      const known: number[] = new Array(tags.length);
      for (let i = 0; i < tags.length; i++) {
        const v = this.map.get(tags[i]!);
        if (v === undefined) return undefined;
        known[i] = v;
      }
      versions = known;
    }
    const stamp = { epoch: this.epoch, tags, versions, generation };
    return this.pendingCount === 0 ? stamp : this.withMarkers(stamp);
  }

  /** A fill that begins while invalidations are pending records their markers (see pendingTags). */
  private withMarkers(stamp: FillStamp): FillStamp {
    let versions = stamp.versions;
    // Stryker disable next-line EqualityOperator: one index past the end reads undefined, which is never pending
    for (let i = 0; i < stamp.tags.length; i++) {
      const marker = this.pendingTags.get(stamp.tags[i]!);
      if (marker === undefined) continue;
      // Stryker disable next-line ConditionalExpression,EqualityOperator: copy-on-write of an array made for this stamp alone and not read again: copying always, or never, gives the same stamp
      if (versions === stamp.versions) versions = [...versions];
      (versions as number[])[i] = marker;
    }
    return { epoch: this.pendingEpoch ?? stamp.epoch, tags: stamp.tags, versions, generation: stamp.generation };
  }

  /**
   * Moves `tags` to new versions. With Redis: INCR there, then learn the
   * results (throws if Redis fails; the caller then flushes L1 instead).
   */
  async bump(tags: readonly string[]): Promise<number[]> {
    if (this.source === undefined) {
      return tags.map((t) => {
        const v = ++this.localClock;
        this.map.set(t, v);
        // A tag too long for the map is forgotten at once: the floor stands for it.
        if (this.map.get(t) !== v) this.floor = v;
        return v;
      });
    }
    // Floors: the new versions must pass every version known here, even if Redis went back.
    const versions = await this.source.bump(tags, tags.map((t) => this.map.get(t) ?? 0));
    for (let i = 0; i < tags.length; i++) this.bumpedInRedis(tags[i]!, versions[i]!);
    return versions;
  }

  /** Learns a bump this instance made in Redis (bump(), or a pull's second step: see CLAIM). */
  bumpedInRedis(tag: string, version: number): void {
    this.raise(tag, version);
    // The higher of two bumps: a tag the map let go is bumped with no floor, and a Redis that went back answers lower.
    this.ownBumps.set(tag, Math.max(this.ownBumps.get(tag) ?? 0, version));
    // A tag too long for the map is forgotten at once: its own floor stands for it.
    if (this.map.get(tag) === undefined) this.letGo(tag);
    // Too many to follow one by one: all let go, as far as an outage is concerned.
    if (this.ownBumps.size > this.maxOwnBumps) for (const t of [...this.ownBumps.keys()]) this.letGo(t);
  }

  /** Moves the namespace epoch (clear()). Throws if Redis fails. */
  async bumpEpoch(): Promise<number> {
    if (this.source === undefined) {
      // Local epoch: entries (and fills under way) from before clear() no longer match.
      this.epoch = this.epoch! + 1;
      return this.epoch;
    }
    const epoch = await this.source.bumpEpoch(this.highestEpoch);
    this.raiseEpoch(epoch);
    return epoch;
  }

  /** Learns a version from Redis or the bus; never lowers one. */
  raise(tag: string, version: number): void {
    const current = this.map.get(tag);
    // Stryker disable next-line EqualityOperator: setting a version equal to the one known changes nothing
    if (current === undefined || version > current) {
      this.map.set(tag, version);
      // A pending tag's marker stands for "after this instance's own invalidation", which check() compares alone.
      // A version learned since (another instance's invalidation, heard on the bus) is later than that: fills
      // stamped with the old marker began before it. A new marker leaves them behind (once known, over-refusing).
      if (this.pendingCount !== 0 && this.pendingTags.has(tag)) this.pendingTags.set(tag, ++this.localClock);
    }
  }

  raiseEpoch(epoch: number): void {
    // Stryker disable next-line EqualityOperator: the same for an equal epoch
    if (this.epoch === undefined || epoch > this.epoch) {
      this.epoch = epoch;
      // The same for a pending clear(): another instance's clear() heard since leaves its marker epoch behind.
      if (this.pendingEpoch !== undefined) this.pendingEpoch = ++this.localClock;
    }
    // Stryker disable next-line EqualityOperator: the same
    if (epoch > this.highestEpoch) this.highestEpoch = epoch;
  }

  /** Forgets everything learned (after a missed message or a reconnect of the bus); pending invalidations stay. */
  reset(): void {
    // Stryker disable next-line UpdateOperator: generations are only compared for equality
    this.generation++;
    this.map.clear();
    // Stryker disable next-line ConditionalExpression: the floor is read only without an L2
    if (this.source === undefined) this.floor = this.localClock;
    // Stryker disable next-line ConditionalExpression: reset() comes from the bus, and there is no bus without an L2
    if (this.source !== undefined) this.epoch = undefined;
  }

  private learn(tags: readonly string[], epoch: number, versions: readonly number[]): void {
    this.raiseEpoch(epoch);
    for (let i = 0; i < tags.length; i++) this.raise(tags[i]!, versions[i]!);
  }

  private makeUp(): number {
    // Without an L2, a tag never invalidated (or forgotten) is at the current
    // clock: every earlier bump is below it, every later one above.
    if (this.source === undefined) return this.localClock;
    // With one it only labels fills made while Redis is unreachable and is
    // never stored in the map, so Redis's (much larger) values win as soon as they are read.
    return ++this.localClock;
  }

  /** Whether `entry` recorded, for a tag the map does not hold, a version below that tag's own floor. */
  private belowFloor(entry: FillStamp): boolean {
    for (let i = 0; i < entry.tags.length; i++) {
      const tag = entry.tags[i]!;
      if (entry.versions[i]! < this.ownFloors[bucketOf(tag)]! && this.map.get(tag) === undefined) return true;
    }
    return false;
  }

  /** The map no longer holds `tag`: if this instance bumped it, its bucket of ownFloors stands for it now. */
  private letGo(tag: string): void {
    const own = this.ownBumps.get(tag);
    if (own === undefined) return;
    this.ownBumps.delete(tag);
    const b = bucketOf(tag);
    if (own > this.ownFloors[b]!) this.ownFloors[b] = own;
  }

  /** A generation of the map was dropped (with an L2): the tags this instance bumped among it are let go. */
  private raiseOwnFloor(dropped: ReadonlyMap<string, number>): void {
    if (this.ownBumps.size === 0) return;
    for (const tag of dropped.keys()) this.letGo(tag);
  }

  /** A generation of the map was dropped (no L2): what it knew now stands under the floor. */
  private raiseFloor(dropped: ReadonlyMap<string, number>): void {
    // Stryker disable next-line EqualityOperator: the same for an equal floor
    for (const v of dropped.values()) if (v > this.floor) this.floor = v;
  }
}
