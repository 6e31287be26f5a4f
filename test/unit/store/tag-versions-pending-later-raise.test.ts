// Why this test exists (h94, multi-process stress on a Redis Cluster with one
// master cut off): while this instance's own invalidation of a tag waits for
// Redis (pending), fills of that tag record its marker, and check() compared
// only the marker for it. Another instance's later invalidation of the same
// tag, heard over the bus (raise(), the bus being up: on a Cluster the cut
// master need not be the channel's), was ignored for those fills: the
// instance kept serving an answer whose handler ran before that invalidation,
// from L1 and from L2, until its own queue was delivered. Caught in the
// stress runs with the instance's map already holding the new version and
// `pending: 22` (`STALE ... by invalidateUser(2) on inst 1 delivered=true`).
// The same for a clear() pending here and another instance's clear() (raiseEpoch).
// The version source is never asked: everything here is local state.
import assert from 'node:assert/strict';
import { Validity } from '../../../src/store/tag-versions.js';
import { CLOCK_EPOCH, trustedVersions } from '../../support/never-asked-source.js';

const EPOCH = CLOCK_EPOCH;

describe('store: TagVersions with a pending invalidation, when another instance invalidates the same again', () => {
  it("a fill stamped with the pending tag's marker is invalid once a newer version of the tag is heard; one begun after is valid", () => {
    const versions = trustedVersions();
    versions.raise('movie:7', EPOCH + 3);
    versions.raise('path:/a', EPOCH + 4);
    versions.markPending(['movie:7']);
    const before = versions.stampLocally(['movie:7', 'path:/a'])!;
    assert.equal(versions.check(before), Validity.Valid, 'a fill begun after the own invalidation is valid here');

    versions.raise('movie:7', EPOCH + 5); // another instance's invalidation, heard over the bus
    assert.equal(versions.check(before), Validity.Invalid, "a fill begun before the other instance's invalidation is still served here");
    assert.equal(versions.stillCurrent(before), false, "a fill begun before the other instance's invalidation may still be stored");

    const after = versions.stampLocally(['movie:7', 'path:/a'])!;
    assert.equal(versions.check(after), Validity.Valid, "a fill begun after both invalidations is refused");
  });

  it("two invalidations of a tag pending here, then a newer version heard: a fill begun between the two stays invalid", () => {
    // The renewed marker must be one no fill recorded before: a fill between this instance's two invalidations
    // recorded the first's marker, and answers what the handler gave before the second.
    const versions = trustedVersions();
    versions.raise('movie:7', EPOCH + 3);
    versions.markPending(['movie:7']);
    const between = versions.stampLocally(['movie:7'])!;
    versions.markPending(['movie:7']);
    assert.equal(versions.check(between), Validity.Invalid, 'a fill begun before the second invalidation is served');
    versions.raise('movie:7', EPOCH + 5); // another instance's invalidation, heard over the bus
    assert.equal(versions.check(between), Validity.Invalid, 'a fill begun before the second invalidation is served again once a newer version is heard');
    assert.equal(versions.stillCurrent(between), false, 'a fill begun before the second invalidation may be stored once a newer version is heard');
    const after = versions.stampLocally(['movie:7'])!;
    assert.equal(versions.check(after), Validity.Valid);
  });

  it('the same version heard again (or an older one) changes nothing', () => {
    const versions = trustedVersions();
    versions.raise('movie:7', EPOCH + 3);
    versions.markPending(['movie:7']);
    const stamp = versions.stampLocally(['movie:7'])!;
    versions.raise('movie:7', EPOCH + 3);
    versions.raise('movie:7', EPOCH + 2);
    assert.equal(versions.check(stamp), Validity.Valid);
  });

  it("with a clear() pending, a fill stamped with its marker epoch is invalid once another instance's clear() is heard", () => {
    const versions = trustedVersions();
    versions.raise('movie:7', EPOCH + 3);
    versions.markPendingClear();
    const before = versions.stampLocally(['movie:7'])!;
    assert.equal(versions.check(before), Validity.Valid, 'a fill begun after the own clear() is valid here');

    versions.raiseEpoch(EPOCH + 1); // another instance's clear(), heard over the bus
    assert.equal(versions.check(before), Validity.Invalid, "a fill begun before the other instance's clear() is still served here");
    const after = versions.stampLocally(['movie:7'])!;
    assert.equal(versions.check(after), Validity.Valid, 'a fill begun after both clear()s is refused');
  });

  it("two clear()s pending here, then another instance's clear() heard: a fill begun between the two stays invalid", () => {
    const versions = trustedVersions();
    versions.raise('movie:7', EPOCH + 3);
    versions.markPendingClear();
    const between = versions.stampLocally(['movie:7'])!;
    versions.markPendingClear();
    assert.equal(versions.check(between), Validity.Invalid, 'a fill begun before the second clear() is served');
    versions.raiseEpoch(EPOCH + 1); // another instance's clear(), heard over the bus
    assert.equal(versions.check(between), Validity.Invalid, "a fill begun before the second clear() is served again once another instance's clear() is heard");
    const after = versions.stampLocally(['movie:7'])!;
    assert.equal(versions.check(after), Validity.Valid);
  });
});
