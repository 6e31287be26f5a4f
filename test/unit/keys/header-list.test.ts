import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseDirectives, splitList, unquote } from '../../../src/keys/header-list.js';
import { RUNS } from './support.js';

describe('keys: header lists (RFC 9110 §5.6)', () => {
  describe('splitList', () => {
    it('splits on commas, trims optional whitespace and drops empty elements', () => {
      assert.deepEqual(splitList(' a ,b,\t, c\t'), ['a', 'b', 'c']);
      assert.deepEqual(splitList(''), []);
      assert.deepEqual(splitList(undefined), []);
      assert.deepEqual(splitList(42), ['42']);
    });

    it('reads repeated fields (an array) as one list', () => {
      assert.deepEqual(splitList(['a, b', 'c']), ['a', 'b', 'c']);
    });

    it('keeps a comma inside a quoted string: "movies, tv" is one element', () => {
      assert.deepEqual(splitList('"movies, tv", x'), ['"movies, tv"', 'x']);
      assert.deepEqual(splitList('no-cache="set-cookie, x", max-age=60'), ['no-cache="set-cookie, x"', 'max-age=60']);
    });

    it('honours backslash escapes in quoted strings, and not in entity tags (quotedPairs false)', () => {
      assert.deepEqual(splitList('"a\\", b", c'), ['"a\\", b"', 'c']);
      // An ETag has no escapes: "a\" ends at its second quote.
      assert.deepEqual(splitList('"a\\", "b,c"', false), ['"a\\"', '"b,c"']);
    });

    it('runs an unterminated quoted string to the end', () => {
      assert.deepEqual(splitList('a, "b, c'), ['a', '"b, c']);
    });
  });

  describe('unquote', () => {
    it('undoes escapes and ignores what follows the closing quote', () => {
      assert.equal(unquote('"say \\"hi\\""'), 'say "hi"');
      assert.equal(unquote('"a\\\\b"'), 'a\\b');
      assert.equal(unquote('"movie:7";v=1'), 'movie:7');
      assert.equal(unquote('token'), 'token');
      assert.equal(unquote('"open'), 'open');
    });
  });

  describe('parseDirectives', () => {
    it('reads a quoted value holding commas and directive names as one value', () => {
      const cc = parseDirectives('public, max-age=60, ext="a,no-store,b", No-Cache="Set-Cookie, X"');
      assert.deepEqual([...cc], [['public', ''], ['max-age', '60'], ['ext', 'a,no-store,b'], ['no-cache', 'Set-Cookie, X']]);
      assert.equal(cc.has('no-store'), false);
    });

    it("reads names and values with white space around '=', and skips elements without a name", () => {
      const cc = parseDirectives('max-age = 60,\tS-MAXAGE\t=\t"5" , =7, private');
      assert.deepEqual([...cc], [['max-age', '60'], ['s-maxage', '5'], ['private', '']]);
    });
  });

  describe('properties', () => {
    it('gives back every element of a list of quoted strings, whatever commas, quotes and backslashes they hold', () => {
      const text = fc.string({ unit: fc.constantFrom('a', ',', ' ', '"', '\\', ';', '='), maxLength: 8 });
      fc.assert(
        fc.property(fc.array(text, { minLength: 1, maxLength: 5 }), fc.constantFrom(',', ', ', ' ,\t'), (values, separator) => {
          const field = values.map((v) => `"${v.replace(/[\\"]/g, '\\$&')}"`).join(separator);
          assert.deepEqual(splitList(field).map(unquote), values, field);
        }),
        RUNS,
      );
    });
  });
});
