// Mocha's spec reporter plus one plain, uncoloured summary line at the very
// end, `tests: N passed, N failed[, N skipped]`, which CI parses.
'use strict';

const mocha = require('mocha');

const { Spec } = (mocha.default ?? mocha).reporters;
const { EVENT_RUN_END } = (mocha.default ?? mocha).Runner.constants;

class SpecWithSummary extends Spec {
  constructor(runner, options) {
    super(runner, options);
    // Registered after Spec's own RUN_END listener, so it prints after the epilogue.
    runner.once(EVENT_RUN_END, () => {
      const { passes, failures, pending } = this.stats;
      const skipped = pending > 0 ? `, ${pending} skipped` : '';
      process.stdout.write(`tests: ${passes} passed, ${failures} failed${skipped}\n`);
    });
  }
}

SpecWithSummary.description = 'spec, then a plain `tests: N passed, N failed` line for CI';

module.exports = SpecWithSummary;
