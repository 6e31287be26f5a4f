// Why this test exists: the process-wide table of shared header names is
// bounded (1,024 names) and tests empty it with forgetSharedHeaderNames().
// The heap-cost tests only fill it until it refuses; mutation testing showed
// neither the exact bound nor the emptying was checked.
import assert from 'node:assert/strict';
import { forgetSharedHeaderNames, sharedHeaderName } from '../../../src/middleware/header-names.js';

describe('middleware: the table of shared header names', () => {
  // It fills the process-wide table: emptied again after it, for the tests that run later in this process.
  after(forgetSharedHeaderNames);

  it('shares 1,024 distinct names, then refuses new ones but still gives those it holds', () => {
    forgetSharedHeaderNames();
    let shared = 0;
    while (sharedHeaderName(`x-bound-name-${shared}`) !== undefined) {
      shared++;
      assert.ok(shared <= 100_000, 'the table of shared names is bounded');
    }
    assert.equal(shared, 1_024);
    assert.equal(sharedHeaderName('x-bound-name-0'), 'x-bound-name-0');
    assert.equal(sharedHeaderName('x-bound-name-1023'), 'x-bound-name-1023');
  });

  it('shares new names again once forgetSharedHeaderNames() has emptied a full table', () => {
    for (let i = 0; sharedHeaderName(`x-filler-${i}`) !== undefined; i++) assert.ok(i < 100_000);
    assert.equal(sharedHeaderName('x-after-forgetting'), undefined, 'the table is full');
    forgetSharedHeaderNames();
    assert.equal(sharedHeaderName('x-after-forgetting'), 'x-after-forgetting');
  });
});
