// L1: the in-process tier, an lru-cache bounded by entry count and by bytes.
// Each entry's L1 lifetime is fixed when it is stored (the smaller of l1.ttl
// and the entry's remaining life) and checked on read with the cache's clock,
// so an expired entry is never returned even before LRU evicts it.
import { LRUCache } from 'lru-cache';
import type { StoredEntry } from './entry.js';
import { stringBytes } from './recent-map.js';

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

/** A decoded form (entry.decoded) that knows the heap it holds beyond the entry's buffers. */
export interface SizedValue {
  readonly heapBytes: number;
}

/**
 * Per-entry bookkeeping charged against maxBytes on top of key, tags and
 * payload: the LRU's index and slot, the entry object, its three boxed
 * times and its tag and version arrays (measured, bench/l1-memory.ts).
 */
const ENTRY_OVERHEAD_BYTES = 240;
/** Per tag: its slots in the entry's two arrays and, at worst, a string of its own. */
const TAG_OVERHEAD_BYTES = 32;
/** A Buffer's own heap and native bookkeeping: the view, its ArrayBuffer, the backing store and malloc's header. */
const BUFFER_OVERHEAD_BYTES = 320;
/** Arrays and objects an undecoded entry will grow when it is decoded (its strings are charged by its head bytes). */
const UNDECODED_OVERHEAD_BYTES = 256;

function bufferBytes(buf: Buffer): number {
  return buf.length === 0 ? 0 : BUFFER_OVERHEAD_BYTES + buf.length;
}

/**
 * Reading one character makes V8 flatten a concatenated string in place:
 * a key built from parts (a tree of them) is then held as one string.
 */
let lastChar = 0;
function flatten(s: string): string {
  lastChar = s.charCodeAt(0);
  return s;
}

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

  /**
   * Bytes charged for an entry: what it holds on the heap and in buffers.
   * A decoded form reports its own cost; an entry not decoded yet is
   * charged its head twice (the bytes and the strings decoded from them).
   */
  static sizeOf(key: string, entry: StoredEntry): number {
    let size = ENTRY_OVERHEAD_BYTES + stringBytes(key.length) + bufferBytes(entry.head) + bufferBytes(entry.body);
    const tags = entry.tags;
    for (let i = 0; i < tags.length; i++) size += TAG_OVERHEAD_BYTES + stringBytes(tags[i]!.length);
    const decoded = entry.decoded as Partial<SizedValue> | undefined;
    if (typeof decoded?.heapBytes === 'number') size += decoded.heapBytes;
    else if (decoded === undefined) size += UNDECODED_OVERHEAD_BYTES + entry.head.length;
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
    this.lru.set(flatten(key), { entry, until }, { size });
  }

  /**
   * Charges an entry again after it was decoded in place (read from L2, its
   * parsed form built on first use): what it holds now may be many times its bytes.
   */
  recharge(key: string, entry: StoredEntry): void {
    const slot = this.lru.peek(key);
    if (slot === undefined || slot.entry !== entry) return;
    const size = L1Store.sizeOf(key, entry);
    if (size > this.lru.maxSize) this.lru.delete(key);
    // A new slot object: lru-cache only re-sizes an entry whose value changed.
    else this.lru.set(key, { entry, until: slot.until }, { size });
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
