// A bounded map for hot lookups that must not allocate: two generations of
// plain Maps. New and recently read keys live in the young one; when it is
// full it becomes the old one and the previous old one is dropped. Roughly
// LRU (what was not touched for a whole generation goes), with a Map lookup
// or two per read — lru-cache's get costs several times that, and the tag
// version check runs on every hit.

export class RecentMap<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private readonly generation: number;

  /** Holds at least `max / 2` and at most `max` keys. */
  constructor(max: number) {
    this.generation = Math.max(1, Math.ceil(max / 2));
  }

  get(key: K): V | undefined {
    const value = this.young.get(key);
    if (value !== undefined) return value;
    const aging = this.old.get(key);
    if (aging !== undefined) {
      this.old.delete(key);
      this.put(key, aging);
    }
    return aging;
  }

  set(key: K, value: V): void {
    if (this.young.has(key)) this.young.set(key, value);
    else {
      this.old.delete(key);
      this.put(key, value);
    }
  }

  delete(key: K): void {
    this.young.delete(key);
    this.old.delete(key);
  }

  clear(): void {
    this.young = new Map();
    this.old = new Map();
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  private put(key: K, value: V): void {
    if (this.young.size >= this.generation) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
  }
}
