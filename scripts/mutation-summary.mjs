// Mutation score per folder from the line-per-mutant file the ndjson reporter
// writes (complete or from an interrupted run): node scripts/mutation-summary.mjs [file...]
import { readFileSync } from 'node:fs';

const files = process.argv.slice(2);
if (files.length === 0) files.push('reports/mutation/mutants.ndjson');

const DETECTED = new Set(['Killed', 'Timeout']);
const UNDETECTED = new Set(['Survived', 'NoCoverage']);
const byFolder = new Map();
for (const file of files) {
  for (const text of readFileSync(file, 'utf8').split('\n')) {
    if (!text) continue;
    const m = JSON.parse(text);
    if (m.kind) continue; // the tests and sources a run begins with
    const folder = m.file.split('/').slice(0, 2).join('/');
    const row = byFolder.get(folder) ?? { Killed: 0, Timeout: 0, Survived: 0, NoCoverage: 0, CompileError: 0, RuntimeError: 0, Ignored: 0 };
    row[m.status] = (row[m.status] ?? 0) + 1;
    byFolder.set(folder, row);
  }
}

const score = (r) => {
  const detected = [...DETECTED].reduce((n, s) => n + r[s], 0);
  const valid = detected + [...UNDETECTED].reduce((n, s) => n + r[s], 0);
  return valid === 0 ? 'n/a' : ((100 * detected) / valid).toFixed(2) + '%';
};
const total = {};
for (const [folder, r] of [...byFolder].sort()) {
  for (const [k, v] of Object.entries(r)) total[k] = (total[k] ?? 0) + v;
  console.log(folder.padEnd(16), score(r).padStart(8), JSON.stringify(r));
}
console.log('all'.padEnd(16), score(total).padStart(8), JSON.stringify(total));
