// The mutation results kept in the repository, so that a run on a fresh clone
// tests only what changed since they were made (a full run takes hours on two
// cores: test/MUTATION.md).
//
//   node scripts/mutation-baseline.mjs seed     # before `npm run mutation`: unpacks
//       test/mutation/baseline.json.gz into Stryker's incremental file when there is none
//   node scripts/mutation-baseline.mjs update   # after a run, finished or stopped:
//       folds the baseline and every run under reports/mutation (oldest first) into it
//   node scripts/mutation-baseline.mjs merge --out <file[.gz]> <input>...   # the same, by hand
//
// Inputs are Stryker incremental files (.json, .json.gz) or the line-per-mutant
// logs of scripts/stryker-ndjson-reporter.mjs (mutants.ndjson, of a run that
// was stopped too: what it tested counts). Later inputs win.
//
// Why runs made on different commits can be merged: Stryker's incremental file
// holds one version of each source and test file, and each run tested against
// the versions of its own commit. So each input is first carried to the
// current checkout with the rules Stryker applies itself (docs: stryker-js/incremental):
// - a mutant whose code changed (an insertion or deletion touching its span) is
//   dropped, and is tested again; the others move with the edits around them;
// - a test is identified by its file and full name (the mocha runner reports
//   no test locations, so Stryker treats a test file as one block): when the
//   file differs from the version the run had, the run's links to its tests
//   are dropped. A killed mutant whose killing test went that way is tested
//   again; a surviving one is too, because its covering tests now look new.
//   A compile error is not: it depends on the code alone, and `npm run mutation`
//   reuses it while its code is unchanged (scripts/stryker-incremental-rules.mjs),
//   and so is a survivor listed in test/mutation/known-survivors.json.
// Nothing is reused that Stryker would not reuse from that run on its own.
import { readFileSync, writeFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { gunzipSync, gzipSync } from 'node:zlib';
import DiffMatchPatch from 'diff-match-patch';
import { loadKnownSurvivors, survivorKey } from './mutation-known-survivors.mjs';

const knownSurvivors = loadKnownSurvivors();

const BASELINE = 'test/mutation/baseline.json.gz';
const REPORTS = 'reports/mutation';
const STRYKER_FILE = join(REPORTS, 'stryker-incremental.json');

const readText = (path) => (path.endsWith('.gz') ? gunzipSync(readFileSync(path)).toString('utf8') : readFileSync(path, 'utf8'));

/**
 * Stryker tells changed code and tests apart only in the mutated files and the
 * test files: a change to the rest of src/ or to the tests' helpers since the
 * baseline was committed can change results it reuses. Say which, so that the
 * one who runs it can decide on --force.
 */
function warnOfUntrackedChanges() {
  const git = (...a) => execFileSync('git', a, { encoding: 'utf8' }).trim();
  let since;
  try {
    since = git('log', '-1', '--format=%h', '--', BASELINE);
  } catch {
    return; // not a git checkout
  }
  if (!since) return;
  const changed = git('diff', '--name-only', since, '--', 'src', 'test', 'stryker.config.mjs', '.mocharc.cjs', ':!src/keys', ':!src/store', ':!src/middleware', ':(exclude,glob)test/**/*.test.ts', ':!test/MUTATION.md', ':!test/mutation')
    .split('\n')
    .filter(Boolean);
  if (changed.length === 0) console.log(`baseline of ${since}: nothing it cannot see has changed since`);
  else console.log(`baseline of ${since}; changed since, outside what Stryker compares (--force to test everything again):\n  ${changed.join('\n  ')}`);
}

const [command, ...rest] = process.argv.slice(2);
let out;
let args;
if (command === 'seed') {
  if (existsSync(STRYKER_FILE)) {
    console.log(`${STRYKER_FILE} exists: the run reuses it (delete it to start from ${BASELINE})`);
  } else if (existsSync(BASELINE)) {
    mkdirSync(REPORTS, { recursive: true });
    writeFileSync(STRYKER_FILE, readText(BASELINE));
    console.log(`${STRYKER_FILE}: from ${BASELINE}`);
    warnOfUntrackedChanges();
  }
  process.exit(0);
} else if (command === 'update') {
  out = BASELINE;
  // Every run under reports/mutation, oldest first, after the baseline.
  const runs = [];
  const collect = (dir) => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) collect(path);
      else if (name.endsWith('incremental.json') || name.endsWith('.ndjson')) runs.push({ path, at: statSync(path).mtimeMs });
    }
  };
  collect(REPORTS);
  // Stryker's own file as seeded and not yet rewritten by a finished run is the baseline again.
  const seeded = runs.findIndex((r) => r.path === STRYKER_FILE);
  if (seeded !== -1 && existsSync(BASELINE) && readText(STRYKER_FILE) === readText(BASELINE)) runs.splice(seeded, 1);
  args = [...(existsSync(BASELINE) ? [BASELINE] : []), ...runs.sort((a, b) => a.at - b.at).map((r) => r.path)];
} else if (command === 'merge' && rest[0] === '--out' && rest.length > 2) {
  out = rest[1];
  args = rest.slice(2);
} else {
  console.error('usage: node scripts/mutation-baseline.mjs seed | update | merge --out <file[.gz]> <input>...');
  process.exit(2);
}

