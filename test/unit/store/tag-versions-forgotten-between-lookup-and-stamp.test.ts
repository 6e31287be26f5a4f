// A fill's lookup reads only the counters this instance does not know
// (needs()); the stamp is made when the lookup answers (stampFrom). A
// store of another fill that Redis refused meanwhile makes this instance
// forget every tag of that entry, the shared ones too (`path:/test`, which no
// one moved). stampFrom then found such a tag neither read nor known and gave
// it a made-up version, below any Redis holds: once the tag was read again the
// fill was refused here ('invalidated'), and its own refusal made the next
// fills forget the tag again. Seen through examples/proxy with L2 under the
// public shared-cache suite: fills of unrelated URLs refused around the writes
// of the suite's invalidation tests ("Response 2 does not come from cache").
import assert from 'node:assert/strict';
import { Validity } from '../../../src/store/tag-versions.js';
import { CLOCK_EPOCH, trustedVersions } from '../../support/never-asked-source.js';

const EPOCH = CLOCK_EPOCH;

describe('store: TagVersions, a tag forgotten between a fill\'s lookup and its stamp', () => {
  it('records the version last known, so the fill stays valid when the tag had not moved', () => {
    const versions = trustedVersions();
    const shared = 'path:/test';
    versions.learnStored({ epoch: EPOCH, tags: [shared], versions: [EPOCH + 5], generation: versions.currentGeneration() });
    const tags = ['key:GET:/test/1', shared];
    const needs = versions.needs(tags);
    assert.deepEqual(needs.tags, ['key:GET:/test/1'], 'the shared tag is known here: the lookup does not read it');
    // Another fill's store was refused: its tags are forgotten, the shared one with them.
    versions.forget(['key:GET:/test/2', shared]);
    const stamp = versions.stampFrom(tags, needs, { epoch: undefined, versions: [EPOCH + 9] });
    assert.equal(stamp.versions[1], EPOCH + 5, 'the shared tag got a made-up version');
    // The next lookup reads the shared tag again: unmoved.
    versions.learnStored({ epoch: EPOCH, tags: [shared], versions: [EPOCH + 5], generation: versions.currentGeneration() });
    assert.notEqual(versions.check(stamp), Validity.Invalid, 'a fill whose tags never moved is refused here');
    assert.equal(versions.stillCurrent(stamp), true);
  });

  it('a tag that moved since is still refused', () => {
    const versions = trustedVersions();
    const shared = 'path:/test';
    versions.learnStored({ epoch: EPOCH, tags: [shared], versions: [EPOCH + 5], generation: versions.currentGeneration() });
    const tags = ['key:GET:/test/1', shared];
    const needs = versions.needs(tags);
    versions.forget([shared]);
    const stamp = versions.stampFrom(tags, needs, { epoch: undefined, versions: [EPOCH + 9] });
    versions.learnStored({ epoch: EPOCH, tags: [shared], versions: [EPOCH + 6], generation: versions.currentGeneration() });
    assert.equal(versions.check(stamp), Validity.Invalid);
  });

  it('a tag forgotten and learned again before the stamp records what is known now, not what was known when it was forgotten', () => {
    const versions = trustedVersions();
    const shared = 'path:/test';
    versions.learnStored({ epoch: EPOCH, tags: [shared], versions: [EPOCH + 5], generation: versions.currentGeneration() });
    const tags = ['key:GET:/test/1', shared];
    const needs = versions.needs(tags);
    versions.forget([shared]);
    // Read again by another lookup meanwhile, moved since.
    versions.learnStored({ epoch: EPOCH, tags: [shared], versions: [EPOCH + 6], generation: versions.currentGeneration() });
    const stamp = versions.stampFrom(tags, needs, { epoch: undefined, versions: [EPOCH + 9] });
    assert.equal(stamp.versions[1], EPOCH + 6);
    assert.notEqual(versions.check(stamp), Validity.Invalid, 'a fill stamped with the version known now is refused here');
  });
});
