// Mutation testing (issue 14): `npm run mutation`. Deliberately not part of
// .ci/run: a full run takes far longer than the test suite. See test/MUTATION.md
// for how to read the result and why the surviving mutants are accepted.
// @ts-check
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
const config = {
  packageManager: 'npm',
  mutate: ['src/keys/**/*.ts', 'src/store/**/*.ts', 'src/middleware/**/*.ts'],

  testRunner: 'mocha',
  // The mocha runner reads .mocharc.cjs (root hooks that stop leftover
  // redis-servers included) but not its `node-option`, so tsx is loaded here.
  testRunnerNodeArgs: ['--require', './scripts/stryker-mocha12.cjs', '--import', 'tsx'],
  mochaOptions: {
    // The package test builds and packs dist/, which never runs the mutated source.
    // The Redis Cluster tests are the only ones that reach the Cluster paths of
    // src/store (storeOnCluster, readBySlot, sharded pub/sub): without them those
    // mutants have no coverage. Their clients use a 2 s command timeout, which a
    // cluster beside two mutation workers meets (test/MUTATION.md). The RFC 9111
    // tests (in process, ~9 s) were left out until 2026-12-03 by an oversight:
    // they are the only ones that reach some origin-mode paths (stale-if-error
    // from the response's own directive, for one).
    spec: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/rfc9111/**/*.test.ts'],
    // .mocharc.cjs's root hooks, plus retries for tests that fail on timing under load.
    require: ['test/support/root-hooks.ts', 'test/support/mutation-retries.ts'],
  },
  // Each mutant runs only the tests that reached it in the dry run.
  coverageAnalysis: 'perTest',
  // Static mutants (module-level code such as constant tables) would need a
  // fresh worker and the whole suite for every one of them: hours on 2 cores.
  ignoreStatic: true,

  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  // The checker worker loads every plugin too, the mocha runner included.
  checkerNodeArgs: ['--require', './scripts/stryker-mocha12.cjs'],
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },

  // Re-runs only test what changed since the last run on this checkout. The
  // file is local (reports/ is ignored); `npm run mutation` first seeds it from
  // the results kept in the repository (test/mutation/baseline.json.gz), and
  // `npm run mutation:baseline` folds a run, finished or stopped, back into
  // them (scripts/mutation-baseline.mjs). `npm run mutation -- --force` for a full run.
  incremental: true,
  incrementalFile: 'reports/mutation/stryker-incremental.json',

  // Two workers for two cores: the tests mostly wait on redis-server and
  // sockets, and every worker starts its own servers on random free ports.
  concurrency: 2,
  // A mutant's time limit is its tests' dry-run time x timeoutFactor + timeoutMS:
  // the integration tests wait on real servers, and on a loaded machine the
  // default (x1.5 + 5 s) turned equivalent mutants into "Timeout" (detected).
  timeoutFactor: 3,
  timeoutMS: 10_000,
  // The dry run is the whole suite with coverage counting (~3 min idle, far
  // more while other work shares the 2 cores); the default 5 min is too short.
  dryRunTimeoutMinutes: 30,

  // ndjson: one line per mutant as soon as it is tested, so a run stopped
  // half-way still has figures (node scripts/mutation-summary.mjs).
  plugins: ['@stryker-mutator/*', './scripts/stryker-ndjson-reporter.mjs'],
  reporters: ['clear-text', 'progress', 'html', 'json', 'ndjson'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 90, low: 85, break: null },
  tempDirName: '.stryker-tmp',
  ignorePatterns: ['/.stryker-tmp', '/reports', '/dist', '/.bench-results'],
  cleanTempDir: 'always',
};

export default config;
