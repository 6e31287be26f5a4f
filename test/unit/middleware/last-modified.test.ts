// The time a stored response answers If-Modified-Since with: its
// Last-Modified, and in origin mode, without one, its Date (RFC 9110 §13.1.3:
// a cache may use the Date of the stored response). A Last-Modified that
// does not parse is none; no other field is ever read as that time.
import assert from 'node:assert/strict';
import { PreparedResponse, type StaleRules } from '../../../src/middleware/http-entry.js';

const ORIGIN: StaleRules = { noStale: false, staleWhileRevalidate: 0, staleIfError: 0 };
const MODIFIED = 'Mon, 30 Nov 2026 08:00:00 GMT';
const DATE = 'Thu, 03 Dec 2026 10:00:00 GMT';
const EXPIRES = 'Fri, 04 Dec 2026 10:00:00 GMT';

const lastModifiedOf = (headers: Array<[string, string]>, rules?: StaleRules): number | undefined =>
  new PreparedResponse(200, headers, Buffer.from('x'), false, rules, false).lastModified;

describe('middleware: the time a stored response was last modified', () => {
  it('is its Last-Modified, whatever comes before or after it', () => {
    assert.equal(lastModifiedOf([['last-modified', MODIFIED]]), Date.parse(MODIFIED));
    assert.equal(lastModifiedOf([['date', DATE], ['last-modified', MODIFIED]], ORIGIN), Date.parse(MODIFIED));
    assert.equal(lastModifiedOf([['last-modified', MODIFIED], ['date', DATE]], ORIGIN), Date.parse(MODIFIED), 'a Date after it does not replace it');
  });

  it('in table mode, is never the Date', () => {
    assert.equal(lastModifiedOf([['date', DATE]]), undefined);
  });

  it('in origin mode without a Last-Modified, is the Date, and no other field', () => {
    assert.equal(lastModifiedOf([['date', DATE]], ORIGIN), Date.parse(DATE));
    assert.equal(lastModifiedOf([['expires', EXPIRES], ['date', DATE]], ORIGIN), Date.parse(DATE), 'Expires is not read as one');
    assert.equal(lastModifiedOf([['expires', EXPIRES]], ORIGIN), undefined);
  });

  it('a Last-Modified that does not parse is none: origin mode falls back to the Date', () => {
    assert.equal(lastModifiedOf([['last-modified', 'yesterday']]), undefined);
    assert.equal(lastModifiedOf([['last-modified', 'yesterday'], ['date', DATE]], ORIGIN), Date.parse(DATE));
    assert.equal(lastModifiedOf([['date', DATE], ['last-modified', 'yesterday']], ORIGIN), Date.parse(DATE));
  });
});
