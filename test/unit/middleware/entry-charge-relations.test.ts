// What a decoded HTTP entry charges L1 (heapBytes), held to relations that
// follow from what the decoded object holds, without restating the formula
// and without measuring V8 (entry-heap-cost.test.ts does that, but its
// bounds are percentages and its measurements depend on the process it runs
// in: under the mutation run, changes to the charge for Last-Modified, for
// the Content-Length the cache adds and for a Vary manifest's names
// survived). Each relation compares two shapes whose decoded objects differ
// in one known thing.
import assert from 'node:assert/strict';
import { httpValueOf, manifestEntry, PreparedResponse, responseEntry, VaryManifest } from '../../../src/middleware/http-entry.js';

const stamp = { epoch: 1, tags: ['key:k'], versions: [1] };
const life = { createdAt: 1_000, freshUntil: 61_000, staleUntil: 61_000 };
const DATE = 'Tue, 01 Dec 2026 10:00:00 GMT';

function decoded(status: number, headers: Array<[string, string]>, body: Buffer): PreparedResponse {
  const response = httpValueOf(responseEntry(stamp, life, status, headers, body, false).entry);
  assert.ok(response instanceof PreparedResponse);
  return response;
}

describe('middleware: what a decoded HTTP entry charges, relative to another shape', () => {
  it('an answer with its own Content-Length and one the cache adds it to hold the same fields and are charged the same', () => {
    const body = Buffer.from('hello');
    const declared = decoded(200, [['content-type', 'text/plain'], ['content-length', '5']], body);
    const added = decoded(200, [['content-type', 'text/plain']], body);
    assert.deepEqual(added.headers.fields(), declared.headers.fields(), 'the same fields once decoded');
    assert.equal(added.heapBytes, declared.heapBytes);
    assert.equal(PreparedResponse.heapBytesOf(200, [['content-type', 'text/plain']], 5, undefined), PreparedResponse.heapBytesOf(200, [['content-type', 'text/plain'], ['content-length', '5']], 5, undefined));
  });

  it('a Last-Modified (a time kept as a number) costs more than the same field under another name of the same length', () => {
    // Both names have 13 characters: shared or not, they cost the same.
    const dated = decoded(200, [['last-modified', DATE]], Buffer.from('x'));
    const other = decoded(200, [['x-modified-at', DATE]], Buffer.from('x'));
    assert.equal(dated.lastModified, Date.parse(DATE));
    assert.equal(other.lastModified, undefined);
    assert.ok(dated.heapBytes > other.heapBytes, `Last-Modified charged ${dated.heapBytes}, the other field ${other.heapBytes}`);
  });

  it("a reason phrase of the handler's own costs what its characters take, over the same answer with node's", () => {
    const body = Buffer.from('x');
    const headers: Array<[string, string]> = [['content-type', 'text/plain']];
    const plain = httpValueOf(responseEntry(stamp, life, 200, headers, body, false).entry);
    const custom = httpValueOf(responseEntry(stamp, life, 200, headers, body, false, undefined, false, 'A'.repeat(100)).entry);
    assert.ok(plain instanceof PreparedResponse && custom instanceof PreparedResponse);
    assert.equal(custom.reason, 'A'.repeat(100));
    // One byte a character at least (node keeps only Latin-1 in a head).
    assert.ok(custom.heapBytes >= plain.heapBytes + 100, `with a 100-character reason charged ${custom.heapBytes}, without ${plain.heapBytes}`);
    assert.equal(custom.heapBytes, PreparedResponse.heapBytesOf(200, headers, 1, undefined, 'A'.repeat(100)));
  });

  it('a Vary manifest costs more for every name it holds', () => {
    const sizes = [[], ['accept'], ['accept', 'accept-language'], ['accept', 'accept-language', 'accept-encoding']].map((names) => {
      const manifest = httpValueOf(manifestEntry(stamp, life, names, false).entry);
      assert.ok(manifest instanceof VaryManifest);
      assert.equal(manifest.heapBytes, VaryManifest.heapBytesOf(names));
      return manifest.heapBytes;
    });
    for (let i = 1; i < sizes.length; i++) assert.ok(sizes[i]! > sizes[i - 1]!, `${i} names charged ${sizes[i]}, ${i - 1} charged ${sizes[i - 1]}`);
    assert.ok(Number.isFinite(sizes[0]!));
  });
});
