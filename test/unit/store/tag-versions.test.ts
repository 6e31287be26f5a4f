// TagVersions' local decisions while invalidations wait for Redis (pending):
// an entry that recorded a version of a pending tag from before the
// invalidation is invalid here whatever Redis says, a fill begun meanwhile
// records a marker that is valid here only until the invalidation is
// delivered, and a bus reconnect (reset) keeps what is pending. The version
// source is an in-memory stand-in: these are local rules, not Redis ones
// (the integration tests run them against a real redis-server).
import assert from 'node:assert/strict';
import type { FillStamp } from '../../../src/store/entry.js';
import { TagVersions, Validity, type ServerEpoch, type VersionSource } from '../../../src/store/tag-versions.js';

/** Counters in a Map, starting where Redis's clock-seeded ones would; `down` makes every call fail. */
class MemorySource implements VersionSource {
  readonly counters = new Map<string, number>();
  epoch = 1_700_000_000_000_000;
  down = false;
  readonly epochKey = 'epoch';

  counterKey(tag: string): string {
    return tag;
  }

  private check(): void {
    if (this.down) throw new Error('Redis is not connected');
  }

  private current(tag: string): number {
    const v = this.counters.get(tag) ?? this.epoch;
    this.counters.set(tag, v);
    return v;
  }

  async read(tags: readonly string[]): Promise<{ epoch: number; versions: number[] }> {
    this.check();
    return { epoch: this.epoch, versions: tags.map((t) => this.current(t)) };
  }

  async bump(tags: readonly string[], floors?: readonly number[]): Promise<number[]> {
    this.check();
    return tags.map((t, i) => {
      const v = Math.max(this.current(t), floors?.[i] ?? 0) + 1;
      this.counters.set(t, v);
      return v;
    });
  }

  async bumpEpoch(floor = 0): Promise<number> {
    this.check();
    this.epoch = Math.max(this.epoch, floor) + 1;
    return this.epoch;
  }

  async serverEpoch(): Promise<ServerEpoch> {
    this.check();
    return { epoch: this.epoch, previous: 'same' };
  }
}

function setUp(): { source: MemorySource; versions: TagVersions } {
  const source = new MemorySource();
  const versions = new TagVersions({ source, maxTags: 100 });
  versions.trusted = true; // as with the bus connected
  return { source, versions };
}

describe('store: TagVersions with invalidations pending (Redis has not taken them yet)', () => {
  it('an entry that recorded a version of a pending tag is invalid, from local state and when asking Redis, which still holds that version', async () => {
    const { versions } = setUp();
    const entry: FillStamp = await versions.stamp(['movie:7', 'path:/a']);
    assert.equal(versions.check(entry), Validity.Valid);

    versions.markPending(['movie:7']);
    assert.equal(versions.check(entry), Validity.Invalid);
    versions.trusted = false; // the bus is down too: local state must still decide this one
    assert.equal(versions.check(entry), Validity.Invalid);
    assert.equal(await versions.verify(entry), false);
    assert.equal(versions.stillCurrent(entry), false, 'a fill stamped before the invalidation may still be stored');
  });

  it('entries without the pending tag are not affected', async () => {
    const { versions } = setUp();
    const other = await versions.stamp(['movie:8']);
    versions.markPending(['movie:7']);
    assert.equal(versions.check(other), Validity.Valid);
    assert.equal(versions.stillCurrent(other), true);
  });

  it('a fill begun while its tag is pending is valid here until the invalidation is delivered, and invalid after (Redis moved past it)', async () => {
    const { source, versions } = setUp();
    await versions.stamp(['movie:7']);
    versions.markPending(['movie:7']);
    const during = await versions.stamp(['movie:7']);
    assert.equal(versions.check(during), Validity.Valid);
    assert.ok(during.versions[0]! < source.counters.get('movie:7')!, 'the marker is not below every Redis version');

    await versions.bump(['movie:7']);
    versions.clearPending();
    assert.equal(versions.check(during), Validity.Invalid);
    assert.equal(await versions.verify(during), false);
  });

  it('a second invalidation of a pending tag outdates fills begun after the first', async () => {
    const { versions } = setUp();
    versions.markPending(['movie:7']);
    const between = await versions.stamp(['movie:7']);
    versions.markPending(['movie:7']);
    assert.equal(versions.check(between), Validity.Invalid);
  });

  it('a pending clear() makes every entry from before invalid, untagged ones included, and fills begun after it valid here', async () => {
    const { versions } = setUp();
    const tagged = await versions.stamp(['movie:8']);
    const untagged = await versions.stamp([]);
    versions.markPendingClear();
    assert.equal(versions.check(tagged), Validity.Invalid);
    assert.equal(versions.check(untagged), Validity.Invalid);
    const after = await versions.stamp(['movie:8']);
    assert.equal(versions.check(after), Validity.Valid);

    await versions.bumpEpoch();
    versions.clearPending();
    assert.equal(versions.check(after), Validity.Invalid);
  });

  it('forgetting local state (a bus reconnect) keeps what is pending', async () => {
    const { versions } = setUp();
    const entry = await versions.stamp(['movie:7']);
    versions.markPending(['movie:7']);
    versions.reset();
    await versions.stamp(['movie:7']); // learns the (unchanged) Redis version again
    assert.equal(versions.check(entry), Validity.Invalid);
    assert.equal(await versions.verify(entry), false);
  });

  it('while Redis is unreachable, a pending tag stays invalid although verify() serves what it cannot check', async () => {
    const { source, versions } = setUp();
    const tagged = await versions.stamp(['movie:7']);
    const other = await versions.stamp(['movie:8']);
    versions.trusted = false;
    source.down = true;
    versions.markPending(['movie:7']);
    assert.equal(await versions.verify(tagged), false);
    assert.equal(await versions.verify(other), true, 'an outage costs freshness, not availability');
  });
});

