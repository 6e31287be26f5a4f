// Origin mode stores what a response says about being served stale as
// [noStale, stale-while-revalidate ms, stale-if-error ms] in the entry's head
// and reads it back on the entry's first use (from L1 as well as from L2):
// an answer that may be served stale must still say so once decoded. The
// existing tests round-tripped only noStale: true, so reading every entry as
// noStale (`o[0] === 1` -> true, which would turn off stale-while-revalidate
// and stale-if-error for every origin-mode entry) survived mutation testing.
import assert from 'node:assert/strict';
import { httpValueOf, PreparedResponse, responseEntry } from '../../../src/middleware/http-entry.js';
import { EntryKind, type StoredEntry } from '../../../src/store/entry.js';

const stamp = { epoch: 1, tags: ['key:k'], versions: [1] };
const life = { createdAt: 1_000, freshUntil: 61_000, staleUntil: 61_000 };

describe('middleware: stale rules through the stored bytes', () => {
  it('an answer that may be served stale is still one once decoded', () => {
    const rules = { noStale: false, staleWhileRevalidate: 30_000, staleIfError: 5_000 };
    const { entry } = responseEntry(stamp, life, 200, [['cache-control', 'max-age=60, stale-while-revalidate=30']], Buffer.from('x'), false, rules);
    const response = httpValueOf(entry);
    assert.ok(response instanceof PreparedResponse);
    assert.deepEqual(response.staleRules, rules);
  });

  it('reads noStale from a head written by another instance: 0 is false, 1 is true', () => {
    const fromL2 = (o: number[]): StoredEntry => ({ kind: EntryKind.Http, ...life, epoch: 1, tags: [], versions: [], head: Buffer.from(JSON.stringify({ s: 200, h: [], o })), body: Buffer.from('x') });
    assert.deepEqual((httpValueOf(fromL2([0, 5, 6])) as PreparedResponse).staleRules, { noStale: false, staleWhileRevalidate: 5, staleIfError: 6 });
    assert.deepEqual((httpValueOf(fromL2([1, 5, 6])) as PreparedResponse).staleRules, { noStale: true, staleWhileRevalidate: 5, staleIfError: 6 });
  });
});
