// Revalidation of a stored response (RFC 9111 §4.3): the validators sent,
// and the stored header fields updated from a 304 (§3.2, §4.3.4).
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { PreparedResponse } from '../../../../src/middleware/http-entry.js';
import { addConditions, asOutgoing, hasValidator, refreshedFields } from '../../../../src/middleware/origin/revalidation.js';

const LM = 'Tue, 01 Dec 2026 09:00:00 GMT';
const DATE = 'Tue, 01 Dec 2026 10:00:00 GMT';
const RULES = { noStale: false, staleWhileRevalidate: 0, staleIfError: 0 };
const stored = (fields: Array<[string, string]>) => new PreparedResponse(200, fields, Buffer.from('hello'), true, RULES, false);

describe('middleware: origin revalidation, unit', () => {
  describe('hasValidator (RFC 9110 §8.8: ETag, Last-Modified)', () => {
    it('finds an entity tag or a Last-Modified', () => {
      assert.equal(hasValidator(stored([['etag', '"v1"']])), true);
      assert.equal(hasValidator(stored([['date', DATE], ['last-modified', LM]])), true);
    });

    it('finds none without either: Date is no validator', () => {
      assert.equal(hasValidator(stored([['date', DATE], ['content-type', 'text/plain']])), false);
      assert.equal(hasValidator(stored([])), false);
      // A field value that reads like a field name is no field.
      assert.equal(hasValidator(stored([['x-note', 'last-modified'], ['x-other', LM]])), false);
    });
  });

  describe('addConditions (§4.3.1)', () => {
    it('sends the stored entity tag in If-None-Match and the stored Last-Modified in If-Modified-Since', () => {
      const headers: IncomingHttpHeaders = { accept: '*/*' };
      addConditions(headers, stored([['etag', 'W/"v1"'], ['last-modified', LM]]));
      assert.deepEqual(headers, { accept: '*/*', 'if-none-match': 'W/"v1"', 'if-modified-since': LM });
    });

    it('sends only the validators the stored response has', () => {
      const etagOnly: IncomingHttpHeaders = {};
      addConditions(etagOnly, stored([['etag', '"v1"'], ['date', DATE]]));
      assert.deepEqual(etagOnly, { 'if-none-match': '"v1"' });
      const lmOnly: IncomingHttpHeaders = {};
      addConditions(lmOnly, stored([['last-modified', LM], ['date', DATE]]));
      assert.deepEqual(lmOnly, { 'if-modified-since': LM });
    });

    it('replaces the validators the client sent with the stored ones', () => {
      const headers: IncomingHttpHeaders = { 'if-none-match': '"client"', 'if-modified-since': DATE };
      addConditions(headers, stored([['etag', '"v1"'], ['last-modified', LM]]));
      assert.deepEqual(headers, { 'if-none-match': '"v1"', 'if-modified-since': LM });
    });
  });

  describe('refreshedFields (§3.2)', () => {
    it('replaces stored fields by the 304\'s, in their stored place, and appends new ones', () => {
      const s = stored([['date', LM], ['cache-control', 'max-age=60'], ['content-type', 'text/plain'], ['x-a', '1']]);
      const out = refreshedFields(s, { date: DATE, 'cache-control': 'max-age=120', 'x-new': 'n' });
      assert.deepEqual(out, [
        ['date', DATE],
        ['cache-control', 'max-age=120'],
        ['content-type', 'text/plain'],
        ['x-a', '1'],
        ['content-length', '5'],
        ['x-new', 'n'],
      ]);
    });

    it('keeps the stored fields when the 304 has none', () => {
      const s = stored([['content-type', 'text/plain'], ['content-length', '5']]);
      assert.deepEqual(refreshedFields(s, {}), [['content-type', 'text/plain'], ['content-length', '5']]);
    });

    it('replaces every stored line of a repeated field by every line of the 304, at the first one\'s place', () => {
      const s = stored([['link', '<a>'], ['content-type', 'text/plain'], ['link', '<b>'], ['content-length', '5']]);
      assert.deepEqual(refreshedFields(s, { link: ['<c>', '<d>'] }), [
        ['link', '<c>'],
        ['link', '<d>'],
        ['content-type', 'text/plain'],
        ['content-length', '5'],
      ]);
    });

    it('appends a new repeated field with all its lines, in order', () => {
      const s = stored([['content-length', '5']]);
      assert.deepEqual(refreshedFields(s, { 'x-b': ['1', '2'] }), [['content-length', '5'], ['x-b', '1'], ['x-b', '2']]);
    });

    it('never takes Content-Length from the 304, nor a Content-Encoding that would relabel the stored bytes', () => {
      const s = stored([['content-type', 'text/plain'], ['content-encoding', 'gzip'], ['content-length', '5']]);
      assert.deepEqual(refreshedFields(s, { 'content-length': '0', 'content-encoding': 'br' }), [
        ['content-type', 'text/plain'],
        ['content-encoding', 'gzip'],
        ['content-length', '5'],
      ]);
    });

    it('does not store hop-by-hop fields of the 304, nor those its Connection lists (§3.1)', () => {
      const s = stored([['content-length', '5']]);
      assert.deepEqual(refreshedFields(s, { connection: 'x-hop', 'x-hop': '1', 'keep-alive': 'timeout=5', 'x-end': 'e' }), [['content-length', '5'], ['x-end', 'e']]);
    });
  });

  describe('asOutgoing', () => {
    it('groups the lines of a repeated field into an array, in order', () => {
      assert.deepEqual(asOutgoing([['a', '1'], ['b', '2'], ['a', '3'], ['a', '4']]), { a: ['1', '3', '4'], b: '2' });
      assert.deepEqual(asOutgoing([]), {});
    });
  });
});
