// Proves the published artifact, not the source tree: `npm pack` (which runs
// the build through "prepack"), install the tarball into a fresh project, and
// load every entry point there with plain Node, from CommonJS and from ESM.
// The optional peers express and koa are deliberately not installed: loading an
// entry point must not need them at runtime.
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

type ExportTarget = string | { [condition: string]: ExportTarget };
interface PackageJson {
  name: string;
  exports: Record<string, ExportTarget>;
}

/** What the probe scripts print: per specifier, the typeof of each export, or the load error. */
type ProbeResult = Record<string, { exports: Record<string, string> } | { error: string }>;

/** The contract: each entry point and the functions it must export. */
const REQUIRED_EXPORTS: Record<string, string[]> = {
  tiercache: ['createCache'],
  'tiercache/express': ['expressCache'],
  'tiercache/koa': ['koaCache'],
};

/** Runs a command and resolves its stdout; on failure the error names the command and carries its output. */
function run(file: string, args: string[], cwd: string, timeoutMs: number): Promise<string> {
  const env = { ...process.env };
  // The probes must run on plain Node, without the test run's TypeScript loader.
  delete env['NODE_OPTIONS'];
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, env, timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const why = err.killed ? `killed after ${timeoutMs} ms` : `exit code ${String(err.code)}`;
      reject(
        new Error(
          `\`${file} ${args.join(' ')}\` in ${cwd} failed (${why})\n--- stdout\n${stdout.trim()}\n--- stderr\n${stderr.trim()}`,
          { cause: err },
        ),
      );
    });
  });
}

const PROBE_CJS = `
const out = {};
for (const spec of JSON.parse(process.argv[2])) {
  try {
    const mod = require(spec);
    out[spec] = { exports: Object.fromEntries(Object.keys(mod).map((k) => [k, typeof mod[k]])) };
  } catch (err) {
    out[spec] = { error: String(err && err.stack || err) };
  }
}
process.stdout.write(JSON.stringify(out));
`;

const PROBE_ESM = `
const out = {};
for (const spec of JSON.parse(process.argv[2])) {
  try {
    const mod = await import(spec);
    out[spec] = { exports: Object.fromEntries(Object.keys(mod).map((k) => [k, typeof mod[k]])) };
  } catch (err) {
    out[spec] = { error: String(err && err.stack || err) };
  }
}
process.stdout.write(JSON.stringify(out));
`;

/** Fails with every broken entry point at once, naming what is missing or the load error. */
function assertEntryPoints(result: ProbeResult, specifiers: string[], how: string): void {
  const problems: string[] = [];
  for (const spec of specifiers) {
    const r = result[spec];
    if (!r) problems.push(`${spec}: not probed`);
    else if ('error' in r) problems.push(`${spec}: ${how} threw\n${r.error}`);
    else {
      for (const name of REQUIRED_EXPORTS[spec] ?? []) {
        if (r.exports[name] !== 'function') problems.push(`${spec}: export ${name} is ${r.exports[name] ?? 'missing'}, expected a function`);
      }
    }
  }
  if (problems.length > 0) assert.fail(`entry points broken under ${how}:\n${problems.join('\n')}`);
}

/** Every file path under a `types` condition of an exports target. */
function typesPaths(target: ExportTarget, underTypes = false): string[] {
  if (typeof target === 'string') return underTypes ? [target] : [];
  return Object.entries(target).flatMap(([condition, t]) => typesPaths(t, underTypes || condition === 'types'));
}

describe('npm package', function () {
  this.timeout(180_000);
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as PackageJson;
  const specifiers = Object.keys(pkg.exports)
    .filter((subpath) => subpath !== './package.json')
    .map((subpath) => (subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`));

  it('declares the tiercache, tiercache/express and tiercache/koa entry points', () => {
    for (const spec of Object.keys(REQUIRED_EXPORTS)) assert.ok(specifiers.includes(spec), `package.json "exports" has no entry for ${spec}`);
  });

  describe('the packed tarball, installed in a fresh project', () => {
    let workDir: string | undefined;
    let projectDir: string;

    before(async () => {
      workDir = mkdtempSync(join(tmpdir(), 'tiercache-pack-'));
      const packDir = join(workDir, 'pack');
      projectDir = join(workDir, 'project');
      mkdirSync(packDir);
      mkdirSync(projectDir);
      // "prepack" builds dist/ first, so this also proves the build.
      await run(npm, ['pack', '--pack-destination', packDir, '--loglevel=error'], repoRoot, 150_000);
      const tarballs = readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
      assert.equal(tarballs.length, 1, `expected one tarball in ${packDir}, found: ${tarballs.join(', ') || 'none'}`);

      writeFileSync(
        join(projectDir, 'package.json'),
        JSON.stringify({ name: 'tiercache-pack-check', version: '0.0.0', private: true, license: 'MIT' }, null, 2),
      );
      writeFileSync(join(projectDir, 'probe.cjs'), PROBE_CJS);
      writeFileSync(join(projectDir, 'probe.mjs'), PROBE_ESM);
      await run(
        npm,
        ['install', join(packDir, tarballs[0]!), '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'],
        projectDir,
        150_000,
      );
    });

    after(() => {
      if (workDir) rmSync(workDir, { recursive: true, force: true });
    });

    it('loads every entry point with require() from CommonJS', async () => {
      const out = await run(process.execPath, ['probe.cjs', JSON.stringify(specifiers)], projectDir, 30_000);
      assertEntryPoints(JSON.parse(out) as ProbeResult, specifiers, 'require()');
    });

    it('loads every entry point with import() from ESM', async () => {
      const out = await run(process.execPath, ['probe.mjs', JSON.stringify(specifiers)], projectDir, 30_000);
      assertEntryPoints(JSON.parse(out) as ProbeResult, specifiers, 'import()');
    });

    it('ships every type declaration file that "exports" names', () => {
      const installed = join(projectDir, 'node_modules', pkg.name);
      const missing = Object.values(pkg.exports)
        .flatMap((target) => typesPaths(target))
        .filter((path) => !existsSync(join(installed, path)));
      assert.deepEqual(missing, [], `declared in "exports" but not in the tarball: ${missing.join(', ')}`);
    });
  });
});
