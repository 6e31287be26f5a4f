// A Stryker reporter that appends one JSON line per tested mutant as soon as
// its result is known. Stryker's own reports (its incremental file included)
// are written only when a run completes; on this 2-core machine a full run can
// take hours, and this file keeps the results of a run that had to be stopped:
// `node scripts/mutation-summary.mjs` gives its figures, and
// `node scripts/mutation-baseline.mjs` folds it into an incremental file that
// the next run reuses. For that, two lines come before the mutants: the tests
// of the dry run (id, name, file, and a hash of each test file as it ran) and
// the source of every file mutated, so that a later checkout can tell which
// results still hold.
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, relative } from 'node:path';
import { commonTokens, declareClassPlugin, PluginKind } from '@stryker-mutator/api/plugin';

const relativeName = (fileName) => relative(process.cwd(), fileName);
const sha1 = (text) => createHash('sha1').update(text).digest('hex');

class NdjsonReporter {
  static inject = [commonTokens.options];

  constructor(options) {
    // Beside the JSON report: reports/mutation/mutants.ndjson by default.
    this.file = join(dirname(options.jsonReporter.fileName), 'mutants.ndjson');
    mkdirSync(dirname(this.file), { recursive: true });
    writeFileSync(this.file, '');
  }

  append(line) {
    appendFileSync(this.file, JSON.stringify(line) + '\n');
  }

  onDryRunCompleted({ result }) {
    const testFileHashes = {};
    const tests = result.tests.map(({ id, name, fileName }) => {
      const file = fileName ? relativeName(fileName) : '';
      if (file && !(file in testFileHashes)) testFileHashes[file] = sha1(readFileSync(file, 'utf8'));
      return { id, name, file };
    });
    this.append({ kind: 'tests', tests, testFileHashes });
  }

  onMutationTestingPlanReady({ mutantPlans }) {
    const sources = {};
    for (const { mutant } of mutantPlans) {
      const file = relativeName(mutant.fileName);
      if (!(file in sources)) sources[file] = readFileSync(file, 'utf8');
    }
    this.append({ kind: 'sources', sources });
  }

  onMutantTested(result) {
    this.append({
      id: result.id,
      file: relativeName(result.fileName),
      line: result.location.start.line,
      column: result.location.start.column,
      end: result.location.end,
      mutator: result.mutatorName,
      replacement: result.replacement,
      status: result.status,
      statusReason: result.statusReason,
      static: result.static,
      killedBy: result.killedBy,
      coveredBy: result.coveredBy,
      tests: result.testsCompleted,
    });
  }
}

export const strykerPlugins = [declareClassPlugin(PluginKind.Reporter, 'ndjson', NdjsonReporter)];
