// Two clear() calls while Redis is unreachable, with a tag invalidation in
// between: each pending clear gets a marker epoch of its own, so an entry
// filled after the first is invalid after the second. The markers come from
// one local counter that tag markers also advance; a counter that went down
// for clears and up for tags would hand the second clear the first one's
// marker again (tag-versions.ts markPendingClear's `++this.localClock`).
import assert from 'node:assert/strict';
import { TagVersions, Validity } from '../../../src/store/tag-versions.js';
import { neverAsked } from '../../support/never-asked-source.js';

const EPOCH = 1_700_000_000_000_000;

describe('store: TagVersions with two pending clear() calls', () => {
  it('an entry filled after the first pending clear is invalid after the second', () => {
    const versions = new TagVersions({ source: neverAsked, maxTags: 100 });
    versions.trusted = true;
    versions.raiseEpoch(EPOCH);
    const tags = ['path:/a'];
    versions.markPendingClear();
    const between = versions.stampFrom(tags, versions.needs(tags), { epoch: EPOCH, versions: [EPOCH + 3] });
    assert.equal(versions.check(between), Validity.Valid);
    versions.markPending(['movie:7']);
    versions.markPendingClear();
    assert.equal(versions.check(between), Validity.Invalid);
  });

  it('decide(): an entry of another epoch than the one read from Redis is never valid on that read, even when its tag versions match', () => {
    // Written for tag-versions.ts decide()'s epoch check (-> false): the tags alone then decided it. An entry of a
    // newer epoch than read is undecided (the read may predate its fill: Redis is asked), not valid.
    const versions = new TagVersions({ source: neverAsked, maxTags: 100 });
    versions.trusted = false; // local state cannot decide: decide() goes by what was read
    const tags = ['path:/a'];
    const needs = versions.needs(tags);
    const entry = { epoch: EPOCH + 1, tags, versions: [EPOCH + 3], generation: needs.generation };
    assert.equal(versions.decide(entry, needs, { epoch: EPOCH, versions: [EPOCH + 3] }), undefined);
    assert.equal(versions.decide({ ...entry, epoch: EPOCH - 1 }, versions.needs(tags), { epoch: EPOCH, versions: [EPOCH + 3] }), false);
    assert.equal(versions.decide({ ...entry, epoch: EPOCH }, versions.needs(tags), { epoch: EPOCH, versions: [EPOCH + 3] }), true);
  });
});
