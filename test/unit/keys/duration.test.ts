import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseDuration } from '../../../src/keys/index.js';
import { MAX_DURATION_MS } from '../../../src/keys/duration.js';
import { RUNS, assertConfigError } from './support.js';

describe('keys: parseDuration', () => {
  it('reads a number as milliseconds', () => {
    assert.equal(parseDuration('ttl', 0), 0);
    assert.equal(parseDuration('ttl', 1500), 1500);
    assert.equal(parseDuration('ttl', 86_400_000), 86_400_000);
  });

  it('rounds a fractional number of milliseconds to a whole one', () => {
    assert.equal(parseDuration('ttl', 1.4), 1);
    assert.equal(parseDuration('ttl', 1.6), 2);
  });

  it("reads 'ms' strings: '30s', '5m', '1h', '250ms', '1d', '1.5h', '2 hours'", () => {
    assert.equal(parseDuration('ttl', '30s'), 30_000);
    assert.equal(parseDuration('ttl', '5m'), 300_000);
    assert.equal(parseDuration('ttl', '1h'), 3_600_000);
    assert.equal(parseDuration('ttl', '250ms'), 250);
    assert.equal(parseDuration('ttl', '1d'), 86_400_000);
    assert.equal(parseDuration('ttl', '1.5h'), 5_400_000);
    assert.equal(parseDuration('ttl', '2 hours'), 7_200_000);
  });

  it('reads a string of digits as milliseconds', () => {
    assert.equal(parseDuration('ttl', '0'), 0);
    assert.equal(parseDuration('ttl', '1500'), 1500);
    assert.equal(parseDuration('ttl', '007'), 7);
    assert.equal(parseDuration('ttl', '2.5'), 3);
  });

  it('ignores white space around the value', () => {
    assert.equal(parseDuration('ttl', '  250  '), 250);
    assert.equal(parseDuration('ttl', '\t2s\n'), 2000);
    assert.equal(parseDuration('ttl', ' 1.5 hours '), 5_400_000);
  });

  it('accepts any non-negative integer written as a number, a digit string or an "Nms" string', () => {
    fc.assert(
      fc.property(fc.nat(), (n) => {
        assert.equal(parseDuration('ttl', n), n);
        assert.equal(parseDuration('ttl', String(n)), n);
        assert.equal(parseDuration('ttl', `${n}ms`), n);
      }),
      RUNS,
    );
  });

  describe('rejects with a TierCacheConfigError naming the option and the value', () => {
    const cases: Array<[string, unknown, string]> = [
      ['a negative number', -1, '-1'],
      ['a negative fraction', -0.5, '-0.5'],
      ['NaN', Number.NaN, 'NaN'],
      ['Infinity', Number.POSITIVE_INFINITY, 'Infinity'],
      ['-Infinity', Number.NEGATIVE_INFINITY, '-Infinity'],
      ['the empty string', '', '""'],
      ['a blank string', '   ', '"   "'],
      ['a word', 'abc', '"abc"'],
      ["a negative 'ms' string", '-5s', '"-5s"'],
      ['an unknown unit', '5 parsecs', '"5 parsecs"'],
      ["the string 'Infinity'", 'Infinity', '"Infinity"'],
      ['a digit string too large to be finite', '9'.repeat(400), '"999'],
      ['an empty object', {}, '{}'],
      ['an object', { ms: 5 }, '{"ms":5}'],
      ['an array', [5], 'an array'],
      ['null', null, 'null'],
      ['a boolean', true, 'true'],
      ['undefined', undefined, 'undefined'],
    ];
    for (const [label, value, shown] of cases) {
      it(`rejects ${label}`, () => {
        assertConfigError(() => parseDuration('l1.ttl', value), 'l1.ttl', shown);
      });
    }
  });

  it("takes up to 10 years ('10y') and refuses longer ones, which Redis could not hold as an expiry (1e20, Number.MAX_VALUE, '11y')", () => {
    assert.equal(parseDuration('ttl', '10y'), MAX_DURATION_MS);
    assert.equal(parseDuration('ttl', MAX_DURATION_MS), MAX_DURATION_MS);
    assert.equal(MAX_DURATION_MS, 315_576_000_000);
    for (const [value, shown] of [[MAX_DURATION_MS + 1, String(MAX_DURATION_MS + 1)], [1e20, '100000000000000000000'], [Number.MAX_VALUE, '1.7976931348623157e+308'], [2 ** 53, String(2 ** 53)], ['11y', '"11y"'], ['1000 years', '"1000 years"']] as const) {
      assertConfigError(() => parseDuration('l2.lockTimeout', value), 'l2.lockTimeout', shown, /at most 10 years/);
    }
  });

  it('says which values it takes', () => {
    assert.throws(() => parseDuration('ttl', 'soon'), /must be a non-negative duration: milliseconds as a number, or a string such as '30s', '5m', '1h'/);
  });

  it('names whatever option it was asked to parse', () => {
    assertConfigError(() => parseDuration("routes['/api'].staleIfError", 'later'), "routes['/api'].staleIfError", '"later"');
  });

  it('rejects every negative number', () => {
    fc.assert(
      fc.property(fc.double({ max: -Number.MIN_VALUE, noNaN: true }), (n) => {
        assertConfigError(() => parseDuration('ttl', n), 'ttl', String(n));
      }),
      RUNS,
    );
  });
});
