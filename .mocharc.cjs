// Mocha config: TypeScript tests run through tsx (loaded with `node --import
// tsx`, so ESM test files and CJS requires both go through it), a spec reporter
// that ends with a `tests: N passed, N failed` line for CI, and a root hook
// that kills any redis-server a test left running.
'use strict';

const { join } = require('node:path');

// Absolute, so `npx mocha` also works from a subdirectory of the repo.
const DEFAULT_SPEC = [join(__dirname, 'test/**/*.test.ts')];

/**
 * Mocha adds the config's `spec` to files named on the command line, so
 * `npx mocha test/x.test.ts` would run the whole suite; only use the default
 * spec when no file or glob was named.
 */
function namesSpecOnCommandLine(argv) {
  let takesValue;
  try {
    // Mocha's own table of options, to know which flags consume the next argument.
    const { types, aliases } = require('mocha/lib/cli/run-option-metadata.cjs');
    takesValue = new Set();
    for (const name of [...types.array, ...types.string, ...types.number]) {
      takesValue.add(`--${name}`);
      for (const alias of aliases[name] ?? []) takesValue.add(alias.length === 1 ? `-${alias}` : `--${alias}`);
    }
  } catch {
    takesValue = new Set(['--grep', '-g', '--fgrep', '-f', '--timeout', '-t', '--reporter', '-R', '--require', '-r',
      '--ui', '-u', '--config', '--spec', '--ignore', '--exclude', '--extension', '--file', '--slow', '-s',
      '--reporter-option', '-O', '--node-option', '-n', '--jobs', '-j', '--retries', '--package']);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') return i + 1 < argv.length;
    if (arg.startsWith('-')) {
      if (!arg.includes('=') && takesValue.has(arg)) i++;
      continue;
    }
    if (arg !== 'inspect') return true;
  }
  return false;
}

module.exports = {
  // `--import tsx` (Node >= 20.6); mocha re-runs itself in a child with these flags.
  'node-option': ['import=tsx'],
  extension: ['ts'],
  ...(namesSpecOnCommandLine(process.argv.slice(2)) ? {} : { spec: DEFAULT_SPEC }),
  require: [join(__dirname, 'test/support/root-hooks.ts')],
  reporter: join(__dirname, 'test/support/reporter.cjs'),
  timeout: 10_000,
};