describe('store: TagVersions without an L2 (versions kept only for invalidated tags)', () => {
  const l1Only = (maxTags = 100, maxBytes?: number) => new TagVersions({ source: undefined, maxTags, ...(maxBytes === undefined ? {} : { maxBytes }) });

  it('keeps nothing for tags that were never invalidated, however many fills stamp them', () => {
    const versions = l1Only();
    for (let i = 0; i < 1000; i++) {
      const stamp = versions.stampLocally([`key:/a?i=${i}`, 'path:/a'])!;
      assert.equal(versions.check(stamp), Validity.Valid);
    }
    assert.equal(versions.localBytes, 0);
  });

  it('an entry stamped before its tag was invalidated is invalid; one stamped after is valid; other tags are not affected', async () => {
    const versions = l1Only();
    const before = versions.stampLocally(['user:1', 'path:/a'])!;
    const other = versions.stampLocally(['user:2', 'path:/a'])!;
    await versions.bump(['user:1']);
    const after = versions.stampLocally(['user:1', 'path:/a'])!;
    assert.equal(versions.check(before), Validity.Invalid);
    assert.equal(versions.check(after), Validity.Valid);
    assert.equal(versions.check(other), Validity.Valid);
    await versions.bump(['user:1']);
    assert.equal(versions.check(after), Validity.Invalid, 'a second invalidation outdates fills begun after the first');
  });

  it('an invalidated tag the bounded map forgets keeps outdating every entry stamped before that invalidation', async () => {
    const versions = l1Only(4);
    const before = versions.stampLocally(['user:1'])!;
    await versions.bump(['user:1']);
    const between = versions.stampLocally(['user:1'])!;
    // Enough other invalidations to drop user:1's generation.
    for (let i = 0; i < 10; i++) await versions.bump([`user:other-${i}`]);
    assert.equal(versions.check(before), Validity.Invalid);
    // What is left unknown is judged by the floor: an entry from after the forgotten bump but before later ones cannot be told apart, so it goes too.
    assert.equal(versions.check(between), Validity.Invalid);
    const fresh = versions.stampLocally(['user:1'])!;
    assert.equal(versions.check(fresh), Validity.Valid);
  });

  it('a tag too long to be kept outdates entries stamped before its invalidation', async () => {
    const versions = l1Only(100, 1000);
    const long = 'tag:' + 'x'.repeat(2000);
    const before = versions.stampLocally([long])!;
    await versions.bump([long]);
    assert.equal(versions.check(before), Validity.Invalid);
    assert.equal(versions.check(versions.stampLocally([long])!), Validity.Valid);
  });

  it('reset() forgets invalidations without making an entry from before them valid', async () => {
    const versions = l1Only();
    const before = versions.stampLocally(['user:1'])!;
    await versions.bump(['user:1']);
    versions.reset();
    assert.equal(versions.check(before), Validity.Invalid);
  });
});
