// HTTP entries are stored as bytes alone (times, tags, head JSON and body in
// one buffer of their own, the bytes L2 is sent) and decoded on their first
// hit; L1 charges the decoded form from the start, so its byte count does not
// move when a hit decodes an entry.
import assert from 'node:assert/strict';
import { httpValueOf, manifestEntry, ownReason, PreparedResponse, responseEntry, VaryManifest } from '../../../src/middleware/http-entry.js';
import { EntryKind, type StoredEntry } from '../../../src/store/entry.js';
import { decodeEntry } from '../../../src/store/entry-codec.js';
import { L1Store } from '../../../src/store/l1-store.js';
import { PackedEntry } from '../../../src/store/packed-entry.js';

const stamp = { epoch: 3, tags: ['key:k', 'path:/a'], versions: [1, 2] };
const life = { createdAt: 1_000, freshUntil: 61_000, staleUntil: 61_000 };

const HEADER_SETS: Array<Array<[string, string]>> = [
  [],
  [['content-length', '5']],
  [['x-powered-by', 'Express'], ['content-type', 'application/json; charset=utf-8'], ['etag', 'W/"5-abc"']],
  [['a', 'b'], ['c', 'd'], ['e', 'f'], ['g', 'h'], ['i', 'j'], ['k', 'l'], ['m', 'n'], ['o', 'p']],
  [['set-later', 'x'], ['last-modified', 'Tue, 01 Dec 2026 10:00:00 GMT'], ['x-pad', 'p'.repeat(4096)]],
  [['last-modified', 'not a date'], ['vary', 'accept'], ['vary', 'accept-language']],
];

describe('middleware: HTTP entries', () => {
  for (const [i, headers] of HEADER_SETS.entries()) {
    for (const status of [200, 204, 301]) {
      it(`header set ${i}, status ${status}: bytes alone until first use, charged the same by L1 before and after decoding, replayed as stored`, () => {
        const body = status === 204 ? Buffer.alloc(0) : Buffer.from('hello');
        const { entry: forFill, l1Entry: entry } = responseEntry(stamp, life, status, headers, body, true);
        assert.ok(entry instanceof PackedEntry && forFill instanceof PackedEntry);
        assert.equal(entry.bytes, forFill.bytes, 'one allocation for both tiers');
        assert.equal(entry.bytes.buffer.byteLength, entry.bytes.length, 'a buffer of its own');
        assert.deepEqual({ ...decodeEntry(entry.bytes), head: undefined, body: undefined }, { kind: EntryKind.Http, ...life, epoch: 3, tags: stamp.tags, versions: stamp.versions, head: undefined, body: undefined }, 'the bytes L2 is sent');
        assert.equal(entry.decoded, undefined);
        const charged = L1Store.sizeOf('k', entry);
        assert.equal(entry.head.buffer, entry.bytes.buffer, 'the head is a view into the bytes');
        assert.equal(entry.body.buffer, entry.bytes.buffer, 'the body is a view into the bytes');
        assert.deepEqual(entry.body, body);
        assert.deepEqual([entry.kind, entry.createdAt, entry.freshUntil, entry.staleUntil, entry.epoch], [EntryKind.Http, life.createdAt, life.freshUntil, life.staleUntil, 3]);
        assert.deepEqual([entry.tags, entry.versions], [stamp.tags, stamp.versions]);
        const response = httpValueOf(entry);
        assert.ok(response instanceof PreparedResponse);
        assert.equal(entry.decoded, response);
        assert.equal(L1Store.sizeOf('k', entry), charged, 'decoding its tags and its response changes nothing of what it is charged');
        assert.equal(response.status, status);
        assert.equal(response.isPublic, true);
        assert.deepEqual(response.body, body);
        assert.deepEqual(
          response.headers.fields().filter((_, j, all) => all[j - (j % 2)] !== 'content-length'),
          headers.filter(([n]) => n !== 'content-length').flat(),
        );
      });
    }
  }

  it('a Vary manifest is bytes alone until first use, charged the same before and after decoding', () => {
    const { entry } = manifestEntry(stamp, life, ['accept-language', 'x-tenant'], false);
    const charged = L1Store.sizeOf('k', entry);
    const manifest = httpValueOf(entry);
    assert.ok(manifest instanceof VaryManifest);
    assert.deepEqual(manifest.headers, ['accept-language', 'x-tenant']);
    assert.equal(manifest.isPublic, false);
    assert.equal(L1Store.sizeOf('k', entry), charged);
  });

  it('marks a response or a manifest scoped (stored by a middleware with `user`) only when its maker says so, through the stored bytes', () => {
    const scopedOf = (entry: StoredEntry): boolean => {
      assert.ok(entry instanceof PackedEntry);
      // What L2 is sent, and another instance reads.
      const head = JSON.parse(decodeEntry(entry.bytes).head.toString('utf8')) as { r?: number };
      const value = httpValueOf(entry);
      assert.ok(value instanceof PreparedResponse || value instanceof VaryManifest);
      assert.equal(value.scoped, head.r === 1, 'decoded as stored');
      return value.scoped;
    };
    const body = Buffer.from('x');
    assert.equal(scopedOf(responseEntry(stamp, life, 200, [], body, false).entry), false, 'a response by default');
    assert.equal(scopedOf(responseEntry(stamp, life, 200, [], body, false, undefined, false).entry), false);
    assert.equal(scopedOf(responseEntry(stamp, life, 200, [], body, false, undefined, true).entry), true);
    assert.equal(scopedOf(manifestEntry(stamp, life, ['accept'], false).entry), false, 'a manifest by default');
    assert.equal(scopedOf(manifestEntry(stamp, life, ['accept'], false, false).entry), false);
    assert.equal(scopedOf(manifestEntry(stamp, life, ['accept'], false, true).entry), true);
  });

  it('keeps origin-mode stale rules through the stored bytes', () => {
    const { entry } = responseEntry(stamp, life, 200, [['date', 'Tue, 01 Dec 2026 10:00:00 GMT']], Buffer.from('x'), false, { noStale: true, staleWhileRevalidate: 5, staleIfError: 7 });
    const charged = L1Store.sizeOf('k', entry);
    const response = httpValueOf(entry) as PreparedResponse;
    assert.deepEqual(response.staleRules, { noStale: true, staleWhileRevalidate: 5, staleIfError: 7 });
    assert.equal(response.lastModified, Date.parse('Tue, 01 Dec 2026 10:00:00 GMT'));
    assert.equal(L1Store.sizeOf('k', entry), charged);
  });
});

