// Without an L2, TagVersions keeps versions only for invalidated tags, in a
// bounded map of two generations; a tag it no longer knows is judged by the
// floor, which must rise to the LARGEST version of each generation the map
// drops. A generation is not in version order: a hit that reads an older
// invalidated tag moves it into the young generation after newer ones. Written
// for the mutation survivor tag-versions.ts raiseFloor `v > this.floor` ->
// true (the floor took the last version dropped, so it could go down): an
// entry stamped before an invalidation the map had forgotten became valid again.
import assert from 'node:assert/strict';
import { TagVersions, Validity } from '../../../src/store/tag-versions.js';

describe('store: TagVersions without an L2, when the bounded map drops a generation', () => {
  it('an entry from before a forgotten invalidation stays invalid, also when a generation dropped holds an older version after it', async () => {
    const versions = new TagVersions({ source: undefined, maxTags: 4 }); // generations of 2 tags
    await versions.bump(['a']);
    await versions.bump(['b']);
    const before = versions.stampLocally(['c'])!; // c was never invalidated yet
    await versions.bump(['c']); // a and b become the old generation
    assert.equal(versions.check(before), Validity.Invalid);
    // A hit on an entry tagged 'a' reads a: it moves (with its old version) into the young generation, after c.
    assert.equal(versions.check(versions.stampLocally(['a'])!), Validity.Valid);
    await versions.bump(['d']); // drops b's generation; c and a age
    await versions.bump(['e']);
    await versions.bump(['f']); // drops the generation of c and a
    assert.equal(versions.check(before), Validity.Invalid, "c's invalidation was forgotten and the entry from before it is served again");
    assert.equal(versions.check(versions.stampLocally(['c'])!), Validity.Valid, 'a fill stamped now is refused');
  });
});
