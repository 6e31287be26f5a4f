// Preloaded (`node --import`) into Stryker's main process by `npm run mutation`.
//
// Stryker's incremental mode re-tests a mutant that did not kill-or-die the
// last time (survived, compile error, ...) whenever a test that covers its
// location is new or changed. For a CompileError that is wasted work: whether a
// mutant type-checks depends on the code, not on the tests, and the code at
// its location is unchanged (Stryker already re-tests mutants whose code
// changed). On this 2-core machine the TypeScript checker is the bottleneck of
// a run (test/MUTATION.md, "Eleventh run"), and most of its time went to
// finding again, one bisected group at a time, the ~2,300 compile errors the
// kept results already record. This hook makes @stryker-mutator/core 9.x reuse
// them like the other results: one line added to its IncrementalDiffer.
//
// If the line it looks for is not there (another Stryker version), it says so
// and changes nothing: the run is then only slower, never wrong.
import { register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

const DIFFER = '/@stryker-mutator/core/dist/src/mutants/incremental-differ.js';
const ANCHOR = "if (oldMutant.status === 'Ignored') {";
const REUSE = "if (oldMutant.status === 'CompileError') return true; // scripts/stryker-reuse-compile-errors.mjs\n            ";

/** Module hook (runs on node's loader thread): rewrites the differ as it is loaded. */
export async function load(url, context, nextLoad) {
  const loaded = await nextLoad(url, context);
  if (!url.endsWith(DIFFER)) return loaded;
  const source = typeof loaded.source === 'string' ? loaded.source : Buffer.from(loaded.source).toString('utf8');
  if (!source.includes(ANCHOR)) {
    process.stderr.write(`stryker-reuse-compile-errors: ${ANCHOR} not found in ${url}; compile errors are checked again\n`);
    return loaded;
  }
  return { ...loaded, source: source.replace(ANCHOR, REUSE + ANCHOR) };
}

if (isMainThread) register(import.meta.url);
