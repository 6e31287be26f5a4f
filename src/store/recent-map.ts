// A bounded map for hot lookups that must not allocate: two generations of
// plain Maps. New and recently read keys live in the young one; when it is
// full it becomes the old one and the previous old one is dropped. Roughly
// LRU (what was not touched for a whole generation goes), with a Map lookup
// or two per read — lru-cache's get costs several times that, and the tag
// version check runs on every hit. Bounded by key count and, when keys are
// caller-chosen strings of any length, by bytes too.

/** Heap of one Map slot (key, value and chain words, its share of the buckets and spare capacity). */
export const MAP_SLOT_BYTES = 40;

/** Heap of a string of `length` characters (header; two bytes a character, the worst case). */
export function stringBytes(length: number): number {
  return 16 + 2 * length;
}

export class RecentMap<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private youngBytes = 0;
  private oldBytes = 0;
  private readonly generation: number;
  private readonly generationBytes: number;

  /**
   * Holds at most `max` keys and `maxBytes` bytes as `sizeOf` counts them
   * (and, until that many arrived, at least half of either). A key whose
   * size alone exceeds half of `maxBytes` is not kept.
   */
  constructor(
    max: number,
    maxBytes = Infinity,
    private readonly sizeOf: (key: K, value: V) => number = () => 0,
    /** Told of each generation dropped whole (not of delete() or clear()). */
    private readonly onDrop?: (dropped: ReadonlyMap<K, V>) => void,
  ) {
    this.generation = Math.max(1, Math.ceil(max / 2));
    this.generationBytes = maxBytes / 2;
  }

  get(key: K): V | undefined {
    const value = this.young.get(key);
    if (value !== undefined) return value;
    const aging = this.old.get(key);
    if (aging !== undefined) {
      this.old.delete(key);
      const size = this.sizeOf(key, aging);
      this.oldBytes -= size;
      this.put(key, aging, size);
    }
    return aging;
  }

  set(key: K, value: V): void {
    const size = this.sizeOf(key, value);
    const current = this.young.get(key);
    if (current !== undefined) {
      this.youngBytes -= this.sizeOf(key, current);
      this.young.delete(key);
    } else {
      const aging = this.old.get(key);
      if (aging !== undefined) {
        this.oldBytes -= this.sizeOf(key, aging);
        this.old.delete(key);
      }
    }
    this.put(key, value, size);
  }

  delete(key: K): void {
    const young = this.young.get(key);
    if (young !== undefined) {
      this.youngBytes -= this.sizeOf(key, young);
      this.young.delete(key);
      return;
    }
    const aging = this.old.get(key);
    if (aging !== undefined) {
      this.oldBytes -= this.sizeOf(key, aging);
      this.old.delete(key);
    }
  }

  clear(): void {
    this.young = new Map();
    this.old = new Map();
    this.youngBytes = 0;
    this.oldBytes = 0;
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  /** Bytes held, as sizeOf counts them. */
  get bytes(): number {
    return this.youngBytes + this.oldBytes;
  }

  private put(key: K, value: V, size: number): void {
    if (size > this.generationBytes) return;
    if (this.young.size >= this.generation || this.youngBytes + size > this.generationBytes) {
      if (this.onDrop !== undefined && this.old.size !== 0) this.onDrop(this.old);
      this.old = this.young;
      this.oldBytes = this.youngBytes;
      this.young = new Map();
      this.youngBytes = 0;
    }
    this.young.set(key, value);
    this.youngBytes += size;
  }
}
