// What L1 keeps per key: the entry, its place in LRU order and what it was
// charged. A packed HTTP entry (packed-entry.ts) is its own slot: one object
// per entry instead of two, since each object an entry keeps is old-space heap
// that a scan leaves scattered (bench/l1-memory.ts).
import type { StoredEntry } from './entry.js';

/** Marks a slot no longer in L1 (a live slot's `until` is always in the future). */
export const REMOVED = 0;

export class L1Slot {
  /** Neighbours in LRU order: `prev` was used less recently. */
  prev: L1Slot | undefined = undefined;
  next: L1Slot | undefined = undefined;

  constructor(
    public key: string,
    /** What L1 returns for the key: the slot itself for a packed entry; undefined once out of L1. */
    public entry: StoredEntry | undefined,
    /** Served from L1 until this time (ms since the epoch); REMOVED once out of L1 (or, a packed entry, before it is stored). */
    public until: number,
    public size: number,
  ) {}
}
