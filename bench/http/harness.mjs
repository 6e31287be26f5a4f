// What run.mjs, miss.mjs and profile.mjs share: start one scenario server
// pinned to its core, start a throwaway redis-server, drive wrk pinned to the
// other core (on one URL, or on URLs never asked before), wait for a quiet
// machine, read per-core and per-process CPU time around a measured window,
// and check answers with curl. Every process started here is tracked and
// stopped by its PID.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { machineSpecs, redisVersion } from '../support/machine.mjs';
import { BENCH_PATH, BODY_BYTES, BODY_SHA256 } from './body.mjs';
import { round1, round3 } from './summary.mjs';
import { createHash } from 'node:crypto';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const HTTP_DIR = join(REPO_ROOT, 'bench', 'http');
/** Loaded after tsx by every scenario server: tiercache's src/ imports run dist/esm, the build a user runs (use-dist.mjs says why). */
const USE_DIST = join(HTTP_DIR, 'use-dist.mjs');
let built = false;

/** `npm run build`, once per benchmark process, so dist/esm is the working tree's code. */
function buildOnce() {
  if (built) return;
  execFileSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build.mjs')], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  built = true;
}

/** wrk (and redis-server) run here; the scenario server runs alone on SERVER_CPU. */
export const LOAD_CPU = '0';
export const SERVER_CPU = '1';
const HANDLER_RUNS_PATH = '/__bench/handler-runs';

/**
 * The scenarios, in run order. `hit` is how a cached answer shows itself
 * (a header and a substring of its value); cached scenarios must also not
 * run their handler while measured.
 */
export const SCENARIOS = [
  { name: 'node-raw', cached: false },
  { name: 'express-bare', cached: false },
  { name: 'express-tiercache-app', cached: true, hit: ['cache-status', 'tiercache; hit; detail=L1'] },
  { name: 'express-tiercache-route', cached: true, hit: ['cache-status', 'tiercache; hit; detail=L1'] },
  { name: 'express-apicache', cached: true },
  { name: 'express-tiercache-front', cached: true, hit: ['cache-status', 'tiercache; hit; detail=L1'] },
  { name: 'koa-bare', cached: false },
  { name: 'koa-tiercache-app', cached: true, hit: ['cache-status', 'tiercache; hit; detail=L1'] },
  { name: 'koa-cash', cached: true, hit: ['x-cached-response', 'HIT'] },
  { name: 'express-redis-bare', cached: false, redis: true },
  { name: 'express-tiercache-l2', cached: true, redis: true, hit: ['cache-status', 'tiercache; hit; detail=L2'] },
  // route-cache sets no header: the hit is proven by the handler not running while measured.
  { name: 'express-route-cache-redis', cached: true, redis: true },
];

const live = new Map(); // pid -> name, every child still running

export function livePids() {
  return [...live.keys()];
}

/** Stops every tracked child by PID (for signal handlers). */
export function killAll(signal = 'SIGTERM') {
  for (const pid of live.keys()) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

function track(child, name) {
  live.set(child.pid, name);
  child.once('exit', () => live.delete(child.pid));
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Sends `signal` to the child by PID and waits for it to exit; SIGKILL after `graceMs`. */
async function stopChild(child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(child.pid, 'SIGTERM');
  const t = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(t);
}

/**
 * Starts bench/http/scenarios/<file>.ts (file defaults to the name) under tsx,
 * with tiercache itself from dist/esm (built first), pinned to SERVER_CPU,
 * and resolves once it prints "ready".
 */
export async function startServer(name, { env = {}, nodeArgs = [], file = name } = {}) {
  buildOnce();
  const port = await freePort();
  const args = ['-c', SERVER_CPU, process.execPath, ...nodeArgs, '--import', 'tsx', '--import', USE_DIST, join(HTTP_DIR, 'scenarios', `${file}.ts`)];
  const child = spawn('taskset', args, {
    cwd: REPO_ROOT,
    env: { ...process.env, NODE_ENV: 'production', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child, name);
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => (err += d));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not print "ready" within 20 s\n${err}`)), 20_000);
    child.stdout.on('data', (d) => {
      out += d;
      if (/^ready\b/m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before "ready" (code ${code}, signal ${signal})\n${err}`));
    });
  });
  return {
    name,
    pid: child.pid,
    port,
    origin: `http://127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}${BENCH_PATH}`,
    stderr: () => err,
    stop: () => stopChild(child),
  };
}

