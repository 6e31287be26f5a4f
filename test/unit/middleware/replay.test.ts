import assert from 'node:assert/strict';
import { ageOf } from '../../../src/middleware/replay.js';

describe('middleware: replay, unit', () => {
  it('Age is the whole seconds since the fill began, and 0 for an entry from a clock ahead of this one (never negative)', () => {
    assert.equal(ageOf(10_000, 10_000), 0);
    assert.equal(ageOf(10_000, 10_999), 0);
    assert.equal(ageOf(10_000, 11_000), 1);
    assert.equal(ageOf(10_000, 72_500), 62);
    assert.equal(ageOf(12_500, 10_000), 0, 'an entry created "later" (another instance\'s clock) got a negative Age');
  });
});
