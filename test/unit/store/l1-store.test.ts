// L1Store: an LRU bounded by entries and bytes, with per-entry L1 lifetimes
// and slots that callers may remember.
import assert from 'node:assert/strict';
import { EntryKind, type StoredEntry } from '../../../src/store/entry.js';
import { L1Store, type SlotMemo } from '../../../src/store/l1-store.js';

const EMPTY = Buffer.alloc(0);

function entry(staleUntil = 1_000_000, decoded?: unknown): StoredEntry {
  return { kind: EntryKind.Json, createdAt: 0, freshUntil: staleUntil, staleUntil, epoch: 0, tags: [], versions: [], head: EMPTY, body: EMPTY, decoded };
}

function store(options: { maxEntries?: number; maxBytes?: number; ttl?: number } = {}) {
  const clock = { now: 1000 };
  const l1 = new L1Store({ maxEntries: options.maxEntries ?? 1000, maxBytes: options.maxBytes ?? 1_000_000, ttl: options.ttl, now: () => clock.now });
  return { l1, clock };
}

describe('store: L1Store', () => {
  it('evicts the least recently used entry first; reading an entry makes it recently used', () => {
    const { l1 } = store({ maxEntries: 3 });
    for (const k of ['a', 'b', 'c']) l1.set(k, entry(), 10);
    assert.ok(l1.get('a'));
    l1.set('d', entry(), 10);
    assert.equal(l1.peek('b'), undefined, 'b was the least recently used');
    assert.ok(l1.peek('a') && l1.peek('c') && l1.peek('d'));
    l1.set('e', entry(), 10);
    assert.equal(l1.peek('c'), undefined);
    assert.equal(l1.evictions, 2);
  });

  it('never holds more than maxEntries entries or maxBytes bytes', () => {
    const { l1 } = store({ maxEntries: 50, maxBytes: 1000 });
    for (let i = 0; i < 500; i++) {
      l1.set(`k${i}`, entry(), 1 + (i % 40));
      assert.ok(l1.entries <= 50 && l1.bytes <= 1000, `${l1.entries} entries, ${l1.bytes} bytes after ${i + 1} sets`);
    }
    assert.ok(l1.bytes > 500, `only ${l1.bytes} bytes held`);
  });

  it('stores no entry larger than maxBytes, and drops the older copy of its key', () => {
    const { l1 } = store({ maxBytes: 100 });
    l1.set('k', entry(), 50);
    l1.set('k', entry(), 101);
    assert.equal(l1.peek('k'), undefined);
    assert.equal(l1.bytes, 0);
  });

  it('serves an entry only within its L1 lifetime: the smaller of l1.ttl and its own', () => {
    const { l1, clock } = store({ ttl: 100 });
    l1.set('capped', entry(5000), 10);
    l1.set('own', entry(1050), 10);
    clock.now = 1060;
    assert.equal(l1.get('own'), undefined);
    assert.ok(l1.get('capped'));
    clock.now = 1100;
    assert.equal(l1.get('capped'), undefined);
    assert.equal(l1.entries, 0);
    assert.equal(l1.bytes, 0);
  });

  it('a remembered slot reads as gone once its entry is replaced, deleted, evicted or cleared', () => {
    const { l1 } = store({ maxEntries: 2 });
    const memo: SlotMemo = { slot: undefined };
    const first = entry();
    l1.set('k', first, 10);
    assert.equal(l1.get('k', memo), first);
    const second = entry();
    l1.set('k', second, 10);
    assert.equal(l1.get('k', memo), second, 'replaced');
    l1.delete('k');
    assert.equal(l1.get('k', memo), undefined, 'deleted');
    l1.set('k', first, 10);
    assert.equal(l1.get('k', memo), first);
    l1.set('x', entry(), 10);
    l1.set('y', entry(), 10);
    assert.equal(l1.get('k', memo), undefined, 'evicted');
    l1.set('k', second, 10);
    assert.equal(l1.get('k', memo), second);
    l1.clear();
    assert.equal(l1.get('k', memo), undefined, 'cleared');
  });

  it('charges an entry again when its decoded form grows, evicting others to stay within maxBytes', () => {
    const { l1 } = store({ maxBytes: 20_000 });
    const grown = entry();
    l1.set('old', entry(), 5_000);
    l1.set('grown', grown);
    grown.decoded = { heapBytes: 18_000 };
    l1.recharge('grown', grown);
    assert.equal(l1.peek('old'), undefined, 'the older entry was not evicted');
    assert.equal(l1.peek('grown'), grown);
    assert.equal(l1.bytes, L1Store.sizeOf('grown', grown));
    assert.ok(l1.bytes > 18_000 && l1.bytes <= 20_000, `${l1.bytes} bytes`);
  });

  it('drops an entry whose decoded form grows past maxBytes, rather than holding more than maxBytes', () => {
    const { l1 } = store({ maxBytes: 20_000 });
    const grown = entry();
    l1.set('other', entry(), 5_000);
    l1.set('grown', grown);
    grown.decoded = { heapBytes: 30_000 };
    l1.recharge('grown', grown);
    assert.equal(l1.peek('grown'), undefined);
    assert.ok(l1.peek('other'), 'an entry that fits was evicted for one that does not');
    assert.equal(l1.bytes, 5_000);
  });

  it('charges an entry whose decoded form is built later (decodedBytes) for that form from the start: decoding changes nothing', () => {
    const later: StoredEntry = { ...entry(), decodedBytes: 5_000 };
    const charged = L1Store.sizeOf('k', later);
    assert.equal(charged, L1Store.sizeOf('k', entry(1_000_000, { heapBytes: 5_000 })));
    later.decoded = { heapBytes: 5_000 };
    assert.equal(L1Store.sizeOf('k', later), charged);
  });

  it('charges head and body that are views into one buffer as one allocation, of the whole buffer', () => {
    const bytes = Buffer.allocUnsafeSlow(1_000);
    const shared: StoredEntry = { ...entry(1_000_000, { heapBytes: 0 }), head: bytes.subarray(0, 100), body: bytes.subarray(100) };
    const apart: StoredEntry = { ...entry(1_000_000, { heapBytes: 0 }), head: Buffer.allocUnsafeSlow(100), body: Buffer.allocUnsafeSlow(900) };
    const none = L1Store.sizeOf('k', entry(1_000_000, { heapBytes: 0 }));
    assert.ok(L1Store.sizeOf('k', shared) - none >= 1_000, 'the bytes are charged');
    assert.ok(L1Store.sizeOf('k', shared) < L1Store.sizeOf('k', apart), 'one allocation costs less than two');
    // Views into a larger buffer keep all of it.
    const wide = Buffer.allocUnsafeSlow(10_000);
    const both: StoredEntry = { ...shared, head: wide.subarray(0, 100), body: wide.subarray(100, 1_000) };
    assert.ok(L1Store.sizeOf('k', both) - none >= 10_000, 'the whole buffer is charged');
  });

  describe('what an entry is charged, piece by piece', () => {
    const sized = (over: Partial<StoredEntry>) => ({ ...entry(1_000_000, { heapBytes: 0 }), ...over }) as StoredEntry;
    const cost = (key: string, over: Partial<StoredEntry>) => L1Store.sizeOf(key, sized(over));

    it('two bytes a character of the key', () => {
      assert.equal(cost('kk', {}) - cost('k', {}), 2);
    });

    it('each tag: its characters, plus an overhead per tag', () => {
      assert.equal(cost('k', { tags: ['abc'] }) - cost('k', { tags: ['ab'] }), 2);
      assert.ok(cost('k', { tags: ['a', 'b'] }) - cost('k', { tags: ['a'] }) > 18, 'a second tag costs no more than its characters');
    });

    it('separate head and body buffers: each its length, plus an overhead; a second view into one buffer costs something', () => {
      const head = Buffer.allocUnsafeSlow(10);
      assert.equal(cost('k', { head, body: Buffer.allocUnsafeSlow(40) }) - cost('k', { head, body: Buffer.allocUnsafeSlow(20) }), 20);
      const bytes = Buffer.allocUnsafeSlow(100);
      const alone = cost('k', { body: bytes });
      assert.ok(cost('k', { head: bytes.subarray(0, 10), body: bytes.subarray(10) }) > alone, 'two views of one buffer cost no more than the buffer alone');
    });

    it('an entry read from L2, not decoded yet and of unknown decoded size: its head a second time (the strings it decodes to)', () => {
      const undecoded = (headLength: number) => L1Store.sizeOf('k', { ...entry(), head: Buffer.allocUnsafeSlow(headLength) });
      // 10 more bytes of head: 10 for the bytes, 10 for what they decode to.
      assert.equal(undecoded(20) - undecoded(10), 20);
    });

    it('a decoded form that does not report its size adds nothing', () => {
      assert.equal(L1Store.sizeOf('k', entry(1_000_000, {})), L1Store.sizeOf('k', entry(1_000_000, { heapBytes: 0 })));
    });
  });

  describe('bounds at their edges', () => {
    it('an entry of exactly maxBytes is stored; one byte more is not', () => {
      const { l1 } = store({ maxBytes: 100 });
      l1.set('exact', entry(), 100);
      assert.ok(l1.peek('exact'));
      l1.set('over', entry(), 101);
      assert.equal(l1.peek('over'), undefined);
    });

    it('filled to exactly maxBytes, nothing is evicted', () => {
      const { l1 } = store({ maxBytes: 100 });
      l1.set('a', entry(), 60);
      l1.set('b', entry(), 40);
      assert.deepEqual([l1.entries, l1.bytes, l1.evictions], [2, 100, 0]);
    });

    it('an entry already past its staleUntil is not stored, and evicts nothing', () => {
      const { l1, clock } = store({ maxBytes: 100 });
      l1.set('live', entry(), 60);
      l1.set('dead', entry(clock.now - 1), 60);
      assert.deepEqual([l1.entries, l1.bytes, l1.evictions], [1, 60, 0]);
      assert.ok(l1.peek('live'));
    });

    it('recharging to exactly maxBytes keeps the entry; recharging an entry the key no longer holds does nothing', () => {
      const { l1 } = store({ maxBytes: L1Store.sizeOf('k', entry(1_000_000, { heapBytes: 1_000 })) });
      const first = entry(1_000_000, { heapBytes: 0 });
      l1.set('k', first);
      (first as { decoded: unknown }).decoded = { heapBytes: 1_000 };
      l1.recharge('k', first);
      assert.equal(l1.peek('k'), first);
      const replaced = entry(1_000_000, { heapBytes: 0 });
      l1.set('k', replaced);
      const bytes = l1.bytes;
      l1.recharge('k', { ...first, decoded: { heapBytes: 10 } });
      assert.equal(l1.bytes, bytes);
    });

    it('delete() says whether there was an entry', () => {
      const { l1 } = store();
      l1.set('k', entry(), 10);
      assert.equal(l1.delete('k'), true);
      assert.equal(l1.delete('k'), false);
    });
  });
});

