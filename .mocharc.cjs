// Mocha config: TypeScript tests run through tsx (loaded with `node --import
// tsx`, so ESM test files and CJS requires both go through it), a spec reporter
// that ends with a `tests: N passed, N failed` line for CI, and a root hook
// that kills any redis-server a test left running. The whole suite runs its
// files in parallel worker processes (see PARALLEL below).
'use strict';

const { readdirSync } = require('node:fs');
const { availableParallelism } = require('node:os');
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

const wholeSuite = !namesSpecOnCommandLine(process.argv.slice(2));

/**
 * The whole suite waits about half its wall time (timers, timeouts, Redis
 * restarts), so its files run side by side in worker processes, two per core
 * (TIERCACHE_TEST_JOBS to change it; `--no-parallel` for one process). Only
 * from mocha's own CLI: a file or glob named there runs in one process (it
 * starts quicker, and `.only` works), and so does a tool that reads this file
 * through mocha's API (Stryker's runner). Each worker runs the root hooks
 * after every file, and redis-server.ts reserves ports across processes.
 */
const parallel = wholeSuite && /(^|[\\/])mocha(\.js)?$|[\\/]mocha[\\/]lib[\\/]cli[\\/]/.test(process.argv[1] ?? '');
const jobs = Number(process.env.TIERCACHE_TEST_JOBS) || 2 * availableParallelism();

/**
 * Workers take files in spec order, so the longest files go first: one of
 * them started last runs on alone at the end (the package test, last in path
 * order, took 264 s of a 531 s run there). Longest first, as timed in a
 * parallel run (each over 15 s); a name that no longer exists is skipped.
 */
const LONGEST_FILES = [
  'test/package/pack.test.ts',
  'test/unit/middleware/entry-heap-cost.test.ts',
  'test/unit/keys/canonical-query.test.ts',
  'test/integration/data-api.test.ts',
  'test/integration/cluster-paths.test.ts',
  'test/integration/invalidation/set-during-long-replay.test.ts',
  'test/integration/invalidation/in-process.test.ts',
  'test/integration/invalidation/blackholed-route.test.ts',
  'test/integration/middleware/storage-rules.test.ts',
  'test/integration/cluster-resharding.test.ts',
  'test/integration/examples.test.ts',
  'test/integration/cluster.test.ts',
  'test/integration/resource-bounds.test.ts',
  'test/integration/cluster-down.test.ts',
  'test/integration/invalidation/stale-if-error-after-bus-reset.test.ts',
  'test/integration/cluster-lost-slot-queue.test.ts',
  'test/integration/invalidation/bus-subscriber-check-busy-process.test.ts',
];

/** Every test file, LONGEST_FILES first, then the rest in path order. */
function filesLongestFirst() {
  const testDir = join(__dirname, 'test');
  const all = readdirSync(testDir, { recursive: true })
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => join('test', f).split('\\').join('/'))
    .sort();
  const first = LONGEST_FILES.filter((f) => all.includes(f));
  return [...first, ...all.filter((f) => !first.includes(f))].map((f) => join(__dirname, f));
}

module.exports = {
  // `--import tsx` (Node >= 20.6); mocha re-runs itself in a child with these flags.
  'node-option': ['import=tsx'],
  extension: ['ts'],
  ...(wholeSuite ? { spec: parallel ? filesLongestFirst() : DEFAULT_SPEC } : {}),
  ...(parallel ? { parallel: true, jobs } : {}),
  require: [join(__dirname, 'test/support/root-hooks.ts')],
  reporter: join(__dirname, 'test/support/reporter.cjs'),
  timeout: 10_000,
};
