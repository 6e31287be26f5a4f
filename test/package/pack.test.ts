// Proves the published artifact, not the source tree: `npm pack` (which runs
// the build through "prepack"), install the tarball into a fresh project, and
// load every entry point there with plain Node, from CommonJS and from ESM.
// The optional peers express and koa are deliberately not installed: loading an
// entry point must not need them at runtime. Then the tarball's contents
// (only what a user needs, source maps that resolve), publint and
// @arethetypeswrong, and the published types as strict TypeScript projects
// see them, ESM and CommonJS: the type tests in ./types and the TypeScript
// blocks of README.md and docs/*.md (file doc-<file>-line-<n>.ts is the block
// that starts on line n), and the example apps, importing 'tiercache'.
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const typesDir = fileURLToPath(new URL('./types', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const requireHere = createRequire(import.meta.url);
/** The file of a dev dependency's command (read from its package.json: not every package exports it). */
function binOf(pkg: string, bin: string): string {
  const dir = join(repoRoot, 'node_modules', pkg);
  return join(dir, (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin[bin]!);
}

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
  'tiercache/prometheus': ['prometheusCollector'],
  'tiercache/status': ['statusPage'],
};

/** Entry points that need an optional peer dependency to load, and which. */
const NEEDS_PEER: Record<string, string> = {
  'tiercache/prometheus': 'prom-client',
};

/** Runs a command and resolves its exit code and output, whatever the code. */
function runToEnd(file: string, args: string[], cwd: string, timeoutMs: number): Promise<{ code: number; output: string }> {
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env, timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

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

/** Compiler options of a fresh strict project, as strict as they come. */
const STRICT = {
  strict: true,
  exactOptionalPropertyTypes: true,
  noUncheckedIndexedAccess: true,
  noImplicitOverride: true,
  noEmit: true,
  skipLibCheck: false,
  types: ['node'],
};

/** The type-check projects: an ESM one (nodenext) and a CommonJS one (module commonjs: node10 resolution of subpaths). */
const TYPE_PROJECTS = {
  esm: { type: 'module', compilerOptions: { ...STRICT, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext' } },
  cjs: { type: 'commonjs', compilerOptions: { ...STRICT, target: 'es2022', module: 'commonjs', esModuleInterop: true } },
} as const;

/** Type packages the type tests import, linked from this repository's node_modules (their own dependencies resolve from there). */
const LINKED_TYPES = ['@types/node', '@types/express', '@types/koa', '@koa/router'];
/** Optional peers linked (after the probes without them) for the probes and type tests that need them. */
const LINKED_PEERS = ['prom-client'];

interface Diagnostic {
  readonly file: string;
  readonly line: number;
  readonly code: string;
  readonly text: string;
}

/**
 * tsc's errors in the project's own files and in tiercache's declarations;
 * other libraries' declarations are checked too (skipLibCheck off) but their
 * own errors (an @types package out of step with its library) are not ours.
 */
function diagnostics(output: string, root: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const line of output.split('\n')) {
    const m = /^(.+?)\((\d+),\d+\): error (TS\d+): (.*)$/.exec(line.trim());
    if (!m) continue;
    const file = relative(root, join(root, m[1]!));
    if (file.startsWith('..') && !file.includes('node_modules/tiercache/')) continue;
    out.push({ file, line: Number(m[2]), code: m[3]!, text: m[4]! });
  }
  return out;
}

/** The `// @expect-error TSnnnn` markers of a file: the line each applies to (the next one) and its code. */
function expectedErrors(source: string): Map<number, string> {
  const expected = new Map<number, string>();
  source.split('\n').forEach((line, i) => {
    const m = /^\s*\/\/ @expect-error (TS\d+)/.exec(line);
    if (m) expected.set(i + 2, m[1]!);
  });
  return expected;
}

/** The ```ts blocks of a markdown file, each with the line it starts on. */
function tsBlocks(markdown: string): Array<{ line: number; code: string }> {
  const blocks: Array<{ line: number; code: string }> = [];
  const fence = /^```ts\n([\s\S]*?)^```$/gm;
  for (let m = fence.exec(markdown); m !== null; m = fence.exec(markdown)) {
    blocks.push({ line: markdown.slice(0, m.index).split('\n').length + 1, code: m[1]! });
  }
  return blocks;
}

/** The markdown files whose TypeScript blocks must compile: the README and docs/. */
function documentedBlocks(): Array<{ name: string; code: string }> {
  const files = ['README.md', ...readdirSync(join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  return files.flatMap((file) =>
    tsBlocks(readFileSync(join(repoRoot, file), 'utf8')).map(({ line, code }) => ({
      name: `${file.replace(/\.md$/, '').replace(/\W+/g, '-').toLowerCase()}-line-${line}.ts`,
      code,
    })),
  );
}

/**
 * A block as a module of the project's kind. The blocks are written as an ESM
 * app writes them (top-level await); for CommonJS, which has none, the
 * statements after the imports go into an async function.
 */
function asModule(code: string, kind: 'esm' | 'cjs'): string {
  if (kind === 'esm') return `${code}\nexport {};\n`;
  const imports = /^(?:import\s[^;]*;\s*)*/.exec(code)![0];
  return `${imports}\nexport async function block(): Promise<void> {\n${code.slice(imports.length)}\n}\n`;
}

/** The example apps' TypeScript files, relative to the repository. */
function exampleFiles(): string[] {
  return (readdirSync(join(repoRoot, 'examples'), { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => join('examples', f));
}

/** An example's source as an app using the package writes it: `../../src/koa.js` is `tiercache/koa`. */
function asPublished(source: string): string {
  return source.replace(/'(?:\.\.\/)+src\/(index|express|koa|node|prometheus|status)\.js'/g, (_, entry: string) => (entry === 'index' ? "'tiercache'" : `'tiercache/${entry}'`));
}

describe('npm package', function () {
  // Bounds on a hang, not on speed: npm and tsc share a loaded 2-core machine with the other test files
  // (the before() hook went past 180 s once beside them, and npm pack past 150 s once).
  this.timeout(360_000);
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as PackageJson;
  const specifiers = Object.keys(pkg.exports)
    .filter((subpath) => subpath !== './package.json')
    .map((subpath) => (subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`));

  it('declares the tiercache, tiercache/express, tiercache/koa, tiercache/prometheus and tiercache/status entry points', () => {
    for (const spec of Object.keys(REQUIRED_EXPORTS)) assert.ok(specifiers.includes(spec), `package.json "exports" has no entry for ${spec}`);
  });

  it('names its repository, homepage, bugs, keywords and engines, and ships a LICENSE matching its license', () => {
    const meta = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as Record<string, unknown>;
    for (const field of ['repository', 'homepage', 'bugs', 'keywords', 'engines', 'license']) assert.ok(meta[field], `package.json has no ${field}`);
    assert.equal(meta.license, 'MIT');
    assert.match(readFileSync(join(repoRoot, 'LICENSE'), 'utf8'), /^MIT License\n/);
    assert.equal(meta.sideEffects, false);
  });

  it('has examples an app could copy: no type assertion (`as`, `<T>x`, `!`) in the Express and Koa apps', () => {
    const casts: string[] = [];
    for (const file of exampleFiles()) {
      readFileSync(join(repoRoot, file), 'utf8').split('\n').forEach((line, i) => {
        const code = line.replace(/\/\/.*$/, '').replace(/'[^']*'|`[^`]*`/g, "''");
        if (/\bas (?!const\b)[\w{[(]|[\w)\]]!(?=[.[(),;\s])/.test(code)) casts.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    assert.deepEqual(casts, []);
  });

  describe('the packed tarball, installed in a fresh project', () => {
    let workDir: string | undefined;
    let projectDir: string;
    let tarball: string;
    let withoutPeers: { cjs: ProbeResult; esm: ProbeResult };
    /** tsc's output per type-check project: both run at once, started when the projects are written. */
    const typeChecks = new Map<keyof typeof TYPE_PROJECTS, Promise<{ code: number; output: string }>>();
    /** publint's and attw's verdicts on the tarball: they need nothing else, so they run while it is installed and probed. */
    let publint: Promise<{ code: number; output: string }>;
    let attw: Promise<{ code: number; output: string }>;

    before(async () => {
      workDir = mkdtempSync(join(tmpdir(), 'tiercache-pack-'));
      const packDir = join(workDir, 'pack');
      projectDir = join(workDir, 'project');
      mkdirSync(packDir);
      mkdirSync(projectDir);
      // "prepack" builds dist/ first, so this also proves the build.
      await run(npm, ['pack', '--pack-destination', packDir, '--loglevel=error'], repoRoot, 300_000);
      const tarballs = readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
      assert.equal(tarballs.length, 1, `expected one tarball in ${packDir}, found: ${tarballs.join(', ') || 'none'}`);

      writeFileSync(
        join(projectDir, 'package.json'),
        JSON.stringify({ name: 'tiercache-pack-check', version: '0.0.0', private: true, license: 'MIT' }, null, 2),
      );
      writeFileSync(join(projectDir, 'probe.cjs'), PROBE_CJS);
      writeFileSync(join(projectDir, 'probe.mjs'), PROBE_ESM);
      tarball = join(packDir, tarballs[0]!);
      // Their bound was 60 s each when they ran alone; now they share the CPU with the install, the probes and tsc.
      publint = runToEnd(process.execPath, [binOf('publint', 'publint'), 'run', tarball, '--strict'], projectDir, 300_000);
      attw = runToEnd(process.execPath, [binOf('@arethetypeswrong/cli', 'attw'), tarball, '--no-definitely-typed', '--format', 'ascii', '--no-color'], projectDir, 300_000);
      await run(
        npm,
        ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'],
        projectDir,
        300_000,
      );
      // Without the optional peers first: only the entry points that need one may fail, and must name it.
      withoutPeers = {
        cjs: JSON.parse(await run(process.execPath, ['probe.cjs', JSON.stringify(specifiers)], projectDir, 30_000)) as ProbeResult,
        esm: JSON.parse(await run(process.execPath, ['probe.mjs', JSON.stringify(specifiers)], projectDir, 30_000)) as ProbeResult,
      };
      // The type-check projects, after the install (which would prune what it did not install).
      for (const name of [...LINKED_TYPES, ...LINKED_PEERS]) {
        const target = join(projectDir, 'node_modules', name);
        mkdirSync(dirname(target), { recursive: true });
        if (!existsSync(target)) symlinkSync(join(repoRoot, 'node_modules', name), target, 'dir');
      }
      const blocks = documentedBlocks();
      for (const kind of Object.keys(TYPE_PROJECTS) as Array<keyof typeof TYPE_PROJECTS>) {
        const project = TYPE_PROJECTS[kind];
        const dir = join(projectDir, kind);
        mkdirSync(dir);
        writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: project.type }));
        writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: project.compilerOptions, include: ['*.ts', 'examples/**/*.ts'] }, null, 2));
        for (const file of readdirSync(typesDir)) writeFileSync(join(dir, file), readFileSync(join(typesDir, file)));
        for (const block of blocks) writeFileSync(join(dir, `doc-${block.name}`), asModule(block.code, kind));
        for (const file of exampleFiles()) {
          mkdirSync(dirname(join(dir, file)), { recursive: true });
          writeFileSync(join(dir, file), asPublished(readFileSync(join(repoRoot, file), 'utf8')));
        }
        typeChecks.set(kind, runToEnd(process.execPath, [requireHere.resolve('typescript/bin/tsc'), '-p', dir, '--pretty', 'false'], dir, 170_000));
      }
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

    it('loads every entry point but tiercache/prometheus without prom-client installed; that one fails naming prom-client', () => {
      for (const [how, result] of Object.entries(withoutPeers)) {
        const others = specifiers.filter((spec) => NEEDS_PEER[spec] === undefined);
        assertEntryPoints(result, others, `${how} without optional peers`);
        for (const [spec, peer] of Object.entries(NEEDS_PEER)) {
          const r = result[spec];
          assert.ok(r && 'error' in r && r.error.includes(peer), `${spec} (${how}) without ${peer}: ${JSON.stringify(r)}`);
        }
      }
    });

    it('holds only what a user needs: dist/, README.md, LICENSE and package.json', async () => {
      const files = (await run('tar', ['-tzf', tarball], projectDir, 30_000)).split('\n').filter((f) => f !== '' && !f.endsWith('/'));
      const extra = files.filter((f) => !/^package\/(dist\/.+\.(js|d\.ts|js\.map|json)|README\.md|LICENSE|package\.json)$/.test(f));
      assert.deepEqual(extra, [], `files a user does not need: ${extra.join(', ')}`);
      for (const needed of ['package/LICENSE', 'package/README.md', 'package/dist/esm/index.js', 'package/dist/cjs/index.js']) assert.ok(files.includes(needed), `${needed} is missing`);
    });

    it('ships source maps that resolve: every map carries the text of its sources', () => {
      const installed = join(projectDir, 'node_modules', pkg.name);
      const maps = (readdirSync(join(installed, 'dist'), { recursive: true }) as string[]).filter((f) => f.endsWith('.map'));
      assert.ok(maps.length > 0);
      for (const file of maps) {
        const map = JSON.parse(readFileSync(join(installed, 'dist', file), 'utf8')) as { sources: string[]; sourcesContent?: Array<string | null> };
        map.sources.forEach((source, i) => {
          const resolves = typeof map.sourcesContent?.[i] === 'string' || existsSync(join(installed, 'dist', dirname(file), source));
          assert.ok(resolves, `${file}: source ${source} is neither inlined nor shipped`);
        });
      }
    });

    it('passes publint (strict: warnings count)', async () => {
      const { code, output } = await publint;
      assert.equal(code, 0, output);
    });

    it('passes @arethetypeswrong/cli: every entry point resolves to the right types under node10, node16 (CJS and ESM) and bundlers', async () => {
      const { code, output } = await attw;
      assert.equal(code, 0, output);
    });

    for (const kind of Object.keys(TYPE_PROJECTS) as Array<keyof typeof TYPE_PROJECTS>) {
      it(`type-checks against the published types as ${kind === 'esm' ? 'ESM (nodenext)' : 'CommonJS (module commonjs)'}, strict with exactOptionalPropertyTypes: accepts.ts compiles, rejects.ts fails exactly where marked, the TypeScript blocks of README.md and docs/ and the examples compile`, async () => {
        const dir = join(projectDir, kind);
        const { output } = await typeChecks.get(kind)!;
        const found = diagnostics(output, dir);
        const expected = expectedErrors(readFileSync(join(dir, 'rejects.ts'), 'utf8'));
        const problems: string[] = [];
        for (const d of found) {
          if (d.file === 'rejects.ts' && expected.get(d.line) === d.code) continue;
          problems.push(`${d.file}:${d.line}: unexpected ${d.code}: ${d.text}`);
        }
        for (const [line, code] of expected) {
          if (!found.some((d) => d.file === 'rejects.ts' && d.line === line && d.code === code)) problems.push(`rejects.ts:${line}: compiled, but must fail with ${code}`);
        }
        assert.ok(readdirSync(dir).filter((f) => f.startsWith('doc-readme-')).length >= 10, 'the README blocks were not all checked');
        assert.deepEqual(problems, [], `${problems.join('\n')}\n--- tsc\n${output}`);
      });
    }

    it('ships every type declaration file that "exports" names', () => {
      const installed = join(projectDir, 'node_modules', pkg.name);
      const missing = Object.values(pkg.exports)
        .flatMap((target) => typesPaths(target))
        .filter((path) => !existsSync(join(installed, path)));
      assert.deepEqual(missing, [], `declared in "exports" but not in the tarball: ${missing.join(', ')}`);
    });
  });
});
