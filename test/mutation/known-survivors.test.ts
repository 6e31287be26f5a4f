// test/mutation/known-survivors.json lists surviving mutants judged
// equivalent or accepted; `npm run mutation` reuses their results instead of
// testing them again. An entry whose line was edited no longer matches any
// mutant: harmless to the run, but the list (and its reasons) would then
// speak of code that is gone. Each entry must still name code that exists.
// Not part of the mutation run's tests (stryker.config.mjs): there src/ holds
// Stryker's instrumented code, not the lines the list names.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface KnownSurvivor {
  readonly file: string;
  readonly line: string;
  readonly at: number;
  readonly span: string;
  readonly mutator: string;
  readonly replacement: string;
  readonly why: string;
}

const root = fileURLToPath(new URL('../../', import.meta.url));
const entries = JSON.parse(readFileSync(`${root}test/mutation/known-survivors.json`, 'utf8')) as KnownSurvivor[];

describe('mutation: known survivors', () => {
  it('names each mutant by code that is still in its file, with a reason', () => {
    assert.ok(entries.length > 0);
    for (const e of entries) {
      const where = `${e.file}: ${e.mutator} ${JSON.stringify(e.span)} -> ${JSON.stringify(e.replacement)}`;
      const lines = readFileSync(`${root}${e.file}`, 'utf8').split('\n').map((l) => l.trim());
      assert.ok(lines.includes(e.line), `${where}: its line is gone (edit or remove the entry)`);
      const firstLine = e.span.split('\n')[0]!;
      assert.equal(e.line.slice(e.at, e.at + firstLine.length), firstLine, `${where}: the code is not at ${e.at} in its line`);
      assert.match(e.why, /^(equivalent|equivalent where tried|accepted): \S/, `${where}: no reason`);
    }
  });

  it('lists each mutant once', () => {
    const keys = entries.map((e) => JSON.stringify([e.file, e.line, e.at, e.span, e.mutator, e.replacement]));
    assert.equal(new Set(keys).size, keys.length);
  });
});
