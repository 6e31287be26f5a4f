// HTTP throughput of the cache hit paths against their baselines (DESIGN.md
// section 6), all in one run: every scenario in bench/http/scenarios/ is its
// own server process pinned to cpu 1, wrk (1 thread) is pinned to cpu 0, and
// rounds are interleaved (round 1 of every scenario, then round 2, ...) so
// drift hits baselines and candidates alike. Prints a markdown table and writes
// bench/results/http-<date>.json.
//
//   node bench/http/run.mjs [--rounds 3] [--warmup 2] [--duration 10] [--connections 64] [--quiet-wait 10] [--only a,b] [--no-write]
//
// Each round of a scenario: wait (up to --quiet-wait s) for both cpus to be
// idle, fresh process, fill + check the hit with curl,
// `warmup` s of wrk (discarded), `duration` s of wrk (measured), check again
// and prove the handler did not run while measured (cached scenarios).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import {
  REPO_ROOT,
  SCENARIOS,
  busyPercent,
  checkAnswer,
  cpuTimes,
  handlerRuns,
  idleCheck,
  killAll,
  machineInfo,
  processCpuMs,
  srcFingerprint,
  startRedis,
  startServer,
  warmAndVerify,
  wrk,
} from './harness.mjs';
import { BODY_BYTES } from './body.mjs';

const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');

/** DESIGN.md section 6 targets that this run can check: candidate / baseline >= min. */
const TARGETS = [
  { candidate: 'express-tiercache-app', baseline: 'express-bare', min: 1.3, text: 'Express L1 hit, app-level >= 1.3x the bare route' },
  { candidate: 'express-tiercache-app', baseline: 'express-apicache', min: 1.5, text: 'Express L1 hit, app-level >= 1.5x apicache (memory)' },
  { candidate: 'express-tiercache-route', baseline: 'express-bare', min: 1.0, text: 'Express L1 hit, per-route >= 1.0x the bare route' },
  { candidate: 'koa-tiercache-app', baseline: 'koa-cash', min: 1.0, text: 'Koa L1 hit, app-level >= 1.0x koa-cash (lru-cache)' },
  { candidate: 'express-tiercache-front', baseline: 'express-bare', min: 3.0, text: 'Front door, Express L1 hit >= 3x the bare route' },
  { candidate: 'express-tiercache-front', baseline: 'node-raw', min: 0.6, text: 'Front door, Express L1 hit >= 0.6x raw node:http' },
  { candidate: 'express-tiercache-l2', baseline: 'express-redis-bare', min: 0.95, text: 'L2 hit (L1 off) >= 0.95x a bare route doing one ioredis GET' },
];

/** Extra ratios shown per row, besides "vs express-bare". */
const COMPARE = {
  'express-tiercache-app': ['express-apicache', 'node-raw'],
  'express-tiercache-front': ['node-raw'],
  'koa-bare': ['koa-bare'],
  'koa-tiercache-app': ['koa-bare', 'koa-cash'],
  'koa-cash': ['koa-bare'],
  'express-tiercache-l2': ['express-redis-bare'],
};

function parseArgs(argv) {
  const o = { rounds: 3, warmup: 2, duration: 10, connections: 64, quietWait: 10, only: undefined, write: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
      return v;
    };
    if (a === '--rounds') o.rounds = num();
    else if (a === '--warmup') o.warmup = num();
    else if (a === '--duration') o.duration = num();
    else if (a === '--connections') o.connections = num();
    else if (a === '--quiet-wait') o.quietWait = Number(argv[++i]);
    else if (a === '--only') o.only = new Set(String(argv[++i]).split(','));
    else if (a === '--no-write') o.write = false;
    else throw new Error(`unknown argument ${a} (see the comment at the top of bench/http/run.mjs)`);
  }
  return o;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round1 = (v) => Math.round(v * 10) / 10;
const round3 = (v) => Math.round(v * 1000) / 1000;
const log = (msg) => process.stderr.write(`${msg}\n`);

function requireTool(cmd, args) {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch (err) {
    if (err.code === 'ENOENT') throw new Error(`${cmd} is not installed (wrk: apt-get install -y wrk; taskset: util-linux; curl)`);
  }
}

