// Reading mocha's command line, for .mocharc.cjs and scripts/test-suite.mjs.
'use strict';

/**
 * Whether mocha arguments name a file or glob to run (flags and their values
 * aside). Mocha adds the config's `spec` to files named on the command line, so
 * `npx mocha test/x.test.ts` would run the whole suite: .mocharc.cjs uses its
 * default spec only when none was named; scripts/test-suite.mjs takes none.
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

module.exports = { namesSpecOnCommandLine };
