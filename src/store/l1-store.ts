// L1: the in-process tier, an lru-cache bounded by entry count and by bytes.
// Each entry's L1 lifetime is fixed when it is stored (the smaller of l1.ttl
// and the entry's remaining life) and checked on read with the cache's clock,
// so an expired entry is never returned even before LRU evicts it.
import { LRUCache } from 'lru-cache';
import type { StoredEntry } from './entry.js';

export interface L1Options {
  readonly maxEntries: number;
  readonly maxBytes: number;
  /** Cap on how long an entry stays in L1, in ms; undefined = the entry's own life. */
  readonly ttl: number | undefined;
  readonly now: () => number;
}

interface L1Slot {
  readonly entry: StoredEntry;
  /** Served from L1 until this time (ms since the epoch). */
  readonly until: number;
}

/**
 * Per-entry bookkeeping charged against maxBytes on top of the payload: the
 * LRU slot, the entry object, its arrays and the decoded form (measured: a
 * stored HTTP response costs about this much heap beyond its bytes).
 */
const ENTRY_OVERHEAD_BYTES = 640;
/** Heap per tag beyond its characters: the string header and the version number. */
const TAG_OVERHEAD_BYTES = 48;

export class L1Store {
  evictions = 0;
  private readonly lru: LRUCache<string, L1Slot>;
  private readonly ttl: number | undefined;
  private readonly now: () => number;

  constructor(options: L1Options) {
    this.ttl = options.ttl;
    this.now = options.now;
    this.lru = new LRUCache<string, L1Slot>({
      max: options.maxEntries,
      maxSize: options.maxBytes,
      dispose: (_slot, _key, reason) => {
        if (reason === 'evict') this.evictions++;
      },
    });
  }

  /** Bytes charged for an entry: key, payload, headers and tags. */
  static sizeOf(key: string, entry: StoredEntry): number {
    // The head is counted twice: its bytes, and the header strings decoded from them.
    let size = ENTRY_OVERHEAD_BYTES + 2 * key.length + 2 * entry.head.length + entry.body.length;
    for (const tag of entry.tags) size += tag.length + TAG_OVERHEAD_BYTES;
    return size;
  }

  /** The entry if present and within its L1 lifetime (marks it recently used). */
  get(key: string): StoredEntry | undefined {
    const slot = this.lru.get(key);
    if (slot === undefined) return undefined;
    if (slot.until > this.now()) return slot.entry;
    this.lru.delete(key);
    return undefined;
  }

  /** Like get, without counting or touching LRU order. */
  peek(key: string): StoredEntry | undefined {
    const slot = this.lru.peek(key);
    return slot !== undefined && slot.until > this.now() ? slot.entry : undefined;
  }

  /**
   * Stores an entry for the smaller of the L1 cap and its remaining life.
   * `size` defaults to sizeOf(); entries larger than maxBytes are not stored.
   */
  set(key: string, entry: StoredEntry, size = L1Store.sizeOf(key, entry)): void {
    const now = this.now();
    let until = entry.staleUntil;
    if (this.ttl !== undefined && now + this.ttl < until) until = now + this.ttl;
    if (until <= now) {
      this.lru.delete(key);
      return;
    }
    if (size > this.lru.maxSize) {
      // lru-cache would refuse it silently; drop any older copy so it is not served instead.
      this.lru.delete(key);
      return;
    }
    this.lru.set(key, { entry, until }, { size });
  }

  delete(key: string): boolean {
    return this.lru.delete(key);
  }

  clear(): void {
    this.lru.clear();
  }

  get entries(): number {
    return this.lru.size;
  }

  get bytes(): number {
    return this.lru.calculatedSize;
  }
}
