// A directive repeated with the same argument is no repetition (§4.2.1 concerns
// repeats that could disagree); one with another argument is.
import assert from 'node:assert/strict';
import { parseDirectives } from '../../../../src/middleware/origin/directives.js';

describe('middleware: repeated Cache-Control directives, unit', () => {
  it('the same argument again, quoted or not, in any case of the name, is no repetition', () => {
    assert.equal(parseDirectives('max-age=10, MAX-AGE=10, max-age="10"').repeated.size, 0);
    assert.equal(parseDirectives(['no-cache', 'no-cache']).repeated.size, 0);
  });

  it('another argument is a repetition, and the first argument is kept', () => {
    const d = parseDirectives('max-age=10, max-age=10, max-age=11');
    assert.deepEqual([...d.repeated], ['max-age']);
    assert.equal(d.values.get('max-age'), '10');
  });
});
