// Tag versions and the namespace epoch, as this instance knows them. An entry
// may be served only if the epoch and every tag version it recorded at fill
// time are still current. The local map makes that check free on an L1 hit;
// Redis is the source of truth, asked when a tag is unknown here or when the
// invalidation bus is not connected (then nothing local is trusted).
import { MAP_SLOT_BYTES, RecentMap, stringBytes } from './recent-map.js';
import type { FillStamp } from './entry.js';

/** Where versions live when there is an L2: Redis counters (see redis-scripts.ts). */
export interface VersionSource {
  /** Current epoch and versions of `tags` (missing counters are created). */
  read(tags: readonly string[]): Promise<{ epoch: number; versions: number[] }>;
  /** Increments the counters of `tags`; returns the new versions. */
  bump(tags: readonly string[]): Promise<number[]>;
  /** Increments the namespace epoch; returns the new epoch. */
  bumpEpoch(): Promise<number>;
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
  /** Bumped by reset(); see FillStamp.generation. */
  private generation = 0;

  constructor(options: TagVersionsOptions) {
    this.source = options.source;
    this.trusted = options.source === undefined;
    this.epoch = options.source === undefined ? 0 : undefined;
    this.map = new RecentMap<string, number>(options.maxTags, options.maxBytes, tagBytes);
  }

  /** Bytes the local map holds (bounded by maxBytes). */
  get localBytes(): number {
    return this.map.bytes;
  }

  /** The epoch as known here (undefined until read). */
  get knownEpoch(): number | undefined {
    return this.epoch;
  }

  /** Reads the epoch from Redis (creating it if missing) without learning it. */
  async readEpoch(): Promise<number> {
    if (this.source === undefined) return 0;
    return (await this.source.read([])).epoch;
  }


  /**
   * Decides from local state alone (the L1-hit path: no I/O, no allocation).
   * Known versions only ever rise, so "older than known" is final even when
   * local state is not trusted; "current" needs trust (the bus connected).
   */
  check(entry: FillStamp): Validity {
    const epoch = this.epoch;
    if (epoch !== undefined && entry.epoch < epoch) return Validity.Invalid;
    let decided = this.trusted && epoch !== undefined && entry.epoch === epoch;
    const tags = entry.tags;
    for (let i = 0; i < tags.length; i++) {
      const current = this.map.get(tags[i]!);
      if (current === undefined) {
        if (this.source === undefined) return Validity.Invalid;
        decided = false;
        continue;
      }
      const recorded = entry.versions[i]!;
      if (recorded < current) return Validity.Invalid;
      // An entry never records a version that was not current somewhere, so a
      // larger one means this instance missed a bump: learn it.
      if (recorded > current) this.map.set(tags[i]!, recorded);
    }
    return decided ? Validity.Valid : Validity.Unknown;
  }

  /**
   * Decides, asking Redis when local state cannot. When Redis cannot answer
   * either, the entry is served: an outage costs freshness bounded by the
   * L1 TTL, never availability.
   */
  async verify(entry: FillStamp): Promise<boolean> {
    const local = this.check(entry);
    if (local !== Validity.Unknown) return local === Validity.Valid;
    if (this.source === undefined) return false;
    const generation = this.generation;
    let current: { epoch: number; versions: number[] };
    try {
      current = await this.source.read(entry.tags);
    } catch {
      return true;
    }
    // Local state was forgotten while the read was out: its answer may predate what was missed.
    if (generation !== this.generation) return false;
    this.learn(entry.tags, current.epoch, current.versions);
    if (entry.epoch !== current.epoch) return false;
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

  /** The epoch and versions a fill that begins now records. */
  async stamp(tags: readonly string[]): Promise<FillStamp> {
    const local = this.stampLocally(tags);
    if (local !== undefined) return local;
    const generation = this.generation;
    try {
      const current = await this.source!.read(tags);
      if (generation === this.generation) this.learn(tags, current.epoch, current.versions);
      return { epoch: current.epoch, tags, versions: current.versions, generation };
    } catch {
      return { epoch: this.epoch ?? 0, tags, versions: tags.map((t) => this.map.get(t) ?? this.makeUp(t)), generation };
    }
  }

  /** A stamp from local state when it is trusted and complete; undefined otherwise. */
  stampLocally(tags: readonly string[]): FillStamp | undefined {
    const generation = this.generation;
    if (this.source === undefined) {
      const versions = tags.length === 0 ? EMPTY : tags.map((t) => this.map.get(t) ?? this.makeUp(t));
      return { epoch: this.epoch!, tags, versions, generation };
    }
    if (!this.trusted || this.epoch === undefined) return undefined;
    if (tags.length === 0) return { epoch: this.epoch, tags, versions: EMPTY, generation };
    const versions: number[] = new Array(tags.length);
    for (let i = 0; i < tags.length; i++) {
      const v = this.map.get(tags[i]!);
      if (v === undefined) return undefined;
      versions[i] = v;
    }
    return { epoch: this.epoch, tags, versions, generation };
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
        return v;
      });
    }
    const versions = await this.source.bump(tags);
    for (let i = 0; i < tags.length; i++) this.raise(tags[i]!, versions[i]!);
    return versions;
  }

  /** Moves the namespace epoch (clear()). Throws if Redis fails. */
  async bumpEpoch(): Promise<number> {
    if (this.source === undefined) {
      // Local epoch: entries (and fills under way) from before clear() no longer match.
      this.epoch = this.epoch! + 1;
      return this.epoch;
    }
    const epoch = await this.source.bumpEpoch();
    this.raiseEpoch(epoch);
    return epoch;
  }

  /** Learns a version from Redis or the bus; never lowers one. */
  raise(tag: string, version: number): void {
    const current = this.map.get(tag);
    if (current === undefined || version > current) this.map.set(tag, version);
  }

  raiseEpoch(epoch: number): void {
    if (this.epoch === undefined || epoch > this.epoch) this.epoch = epoch;
  }

  /** Forgets everything learned (after a missed message or a reconnect of the bus). */
  reset(): void {
    this.generation++;
    this.map.clear();
    if (this.source !== undefined) this.epoch = undefined;
  }

  private learn(tags: readonly string[], epoch: number, versions: readonly number[]): void {
    this.raiseEpoch(epoch);
    for (let i = 0; i < tags.length; i++) this.raise(tags[i]!, versions[i]!);
  }

  private makeUp(tag: string): number {
    const v = ++this.localClock;
    // Without an L2 this becomes the tag's version; with one it only labels
    // fills made while Redis is unreachable and is never stored in the map,
    // so Redis's (much larger) values win as soon as they are read.
    if (this.source === undefined) this.map.set(tag, v);
    return v;
  }
}
