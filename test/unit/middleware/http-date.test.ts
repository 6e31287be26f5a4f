import assert from 'node:assert/strict';
import { httpDateNow, parseHttpDate } from '../../../src/middleware/http-date.js';

describe('middleware: httpDateNow', () => {
  it('is the IMF-fixdate of the current second (RFC 9110 §5.6.7)', () => {
    const before = Math.floor(Date.now() / 1000) * 1000;
    const text = httpDateNow();
    const after = Date.now();
    assert.match(text, /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/);
    const at = Date.parse(text);
    assert.ok(at >= before && at <= after, `${text} is not the current second`);
  });
});

describe('middleware: parseHttpDate (RFC 9110 §5.6.7)', () => {
  // RFC 9110's own example instant, in its three forms.
  const EXAMPLE = Date.UTC(1994, 10, 6, 8, 49, 37);

  it('reads IMF-fixdate and the two obsolete forms', () => {
    assert.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT'), EXAMPLE);
    assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', Date.UTC(2026, 0, 1)), EXAMPLE);
    assert.equal(parseHttpDate('Sun Nov  6 08:49:37 1994'), EXAMPLE);
    assert.equal(parseHttpDate('Wed Nov 16 08:49:37 1994'), Date.UTC(1994, 10, 16, 8, 49, 37));
    assert.equal(parseHttpDate(' Sun, 06 Nov 1994 08:49:37 GMT '), EXAMPLE, 'whitespace around a field value is not part of it');
    for (const [month, i] of [['Jan', 0], ['Feb', 1], ['Mar', 2], ['Apr', 3], ['May', 4], ['Jun', 5], ['Jul', 6], ['Aug', 7], ['Sep', 8], ['Oct', 9], ['Nov', 10], ['Dec', 11]] as const) {
      assert.equal(parseHttpDate(`Mon, 01 ${month} 2001 00:00:00 GMT`), Date.UTC(2001, i, 1), month);
    }
  });

  it('reads a two-digit year more than 50 years ahead as the latest past year with those digits', () => {
    const in2026 = Date.UTC(2026, 5, 1);
    assert.equal(new Date(parseHttpDate('Monday, 01-Jan-76 00:00:00 GMT', in2026)).getUTCFullYear(), 2076);
    assert.equal(new Date(parseHttpDate('Monday, 01-Jan-77 00:00:00 GMT', in2026)).getUTCFullYear(), 1977);
    assert.equal(new Date(parseHttpDate('Monday, 01-Jan-26 00:00:00 GMT', in2026)).getUTCFullYear(), 2026);
  });

  it('takes a leap second, and the last day of a month', () => {
    assert.equal(parseHttpDate('Sat, 31 Dec 2016 23:59:60 GMT'), Date.UTC(2016, 11, 31, 23, 59, 59));
    assert.equal(parseHttpDate('Thu, 29 Feb 2024 12:00:00 GMT'), Date.UTC(2024, 1, 29, 12));
  });

  it('is NaN for anything else, including what Date.parse reads', () => {
    for (const text of [
      '',
      '0',
      '1994',
      '784111777',
      '1994-11-06T08:49:37Z',
      'SUN, 06 NOV 1994 08:49:37 GMT',
      'sun, 06 nov 1994 08:49:37 gmt',
      'Sun, 6 Nov 1994 08:49:37 GMT',
      'Sun, 06 Nov 94 08:49:37 GMT',
      'Sun, 06 Nov 1994 08:49:37 UTC',
      'Sun, 06 Nov 1994 08:49:37 +0000',
      'Sun, 06 Nov 1994 08:49 GMT',
      'Sun,  06 Nov 1994 08:49:37 GMT',
      'Sun 06 Nov 1994 08:49:37 GMT',
      'Sunday, 06-Nov-1994 08:49:37 GMT',
      'Sun, 06-Nov-94 08:49:37 GMT',
      'Sun Nov 6 08:49:37 1994',
      'Sun Nov  6 08:49:37 94',
      'Sun, 31 Feb 1994 08:49:37 GMT',
      'Sun, 00 Nov 1994 08:49:37 GMT',
      'Sun, 06 Nov 1994 24:00:00 GMT',
      'Sun, 06 Nov 1994 08:60:00 GMT',
      'Sun, 06 Nov 1994 08:49:61 GMT',
      'Sun, 06 Foo 1994 08:49:37 GMT',
      'Sun, 06 Nov 1994 08:49:37 GMT extra',
    ]) {
      assert.ok(Number.isNaN(parseHttpDate(text)), JSON.stringify(text));
    }
  });
});
