#!/usr/bin/env node
// The whole suite for `npm test` (and so CI): two mocha runs at once, printed
// one after the other, ending with ONE `tests: N passed, N failed` line and a
// non-zero exit code when either run failed or could not finish.
//
// The suite waits most of its wall time (timers, timeouts, Redis restarts), so
// most files run side by side in mocha --parallel workers. A few are CPU-bound
// for a minute or more (HEAVY below); started together beside the workers, they
// starved the timing-sensitive files of a 2-core machine (commands past their
// timeout, 10 s test timeouts: 15 failures in one run). They run one after the
// other in a second, serial mocha beside the workers, so at most one of them
// takes a core at a time.
//
// Then the files that depend on node's and V8's internals run again on each
// current LTS line the machine's node is not on (node 22 and 24: see
// other-nodes.mjs), two mocha runs side by side once the others are done. A
// binary that cannot be fetched is said in one line, and fails the run.
//
// Options (`npm test -- --grep x`) go to every run. For one file, use
// `npx mocha test/path/file.test.ts`; `npx mocha` alone is the whole suite in
// one process, as before.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchNode, LINES, NODE_INTERNALS } from './other-nodes.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mochaBin = join(root, 'node_modules/mocha/bin/mocha.js');

/**
 * Run one at a time beside the workers: the CPU-bound files, data-api, whose
 * memory tests are CPU-bound too (past their timeout beside the others), and
 * in-process invalidation, which even out the two runs' wall times (without
 * them this run ended ~130 s before the workers). entry-heap-cost goes last:
 * started with the package test's npm and tsc (first of the workers' files),
 * its 4 KB case went past even a 120 s timeout on a loaded machine.
 */
const HEAVY = [
  'test/unit/keys/canonical-query.test.ts', // fast-check properties
  'test/integration/resource-bounds.test.ts', // heap and time of big workloads, compared
  'test/integration/data-api.test.ts',
  'test/integration/invalidation/in-process.test.ts',
  'test/unit/middleware/entry-heap-cost.test.ts', // V8 heap measured in two processes of its own
];

/**
 * Workers take files in this order, so the longest go first: one started
 * last runs on alone at the end (in path order, the package test, ~4 minutes
 * of npm and tsc on a loaded machine, did). From timed runs, each over ~15 s;
 * a name that no longer exists is skipped, the rest follow in path order.
 */
const LONGEST_FIRST = [
  'test/package/pack.test.ts',
  'test/integration/cluster-paths.test.ts',
  'test/integration/invalidation/set-during-long-replay.test.ts',
  'test/integration/invalidation/blackholed-route.test.ts',
  'test/integration/middleware/storage-rules.test.ts',
  'test/integration/cluster-resharding.test.ts',
  'test/integration/examples.test.ts',
  'test/integration/cluster.test.ts',
  'test/integration/cluster-down.test.ts',
  'test/integration/invalidation/stale-if-error-after-bus-reset.test.ts',
  'test/integration/cluster-lost-slot-queue.test.ts',
  'test/integration/invalidation/bus-subscriber-check-busy-process.test.ts',
];

/** Worker processes: about half their time each is CPU, on a 2-core machine 3 leave room for the heavy run. */
const jobs = Number(process.env.TIERCACHE_TEST_JOBS) || 3;

const SUMMARY = /^tests: (\d+) passed, (\d+) failed(?:, (\d+) skipped)?$/;

const all = readdirSync(join(root, 'test'), { recursive: true })
  .filter((f) => f.endsWith('.test.ts'))
  .map((f) => join('test', f).split('\\').join('/'))
  .sort();
const heavy = HEAVY.filter((f) => all.includes(f));
const first = LONGEST_FIRST.filter((f) => all.includes(f) && !heavy.includes(f));
const parallel = [...first, ...all.filter((f) => !first.includes(f) && !heavy.includes(f))];

