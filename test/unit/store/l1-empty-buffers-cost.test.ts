// Why this test exists: L1 charges head and body as one allocation when they
// are views into the same bytes. A JSON value set on this instance is kept in
// L1 decoded, with head and body both the one shared empty buffer. Nothing is
// allocated for them, so they must cost nothing, like two separate empty
// buffers. The other cost tests all use that one empty buffer for both, and
// compare costs, so a charge for it cancelled out and went unseen.
import assert from 'node:assert/strict';
import { EntryKind, type StoredEntry } from '../../../src/store/entry.js';
import { L1Store } from '../../../src/store/l1-store.js';

const EMPTY = Buffer.alloc(0);

function entry(head: Buffer, body: Buffer): StoredEntry {
  return { kind: EntryKind.Json, createdAt: 0, freshUntil: 1_000_000, staleUntil: 1_000_000, epoch: 0, tags: [], versions: [], head, body, decoded: { heapBytes: 0 } };
}

describe('store: L1Store, what an empty head and body cost', () => {
  it('nothing, also when both are the same empty buffer (a decoded value set here)', () => {
    assert.equal(L1Store.sizeOf('k', entry(EMPTY, EMPTY)), L1Store.sizeOf('k', entry(Buffer.alloc(0), Buffer.alloc(0))));
  });

  it('an empty head beside a body adds nothing to what the body costs', () => {
    const body = Buffer.allocUnsafeSlow(100);
    assert.equal(L1Store.sizeOf('k', entry(EMPTY, body)), L1Store.sizeOf('k', entry(Buffer.alloc(0), body)));
  });
});
