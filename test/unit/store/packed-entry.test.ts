// A packed entry (what L1 keeps of an HTTP response) is its encoded bytes:
// every field reads back as encoded, without the bytes being decoded into
// objects until someone asks for the tags, and L1 charges it exactly what it
// charges the same entry decoded (so keeping it packed never makes L1's byte
// bound a lie).
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { decodeEntry, encodeOwn } from '../../../src/store/entry-codec.js';
import { EntryKind } from '../../../src/store/entry.js';
import { L1Store } from '../../../src/store/l1-store.js';
import { PackedEntry, VIEW_BYTES } from '../../../src/store/packed-entry.js';

const front = {
  kind: EntryKind.Http,
  createdAt: 1_700_000_000_000.5,
  freshUntil: 1_700_000_060_000,
  staleUntil: 1_700_000_120_000,
  epoch: 1_700_000_000_123_456,
  tags: ['key:tc:GET:/a?x=1', 'path:/a', 'tag:é✓'],
  versions: [3, 1_700_000_000_000_001, 0],
};
const HEAD = '{"s":200,"h":[["content-type","text/plain"]]}';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** A WeakRef's target is kept until the job that made or read it ends: collect after that. */
async function collected(ref: WeakRef<object>): Promise<boolean> {
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  gc();
  return ref.deref() === undefined;
}

function packed(f = front, head = HEAD, body = Buffer.from('hello')): PackedEntry {
  return new PackedEntry(encodeOwn(f, head, body), 500);
}