const dmp = new DiffMatchPatch();
const currentSource = new Map();
function sourceNow(file) {
  if (!currentSource.has(file)) currentSource.set(file, existsSync(file) ? readFileSync(file, 'utf8') : undefined);
  return currentSource.get(file);
}

// Report locations are 1-based lines and columns.
function lineStarts(text) {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  return starts;
}
const toOffset = (starts, { line, column }) => starts[line - 1] + column - 1;
function toPosition(starts, offset) {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= offset) lo = mid;
    else hi = mid - 1;
  }
  return { line: lo + 1, column: offset - starts[lo] + 1 };
}

// Carries [start, end) spans from `before` to `after`; null for a span an edit touched.
function carrySpans(before, after, spans) {
  if (before === after) return spans;
  const diffs = dmp.diff_main(before, after);
  const edits = []; // [oldFrom, oldTo, newFrom] of each equal run
  let oldPos = 0;
  let newPos = 0;
  const touched = []; // [oldFrom, oldTo] of each insertion or deletion
  for (const [op, text] of diffs) {
    if (op === 0) {
      edits.push([oldPos, oldPos + text.length, newPos]);
      oldPos += text.length;
      newPos += text.length;
    } else if (op === -1) {
      touched.push([oldPos, oldPos + text.length]);
      oldPos += text.length;
    } else {
      touched.push([oldPos, oldPos]);
      newPos += text.length;
    }
  }
  return spans.map(([s, e]) => {
    // An edit at either end counts as touching, as in Stryker's own diff.
    if (touched.some(([a, b]) => a <= e && b >= s)) return null;
    const run = edits.find(([a, b]) => a <= s && e <= b);
    if (!run) return null;
    return [s - run[0] + run[2], e - run[0] + run[2]];
  });
}

const stats = { reports: 0, mutants: 0, kept: 0, droppedCode: 0, droppedFile: 0, staleTestFiles: 0, linksDropped: 0, rerun: 0, withoutSource: 0 };
const mutantsByFile = new Map(); // file -> Map(key -> mutant with test keys)
const liveTests = new Map(); // test file -> Set(test name)
let template;

