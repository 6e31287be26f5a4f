// The surviving mutants that test/MUTATION.md judges equivalent or accepted,
// kept in test/mutation/known-survivors.json. Such a mutant survives whatever
// the tests are, so `npm run mutation` reuses its result while its code is
// unchanged, instead of running every test that covers it again whenever one
// of them changes (for some, 800 tests: a whole suite's run per mutant).
// It still counts as a survivor in the score.
//
// A mutant is named by its file, the text of its line, where in that text it
// starts (`at`, 0-based), the code it replaces, its mutator and its
// replacement, not by line numbers, so the list survives
// edits elsewhere in the file; a changed line drops out of the list by itself
// (and is tested again).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const KNOWN_SURVIVORS = 'test/mutation/known-survivors.json';

/** The name of a mutant; `start`/`end` are 0-based lines and columns. */
export function survivorKey(file, source, start, end, mutator, replacement) {
  const lines = source.split('\n');
  let from = 0;
  for (let i = 0; i < start.line; i++) from += lines[i].length + 1;
  let to = 0;
  for (let i = 0; i < end.line; i++) to += lines[i].length + 1;
  const span = source.slice(from + start.column, to + end.column);
  const line = lines[start.line] ?? '';
  const at = start.column - (line.length - line.trimStart().length);
  return JSON.stringify([file, line.trim(), at, span, mutator, replacement]);
}

export function entryKey(e) {
  return JSON.stringify([e.file, e.line, e.at, e.span, e.mutator, e.replacement]);
}

/** The keys of the list in `root` (empty when there is none). */
export function loadKnownSurvivors(root = process.cwd()) {
  let entries;
  try {
    entries = JSON.parse(readFileSync(join(root, KNOWN_SURVIVORS), 'utf8'));
  } catch {
    return new Set();
  }
  return new Set(entries.map(entryKey));
}