describe('middleware: the reason phrase an entry keeps (ownReason)', () => {
  it("keeps the one the handler sent, and none when it is node's own for the status, empty or absent (every answer then says node's)", () => {
    assert.equal(ownReason(200, 'All Good'), 'All Good');
    assert.equal(ownReason(404, 'OK'), 'OK', "another status's phrase is the handler's own");
    assert.equal(ownReason(200, 'OK'), undefined);
    assert.equal(ownReason(404, 'Not Found'), undefined);
    assert.equal(ownReason(200, ''), undefined);
    assert.equal(ownReason(299, ''), undefined, 'a status node has no phrase for');
    assert.equal(ownReason(200, undefined), undefined);
    assert.equal(ownReason(299, 'Custom'), 'Custom');
  });
});

describe('middleware: HTTP entries read back from L2 (foreign or damaged heads are no entry)', () => {
  /** An entry as L2 gives it back: the head's JSON as written by someone else. */
  const fromL2 = (head: unknown, kind: EntryKind = EntryKind.Http): StoredEntry => ({ kind, ...life, epoch: 3, tags: [], versions: [], head: Buffer.from(JSON.stringify(head)), body: Buffer.from('body') });

  it('takes a well-formed response or manifest, decodes it once, and only from an HTTP entry', () => {
    const entry = fromL2({ s: 599, h: [['content-type', 'text/plain']], o: [1, 5, 6] });
    const value = httpValueOf(entry);
    assert.ok(value instanceof PreparedResponse);
    assert.equal(value.status, 599);
    assert.deepEqual(value.staleRules, { noStale: true, staleWhileRevalidate: 5, staleIfError: 6 });
    assert.equal(httpValueOf(entry), value, 'decoded again');
    assert.ok(httpValueOf(fromL2({ m: ['accept'] })) instanceof VaryManifest);
    assert.equal(httpValueOf(fromL2({ s: 200, h: [] }, EntryKind.Json)), undefined, 'a data value taken for a response');
  });

  it("takes a stored reason phrase node can send, and leaves out one it cannot (the answer then says the status's own)", () => {
    const custom = httpValueOf(fromL2({ s: 200, h: [], t: 'All Good \u00e9' }));
    assert.ok(custom instanceof PreparedResponse);
    assert.equal(custom.reason, 'All Good \u00e9');
    for (const t of ['Bad\r\nX-Injected: 1', 'Bad\u0000', 'Wide \u0100', 42]) {
      const value = httpValueOf(fromL2({ s: 200, h: [], t }));
      assert.ok(value instanceof PreparedResponse, `the entry was lost for a reason of ${JSON.stringify(t)}`);
      assert.equal(value.reason, undefined, JSON.stringify(t));
    }
  });

  for (const [what, head] of [
    ['a manifest naming a header that is not a string', { m: ['accept', 1] }],
    ['a status that is not an integer', { s: 200.5, h: [] }],
    ['a status below 200', { s: 199, h: [] }],
    ['a status above 599', { s: 600, h: [] }],
    ['headers that are not an array', { s: 200, h: 'content-type: x' }],
    ['a header of three parts', { s: 200, h: [['a', 'b', 'c']] }],
    ['a header value that is not a string', { s: 200, h: [['a', 1]] }],
    ['a header name that is not a string', { s: 200, h: [[1, 'b']] }],
    ['a header name node refuses', { s: 200, h: [['bad name', 'v']] }],
    ['a header value node refuses', { s: 200, h: [['a', 'v\n']] }],
  ] as const) {
    it(`is no entry with ${what}`, () => {
      assert.equal(httpValueOf(fromL2(head)), undefined);
    });
  }

  for (const [what, o] of [
    ['two numbers', [0, 1]],
    ['a negative one', [0, 1, -1]],
    ['a string', [0, '1', 2]],
    ['not an array', { noStale: 1 }],
  ] as const) {
    it(`keeps a response but no stale rules from rules of ${what}`, () => {
      const value = httpValueOf(fromL2({ s: 200, h: [], o }));
      assert.ok(value instanceof PreparedResponse);
      assert.equal(value.staleRules, undefined);
    });
  }
});