// Either input as { testFiles: { file: { fresh, tests } }, files: { file: { source, mutants } } }.
function readIncrementalFile(path) {
  const report = JSON.parse(readText(path));
  template ??= report;
  const testFiles = {};
  for (const [file, { source, tests }] of Object.entries(report.testFiles ?? {})) {
    testFiles[file] = { fresh: source !== undefined && source === sourceNow(file), tests };
  }
  return { testFiles, files: report.files };
}
// The line-per-mutant log of scripts/stryker-ndjson-reporter.mjs, of a run
// that completed or not: only the mutants it got to are in it.
function readMutantLog(path) {
  const testFiles = {};
  const files = {};
  let sources = {};
  for (const text of readFileSync(path, 'utf8').split('\n')) {
    if (!text) continue;
    const line = JSON.parse(text);
    if (line.kind === 'tests') {
      for (const { id, name, file } of line.tests) {
        testFiles[file] ??= { fresh: file !== '' && line.testFileHashes[file] === hashNow(file), tests: [] };
        testFiles[file].tests.push({ id, name });
      }
    } else if (line.kind === 'sources') {
      sources = line.sources;
    } else if (sources[line.file] !== undefined) {
      files[line.file] ??= { source: sources[line.file], mutants: [] };
      const { file, line: startLine, column, end, mutator, tests, ...rest } = line;
      files[file].mutants.push({
        ...rest,
        mutatorName: mutator,
        testsCompleted: tests,
        location: { start: { line: startLine, column }, end },
      });
    } else {
      stats.withoutSource++;
    }
  }
  return { testFiles, files };
}
function hashNow(file) {
  const source = sourceNow(file);
  return source === undefined ? undefined : createHash('sha1').update(source).digest('hex');
}

for (const path of args) {
  const report = path.endsWith('.ndjson') ? readMutantLog(path) : readIncrementalFile(path);
  stats.reports++;
  // Test ids are local to a report: resolve them to file + name, or to nothing
  // when the test file is no longer the version the part ran.
  const testById = new Map();
  for (const [file, { fresh, tests }] of Object.entries(report.testFiles)) {
    if (!fresh) stats.staleTestFiles++;
    for (const test of tests) {
      if (!fresh) continue;
      testById.set(test.id, { file, name: test.name });
      if (!liveTests.has(file)) liveTests.set(file, new Set());
      liveTests.get(file).add(test.name);
    }
  }
  const resolve = (ids) => {
    const kept = [];
    for (const id of ids ?? []) {
      const test = testById.get(id);
      if (test) kept.push(test);
      else stats.linksDropped++;
    }
    return kept;
  };

  for (const [file, { source, mutants }] of Object.entries(report.files)) {
    stats.mutants += mutants.length;
    const now = sourceNow(file);
    if (now === undefined) {
      stats.droppedFile += mutants.length;
      continue;
    }
    const oldStarts = lineStarts(source);
    const newStarts = lineStarts(now);
    const spans = mutants.map((m) => [toOffset(oldStarts, m.location.start), toOffset(oldStarts, m.location.end)]);
    const carried = carrySpans(source, now, spans);
    if (!mutantsByFile.has(file)) mutantsByFile.set(file, new Map());
    const byKey = mutantsByFile.get(file);
    mutants.forEach((m, i) => {
      if (!carried[i]) {
        stats.droppedCode++;
        return;
      }
      const location = { start: toPosition(newStarts, carried[i][0]), end: toPosition(newStarts, carried[i][1]) };
      const key = `${location.start.line}:${location.start.column}-${location.end.line}:${location.end.column}\n${m.mutatorName}: ${m.replacement}`;
      const earlier = byKey.get(key);
      // Parts given as line ranges report the mutants outside their range as
      // well: a tested result wins over one that was not tested.
      if (earlier && isTested(earlier) && !isTested(m)) {
        // A mutant a later run ignored on purpose (a `Stryker disable` comment added since, or
        // ignoreStatic) keeps its older result here, but Stryker's report counts it as Ignored:
        // so does the summary below. (Mutants outside a part's line range are not meant.)
        if (ignoredOnPurpose(file, m)) earlier.ignoredLater = true;
        return;
      }
      const dropped = stats.linksDropped;
      const entry = { ...m, location, coveredBy: resolve(m.coveredBy), killedBy: resolve(m.killedBy) };
      // What the next run will test again (a dry run may add to it: new tests).
      entry.rerun = m.status === 'Killed' ? entry.killedBy.length === 0 : m.status !== 'CompileError' && !isKnownSurvivor(file, now, m, location) && isTested(m) && stats.linksDropped > dropped;
      byKey.set(key, entry);
    });
  }
}

