// TieredStore's own rules, L1 only with an injected clock: what a write does
// to the copy it replaces. The Redis side is in the integration tests.
import assert from 'node:assert/strict';
import { EntryKind, type StoredEntry } from '../../../src/store/entry.js';
import { L1Store } from '../../../src/store/l1-store.js';
import { TagVersions } from '../../../src/store/tag-versions.js';
import { NO_TICKET, TieredStore } from '../../../src/store/tiered-store.js';

const EMPTY = Buffer.alloc(0);

function entry(createdAt: number, staleUntil: number, decoded: unknown): StoredEntry {
  return { kind: EntryKind.Json, createdAt, freshUntil: staleUntil, staleUntil, epoch: 0, tags: [], versions: [], head: EMPTY, body: EMPTY, decoded };
}

function l1Only() {
  const clock = { now: 1_000 };
  const now = () => clock.now;
  const l1 = new L1Store({ maxEntries: 100, maxBytes: 1_000_000, ttl: undefined, now });
  const store = new TieredStore({ l1, l2: undefined, versions: new TagVersions({ source: undefined, maxTags: 100 }), now });
  return { store, l1, clock };
}

describe('store: TieredStore writes', () => {
  it('a set() whose entry is over when it arrives drops the older value instead of leaving it served', async () => {
    const { store, l1, clock } = l1Only();
    await store.set('k', entry(1_000, 61_000, 'old'));
    assert.equal(store.lookupL1('k') !== undefined, true);
    clock.now = 2_000;
    await store.set('k', entry(1_500, 2_000, 'new, already over'));
    assert.equal(l1.peek('k'), undefined, 'the old value is still in L1');
  });

  it('set() resolves whether it stored: true for an entry still alive, false for one over on arrival', async () => {
    const { store, clock } = l1Only();
    assert.equal(await store.set('k', entry(1_000, 61_000, 'stored')), true);
    clock.now = 2_000;
    assert.equal(await store.set('k', entry(1_500, 2_000, 'over')), false);
  });

  it('a fill whose entries are over when they arrive stores nothing and leaves what L1 holds for the key, which may be newer', () => {
    const { store, l1, clock } = l1Only();
    clock.now = 5_000;
    // Written while the fill's loader ran (a set()): newer than the fill.
    store.storeFill([{ key: 'a', entry: entry(4_900, 65_000, 'newer'), l1Entry: entry(4_900, 65_000, 'newer') }], NO_TICKET);
    const late = entry(1_000, 4_000, 'late');
    assert.equal(store.storeFill([{ key: 'a', entry: late, l1Entry: late }], NO_TICKET), false);
    assert.equal(l1.peek('a')?.decoded, 'newer', 'the fill that came too late erased a newer value');
  });
});
