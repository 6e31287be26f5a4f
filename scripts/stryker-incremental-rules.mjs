// Preloaded (`node --import`) into Stryker's main process by `npm run mutation`.
// Three rules added to what Stryker 9's incremental mode reuses
// (test/MUTATION.md, "Running it"); the first two for results that no change
// of the tests can change:
//
// - A CompileError, while its code is unchanged. Stryker re-tests a mutant
//   that was not killed whenever a test covering its location is new or
//   changed; for a compile error that means the TypeScript checker (the
//   bottleneck of a run on two cores) finds it again, one bisected group at a
//   time. Whether a mutant type-checks depends on the code, not the tests.
// - A survivor listed in test/mutation/known-survivors.json (equivalent or
//   accepted, with the reason), while its code is unchanged. Re-testing one
//   runs every test that covers it: for the capture's guards, 700 tests.
// - A timeout whose covering tests all existed, unchanged, in the last run.
//   With real servers, timers and sockets, which tests reach a line varies
//   between dry runs, and Stryker re-tests a result whenever a test covers it
//   that did not before; for a timeout that costs the whole timeout again.
//   A timeout counts as detected, and more tests can only detect it again.
//
// Survivors (not listed) keep Stryker's rule: re-tested whenever a test covers
// them that did not cover them when they were tested. An earlier version
// reused them on the timeout's terms, and that was wrong: a kept result can
// be older than the last run, so a test added in between never ran against
// it, and Stryker's reuse then wrote the new covering set into the result,
// hiding that from every later run (test/MUTATION.md, "Fifteenth run").
//
// The hook adds two lines to Stryker's IncrementalDiffer as node loads it. If
// the line it anchors on is not there (another Stryker version), it says so
// and changes nothing: the run is then slower, never wrong.
import { readFileSync } from 'node:fs';
import { register } from 'node:module';
import { relative, sep } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { loadKnownSurvivors, survivorKey } from './mutation-known-survivors.mjs';

const DIFFER = '/@stryker-mutator/core/dist/src/mutants/incremental-differ.js';
const ANCHOR = "if (oldMutant.status === 'Ignored') {";
const RULES =
  "if (oldMutant.status === 'CompileError' || (oldMutant.status === 'Survived' && globalThis.__tiercacheKnownSurvivor?.(mutant) === true)) return true; // scripts/stryker-incremental-rules.mjs\n            " +
  "if (oldMutant.status === 'Timeout' && [...(coveringTests ?? [])].every((t) => oldTestKeys.has(testToIdentifyingKey(t, toRelativeNormalizedFileName(t.fileName))))) return true; // the same\n            ";

/** Module hook (runs on node's loader thread): rewrites the differ as it is loaded. */
export async function load(url, context, nextLoad) {
  const loaded = await nextLoad(url, context);
  if (!url.endsWith(DIFFER)) return loaded;
  const source = typeof loaded.source === 'string' ? loaded.source : Buffer.from(loaded.source).toString('utf8');
  if (!source.includes(ANCHOR)) {
    process.stderr.write(`stryker-incremental-rules: ${ANCHOR} not found in ${url}; compile errors and known survivors are tested again\n`);
    return loaded;
  }
  return { ...loaded, source: source.replace(ANCHOR, RULES + ANCHOR) };
}

if (isMainThread) {
  const known = loadKnownSurvivors();
  const sources = new Map();
  globalThis.__tiercacheKnownSurvivor = (mutant) => {
    const file = relative(process.cwd(), mutant.fileName).split(sep).join('/');
    let source = sources.get(file);
    if (source === undefined) {
      source = readFileSync(mutant.fileName, 'utf8');
      sources.set(file, source);
    }
    const { start, end } = mutant.location;
    return known.has(survivorKey(file, source, start, end, mutant.mutatorName, mutant.replacement));
  };
  register(import.meta.url);
}