let stopping = false;
function onSignal(signal) {
  if (stopping) return;
  stopping = true;
  log(`\n${signal}: stopping children by PID`);
  killAll('SIGTERM');
  setTimeout(() => {
    killAll('SIGKILL');
    process.exit(signal === 'SIGINT' ? 130 : 143);
  }, 2000).unref();
}
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

/**
 * Waits (up to `maxMs`) until both cpus are nearly idle, so a round does not
 * start while other work is running; resolves the last busy % reading.
 */
async function waitQuiet(maxMs) {
  const deadline = Date.now() + maxMs;
  for (;;) {
    const busy = await idleCheck(500);
    const quiet = Object.values(busy).every((pct) => pct < 15);
    if (quiet || Date.now() >= deadline) return { quiet, busy };
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function measureOnce(scenario, opts, env) {
  const before = await waitQuiet(opts.quietWait * 1000);
  const startedAt = new Date().toISOString();
  const server = await startServer(scenario.name, { env });
  try {
    const hitHeaders = await warmAndVerify(server, scenario);
    await wrk(server.url, { seconds: opts.warmup, connections: opts.connections });
    const runsBefore = await handlerRuns(server);
    const coresA = cpuTimes();
    const procA = processCpuMs(server.pid);
    const t0 = performance.now();
    const r = await wrk(server.url, { seconds: opts.duration, connections: opts.connections });
    const wallMs = performance.now() - t0;
    const procB = processCpuMs(server.pid);
    const cores = busyPercent(coresA, cpuTimes());
    const runsDuring = (await handlerRuns(server)) - runsBefore;
    await checkAnswer(server, scenario);
    const problems = [];
    if (scenario.cached && runsDuring !== 0) problems.push(`handler ran ${runsDuring} times while measured (not all hits)`);
    if (r.errorCount > 0) problems.push(`wrk errors ${JSON.stringify(r.errors)}`);
    const serverCpuPercent = round1((100 * (procB - procA)) / wallMs);
    // The server did not get its core although the core was busy: something else ran there.
    const contended = !before.quiet || (serverCpuPercent < 90 && (cores['1'] ?? 0) > 95);
    return {
      startedAt,
      rps: Math.round(r.rps),
      requests: r.requests,
      latencyMs: { mean: round3(r.latencyUs.mean / 1000), p50: round3(r.latencyUs.p50 / 1000), p90: round3(r.latencyUs.p90 / 1000), p99: round3(r.latencyUs.p99 / 1000), max: round3(r.latencyUs.max / 1000) },
      errors: r.errors,
      bytesPerResponse: Math.round(r.bytes / r.requests),
      serverCpuPercent,
      // CPU the server spent per answer: robust to other load stealing its core.
      serverCpuUsPerRequest: round1(((procB - procA) * 1000) / r.requests),
      coreBusyPercent: cores,
      handlerRunsWhileMeasured: runsDuring,
      busyBeforeRound: before.busy,
      contended,
      hitHeaders: scenario.hit === undefined ? undefined : { [scenario.hit[0]]: hitHeaders[scenario.hit[0]] },
      problems,
    };
  } finally {
    await server.stop();
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  requireTool('wrk', ['-v']);
  requireTool('taskset', ['-V']);
  requireTool('curl', ['--version']);
  const info = machineInfo();
  if (info.machine.cores < 2) throw new Error('needs 2 CPUs: one for the server, one for wrk');
  const scenarios = SCENARIOS.filter((s) => opts.only === undefined || opts.only.has(s.name));
  if (scenarios.length === 0) throw new Error(`--only matched no scenario (known: ${SCENARIOS.map((s) => s.name).join(', ')})`);

  const quiet = await idleCheck(1000);
  const busy = Object.entries(quiet).filter(([, pct]) => pct > 15);
  if (busy.length > 0) log(`WARNING: the machine is not quiet before the run (busy %: ${JSON.stringify(quiet)}); results will be noisy`);
  const perRound = opts.warmup + opts.duration + 2;
  log(`${scenarios.length} scenarios x ${opts.rounds} rounds x ~${perRound} s = ~${Math.round((scenarios.length * opts.rounds * perRound) / 60)} min`);

  const redis = scenarios.some((s) => s.redis) ? await startRedis() : undefined;
  const env = redis === undefined ? {} : { REDIS_URL: redis.url };
  const rounds = Object.fromEntries(scenarios.map((s) => [s.name, []]));
  const startedAt = Date.now();
  try {
    for (let round = 1; round <= opts.rounds; round++) {
      for (const s of scenarios) {
        if (stopping) return;
        let r;
        try {
          r = await measureOnce(s, opts, env);
        } catch (err) {
          // A failed check voids this round only; it is reported, never averaged in.
          rounds[s.name].push({ round, failed: String(err.message ?? err), problems: [String(err.message ?? err)] });
          log(`round ${round} ${s.name} FAILED: ${err.message ?? err}`);
          continue;
        }
        rounds[s.name].push({ round, ...r });
        log(`round ${round} ${s.name.padEnd(24)} ${String(r.rps).padStart(7)} req/s  p99 ${r.latencyMs.p99} ms  server cpu ${r.serverCpuPercent}%  cores ${JSON.stringify(r.coreBusyPercent)}${r.contended ? '  CONTENDED' : ''}${r.problems.length ? '  PROBLEM: ' + r.problems.join('; ') : ''}`);
      }
    }
  } finally {
    await redis?.stop();
  }
  const srcAfter = srcFingerprint();
  const srcChanged = srcAfter !== info.source.srcFingerprint;
  if (srcChanged) log('WARNING: src/ changed during the run; rounds may have measured different code');

  const med = {};
  for (const s of scenarios) {
    const all = rounds[s.name];
    const rs = all.filter((r) => r.failed === undefined);
    if (rs.length === 0) {
      med[s.name] = { medianRps: NaN, roundsRps: [], problems: all.flatMap((r) => r.problems.map((p) => `round ${r.round}: ${p}`)) };
      continue;
    }
    med[s.name] = {
      medianRps: Math.round(median(rs.map((r) => r.rps))),
      roundsRps: rs.map((r) => r.rps),
      roundNumbers: rs.map((r) => r.round),
      medianP50Ms: round3(median(rs.map((r) => r.latencyMs.p50))),
      medianP99Ms: round3(median(rs.map((r) => r.latencyMs.p99))),
      bytesPerResponse: rs[0]?.bytesPerResponse,
      medianServerCpuPercent: round1(median(rs.map((r) => r.serverCpuPercent))),
      medianCpuUsPerRequest: round1(median(rs.map((r) => r.serverCpuUsPerRequest))),
      medianLoadCoreBusyPercent: round1(median(rs.map((r) => r.coreBusyPercent['0'] ?? 0))),
      problems: all.flatMap((r) => r.problems.map((p) => `round ${r.round}: ${p}`)),
      contendedRounds: rs.filter((r) => r.contended).map((r) => r.round),
    };
  }
  const ratio = (a, b) => (med[a] && med[b] && med[a].medianRps > 0 && med[b].medianRps > 0 ? round3(med[a].medianRps / med[b].medianRps) : undefined);
  /** Per-round ratios (same round = neighbours in time): min and max, to show the spread. */
  const pairedRange = (a, b) => {
    if (!rounds[a] || !rounds[b]) return undefined;
    const xs = rounds[a].map((r, i) => r.rps / rounds[b][i]?.rps).filter(Number.isFinite);
    if (xs.length === 0) return undefined;
    return [round3(Math.min(...xs)), round3(Math.max(...xs))];
  };

  const rows = scenarios.map((s) => {
    const m = med[s.name];
    const others = (COMPARE[s.name] ?? []).filter((b) => ratio(s.name, b) !== undefined).map((b) => `${ratio(s.name, b).toFixed(2)}x ${b}`);
    return {
      scenario: s.name,
      ...m,
      vsExpressBare: ratio(s.name, 'express-bare'),
      vsOther: others,
    };
  });
  const targets = TARGETS.filter((t) => ratio(t.candidate, t.baseline) !== undefined).map((t) => {
    const r = ratio(t.candidate, t.baseline);
    const cpu = round3(med[t.baseline].medianCpuUsPerRequest / med[t.candidate].medianCpuUsPerRequest);
    return { ...t, ratio: r, perRoundRange: pairedRange(t.candidate, t.baseline), cpuNormalizedRatio: cpu, met: r >= t.min };
  });

  const command = `node bench/http/run.mjs ${process.argv.slice(2).join(' ')}`.trim();
  const lines = [];
  lines.push(`### HTTP hit paths, ${info.date.slice(0, 10)}`);
  lines.push('');
  lines.push(`${info.machine.cpu}, ${info.machine.cores} cores, ${info.machine.memoryGiB} GiB, ${info.machine.os}; Node ${info.node}; wrk ${info.tools.wrk}; redis ${info.tools.redis}.`);
  lines.push(`Server pinned to cpu 1, wrk (1 thread, ${opts.connections} connections) and redis-server on cpu 0, loopback. ${BODY_BYTES}-byte JSON body.`);
  lines.push(`${opts.rounds} interleaved rounds per scenario, each a fresh process: ${opts.warmup} s warm-up + ${opts.duration} s measured; median of rounds.`);
  lines.push('Rounds marked * were contended (other load on the machine when the round began, or the server got < 90% of its busy core).');
  lines.push(`Command: \`${command}\` (total ${Math.round((Date.now() - startedAt) / 1000)} s). Code: commit ${info.source.commit}${info.source.srcChangesNotCommitted.length ? ` plus uncommitted src/ changes (${info.source.srcChangesNotCommitted.join(', ')})` : ''}.`);
  lines.push('');
  lines.push('| scenario | median req/s | rounds req/s | vs express-bare | other ratios | p99 ms | bytes/resp | server cpu % | server CPU µs/req | cpu0 (wrk) busy % |');
  lines.push('|---|---:|---|---:|---|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    lines.push(`| ${r.scenario} | ${r.medianRps} | ${r.roundsRps.map((v, i) => (r.contendedRounds.includes(r.roundNumbers[i]) ? `${v}*` : String(v))).join(', ')} | ${r.vsExpressBare === undefined ? '' : r.vsExpressBare.toFixed(2) + 'x'} | ${r.vsOther.join('; ')} | ${r.medianP99Ms} | ${r.bytesPerResponse} | ${r.medianServerCpuPercent} | ${r.medianCpuUsPerRequest} | ${r.medianLoadCoreBusyPercent} |`);
  }
  if (targets.length > 0) {
    lines.push('');
    lines.push('| DESIGN.md section 6 target | req/s ratio (medians) | per-round range | CPU-µs/req ratio | met (req/s) |');
    lines.push('|---|---:|---|---:|---|');
    for (const t of targets) lines.push(`| ${t.text} | ${t.ratio.toFixed(2)}x | ${t.perRoundRange?.map((v) => v.toFixed(2)).join('-') ?? '?'}x | ${t.cpuNormalizedRatio.toFixed(2)}x | ${t.met ? 'yes' : 'NO'} |`);
  }
  const problems = rows.flatMap((r) => r.problems.map((p) => `${r.scenario} ${p}`));
  if (problems.length > 0) {
    lines.push('');
    lines.push('Problems (these rows are not valid measurements):');
    for (const p of problems) lines.push(`- ${p}`);
  }
  if (srcChanged) {
    lines.push('');
    lines.push('Warning: src/ changed while this ran; rounds may have measured different code.');
  }
  if (busy.length > 0) {
    lines.push('');
    lines.push(`Warning: cpus busy before the run ${JSON.stringify(quiet)}; other load was on the machine.`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);

  if (opts.write) {
    if (!existsSync(RESULTS_DIR)) mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `http-${info.date.slice(0, 10)}.json`);
    const json = { ...info, srcFingerprintAfter: srcAfter, command, options: { ...opts, only: opts.only && [...opts.only] }, idleBeforeRunBusyPercent: quiet, bodyBytes: BODY_BYTES, results: rows, targets, rounds };
    writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
    log(`wrote ${file}`);
  }
  if (problems.length > 0) process.exitCode = 1;
}

main().catch((err) => {
  log(err.stack ?? String(err));
  killAll('SIGTERM');
  process.exitCode = 1;
});
