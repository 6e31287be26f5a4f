// A Stryker reporter that appends one JSON line per tested mutant as soon as
// its result is known. Stryker's own reports are written only when a run
// completes; on this 2-core machine a full run can take hours, and this file
// keeps the figures of a run that had to be stopped (summarize them with
// `node scripts/mutation-summary.mjs`).
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { commonTokens, declareClassPlugin, PluginKind } from '@stryker-mutator/api/plugin';

class NdjsonReporter {
  static inject = [commonTokens.options];

  constructor(options) {
    // Beside the JSON report: reports/mutation/mutants.ndjson by default.
    this.file = join(dirname(options.jsonReporter.fileName), 'mutants.ndjson');
    mkdirSync(dirname(this.file), { recursive: true });
    writeFileSync(this.file, '');
  }

  onMutantTested(result) {
    const line = {
      id: result.id,
      file: relative(process.cwd(), result.fileName),
      line: result.location.start.line,
      column: result.location.start.column,
      mutator: result.mutatorName,
      replacement: result.replacement,
      status: result.status,
      killedBy: result.killedBy?.[0],
      tests: result.testsCompleted,
    };
    appendFileSync(this.file, JSON.stringify(line) + '\n');
  }
}

export const strykerPlugins = [declareClassPlugin(PluginKind.Reporter, 'ndjson', NdjsonReporter)];
