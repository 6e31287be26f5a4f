// recharge() charges an entry again once it was decoded in place (an L2 hit's
// entry, parsed on first use). When that entry is the least recently used one
// (another entry was stored between the L2 hit's write into L1 and the
// recharge), L1 must still come back within maxBytes by evicting the others:
// the eviction loop used to stop at the recharged entry and leave L1 over its bound.
// It must never evict the recharged entry itself (the caller is serving it;
// recharge does not move it in LRU order), while its new cost fits maxBytes alone.
import assert from 'node:assert/strict';
import { EntryKind, type StoredEntry } from '../../../src/store/entry.js';
import { L1Store } from '../../../src/store/l1-store.js';

const EMPTY = Buffer.alloc(0);
const entry = (): StoredEntry => ({ kind: EntryKind.Json, createdAt: 0, freshUntil: 1_000_000, staleUntil: 1_000_000, epoch: 0, tags: [], versions: [], head: EMPTY, body: EMPTY, decoded: undefined });

describe('store: L1Store, recharge of the least recently used entry', () => {
  it('keeps L1 within maxBytes by evicting the entries after it, and keeps the recharged entry', () => {
    const l1 = new L1Store({ maxEntries: 100, maxBytes: 4_000, ttl: undefined, now: () => 1000 });
    const x = entry();
    l1.set('x', x);
    l1.set('y', entry());
    assert.ok(l1.bytes < 4_000, `${l1.bytes}`);
    // x is decoded in place: it now holds far more than its bytes.
    (x as { decoded: unknown }).decoded = { heapBytes: 3_500 };
    assert.ok(L1Store.sizeOf('x', x) <= 4_000, 'the premise: x alone fits');
    l1.recharge('x', x);
    assert.ok(l1.bytes <= 4_000, `L1 holds ${l1.bytes} bytes, over its maxBytes of 4000 (entries: ${l1.entries})`);
    assert.equal(l1.peek('x'), x, 'the recharged entry was evicted');
    assert.equal(l1.peek('y'), undefined);
    assert.equal(l1.evictions, 1);
  });
});
