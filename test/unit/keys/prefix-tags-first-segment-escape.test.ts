// Why this test exists: prefixTags reads a prefix holding '%' twice, as sent and
// as the app sees it; the existing tests only had the '%' deep in the path.
// Mutation testing showed nothing checked a '%' right after the leading '/'
// (index 1), where the second reading was skipped unnoticed.
import assert from 'node:assert/strict';
import { implicitTags, prefixTags } from '../../../src/keys/index.js';

/** Whether invalidatePrefix(prefix) reaches an entry filled for `path`. */
function reaches(prefix: string, path: string): boolean {
  const tags = prefixTags(prefix);
  return tags === undefined || tags.some((t) => implicitTags(path).includes(t));
}

describe("keys: prefixTags with a '%' in the first segment", () => {
  it("reads '/%41' both ways: it reaches /A (the escape decoded) and /%2541 (the id '%41' as the app sees it)", () => {
    assert.deepEqual(prefixTags('/%41'), ['path:/a', 'path:/%41']);
    assert.ok(reaches('/%41', '/A'), 'the encoded reading');
    assert.ok(reaches('/%41', '/%2541/x'), 'the decoded id %41');
  });
});
