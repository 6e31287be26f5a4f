// A fill's stamp usually comes from its L2 lookup (stampFrom: the counters
// read in the same round trip as the entry), not from stamp(). While an
// invalidation waits for Redis (pending), that stamp must record the
// invalidation's marker as stamp() does: the counters the lookup read are
// from before the invalidation reached Redis, and an entry recording them is
// invalid here until it is delivered. Written for the mutation survivors at
// tag-versions.ts stampFrom's `this.pendingCount === 0 ? stamp : ...`
// (-> true, and -> !==): without the markers, a fill begun after the
// invalidation was refused here (check() Invalid, stillCurrent() false). The
// version source is never asked: stampFrom() takes what the lookup read.
import assert from 'node:assert/strict';
import { Validity } from '../../../src/store/tag-versions.js';
import { CLOCK_EPOCH, trustedVersions } from '../../support/never-asked-source.js';

const EPOCH = CLOCK_EPOCH;

describe("store: TagVersions stamps from a fill's lookup while invalidations are pending", () => {
  const tags = ['movie:7', 'path:/a'];

  it('a pending tag records its marker, not the version the lookup read; the other tag keeps what was read, and the fill is valid here', () => {
    const versions = trustedVersions();
    versions.markPending(['movie:7']);
    const needs = versions.needs(tags);
    assert.deepEqual(needs.tags, tags, 'both tags are unknown here: the lookup reads them');
    const stamp = versions.stampFrom(tags, needs, { epoch: undefined, versions: [EPOCH + 3, EPOCH + 4] });
    assert.ok(stamp.versions[0]! < EPOCH, 'the pending tag recorded the version read from Redis, not its marker');
    assert.equal(stamp.versions[1], EPOCH + 4);
    assert.equal(versions.check(stamp), Validity.Valid, 'a fill begun after the invalidation is refused here');
    assert.equal(versions.stillCurrent(stamp), true, 'a fill begun after the invalidation may not be stored');
  });

  it('with a clear() pending, the stamp records the marker epoch, and the fill is valid here', () => {
    const versions = trustedVersions();
    versions.markPendingClear();
    const needs = versions.needs(tags);
    const stamp = versions.stampFrom(tags, needs, { epoch: EPOCH, versions: [EPOCH + 3, EPOCH + 4] });
    assert.notEqual(stamp.epoch, EPOCH, 'the stamp recorded the epoch from before the pending clear()');
    assert.equal(versions.check(stamp), Validity.Valid);
    assert.equal(versions.stillCurrent(stamp), true);
  });
});
