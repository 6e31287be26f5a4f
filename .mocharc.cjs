// Mocha config: TypeScript tests run through tsx (loaded with `node --import
// tsx`, so ESM test files and CJS requires both go through it), a spec reporter
// that ends with a `tests: N passed, N failed` line for CI, and a root hook
// that kills any redis-server a test left running.
'use strict';

const { join } = require('node:path');
const { namesSpecOnCommandLine } = require('./test/support/mocha-argv.cjs');

// Absolute, so `npx mocha` also works from a subdirectory of the repo.
const DEFAULT_SPEC = [join(__dirname, 'test/**/*.test.ts')];

module.exports = {
  // `--import tsx` (Node >= 20.6); mocha re-runs itself in a child with these flags.
  'node-option': ['import=tsx'],
  extension: ['ts'],
  ...(namesSpecOnCommandLine(process.argv.slice(2)) ? {} : { spec: DEFAULT_SPEC }),
  require: [join(__dirname, 'test/support/root-hooks.ts')],
  reporter: join(__dirname, 'test/support/reporter.cjs'),
  timeout: 10_000,
};