const options = process.argv.slice(2);
const { namesSpecOnCommandLine } = createRequire(import.meta.url)('../test/support/mocha-argv.cjs');
if (namesSpecOnCommandLine(options)) {
  console.error(`scripts/test-suite.mjs runs the whole suite and takes mocha options only (${options.join(' ')}); for some files: npx mocha <file>...`);
  process.exit(2);
}
const color = process.stdout.isTTY ? ['--color'] : [];

// Fetched before anything runs: a download beside the suite would slow its timing-sensitive files.
const ownLine = Number(process.versions.node.split('.')[0]);
const otherNodes = LINES.filter((line) => line !== ownLine).map((line) => ({ line, ...fetchNode(line) }));
for (const o of otherNodes) if (o.failure !== undefined) console.error(o.failure);
const internals = NODE_INTERNALS.filter((f) => all.includes(f));

/**
 * Runs mocha on `files`; its output is echoed as it comes (`live`) or kept
 * for later, less its summary line, which is parsed. `node`: another node
 * binary to run it (and what it spawns by name) on, and what to call the run.
 */
function run(files, flags, live, node) {
  const bin = node?.bin ?? process.execPath;
  const env = node === undefined ? process.env : { ...process.env, PATH: `${dirname(bin)}${delimiter}${process.env.PATH ?? ''}` };
  const child = spawn(bin, [mochaBin, ...flags, ...color, ...options, ...files], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const kept = [];
  let summary;
  let partial = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    const out = [];
    for (const line of lines) {
      const m = SUMMARY.exec(line);
      if (m) summary = { passed: +m[1], failed: +m[2], skipped: +(m[3] ?? 0) };
      else out.push(`${line}\n`);
    }
    if (live) process.stdout.write(out.join(''));
    else kept.push(...out);
  });
  child.stderr.on('data', (chunk) => (live ? process.stderr.write(chunk) : kept.push(chunk.toString('utf8'))));
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      children.delete(child);
      if (partial) kept.push(partial);
      const what = node !== undefined ? `node ${node.version}, the files that depend on node's internals (${files.length})` : flags.includes('--parallel') ? 'the parallel run' : `the serial run (${files.join(', ')})`;
      resolve({ code, signal, summary, kept: kept.join(''), what });
    });
  });
}

const children = new Set();
// Ctrl-C reaches the children too; a SIGTERM (a CI timeout) is passed on.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => children.forEach((c) => c.kill(signal)));

const started = Date.now();
const runs = await Promise.all([
  run(parallel, ['--parallel', '--jobs', String(jobs)], true),
  heavy.length > 0 ? run(heavy, ['--no-parallel'], false) : undefined,
]);
const ownWall = Date.now() - started;
if (internals.length > 0) runs.push(...(await Promise.all(otherNodes.filter((o) => o.bin !== undefined).map((o) => run(internals, ['--no-parallel'], false, o)))));

let passed = 0;
let failed = 0;
let skipped = 0;
let broken = false;
for (const r of runs) {
  if (r === undefined) continue;
  if (r.kept) process.stdout.write(`\n--- ${r.what}:\n${r.kept}`);
  if (r.summary === undefined) {
    broken = true;
    console.error(`${r.what} ended without its summary (exit code ${r.code}, signal ${r.signal})`);
  } else {
    passed += r.summary.passed;
    failed += r.summary.failed;
    skipped += r.summary.skipped;
  }
  if (r.code !== 0) broken = true;
}
const fetched = otherNodes.filter((o) => o.bin !== undefined);
console.log(
  `\nwall time ${Math.round((Date.now() - started) / 1000)} s: ${Math.round(ownWall / 1000)} s on node ${process.versions.node} (${jobs} workers beside one serial run)` +
    (fetched.length > 0 ? `, then ${internals.length} files on node ${fetched.map((o) => o.version).join(' and ')}` : ''),
);
for (const o of otherNodes) {
  if (o.failure === undefined) continue;
  broken = true;
  console.error(o.failure);
}
process.stdout.write(`tests: ${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`);
process.exitCode = broken || failed > 0 ? 1 : 0;
