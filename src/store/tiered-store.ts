// The tiered store: L1, then L2, then miss. An L2 hit warms L1 for the rest of
// the entry's life (capped by l1.ttl). Every entry is checked against the tag
// versions before it is returned; an invalid one is dropped from the tier it
// was found in. Redis failures never escape: they count as misses or no-ops.
import { decodeEntry, encodeEntry, ownBytes } from './entry-codec.js';
import type { StoredEntry } from './entry.js';
import type { L1Store, SlotMemo } from './l1-store.js';
import type { L2Store } from './l2-store.js';
import { Validity, type TagVersions } from './tag-versions.js';

export type Tier = 'L1' | 'L2';

export interface TieredHit {
  readonly entry: StoredEntry;
  readonly tier: Tier;
}

/** Returned by lookupL1 when only Redis can tell whether the entry is still valid. */
export const UNDECIDED = Symbol('undecided');

export interface TieredStoreOptions {
  readonly l1: L1Store | undefined;
  readonly l2: L2Store | undefined;
  readonly versions: TagVersions;
  readonly now: () => number;
}

export class TieredStore {
  l1Hits = 0;
  l1Misses = 0;
  l2Hits = 0;
  l2Misses = 0;
  readonly l1: L1Store | undefined;
  readonly l2: L2Store | undefined;
  readonly versions: TagVersions;
  private readonly now: () => number;

  constructor(options: TieredStoreOptions) {
    this.l1 = options.l1;
    this.l2 = options.l2;
    this.versions = options.versions;
    this.now = options.now;
  }

  /**
   * The synchronous L1 path: a valid entry, undefined on a miss (counted), or
   * UNDECIDED when the entry's versions must be checked in Redis (then call get()).
   * `memo` lets a caller that reads the key often skip L1's Map lookup (see SlotMemo).
   */
  lookupL1(key: string, countMiss = true, memo?: SlotMemo): StoredEntry | undefined | typeof UNDECIDED {
    if (this.l1 === undefined) return undefined;
    const entry = this.l1.get(key, memo);
    if (entry !== undefined) {
      const validity = this.versions.check(entry);
      if (validity === Validity.Valid) {
        this.l1Hits++;
        return entry;
      }
      if (validity === Validity.Unknown) return UNDECIDED;
      this.l1!.delete(key);
    }
    if (countMiss) this.l1Misses++;
    return undefined;
  }

  /** L1, then L2. The entry may be past freshUntil (but not staleUntil); callers decide. */
  async get(key: string): Promise<TieredHit | undefined> {
    const l1 = this.l1;
    if (l1 !== undefined) {
      const entry = l1.get(key);
      if (entry !== undefined) {
        if (await this.versions.verify(entry)) {
          this.l1Hits++;
          return { entry, tier: 'L1' };
        }
        l1.delete(key);
      }
      this.l1Misses++;
    }
    return this.getL2(key);
  }

  /** L2 only (after an L1 miss); warms L1 on a hit. */
  async getL2(key: string): Promise<TieredHit | undefined> {
    const l2 = this.l2;
    if (l2 === undefined) return undefined;
    let raw: Buffer | null;
    try {
      raw = await l2.get(key);
    } catch {
      return undefined; // counted by L2Store
    }
    if (raw === null) {
      this.l2Misses++;
      return undefined;
    }
    let entry: StoredEntry;
    try {
      // Decoded views point into the bytes; give them their own, since L1 may keep them long.
      entry = decodeEntry(this.l1 === undefined ? raw : ownBytes(raw));
    } catch {
      this.l2Misses++;
      this.dropFromL2(key);
      return undefined;
    }
    const validity = this.versions.check(entry);
    const valid = validity === Validity.Valid || (validity === Validity.Unknown && (await this.versions.verify(entry)));
    if (entry.staleUntil <= this.now() || !valid) {
      this.l2Misses++;
      this.dropFromL2(key);
      return undefined;
    }
    this.l2Hits++;
    this.l1?.set(key, entry);
    return { entry, tier: 'L2' };
  }

  /**
   * Stores in L1 (at once) and L2 (awaited). `l1Entry` lets the caller keep a
   * decoded form in L1 while L2 gets the bytes. Never throws for Redis.
   */
  async set(key: string, entry: StoredEntry, l1Entry: StoredEntry = entry): Promise<void> {
    const ttl = entry.staleUntil - this.now();
    if (ttl <= 0) return;
    // Charged by what L1 keeps (a decoded form may cost many times the stored bytes).
    this.l1?.set(key, l1Entry);
    if (this.l2 !== undefined) {
      try {
        await this.l2.set(key, encodeEntry(entry), ttl);
      } catch {
        // counted by L2Store; the entry still serves from L1
      }
    }
  }

  /** Removes the entry from both tiers. Resolves false if Redis could not be told. */
  async delete(key: string): Promise<boolean> {
    this.l1?.delete(key);
    if (this.l2 === undefined) return true;
    try {
      await this.l2.del(key, true);
      return true;
    } catch {
      return false;
    }
  }

  /** Drops an entry found unusable (foreign, damaged) from both tiers, without waiting for Redis. */
  discard(key: string): void {
    this.l1?.delete(key);
    this.dropFromL2(key);
  }

  private dropFromL2(key: string): void {
    this.l2?.del(key).catch(() => undefined);
  }
}
