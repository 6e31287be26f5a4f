// L1: the in-process tier, an LRU bounded by entry count and by bytes: a Map
// of slots threaded on a doubly linked list, least recently used first. A
// hit is one Map lookup and a few pointer writes (lru-cache's get, with its
// options and metrics, cost a third of a data-API hit beyond a Map lookup),
// and nothing is allocated up front for maxEntries slots.
// Each entry's L1 lifetime is fixed when it is stored (the smaller of l1.ttl
// and the entry's remaining life) and checked on read with the cache's clock,
// so an expired entry is never returned even before LRU evicts it.
import type { StoredEntry } from './entry.js';
import { L1Slot, REMOVED } from './l1-slot.js';
import { PackedEntry, VIEW_BYTES } from './packed-entry.js';
import { stringBytes } from './recent-map.js';

export { L1Slot } from './l1-slot.js';

export interface L1Options {
  readonly maxEntries: number;
  readonly maxBytes: number;
  /** Cap on how long an entry stays in L1, in ms; undefined = the entry's own life. */
  readonly ttl: number | undefined;
  readonly now: () => number;
}

/** A decoded form (entry.decoded) that knows the heap it holds beyond the entry's buffers. */
export interface SizedValue {
  readonly heapBytes: number;
}

/**
 * Per-entry bookkeeping charged against maxBytes on top of key, tags and
 * payload: the LRU's Map slot and list node, the entry object, its boxed
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

/** Head and body: one allocation when both are views into the same bytes (HTTP entries, entries read from L2), whole. */
function payloadBytes(head: Buffer, body: Buffer): number {
  if (head.length !== 0 && head.buffer === body.buffer) return BUFFER_OVERHEAD_BYTES + VIEW_BYTES + head.buffer.byteLength;
  return bufferBytes(head) + bufferBytes(body);
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

/**
 * Where a caller that reads one key often (a data-API key) keeps its slot:
 * while the slot stays in L1, a read needs no Map lookup.
 */
export interface SlotMemo {
  slot: L1Slot | undefined;
}

export class L1Store {
  evictions = 0;
  private readonly slots = new Map<string, L1Slot>();
  /** Least recently used. */
  private oldest: L1Slot | undefined = undefined;
  /** Most recently used. */
  private newest: L1Slot | undefined = undefined;
  private size = 0;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly ttl: number | undefined;
  private readonly now: () => number;

  constructor(options: L1Options) {
    this.maxEntries = options.maxEntries;
    this.maxBytes = options.maxBytes;
    this.ttl = options.ttl;
    this.now = options.now;
  }

  /**
   * Bytes charged for an entry: what it holds on the heap and in buffers.
   * A decoded form reports its own cost; an entry not decoded yet is charged
   * what its decoded form will cost (decodedBytes) or, when that is not known
   * (read from L2), its head twice (the bytes and the strings decoded from them).
   */
  static sizeOf(key: string, entry: StoredEntry): number {
    let size = ENTRY_OVERHEAD_BYTES + stringBytes(key.length);
    if (entry instanceof PackedEntry) {
      // Sized from the bytes: decoding the tags to size them would keep them. Charged as decoded
      // (a hit decodes them; a UTF-8 byte never makes more than one character), and with the
      // view of the bytes L1 parks (a hit makes it again and keeps it). The view the decoded
      // form keeps of the body is its own, charged with it.
      size += BUFFER_OVERHEAD_BYTES + entry.bytes.length + entry.tagCount * (TAG_OVERHEAD_BYTES + stringBytes(0)) + stringBytes(entry.tagBytes()) - stringBytes(0);
    } else {
      size += payloadBytes(entry.head, entry.body);
      const tags = entry.tags;
      for (let i = 0; i < tags.length; i++) size += TAG_OVERHEAD_BYTES + stringBytes(tags[i]!.length);
    }
    const decoded = entry.decoded as Partial<SizedValue> | undefined;
    if (typeof decoded?.heapBytes === 'number') size += decoded.heapBytes;
    else if (decoded === undefined) size += entry.decodedBytes ?? UNDECODED_OVERHEAD_BYTES + entry.head.length;
    return size;
  }

  /** The entry if present and within its L1 lifetime (marks it recently used). */
  get(key: string, memo?: SlotMemo): StoredEntry | undefined {
    let slot = memo?.slot;
    // Stryker disable next-line ConditionalExpression: always looking the key up again only bypasses the memo
    if (slot === undefined || slot.until === REMOVED) {
      slot = this.slots.get(key);
      if (memo !== undefined) memo.slot = slot;
      if (slot === undefined) return undefined;
    }
    if (slot.until <= this.now()) {
      this.remove(slot);
      return undefined;
    }
    // Stryker disable next-line ConditionalExpression: moving the newest slot to the newest place changes nothing
    if (slot !== this.newest) {
      this.unlink(slot);
      this.append(slot);
    }
    return slot.entry;
  }

  /** Like get, without counting or touching LRU order. */
  peek(key: string): StoredEntry | undefined {
    const slot = this.slots.get(key);
    // Stryker disable next-line EqualityOperator: an entry that expires this very millisecond
    return slot !== undefined && slot.until > this.now() ? slot.entry : undefined;
  }

  /**
   * Stores an entry for the smaller of the L1 cap and its remaining life.
   * `size` defaults to sizeOf(); entries larger than maxBytes are not stored
   * (and any older copy is dropped, so it is not served instead).
   */
  set(key: string, entry: StoredEntry, size = L1Store.sizeOf(key, entry)): void {
    const now = this.now();
    let until = entry.staleUntil;
    // Stryker disable next-line EqualityOperator: both give the same value when they are equal
    if (this.ttl !== undefined && now + this.ttl < until) until = now + this.ttl;
    const current = this.slots.get(key);
    if (current !== undefined) this.remove(current);
    if (until <= now || size > this.maxBytes) return;
    let slot: L1Slot;
    if (entry instanceof PackedEntry) {
      // Most entries a scan stores are never read: one parked keeps no view until it is (charged with one all the same).
      entry.parkView();
      // Its own slot, unless it is one already (in another L1).
      slot = entry.until === REMOVED ? entry.holdAs(flatten(key), until, size) : new L1Slot(flatten(key), entry, until, size);
    } else slot = new L1Slot(flatten(key), entry, until, size);
    this.slots.set(slot.key, slot);
    this.append(slot);
    this.size += size;
    this.evictBeyondBounds(slot);
  }

  /**
   * Charges an entry again after it was decoded in place (read from L2, its
   * parsed form built on first use): what it holds now may be many times its bytes.
   */
  recharge(key: string, entry: StoredEntry): void {
    const slot = this.slots.get(key);
    if (slot === undefined || slot.entry !== entry) return;
    const size = L1Store.sizeOf(key, entry);
    if (size > this.maxBytes) {
      this.remove(slot);
      return;
    }
    this.size += size - slot.size;
    slot.size = size;
    this.evictBeyondBounds(slot);
  }

  delete(key: string): boolean {
    const slot = this.slots.get(key);
    if (slot === undefined) return false;
    this.remove(slot);
    return true;
  }

  clear(): void {
    for (const slot of this.slots.values()) this.retire(slot);
    this.slots.clear();
    this.oldest = undefined;
    this.newest = undefined;
    this.size = 0;
  }

  get entries(): number {
    return this.slots.size;
  }

  get bytes(): number {
    return this.size;
  }

  /** Evicts least recently used entries (never `keep`) until both bounds hold. */
  /** Evicts from the least recently used end, passing over `keep` (a recharged entry may be the oldest). */
  private evictBeyondBounds(keep: L1Slot): void {
    while (this.size > this.maxBytes || this.slots.size > this.maxEntries) {
      let victim = this.oldest;
      if (victim === keep) victim = keep.next;
      if (victim === undefined) return;
      this.remove(victim);
      this.evictions++;
    }
  }

  private remove(slot: L1Slot): void {
    this.slots.delete(slot.key);
    this.unlink(slot);
    this.size -= slot.size;
    this.retire(slot);
  }

  /** A slot out of L1 may still be remembered (SlotMemo): it must read as gone, and hold nothing. */
  private retire(slot: L1Slot): void {
    slot.until = REMOVED;
    slot.entry = undefined;
    slot.prev = undefined;
    slot.next = undefined;
  }

  private unlink(slot: L1Slot): void {
    const { prev, next } = slot;
    if (prev === undefined) this.oldest = next;
    else prev.next = next;
    if (next === undefined) this.newest = prev;
    else next.prev = prev;
    slot.prev = undefined;
    slot.next = undefined;
  }

  private append(slot: L1Slot): void {
    const newest = this.newest;
    slot.prev = newest;
    if (newest === undefined) this.oldest = slot;
    else newest.next = slot;
    this.newest = slot;
  }
}