/**
 * A throwaway redis-server on a free loopback port, no persistence, pinned to
 * LOAD_CPU. `command(name, ...args)` sends one command (FLUSHALL, DBSIZE) from
 * the runner on its own connection.
 */
export async function startRedis() {
  const port = await freePort();
  const bin = process.env.REDIS_SERVER_BIN ?? 'redis-server';
  const child = spawn('taskset', ['-c', LOAD_CPU, bin, '--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--logfile', ''], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child, 'redis-server');
  let out = '';
  child.stdout.setEncoding('utf8');
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start within 10 s\n${out}`)), 10_000);
    child.stdout.on('data', (d) => {
      out += d;
      if (/Ready to accept connections/i.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (code ${code})\n${out}`));
    });
  });
  child.stdout.resume();
  let client;
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid,
    command: (name, ...args) => (client ??= new Redis(port, '127.0.0.1', { lazyConnect: false })).call(name, ...args),
    stop: async () => {
      await client?.quit().catch(() => client?.disconnect());
      await stopChild(child);
    },
  };
}

let distinctScriptPath;
/** wrk-report.lua and wrk-distinct.lua as one script (wrk takes one -s), written once per run. */
function distinctScript() {
  if (distinctScriptPath !== undefined) return distinctScriptPath;
  const dir = mkdtempSync(join(tmpdir(), 'tiercache-bench-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  distinctScriptPath = join(dir, 'distinct-report.lua');
  writeFileSync(distinctScriptPath, [readFileSync(join(HTTP_DIR, 'wrk-report.lua'), 'utf8'), readFileSync(join(HTTP_DIR, 'wrk-distinct.lua'), 'utf8')].join('\n'));
  return distinctScriptPath;
}

/**
 * The URL wrk-distinct.lua sends as request `n` (1, 2, ...) of thread 0 in
 * window `windowId`: `<path>?miss=<windowId><thread, 3 digits><n, 9 digits>`.
 * The runner uses it too, for its own checks, with window ids wrk never gets.
 */
export function distinctPath(windowId, n, thread = 0) {
  return `${BENCH_PATH}?miss=${windowId}${String(thread).padStart(3, '0')}${String(n).padStart(9, '0')}`;
}

/**
 * Runs wrk (one thread, pinned to LOAD_CPU) against `url`; resolves its summary.
 * With `distinct` (a positive integer, the window id), every request asks for
 * a URL never asked before: distinctPath(distinct, 1), (distinct, 2), ...
 */
export function wrk(url, { seconds, connections, distinct }) {
  const script = distinct === undefined ? join(HTTP_DIR, 'wrk-report.lua') : distinctScript();
  const args = ['-c', LOAD_CPU, 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', script, url];
  if (distinct !== undefined) {
    if (!Number.isInteger(distinct) || distinct <= 0) throw new Error(`wrk: distinct must be a positive integer window id (got ${distinct})`);
    args.push('--', String(distinct));
  }
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child, 'wrk');
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = /^WRK_JSON (.*)$/m.exec(out)?.[1];
      if (code !== 0 || line === undefined) return reject(new Error(`wrk failed (code ${code}): ${err || out}`));
      const r = JSON.parse(line);
      r.rps = r.requests / (r.durationUs / 1e6);
      r.errorCount = Object.values(r.errors).reduce((a, b) => a + b, 0);
      resolve(r);
    });
  });
}

/** Busy and total jiffies per CPU from /proc/stat. */
export function cpuTimes() {
  const out = {};
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    const idle = v[3] + (v[4] ?? 0); // idle + iowait
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0); // without guest (already in user)
    out[m[1]] = { busy: total - idle, total };
  }
  return out;
}

/** Percent busy per CPU between two cpuTimes() readings. */
export function busyPercent(before, after) {
  const out = {};
  for (const cpu of Object.keys(after)) {
    const dt = after[cpu].total - before[cpu].total;
    out[cpu] = dt > 0 ? Math.round((1000 * (after[cpu].busy - before[cpu].busy)) / dt) / 10 : 0;
  }
  return out;
}

