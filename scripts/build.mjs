#!/usr/bin/env node
// Builds dist/esm (ES modules) and dist/cjs (CommonJS), each with .d.ts, from
// src/ with two tsc passes; a package.json in dist/cjs tells Node that those
// .js files are CommonJS although the package itself is "type": "module".
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

rmSync(join(root, 'dist'), { recursive: true, force: true });
// The two passes write to different directories: run at once, they take the
// time of one on a machine with two cores (npm pack in the package test runs this).
const results = await Promise.all(
  ['tsconfig.json', 'tsconfig.cjs.json'].map(
    (project) =>
      new Promise((resolve) => {
        execFile(process.execPath, [tsc, '-p', join(root, project)], { cwd: root }, (err, stdout, stderr) => {
          resolve({ project, failed: err !== null, output: `${stdout}${stderr}` });
        });
      }),
  ),
);
for (const { output } of results) if (output) process.stdout.write(output);
const failed = results.filter((r) => r.failed).map((r) => r.project);
if (failed.length > 0) {
  console.error(`tsc failed for ${failed.join(', ')}`);
  process.exit(1);
}
mkdirSync(join(root, 'dist/cjs'), { recursive: true });
writeFileSync(join(root, 'dist/cjs/package.json'), '{ "type": "commonjs" }\n');