describe('store: packed entries', () => {
  it('reads every field back as encoded, head and body as views into its one buffer', () => {
    const entry = packed();
    assert.deepEqual([entry.kind, entry.createdAt, entry.freshUntil, entry.staleUntil, entry.epoch], [front.kind, front.createdAt, front.freshUntil, front.staleUntil, front.epoch]);
    assert.deepEqual(entry.tags, front.tags);
    assert.deepEqual(entry.versions, front.versions);
    assert.equal(entry.head.toString(), HEAD);
    assert.equal(entry.body.toString(), 'hello');
    assert.equal(entry.head.buffer, entry.bytes.buffer);
    assert.equal(entry.body.buffer, entry.bytes.buffer);
    assert.equal(entry.bytes.buffer.byteLength, entry.bytes.length, 'a buffer of its own');
    assert.equal(entry.decodedBytes, 500);
  });

  it('reads back any tags, head and body (no tags, empty head or body, multi-byte text)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string({ unit: 'binary', maxLength: 20 }), fc.nat()), { maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.uint8Array({ maxLength: 40 }), (pairs, head, body) => {
        const f = { ...front, tags: pairs.map(([t]) => t), versions: pairs.map(([, v]) => v) };
        const entry = packed(f, head, Buffer.from(body));
        assert.equal(entry.tagCount, pairs.length);
        assert.equal(entry.tagBytes(), f.tags.reduce((n, t) => n + Buffer.byteLength(t), 0));
        assert.equal(entry.head.toString(), Buffer.from(head).toString());
        assert.deepEqual(new Uint8Array(entry.body), body);
        assert.deepEqual(entry.tags, f.tags.map((t) => Buffer.from(t).toString()));
        assert.deepEqual(entry.versions, f.versions);
      }),
      { numRuns: 200, seed: 20261204 },
    );
  });

  it('keeps the tags it was given, and decodes them once when it was not given any', () => {
    const tags = ['a', 'b'];
    const versions = [1, 2];
    const given = new PackedEntry(encodeOwn({ ...front, tags, versions }, HEAD, Buffer.alloc(0)), 0, tags, versions);
    assert.equal(given.tags, tags);
    assert.equal(given.versions, versions);
    const decoded = packed();
    const versionsFirst = decoded.versions;
    assert.equal(decoded.tags, decoded.tags, 'the same array on every read');
    assert.equal(decoded.versions, versionsFirst, 'versions read first: the tags decoded with them are kept too');
  });

  it('is the bytes an L2 reader decodes', () => {
    const entry = packed();
    const read = decodeEntry(entry.bytes);
    assert.deepEqual({ ...read, head: read.head.toString(), body: read.body.toString() }, { ...front, head: HEAD, body: 'hello' });
  });

  it('is charged by L1 what the same entry decoded is charged, before and after its tags are read', () => {
    for (const tags of [[], ['key:k'], ['key:tc:GET:/scan?k=1', 'path:/scan', 'at:/scan']]) {
      const entry = packed({ ...front, tags, versions: tags.map(() => 1) });
      const read = decodeEntry(entry.bytes);
      // The decoded twin holds a second view into the bytes (packed-entry.ts VIEW_BYTES); the packed
      // entry's is made when its response is decoded, and charged with it (in decodedBytes).
      const expected = L1Store.sizeOf('tc:GET:/scan?k=1', { ...read, decodedBytes: entry.decodedBytes }) - VIEW_BYTES;
      assert.equal(L1Store.sizeOf('tc:GET:/scan?k=1', entry), expected, `${tags.length} tags`);
      assert.equal(entry.tags.length, tags.length);
      assert.equal(L1Store.sizeOf('tc:GET:/scan?k=1', entry), expected, `${tags.length} tags, read`);
    }
  });

  it('kept by L1, holds no Buffer view of its bytes until read; the first read makes one, which every later read gets', async () => {
    const l1 = new L1Store({ maxEntries: 10, maxBytes: 1 << 20, ttl: undefined, now: () => front.createdAt });
    // Made in a function of its own: no local of this test holds the view.
    const stored = (): WeakRef<Buffer> => {
      const entry = packed();
      const ref = new WeakRef(entry.bytes);
      l1.set('k', entry);
      return ref;
    };
    const view = stored();
    assert.ok(await collected(view), 'the view L1 was given is let go once stored');
    const entry = l1.get('k') as PackedEntry;
    const bytes = entry.bytes;
    assert.equal(bytes.length, bytes.buffer.byteLength);
    assert.equal(entry.freshUntil, front.freshUntil);
    assert.equal(entry.body.toString(), 'hello');
    assert.equal(entry.bytes, bytes, 'the view made on the first read is kept');
  });

  it('kept by L1, a view of part of a larger allocation stays held (the ArrayBuffer alone could not give it back)', async () => {
    const l1 = new L1Store({ maxEntries: 10, maxBytes: 1 << 20, ttl: undefined, now: () => front.createdAt });
    const whole = encodeOwn(front, HEAD, Buffer.from('hello'));
    const larger = Buffer.allocUnsafeSlow(whole.length + 8);
    whole.copy(larger, 8);
    const part = larger.subarray(8);
    l1.set('k', new PackedEntry(part, 500));
    const entry = l1.get('k') as PackedEntry;
    assert.equal(entry.bytes, part);
    assert.equal(entry.body.toString(), 'hello');
  });

  it('kept by L1 as its own slot, also under a second key and in a second L1, and stored again once removed', () => {
    const now = () => front.createdAt;
    const l1 = new L1Store({ maxEntries: 10, maxBytes: 1 << 20, ttl: undefined, now });
    const other = new L1Store({ maxEntries: 10, maxBytes: 1 << 20, ttl: 1_000, now });
    const entry = packed();
    l1.set('a', entry);
    l1.set('b', entry);
    other.set('a', entry);
    assert.equal(l1.get('a'), entry);
    assert.equal(l1.get('b'), entry);
    assert.equal(other.get('a'), entry);
    assert.equal(l1.delete('a'), true);
    assert.equal(l1.get('a'), undefined, 'removed under its first key');
    assert.equal(l1.get('b'), entry, 'still kept under the second');
    assert.equal(other.peek('a'), entry, 'and by the other L1, for its own life');
    l1.set('c', entry);
    assert.equal(l1.get('c'), entry, 'stored again after it was removed');
    assert.equal(l1.entries, 2);
    // Both L1s evict it by their own order and bounds.
    for (let i = 0; i < 10; i++) l1.set(`x${i}`, packed());
    assert.equal(l1.peek('b'), undefined);
    assert.equal(l1.peek('c'), undefined);
    assert.equal(other.peek('a'), entry);
    l1.set('d', entry);
    assert.equal(l1.peek('d'), entry, 'stored again once evicted');
  });
});
