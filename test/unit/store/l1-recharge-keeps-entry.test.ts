// Why this test exists: recharge() charges an entry again once it has been
// decoded in place, then evicts to get back within the bounds, but never the
// entry it recharged: the caller is serving that entry right now. recharge does
// not move the entry in LRU order, so it can be the least recently used one.
// No test covered that case, and an eviction loop that took the oldest entry
// whatever it was went unnoticed.
import assert from 'node:assert/strict';
import { EntryKind, type StoredEntry } from '../../../src/store/entry.js';
import { L1Store } from '../../../src/store/l1-store.js';

const EMPTY = Buffer.alloc(0);
const entry = (): StoredEntry => ({ kind: EntryKind.Json, createdAt: 0, freshUntil: 1_000_000, staleUntil: 1_000_000, epoch: 0, tags: [], versions: [], head: EMPTY, body: EMPTY, decoded: undefined });

describe('store: L1Store, recharging the least recently used entry', () => {
  it('keeps that entry when its new cost fits maxBytes alone, though L1 as a whole no longer does', () => {
    const l1 = new L1Store({ maxEntries: 100, maxBytes: 4_000, ttl: undefined, now: () => 1000 });
    const x = entry();
    l1.set('x', x);
    l1.set('y', entry()); // x is now the least recently used
    // x, read from L2, is decoded in place: it now holds far more than its bytes.
    (x as { decoded: unknown }).decoded = { heapBytes: 3_500 };
    assert.ok(L1Store.sizeOf('x', x) <= 4_000);
    l1.recharge('x', x);
    assert.equal(l1.peek('x'), x, 'the entry being served was evicted by its own recharge');
  });
});