let clkTck;
/** CPU time a process has used, in ms: user, system (the kernel, on its behalf). */
export function processCpuSplitMs(pid) {
  clkTck ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: (Number(fields[11]) * 1000) / clkTck, system: (Number(fields[12]) * 1000) / clkTck }; // utime, stime
}

/** CPU time (user + system) a process has used, in ms. */
export function processCpuMs(pid) {
  const { user, system } = processCpuSplitMs(pid);
  return user + system;
}

/** One GET with curl; resolves status, lower-cased headers and body. */
export function curl(url) {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-s', '-i', '--max-time', '5', url], { encoding: 'buffer', maxBuffer: 1 << 20 }, (err, stdout) => {
      if (err) return reject(new Error(`curl ${url} failed: ${err.message}`));
      const sep = stdout.indexOf('\r\n\r\n');
      const head = stdout.subarray(0, sep).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/\S+ (\d+)/.exec(head[0] ?? '')?.[1]);
      const headers = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status, headers, body: stdout.subarray(sep + 4) });
    });
  });
}

export async function handlerRuns(server) {
  const r = await curl(`http://127.0.0.1:${server.port}${HANDLER_RUNS_PATH}`);
  return JSON.parse(r.body.toString('utf8')).handlerRuns;
}

/** Checks one answer: 200, the bench body byte for byte, and the scenario's hit marker. */
export async function checkAnswer(server, scenario) {
  const r = await curl(server.url);
  const problems = [];
  if (r.status !== 200) problems.push(`status ${r.status}`);
  if (r.body.length !== BODY_BYTES || createHash('sha256').update(r.body).digest('hex') !== BODY_SHA256) problems.push(`body differs (${r.body.length} bytes)`);
  if (scenario.hit !== undefined) {
    const [name, marker] = scenario.hit;
    if (!(r.headers[name] ?? '').includes(marker)) problems.push(`${name}: ${JSON.stringify(r.headers[name])}, expected "${marker}"`);
  }
  if (problems.length > 0) throw new Error(`${scenario.name}: ${problems.join('; ')}`);
  return r;
}

/** Fills the cache (one request), then proves the next answer is a hit. Resolves the hit's headers. */
export async function warmAndVerify(server, scenario) {
  await curl(server.url); // fill (or just one request for uncached scenarios)
  // A few tries: on a loaded machine an L2 fill or lookup can exceed its command timeout once.
  for (let attempt = 1; ; attempt++) {
    try {
      return (await checkAnswer(server, scenario)).headers;
    } catch (err) {
      if (attempt >= 5) throw err;
      await sleep(200);
    }
  }
}

function tryRun(cmd, args, pick) {
  try {
    return pick(execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
  } catch (err) {
    return pick(String(err.stdout ?? '') + String(err.stderr ?? '')) ?? 'unknown';
  }
}

/** sha256 over every file in src/ (path and bytes), to notice src/ changing under a run. */
export function srcFingerprint() {
  const hash = createHash('sha256');
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else hash.update(p).update(readFileSync(p));
    }
  };
  walk(join(REPO_ROOT, 'src'));
  return hash.digest('hex').slice(0, 16);
}

/** The code measured: commit, files in src/ that differ from it, and a fingerprint of src/. */
export function sourceInfo() {
  const git = (...args) => tryRun('git', ['-C', REPO_ROOT, ...args], (s) => s.trim());
  const dirty = git('status', '--porcelain', '--', 'src');
  return { commit: git('rev-parse', '--short', 'HEAD'), build: 'dist/esm from npm run build (bench/http/use-dist.mjs)', srcChangesNotCommitted: dirty === '' ? [] : dirty.split('\n').map((l) => l.trim()), srcFingerprint: srcFingerprint() };
}

/** Date, Node version and machine (CONVENTIONS item 9), plus the tools used. */
export function machineInfo() {
  return {
    date: new Date().toISOString(),
    node: process.version,
    machine: { ...machineSpecs(), loadavgAtStart: loadavg().map((v) => Math.round(v * 100) / 100) },
    tools: {
      wrk: tryRun('wrk', ['-v'], (s) => /^wrk (\S+)/m.exec(s)?.[1]),
      redis: redisVersion(),
    },
    pinning: { server: `cpu ${SERVER_CPU}`, wrk: `cpu ${LOAD_CPU}`, redis: `cpu ${LOAD_CPU} (with wrk)` },
    source: sourceInfo(),
  };
}