function isKnownSurvivor(file, source, m, location) {
  if (m.status !== 'Survived') return false;
  const zeroBased = (p) => ({ line: p.line - 1, column: p.column - 1 });
  return knownSurvivors.has(survivorKey(file, source, zeroBased(location.start), zeroBased(location.end), m.mutatorName, m.replacement));
}

function ignoredOnPurpose(file, m) {
  if (m.status !== 'Ignored') return false;
  if (m.static === true) return true;
  const reason = m.statusReason;
  if (typeof reason !== 'string' || reason === '') return false;
  const source = sourceNow(file);
  return source.includes('Stryker disable') && (reason === 'Ignored using a comment' || source.includes(reason));
}

function isTested(m) {
  return m.status !== 'Ignored' && m.status !== 'Pending' && m.status !== undefined;
}

// Give every test that survived the merge one id, and point the mutants at it.
const testFiles = {};
const idOf = new Map();
let nextTest = 0;
for (const [file, names] of [...liveTests].sort(([a], [b]) => a.localeCompare(b))) {
  const tests = [...names].sort().map((name) => {
    const id = String(nextTest++);
    idOf.set(`${file}\n${name}`, id);
    return { id, name };
  });
  testFiles[file] = { source: sourceNow(file), tests };
}
const files = {};
/** Kept results of mutants a later run ignored on purpose: counted as Ignored in the summary, as Stryker's report does. */
const ignoredNow = new Set();
let nextMutant = 0;
for (const [file, byKey] of [...mutantsByFile].sort(([a], [b]) => a.localeCompare(b))) {
  const mutants = [...byKey.values()].map((m) => {
    stats.kept++;
    const ids = (tests) => tests.map((t) => idOf.get(`${t.file}\n${t.name}`)).filter((id) => id !== undefined);
    if (m.rerun) stats.rerun++;
    const { rerun, ignoredLater, ...result } = m;
    const kept = { ...result, id: String(nextMutant++), coveredBy: ids(m.coveredBy), killedBy: ids(m.killedBy) };
    if (ignoredLater) ignoredNow.add(kept);
    return kept;
  });
  files[file] = { language: 'typescript', source: sourceNow(file), mutants };
}

if (!template) {
  console.error('at least one input must be an incremental file: it gives the report its schema and config');
  process.exit(2);
}
const merged = { ...template, files, testFiles, projectRoot: undefined };
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, out.endsWith('.gz') ? gzipSync(JSON.stringify(merged), { level: 9 }) : JSON.stringify(merged));
const byStatus = {};
const byFolder = new Map();
for (const [file, { mutants }] of Object.entries(files)) {
  const folder = file.split('/').slice(0, 2).join('/');
  if (!byFolder.has(folder)) byFolder.set(folder, {});
  for (const m of mutants) {
    byStatus[m.status] = (byStatus[m.status] ?? 0) + 1;
    const counted = ignoredNow.has(m) ? 'Ignored' : m.status;
    byFolder.get(folder)[counted] = (byFolder.get(folder)[counted] ?? 0) + 1;
  }
}
console.log(`${out}: ${stats.kept} mutants from ${stats.reports} inputs (${stats.droppedCode} dropped: their code changed; ${stats.droppedFile}: file gone)`);
console.log(`test files not as their run had them: ${stats.staleTestFiles}; links to their tests dropped: ${stats.linksDropped}`);
if (stats.withoutSource) console.log(`${stats.withoutSource} mutants of logs written before the reporter recorded sources: left out`);
console.log('statuses kept:', JSON.stringify(byStatus));
// The score as Stryker counts it (killed + timeout over those plus survived + no coverage, what a later run ignored on purpose left out), as the merge holds it.
for (const [folder, c] of [...byFolder].sort()) {
  const detected = (c.Killed ?? 0) + (c.Timeout ?? 0);
  const valid = detected + (c.Survived ?? 0) + (c.NoCoverage ?? 0);
  console.log(`  ${folder.padEnd(16)} ${valid ? ((100 * detected) / valid).toFixed(1) : 'n/a'}% (${detected} of ${valid})`);
}
console.log(`to be tested again at least: ${stats.rerun} (killers or coverage in changed test files), plus the ${stats.droppedCode} whose code changed`);
