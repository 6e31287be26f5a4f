#!/usr/bin/env node
// Runs the public shared-cache conformance suite (npm package
// http-cache-tests, the suite behind cache-tests.fyi) against examples/proxy
// and prints pass rates by kind (required, optimal, check), the way the
// suite's own display counts them (a test whose dependency failed counts as
// not passed). Nothing here is a project dependency: the suite is installed
// into a temporary directory with npm.
//
//   node scripts/cache-tests.mjs [--version 0.4.5] [--keep DIR] [--json results.json] [--fails fails.txt]
//
// Everything listens on 127.0.0.1; every process started is stopped by PID.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
};
const version = opt('version', '0.4.5');
const keep = opt('keep', undefined);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function waitFor(child, pattern, what) {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start in 60 s:\n${out}`)), 60_000);
    const on = (chunk) => {
      out += chunk.toString();
      if (pattern.test(out)) {
        clearTimeout(timer);
        resolve(out);
      }
    };
    child.stdout.on('data', on);
    child.stderr.on('data', (c) => (out += c.toString()));
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}):\n${out}`)));
  });
}

const dir = keep ?? mkdtempSync(join(tmpdir(), 'tiercache-cache-tests-'));
const suite = join(dir, 'node_modules', 'http-cache-tests');
const children = [];
try {
  if (!existsSync(join(suite, 'package.json'))) {
    writeFileSync(join(dir, 'package.json'), '{"private":true}\n');
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--silent', `http-cache-tests@${version}`], { cwd: dir, stdio: 'inherit' });
  }
  // The suite's server listens on every interface; this preload keeps it on loopback.
  const loopback = join(dir, 'loopback.mjs');
  writeFileSync(loopback, `import http from 'node:http';\nconst listen = http.Server.prototype.listen;\nhttp.Server.prototype.listen = function (port, ...rest) { return typeof port === 'number' || typeof port === 'string' ? listen.call(this, Number(port), '127.0.0.1', ...rest.filter((a) => typeof a === 'function')) : listen.call(this, port, ...rest); };\n`);
  const originPort = await freePort();
  const proxyPort = await freePort();
  const origin = spawn(process.execPath, ['--import', pathToFileURL(loopback).href, 'server/server.mjs'], {
    cwd: suite,
    env: { ...process.env, npm_config_port: String(originPort), npm_config_protocol: 'http', npm_config_pidfile: join(dir, 'server.pid') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(origin);
  await waitFor(origin, /Listening on/, 'the suite server');
  const proxy = spawn(process.execPath, ['--import', 'tsx', 'examples/proxy/server.ts'], {
    cwd: root,
    env: { ...process.env, ORIGIN_URL: `http://127.0.0.1:${originPort}`, PORT: String(proxyPort), REDIS_URL: '', TIERCACHE_REDIS_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(proxy);
  await waitFor(proxy, /listening on/, 'the proxy');
  const started = Date.now();
  const raw = execFileSync(process.execPath, ['--no-warnings', 'cli.mjs'], {
    cwd: suite,
    env: { ...process.env, npm_config_base: `http://127.0.0.1:${proxyPort}`, npm_package_config_id: '' },
    maxBuffer: 64 * 1024 * 1024,
  }).toString();
  const results = JSON.parse(raw);
  if (opt('json')) writeFileSync(opt('json'), JSON.stringify(results, null, 2));
  const display = await import(pathToFileURL(join(suite, 'lib', 'display.mjs')).href);
  const tests = (await import(pathToFileURL(join(suite, 'tests', 'index.mjs')).href)).default;
  const surrogatePath = join(suite, 'tests', 'surrogate-control.mjs');
  if (existsSync(surrogatePath)) tests.push((await import(pathToFileURL(surrogatePath).href)).default);
  const tally = {};
  const fails = [];
  for (const s of tests) {
    for (const test of s.tests) {
      if (test.browser_only) continue;
      const kind = test.kind ?? 'required';
      const symbol = display.determineTestResult(tests, test.id, results)[2];
      const t = (tally[kind] ??= { total: 0, pass: 0 });
      t.total++;
      if (symbol === '✅' || symbol === 'Y') t.pass++;
      else if (kind !== 'check') fails.push(`${kind}\t${symbol}\t${test.id}\t${JSON.stringify(results[test.id] ?? null)}`);
    }
  }
  if (opt('fails')) writeFileSync(opt('fails'), fails.join('\n') + '\n');
  console.log(`http-cache-tests ${version} against examples/proxy (L1 only), ${Math.round((Date.now() - started) / 1000)} s:`);
  for (const kind of ['required', 'optimal', 'check']) {
    const t = tally[kind];
    if (t) console.log(`  ${kind}: ${t.pass}/${t.total} passed (${((100 * t.pass) / t.total).toFixed(1)}%)`);
  }
  console.log('Not passed (required and optimal):');
  for (const line of fails) console.log(`  ${line.slice(0, 160)}`);
} finally {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  if (keep === undefined) rmSync(dir, { recursive: true, force: true });
}
