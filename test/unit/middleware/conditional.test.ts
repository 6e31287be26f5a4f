// Conditional requests the cache answers itself (RFC 9110 §13.1.2,
// §13.1.3): If-None-Match with weak comparison, else If-Modified-Since.
import assert from 'node:assert/strict';
import { conditionsOf, isNotModified, noneMatchHits } from '../../../src/middleware/conditional.js';

const LM = Date.parse('Tue, 01 Dec 2026 09:00:00 GMT');

describe('middleware: conditional requests, unit', () => {
  describe('noneMatchHits (weak comparison, §8.8.3.2)', () => {
    it('matches the same entity tag, strong or weak on either side', () => {
      assert.equal(noneMatchHits('"v1"', '"v1"'), true);
      assert.equal(noneMatchHits('W/"v1"', '"v1"'), true);
      assert.equal(noneMatchHits('"v1"', 'W/"v1"'), true);
      assert.equal(noneMatchHits('W/"v1"', 'W/"v1"'), true);
      // A field value has no leading or trailing whitespace (RFC 9110 §5.5).
      assert.equal(noneMatchHits('"v1"', ' W/"v1" '), true);
    });

    it('does not match another tag: opaque-tags compare character for character', () => {
      assert.equal(noneMatchHits('"v2"', '"v1"'), false);
      assert.equal(noneMatchHits('"V1"', '"v1"'), false);
      assert.equal(noneMatchHits('"v1 "', '"v1"'), false);
      assert.equal(noneMatchHits('', '"v1"'), false);
    });

    it('takes only an upper-case W/ as the weak indicator (§8.8.3: %s"W/")', () => {
      assert.equal(noneMatchHits('w/"v1"', '"v1"'), false);
    });

    it('matches any tag in a list, with optional whitespace', () => {
      assert.equal(noneMatchHits('"a", "v1"', '"v1"'), true);
      assert.equal(noneMatchHits('"a",W/"v1" ,"b"', '"v1"'), true);
      assert.equal(noneMatchHits('"a", "b"', '"v1"'), false);
    });

    it('matches "*" against any current representation (§13.1.2)', () => {
      assert.equal(noneMatchHits('*', '"v1"'), true);
      assert.equal(noneMatchHits(' * ', 'W/"x"'), true);
    });

    it('keeps a comma inside an entity tag, and reads a backslash in one as a plain character (no escapes)', () => {
      assert.equal(noneMatchHits('"v1,gz"', '"v1,gz"'), true);
      assert.equal(noneMatchHits('"v1,gz"', '"v1"'), false);
      assert.equal(noneMatchHits('"a\\", "b"', '"b"'), true);
      assert.equal(noneMatchHits('"a\\", "b"', '"a\\"'), true);
    });
  });

  describe('conditionsOf', () => {
    it('is undefined when the request has no condition', () => {
      assert.equal(conditionsOf({ accept: '*/*' }), undefined);
    });

    it('keeps If-None-Match and If-Modified-Since', () => {
      assert.deepEqual(conditionsOf({ 'if-none-match': '"a"' }), { ifNoneMatch: '"a"', ifModifiedSince: undefined });
      assert.deepEqual(conditionsOf({ 'if-modified-since': 'x' }), { ifNoneMatch: undefined, ifModifiedSince: 'x' });
      assert.deepEqual(conditionsOf({ 'if-none-match': '"a"', 'if-modified-since': 'x' }), { ifNoneMatch: '"a"', ifModifiedSince: 'x' });
    });
  });

  describe('isNotModified', () => {
    const ims = (value: string) => ({ ifNoneMatch: undefined, ifModifiedSince: value });

    it('If-None-Match: not modified when a tag matches; never without an entity tag', () => {
      assert.equal(isNotModified({ ifNoneMatch: '"v1"', ifModifiedSince: undefined }, '"v1"', undefined), true);
      assert.equal(isNotModified({ ifNoneMatch: '"v2"', ifModifiedSince: undefined }, '"v1"', undefined), false);
      assert.equal(isNotModified({ ifNoneMatch: '"v1"', ifModifiedSince: undefined }, undefined, LM), false);
    });

    it('ignores If-Modified-Since when If-None-Match is present (§13.1.3)', () => {
      const since = new Date(LM + 60_000).toUTCString();
      assert.equal(isNotModified({ ifNoneMatch: '"v2"', ifModifiedSince: since }, '"v1"', LM), false);
      assert.equal(isNotModified({ ifNoneMatch: '"v2"', ifModifiedSince: since }, undefined, LM), false);
    });

    it('If-Modified-Since: not modified when last modified at or before the date given', () => {
      assert.equal(isNotModified(ims(new Date(LM).toUTCString()), undefined, LM), true);
      assert.equal(isNotModified(ims(new Date(LM + 1_000).toUTCString()), '"v1"', LM), true);
      assert.equal(isNotModified(ims(new Date(LM - 1_000).toUTCString()), undefined, LM), false);
    });

    it('If-Modified-Since: ignored when the date is invalid or nothing says when the response changed', () => {
      assert.equal(isNotModified(ims('not a date'), undefined, LM), false);
      // Date.parse reads these; RFC 9110 §13.1.3 has them ignored: no HTTP-date.
      assert.equal(isNotModified(ims(new Date(LM + 1_000).toISOString()), undefined, LM), false);
      assert.equal(isNotModified(ims(new Date(LM + 1_000).toUTCString().toUpperCase()), undefined, LM), false);
      assert.equal(isNotModified(ims(new Date(LM).toUTCString()), undefined, undefined), false);
    });

    it('without conditions: modified', () => {
      assert.equal(isNotModified({ ifNoneMatch: undefined, ifModifiedSince: undefined }, '"v1"', LM), false);
    });
  });
});
