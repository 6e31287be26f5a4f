// TagVersions' local decisions while invalidations wait for Redis (pending):
// an entry that recorded a version of a pending tag from before the
// invalidation is invalid here whatever Redis says, a fill begun meanwhile
// records a marker that is valid here only until the invalidation is
// delivered, and a bus reconnect (reset) keeps what is pending. The version
// source is an in-memory stand-in: these are local rules, not Redis ones
// (the integration tests run them against a real redis-server).
import assert from 'node:assert/strict';
import type { FillStamp } from '../../../src/store/entry.js';
import { TagVersions, Validity } from '../../../src/store/tag-versions.js';
import { verify } from '../../support/l1-outage-verdict.js';
import { MemorySource } from '../../support/memory-version-source.js';

const l1OnlyVersions = () => new TagVersions({ source: undefined, maxTags: 100 });

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
    assert.equal(await verify(versions, entry), false);
    assert.equal(versions.stillCurrent(entry), false, 'a fill stamped before the invalidation may still be stored');
  });

  it('a pending marker never equals a version an entry recorded before it, made up while Redis was unreachable included', async () => {
    const { source, versions } = setUp();
    source.down = true;
    const before = await versions.stamp(['t']); // versions made up here
    await versions.stamp(['u']);
    versions.markPending(['t']);
    assert.equal(versions.check(before), Validity.Invalid);
    versions.markPendingClear();
    assert.equal(versions.check(before), Validity.Invalid);
  });

  it('while another tag is pending, an entry of an older epoch is still invalid, and an entry of the current epoch is decided only while trusted', async () => {
    const { versions } = setUp();
    const current = await versions.stamp(['path:/a']);
    const old: FillStamp = { ...current, epoch: current.epoch - 1 }; // from before a clear()
    versions.markPending(['movie:9']);
    assert.equal(versions.check(old), Validity.Invalid);
    assert.equal(versions.check(current), Validity.Valid);
    // Of an epoch not known here (a clear() this instance has not heard of): not decided here.
    assert.notEqual(versions.check({ ...current, epoch: current.epoch + 1 }), Validity.Valid);
    versions.trusted = false; // the bus is down: "current" cannot be told from local state
    assert.notEqual(versions.check(current), Validity.Valid);
    assert.equal(versions.check(old), Validity.Invalid);
    // A tag that is not pending is still checked: an older version of it is invalid.
    versions.trusted = true;
    await versions.bump(['path:/a']);
    assert.equal(versions.check(current), Validity.Invalid);
  });

  it('an entry of the current epoch recording a larger version teaches it (a bump this instance missed); one of another epoch, or without Redis, does not', async () => {
    const { versions } = setUp();
    const known = await versions.stamp(['t']);
    const ahead: FillStamp = { ...known, versions: [known.versions[0]! + 5] };
    versions.check(ahead);
    assert.equal(versions.check(known), Validity.Invalid, 'the larger version was not learned');
    assert.equal(versions.check(ahead), Validity.Valid);
    // Of an epoch not known here: maybe from a Redis that lost increments since; not learned.
    versions.check({ ...ahead, epoch: ahead.epoch + 1, versions: [ahead.versions[0]! + 5] });
    assert.equal(versions.check(ahead), Validity.Valid, 'a version was learned from an entry of another epoch');
    // Without Redis, versions are this process's own: an entry cannot teach one.
    const local = l1OnlyVersions();
    await local.bump(['t']);
    const stamped = local.stampLocally(['t'])!;
    local.check({ ...stamped, versions: [stamped.versions[0]! + 5] });
    assert.equal(local.check(stamped), Validity.Valid, 'an L1-only map learned a version from an entry');
  });

  it('a stamp read from Redis for a pending tag records its marker: a fill begun after the invalidation is valid here', async () => {
    const { versions } = setUp();
    versions.markPending(['never-read']);
    const stamp = await versions.stamp(['never-read']);
    assert.equal(versions.check(stamp), Validity.Valid, 'a fill begun after the invalidation is refused here');
  });

  it('what a read answers is not learned when local state was reset while it was out', async () => {
    const { source, versions } = setUp();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const read = source.read.bind(source);
    source.read = async (tags) => {
      const answer = await read(tags);
      await gate;
      return answer;
    };
    const pending = versions.stamp(['t']);
    versions.reset(); // a bus reconnect, say, while the read is out
    release();
    const stamp = await pending;
    source.read = read;
    versions.trusted = true;
    assert.notEqual(versions.check(stamp), Validity.Valid, 'a version read before the reset was learned');
  });

  it("a lookup's answer is learned (but not for counters it created), and not at all when local state was reset since it was asked", async () => {
    const { versions } = setUp();
    const epoch = (await versions.stamp(['warm'])).epoch;
    const needs = versions.needs(['a', 'made']);
    assert.deepEqual(needs.tags, ['a', 'made']);
    versions.stampFrom(['a', 'made'], needs, { epoch: undefined, versions: [7, 9] }, ['made']);
    assert.deepEqual(versions.needs(['a', 'made']).tags, ['made'], "the lookup's version of 'a' was not learned, or the created counter was");
    const entry: FillStamp = { epoch, tags: ['a'], versions: [7] };
    assert.equal(versions.check(entry), Validity.Valid);
    const before = versions.needs(['b']);
    versions.reset();
    await versions.stamp(['warm-again']); // the epoch is known again
    versions.stampFrom(['b'], before, { epoch: undefined, versions: [5] });
    assert.deepEqual(versions.needs(['b']).tags, ['b'], 'an answer asked for before the reset was learned');
  });

  it('stampLocally() gives a stamp only while local state is trusted and knows every tag', async () => {
    const { versions } = setUp();
    await versions.stamp(['a']);
    assert.ok(versions.stampLocally(['a']), 'trusted and known: no local stamp');
    assert.equal(versions.stampLocally(['a', 'unknown']), undefined);
    versions.trusted = false;
    assert.equal(versions.stampLocally(['a']), undefined, 'a stamp from local state that is not trusted');
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
    assert.equal(await verify(versions, during), false);
  });

  it('a fill with a pending tag and another records the marker for the pending one and the real version for the other (read from Redis or known here)', async () => {
    const { source, versions } = setUp();
    await versions.stamp(['movie:7', 'movie:8']);
    versions.markPending(['movie:7']);
    const local = await versions.stamp(['movie:8', 'movie:7']);
    assert.equal(local.versions[0], source.counters.get('movie:8'), 'the tag not pending lost its version (from local state)');
    assert.ok(local.versions[1]! < source.counters.get('movie:7')!, 'the pending tag has no marker');
    versions.trusted = false;
    const read = await versions.stamp(['movie:8', 'movie:7']);
    assert.equal(read.versions[0], source.counters.get('movie:8'), 'the tag not pending lost its version (read from Redis)');
    versions.trusted = true;
    assert.equal(versions.check(read), Validity.Valid);
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
    assert.equal(await verify(versions, entry), false);
  });

  it('while Redis is unreachable, a pending tag stays invalid although verify() serves what it cannot check', async () => {
    const { source, versions } = setUp();
    const tagged = await versions.stamp(['movie:7']);
    const other = await versions.stamp(['movie:8']);
    versions.trusted = false;
    source.down = true;
    versions.markPending(['movie:7']);
    assert.equal(await verify(versions, tagged), false);
    assert.equal(await verify(versions, other), true, 'an outage costs freshness, not availability');
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

  it('counts each invalidated tag kept by its length, and keeps the map within maxBytes', async () => {
    const versions = l1Only(100_000, 20_000);
    await versions.bump(['t:' + 'a'.repeat(50)]);
    const one = versions.localBytes;
    await versions.bump(['t:' + 'b'.repeat(150)]);
    // 100 characters more: 200 bytes more (two a character, the worst case), beside the slot.
    assert.equal(versions.localBytes - one, one + 200);
    for (let i = 0; i < 500; i++) await versions.bump([`t:${i}:` + 'c'.repeat(100)]);
    assert.ok(versions.localBytes > 0 && versions.localBytes <= 20_000, `the map holds ${versions.localBytes} bytes`);
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

describe('store: TagVersions deciding with Redis', () => {
  it('what it learns never lowers an epoch or a version: an answer older than what is known (read before a clear() or a bump was delivered) changes nothing', async () => {
    const { versions } = setUp();
    const entry = await versions.stamp(['movie:7']);
    versions.raiseEpoch(entry.epoch + 10); // a clear() heard of since
    versions.raise('movie:7', entry.versions[0]! + 10); // and a bump
    versions.raiseEpoch(entry.epoch); // then a late answer from before them
    versions.raise('movie:7', entry.versions[0]!);
    assert.equal(versions.check(entry), Validity.Invalid, 'the older epoch or version was taken back');
    assert.equal(versions.check({ ...entry, epoch: entry.epoch + 10 }), Validity.Invalid, 'the older version of movie:7 was taken back');
    assert.equal(versions.check({ ...entry, epoch: entry.epoch + 10, versions: [entry.versions[0]! + 10] }), Validity.Valid);
    // A Redis that went back (an old snapshot) is bumped past the highest epoch known here, not past its own.
    assert.ok((await versions.bumpEpoch()) > entry.epoch + 10, 'clear() moved the epoch to one already seen');
  });

  it('verify() refuses an entry of another epoch than Redis holds (a FLUSHALL moved it), even when its tag versions match', async () => {
    const { source, versions } = setUp();
    const entry = await versions.stamp(['movie:7']);
    assert.equal(await verify(versions, entry), true);
    versions.trusted = false; // the bus missed the FLUSHALL: Redis decides
    source.epoch++;
    assert.equal(await verify(versions, entry), false);
  });

  it('verify() refuses an entry when local state was forgotten while Redis was being asked (its answer may predate what was missed)', async () => {
    const { versions } = setUp();
    const entry = await versions.stamp(['movie:7']);
    versions.trusted = false;
    const answer = verify(versions, entry);
    versions.reset(); // a bus reconnect while the read is out
    assert.equal(await answer, false);
    assert.equal(await verify(versions, entry), true, 'asked again, Redis vouches for it');
  });

  it('a fill stamped before local state was forgotten is no longer stored, and what its store found is not learned', async () => {
    const { versions } = setUp();
    const stamp = await versions.stamp(['movie:7']);
    assert.equal(versions.stillCurrent(stamp), true);
    versions.reset();
    assert.equal(versions.stillCurrent(stamp), false);
    versions.learnStored(stamp);
    assert.equal(versions.knownEpoch, undefined, 'a store of a stamp from before the reset taught the epoch');
    assert.equal(versions.check(stamp), Validity.Unknown);
  });

  it('a stamp without a generation (an entry read back from L2, which never stores one) is judged by its versions alone, also after a reset', async () => {
    const { versions } = setUp();
    const { generation: _, ...stored } = await versions.stamp(['movie:7']);
    assert.equal(versions.stillCurrent(stored), true);
    versions.reset();
    assert.equal(versions.stillCurrent(stored), true, 'refused for a reset it knows nothing of');
    versions.learnStored(stored);
    assert.notEqual(versions.knownEpoch, undefined, 'what a store of it found was not learned');
  });

  it('a store that went through teaches its versions: entries recording them are then valid without asking Redis', async () => {
    const { source, versions } = setUp();
    const stamp: FillStamp = { epoch: source.epoch, tags: ['movie:7', 'path:/a'], versions: [source.epoch + 3, source.epoch], generation: 0 };
    assert.equal(versions.check(stamp), Validity.Unknown);
    versions.learnStored(stamp);
    assert.equal(versions.check(stamp), Validity.Valid);
  });

  it('a new instance with Redis knows no epoch: its first fill reads it, even once trusted', () => {
    const versions = new TagVersions({ source: new MemorySource(), maxTags: 100 });
    assert.equal(versions.knownEpoch, undefined);
    versions.trusted = true;
    assert.equal(versions.needs(['movie:7']).epoch, true);
    assert.equal(versions.stampLocally([]), undefined, 'a stamp with an epoch never read');
  });

  it('forget() keeps what it knew as a floor: an entry from before an invalidation known here stays invalid, one from after is undecided', async () => {
    const { versions } = setUp();
    const before = await versions.stamp(['movie:7']);
    await versions.bump(['movie:7']);
    const after = await versions.stamp(['movie:7']);
    versions.forget(['movie:7']); // a store that recorded movie:7 was refused
    assert.equal(versions.check(before), Validity.Invalid, 'the invalidation made here was forgotten');
    assert.equal(versions.stillCurrent(before), false);
    assert.equal(versions.check(after), Validity.Unknown, 'movie:7 must be read again');
    await versions.bumpEpoch();
    const cleared = await versions.stamp(['movie:7']);
    versions.forget([], true); // a store found the epoch moved
    assert.equal(versions.knownEpoch, undefined);
    assert.equal(versions.check(after), Validity.Invalid, 'the clear() made here was forgotten');
    assert.equal(versions.check(cleared), Validity.Unknown);
  });

  it('forget() drops only the tags named, and the epoch only when asked', async () => {
    const { versions } = setUp();
    const both = await versions.stamp(['movie:7', 'movie:8']);
    const other = await versions.stamp(['movie:8']);
    versions.forget(['movie:7']);
    assert.equal(versions.check(both), Validity.Unknown, 'movie:7 must be read again');
    assert.equal(versions.check(other), Validity.Valid, 'forgetting a tag forgot the epoch too');
    versions.forget([], true); // a store found the epoch gone (FLUSHALL)
    assert.equal(versions.knownEpoch, undefined);
    assert.equal(versions.check(other), Validity.Unknown);
  });

  describe('decide(): an entry found by a fill lookup, with the counters read in that round trip', () => {
    const tags = ['movie:7', 'path:/a'];

    it('a version known here to be newer than the entry decides against it, whatever the lookup read', async () => {
      const { source, versions } = setUp();
      await versions.stamp(tags);
      await versions.bump(['movie:7']); // known here: movie:7 moved
      versions.trusted = false; // everything is read; a read that missed the bump (a replica) still loses
      const needs = versions.needs(tags);
      const old: FillStamp = { epoch: source.epoch, tags, versions: [source.epoch, source.epoch] };
      assert.equal(versions.decide(old, needs, { epoch: source.epoch, versions: [source.epoch, source.epoch] }), false);
    });

    it('asked before local state was reset: learns nothing from the answer and leaves the decision to verify()', async () => {
      const { source, versions } = setUp();
      versions.trusted = false;
      const needs = versions.needs(tags);
      versions.reset();
      const read = { epoch: source.epoch, versions: [source.epoch + 5, source.epoch + 2] };
      const entry: FillStamp = { epoch: source.epoch, tags, versions: [source.epoch + 5, source.epoch + 2] };
      assert.equal(versions.decide(entry, needs, read), undefined);
      assert.equal(versions.knownEpoch, undefined, 'the epoch read before the reset was learned');
    });

    it('an older epoch than read decides against the entry; a newer one (a read older than the entry) or none read or trusted decides nothing', async () => {
      const { source, versions } = setUp();
      versions.trusted = false;
      const needs = versions.needs(tags);
      const old: FillStamp = { epoch: source.epoch - 1, tags, versions: [source.epoch, source.epoch] };
      assert.equal(versions.decide(old, needs, { epoch: source.epoch, versions: [source.epoch, source.epoch] }), false);
      // An entry of an epoch the read does not show: on a Cluster, an epoch read before the clear() the entry's fill saw.
      const entry: FillStamp = { epoch: source.epoch + 1, tags, versions: [source.epoch, source.epoch] };
      assert.equal(versions.decide(entry, needs, { epoch: source.epoch, versions: [source.epoch, source.epoch] }), undefined);
      // Redis, asked again, still holds the older epoch (it went back): refused there.
      assert.equal(await versions.vouch(entry), false);
      source.epoch++; // or it has moved on by now: the entry is current
      assert.equal(await versions.vouch(entry), true);
      const fresh = setUp().versions;
      fresh.trusted = false;
      const noEpoch = { ...fresh.needs(tags), epoch: false };
      assert.equal(fresh.decide(entry, noEpoch, { epoch: undefined, versions: entry.versions }), undefined);
    });

    it('valid when the epoch and every recorded version match what was read', async () => {
      const { source, versions } = setUp();
      versions.trusted = false; // the bus is down: Redis decides
      const needs = versions.needs(tags);
      assert.deepEqual([needs.tags, needs.epoch], [tags, true], 'untrusted, everything is read');
      const read = { epoch: source.epoch, versions: [source.epoch + 5, source.epoch + 2] };
      const entry: FillStamp = { epoch: source.epoch, tags, versions: [source.epoch + 5, source.epoch + 2] };
      assert.equal(versions.decide(entry, needs, read), true);
    });

    it('invalid when it recorded a version Redis no longer holds (Redis lost increments); a larger one is asked again and refused then', async () => {
      const { source, versions } = setUp();
      versions.trusted = false;
      const needs = versions.needs(tags);
      const read = { epoch: source.epoch, versions: [source.epoch + 5, source.epoch + 2] };
      const behind: FillStamp = { epoch: source.epoch, tags, versions: [source.epoch + 5, source.epoch + 1] };
      assert.equal(versions.decide(behind, needs, read), false);
      // A read below what the entry recorded may only be older than the entry (on a Cluster, another slot's script
      // ran first): Redis is asked again, and one that went back answers the lower version again.
      const entry: FillStamp = { epoch: source.epoch, tags, versions: [source.epoch + 5, source.epoch + 9] };
      assert.equal(versions.decide(entry, needs, read), undefined);
      source.counters.set('movie:7', source.epoch + 5).set('path:/a', source.epoch + 2);
      assert.equal(await versions.vouch(entry), false);
      // A version read above another one the entry recorded still decides against it, whatever the lower one says.
      const both: FillStamp = { epoch: source.epoch, tags, versions: [source.epoch + 6, source.epoch + 1] };
      assert.equal(versions.decide(both, needs, read), false);
    });

    it('a read older than the entry (below a version it recorded) is asked again: valid once Redis shows that version', async () => {
      const { source, versions } = setUp();
      versions.trusted = false;
      const needs = versions.needs(tags);
      const read = { epoch: source.epoch, versions: [source.epoch + 5, source.epoch + 2] };
      const entry: FillStamp = { epoch: source.epoch, tags, versions: [source.epoch + 5, source.epoch + 3] };
      assert.equal(versions.decide(entry, needs, read), undefined);
      source.counters.set('movie:7', source.epoch + 5).set('path:/a', source.epoch + 3); // bumped before the entry's fill
      assert.equal(await versions.vouch(entry), true);
    });

    it('trusted, takes the versions of tags the lookup did not read from what is known here, and still refuses a version Redis no longer holds', async () => {
      const { source, versions } = setUp();
      const e = source.epoch;
      await versions.stamp(['movie:7']); // movie:7 and the epoch are known here
      const needs = versions.needs(['movie:7', 'movie:8']);
      assert.deepEqual([needs.tags, needs.epoch], [['movie:8'], false], 'only the unknown tag is read');
      // movie:8 is at e + 1 in Redis (a failover lost increments); the entry recorded e + 5. The read may as well be
      // older than the entry: asked again, Redis answers e + 1 again.
      const entry: FillStamp = { epoch: e, tags: ['movie:7', 'movie:8', 'group:from-response'], versions: [e, e + 5, e] };
      assert.equal(versions.decide(entry, needs, { epoch: undefined, versions: [e + 1] }), undefined);
      source.counters.set('movie:8', e + 1);
      assert.equal(await versions.vouch(entry), false);
      // One it recorded below what was read is refused at once.
      const older: FillStamp = { ...entry, versions: [e, e, e] };
      assert.equal(versions.decide(older, versions.needs(['movie:7', 'movie:8']), { epoch: undefined, versions: [e + 1] }), false);
    });

    it('undecided (ask Redis for the rest) when the entry carries a tag the lookup did not read', async () => {
      const { source, versions } = setUp();
      versions.trusted = false;
      const needs = versions.needs(['movie:7']);
      const read = { epoch: source.epoch, versions: [source.epoch + 5] };
      const entry: FillStamp = { epoch: source.epoch, tags: ['movie:7', 'group:from-response'], versions: [source.epoch + 5, source.epoch] };
      assert.equal(versions.decide(entry, needs, read), undefined);
    });
  });
});

describe('store: TagVersions without an L2: what needs no Redis', () => {
  const l1Only = () => new TagVersions({ source: undefined, maxTags: 100 });

  it('a fill needs nothing read', () => {
    assert.deepEqual(l1Only().needs(['movie:7']), { tags: [], epoch: false, generation: 0 });
  });

  it('an entry its own state cannot vouch for (of an epoch it never had) is not valid', async () => {
    assert.equal(await verify(l1Only(), { epoch: 5, tags: [], versions: [] }), false);
  });

  it('forgetting an invalidated tag never makes an entry from before any forgotten invalidation valid', async () => {
    const versions = l1Only();
    await versions.bump(['a']);
    const between = versions.stampLocally(['c'])!; // after a's invalidation, before b's
    await versions.bump(['b']);
    const beforeB = versions.stampLocally(['b'])!;
    await versions.bump(['b']);
    versions.forget(['b']);
    assert.equal(versions.check(beforeB), Validity.Invalid, 'forgotten, b stands under the floor');
    assert.equal(versions.check(between), Validity.Invalid, 'an entry from before a forgotten invalidation cannot be told apart');
    versions.forget(['a']);
    assert.equal(versions.check(between), Validity.Invalid, 'forgetting an older invalidation lowered the floor');
  });
});