/** Other processes' CPU use over `ms` (to warn when the machine is not quiet). */
export async function idleCheck(ms = 1000) {
  const a = cpuTimes();
  await sleep(ms);
  return busyPercent(a, cpuTimes());
}

/**
 * Waits (up to `maxMs`) until both cpus are nearly idle, so a round does not
 * start while other work is running; resolves the last busy % reading.
 */
export async function waitQuiet(maxMs) {
  const deadline = Date.now() + maxMs;
  for (;;) {
    const busy = await idleCheck(500);
    const quiet = Object.values(busy).every((pct) => pct < 15);
    if (quiet || Date.now() >= deadline) return { quiet, busy };
    await sleep(1000);
  }
}

/**
 * One measured window: wrk for `seconds` against `url` (`distinct` as for
 * wrk()), with the server's CPU time, both cpus' busy % and the handler runs
 * read around it. `quietBefore` is waitQuiet()'s reading before the round;
 * `others` names further processes whose CPU time per answer is wanted
 * ({ redis: pid } -> otherCpuUsPerRequest.redis).
 */
export async function measureWindow(server, url, { seconds, connections, distinct }, quietBefore, others = {}) {
  const runsBefore = await handlerRuns(server);
  const coresA = cpuTimes();
  const procA = processCpuSplitMs(server.pid);
  const othersA = Object.entries(others).map(([name, pid]) => [name, pid, processCpuMs(pid)]);
  const t0 = performance.now();
  const r = await wrk(url, { seconds, connections, distinct });
  const wallMs = performance.now() - t0;
  const procB = processCpuSplitMs(server.pid);
  const serverCpuMs = procB.user + procB.system - procA.user - procA.system;
  const otherCpuUsPerRequest = Object.fromEntries(othersA.map(([name, pid, ms]) => [name, round1(((processCpuMs(pid) - ms) * 1000) / r.requests)]));
  const cores = busyPercent(coresA, cpuTimes());
  const runsDuring = (await handlerRuns(server)) - runsBefore;
  const serverCpuPercent = round1((100 * serverCpuMs) / wallMs);
  const problems = [];
  if (r.errorCount > 0) problems.push(`wrk errors ${JSON.stringify(r.errors)}`);
  return {
    rps: Math.round(r.rps),
    requests: r.requests,
    latencyMs: { mean: round3(r.latencyUs.mean / 1000), p50: round3(r.latencyUs.p50 / 1000), p90: round3(r.latencyUs.p90 / 1000), p99: round3(r.latencyUs.p99 / 1000), max: round3(r.latencyUs.max / 1000) },
    errors: r.errors,
    bytesPerResponse: Math.round(r.bytes / r.requests),
    serverCpuPercent,
    // CPU the server spent per answer: robust to other load stealing its core.
    serverCpuUsPerRequest: round1((serverCpuMs * 1000) / r.requests),
    // Of that, the kernel's part (/proc stime): the socket calls, and what the
    // process's memory and GC threads cost there (page faults, brk/madvise, futex
    // handoffs between threads pinned to the one core), which user time misses.
    serverKernelUsPerRequest: round1(((procB.system - procA.system) * 1000) / r.requests),
    otherCpuUsPerRequest,
    coreBusyPercent: cores,
    handlerRunsWhileMeasured: runsDuring,
    busyBeforeRound: quietBefore.busy,
    // The server did not get its core although the core was busy: something else ran there.
    contended: !quietBefore.quiet || (serverCpuPercent < 90 && (cores[SERVER_CPU] ?? 0) > 95),
    wallMs,
    problems,
  };
}

/** Throws unless wrk, taskset and curl are installed. */
export function requireTools() {
  for (const [cmd, args] of [['wrk', ['-v']], ['taskset', ['-V']], ['curl', ['--version']]]) {
    try {
      execFileSync(cmd, args, { stdio: 'ignore' });
    } catch (err) {
      if (err.code === 'ENOENT') throw new Error(`${cmd} is not installed (wrk: apt-get install -y wrk; taskset: util-linux; curl)`);
    }
  }
}

export { sleep };
