// TagVersions while Redis cannot answer verify(): an L1 entry is served (an
// outage costs freshness, bounded by l1.ttl), unless one of its tags is no
// longer known here and this instance itself invalidated that tag, after the
// entry recorded it, and then let it go (the bounded map dropped it, it was
// too long to keep, or too many own invalidations to follow one by one):
// DESIGN §4(1), found by hostile reviews (helpers 73-75). Per bucket of tags,
// since versions of different tags say nothing about each other. The version
// source is an in-memory stand-in: these are local rules, not Redis ones (the
// integration tests run them against a real redis-server).
import assert from 'node:assert/strict';
import type { FillStamp } from '../../../src/store/entry.js';
import { TagVersions } from '../../../src/store/tag-versions.js';
import { verify } from '../../support/l1-outage-verdict.js';
import { MemorySource } from '../../support/memory-version-source.js';

/** maxTags 100: the map keeps 50 to 100 tags; a tag over maxBytes / 2 is never kept. */
function setUp(maxBytes = 1024 * 1024): { source: MemorySource; versions: TagVersions } {
  const source = new MemorySource();
  const versions = new TagVersions({ source, maxTags: 100, maxBytes });
  versions.trusted = true; // as with the bus connected
  return { source, versions };
}

/** Reads 200 other tags: the map lets go of whatever it held before. */
async function churn(versions: TagVersions, from = 0): Promise<void> {
  for (let i = 0; i < 200; i++) await versions.stamp([`other:${from + i}`]);
}

describe('store: TagVersions when Redis cannot answer, after letting tags go', () => {
  it('refuses an entry of a tag this instance invalidated and let go; serves one that recorded the version after it', async () => {
    const { source, versions } = setUp();
    const before: FillStamp = await versions.stamp(['product:7']);
    await versions.bump(['product:7']);
    const after: FillStamp = await versions.stamp(['product:7']);
    await churn(versions);
    source.down = true;
    assert.equal(await verify(versions, before), false, 'the invalidated entry was served');
    assert.equal(await verify(versions, after), true, 'an entry made after the invalidation was refused');
  });

  it("serves entries of tags others invalidated (learned), or nobody did, once they are let go", async () => {
    const { source, versions } = setUp();
    const cold: FillStamp = await versions.stamp(['shelf:3']);
    const learned: FillStamp = await versions.stamp(['movie:1']);
    versions.raise('movie:1', learned.versions[0]! + 5); // another instance's invalidation, heard on the bus
    await versions.bump(['product:7']); // this instance's own, of another tag
    await churn(versions);
    source.down = true;
    assert.equal(await verify(versions, cold), true);
    assert.equal(await verify(versions, learned), true, "another instance's invalidation let go is the outage's bound (l1.ttl), not refused");
  });

  it('a tag too long for the map, invalidated here, is let go at once', async () => {
    const { source, versions } = setUp(4_096);
    const long = 'p'.repeat(4_000);
    const before: FillStamp = await versions.stamp([long]);
    await versions.bump([long]);
    source.down = true;
    assert.equal(await verify(versions, before), false);
  });

  it('more own invalidations than it follows one by one: all let go, each refusing only what recorded its tag before', async () => {
    const { source, versions } = setUp();
    const tags = Array.from({ length: 101 }, (_, i) => `own:${i}`);
    const before: FillStamp = await versions.stamp([tags[0]!]);
    const untouched: FillStamp = await versions.stamp(['shelf:9']);
    await versions.bump(tags);
    const after: FillStamp = await versions.stamp([tags[0]!]);
    await churn(versions);
    source.down = true;
    assert.equal(await verify(versions, before), false);
    assert.equal(await verify(versions, after), true);
    assert.equal(await verify(versions, untouched), true);
  });

  it('while the map still holds an invalidated tag, local state decides with Redis down: the older entry refused, the newer served', async () => {
    const { source, versions } = setUp();
    const before: FillStamp = await versions.stamp(['product:7']);
    await versions.bump(['product:7']);
    source.down = true;
    // Still known here: local state decides (older than known: invalid), whatever the floor.
    assert.equal(await verify(versions, before), false);
    source.down = false;
    const fresh: FillStamp = await versions.stamp(['product:7']);
    source.down = true;
    assert.equal(await verify(versions, fresh), true);
  });
});
