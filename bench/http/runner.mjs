// A benchmark runner's life, shared by run.mjs (hits) and miss.mjs (misses):
// the command line, stopping children on a signal, the interleaved rounds
// (round 1 of every scenario, then round 2, ... so drift hits baselines and
// candidates alike), the medians, the printed report and the dated results
// file. What a round measures is the runner's own `measure`.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, idleCheck, killAll, machineInfo, requireTools, srcFingerprint, startRedis } from './harness.mjs';
import { reportHead, reportTail, summarizeRounds, targetLines } from './summary.mjs';

export const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');

let stopping = false;
/** True once SIGINT/SIGTERM arrived (after onStopSignals()): the runner starts no further round. */
const isStopping = () => stopping;

/** On SIGINT/SIGTERM: stop every child by PID, then exit. */
function onStopSignals() {
  const onSignal = (signal) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${signal}: stopping children by PID\n`);
    killAll('SIGTERM');
    setTimeout(() => {
      killAll('SIGKILL');
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }, 2000).unref();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

/**
 * The runners' command line: `--rounds`, `--warmup`, `--duration`,
 * `--connections` (positive numbers), `--quiet-wait` (s), `--only a,b`,
 * `--no-write`, over `defaults`. `usage` names where the options are described.
 */
function parseRunOptions(argv, defaults, usage) {
  const o = { connections: 64, quietWait: 10, only: undefined, write: true, ...defaults };
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
    else throw new Error(`unknown argument ${a} (see ${usage})`);
  }
  return o;
}

export const log = (msg) => process.stderr.write(`${msg}\n`);

/**
 * The interleaved run both runners make: round 1 of every scenario (those in
 * `opts.only`, if given), then round 2, ... `measure(scenario, redis)`
 * measures one round in a fresh server and resolves its record; a round that
 * throws is kept as failed (reported, never averaged in). One throwaway
 * redis-server serves every round when a scenario needs it. Resolves the
 * rounds per scenario with the run's facts, or undefined when stopped by a signal.
 */
async function runInterleaved(all, opts, measure) {
  const info = machineInfo();
  if (info.machine.cores < 2) throw new Error('needs 2 CPUs: one for the server, one for wrk');
  const scenarios = all.filter((s) => opts.only === undefined || opts.only.has(s.name));
  if (scenarios.length === 0) throw new Error(`--only matched no scenario (known: ${all.map((s) => s.name).join(', ')})`);
  const quietBefore = await idleCheck(1000);
  const machineBusy = Object.values(quietBefore).some((pct) => pct > 15);
  if (machineBusy) log(`WARNING: the machine is not quiet before the run (busy %: ${JSON.stringify(quietBefore)}); results will be noisy`);
  const perRound = opts.warmup + opts.duration + 2;
  log(`${scenarios.length} scenarios x ${opts.rounds} rounds x ~${perRound} s = ~${Math.round((scenarios.length * opts.rounds * perRound) / 60)} min`);

  const redis = scenarios.some((s) => s.redis) ? await startRedis() : undefined;
  const rounds = Object.fromEntries(scenarios.map((s) => [s.name, []]));
  const startedAt = Date.now();
  try {
    for (let round = 1; round <= opts.rounds; round++) {
      for (const s of scenarios) {
        if (isStopping()) return undefined;
        let r;
        try {
          r = await measure(s, redis);
        } catch (err) {
          rounds[s.name].push({ round, failed: String(err.message ?? err), problems: [String(err.message ?? err)] });
          log(`round ${round} ${s.name} FAILED: ${err.message ?? err}`);
          continue;
        }
        rounds[s.name].push({ round, ...r });
        log(`round ${round} ${s.name.padEnd(26)} ${String(r.rps).padStart(7)} req/s  p99 ${r.latencyMs.p99} ms  server cpu ${r.serverCpuPercent}% (${r.serverCpuUsPerRequest} µs/req)  cores ${JSON.stringify(r.coreBusyPercent)}${r.contended ? '  CONTENDED' : ''}${r.problems.length ? '  PROBLEM: ' + r.problems.join('; ') : ''}`);
      }
    }
  } finally {
    await redis?.stop();
  }
  const srcFingerprintAfter = srcFingerprint();
  const srcChanged = srcFingerprintAfter !== info.source.srcFingerprint;
  if (srcChanged) log('WARNING: src/ changed during the run; rounds may have measured different code');
  return { info, scenarios, rounds, quietBefore, machineBusy, srcFingerprintAfter, srcChanged, seconds: Math.round((Date.now() - startedAt) / 1000) };
}

/** bench/results/<kind>-<date>.json, or -2, -3, ... when a run of that day is already there. */
function resultPath(kind, date) {
  if (!existsSync(RESULTS_DIR)) mkdirSync(RESULTS_DIR, { recursive: true });
  for (let i = 1; ; i++) {
    const file = join(RESULTS_DIR, `${kind}-${date.slice(0, 10)}${i === 1 ? '' : `-${i}`}.json`);
    if (!existsSync(file)) return file;
  }
}

/**
 * Runs a benchmark from the command line to the results file:
 * - `scenarios`: `{ name, redis? }` in run order; `defaults`: option defaults;
 * - `measure(scenario, opts, redis)`: one round in a fresh server, resolving
 *   measureWindow()'s record (plus anything else worth keeping);
 * - `report(run, opts, med)`: `{ how, table, rows, targets, extra }`: lines
 *   saying how it measured, the table lines, one row per scenario (with its
 *   `problems`), the checked targets, and extra fields for the JSON.
 * Prints the report, writes bench/results/<kind>-<date>.json (unless
 * --no-write) and exits 1 when a round failed a check.
 */
export function runBenchmark({ kind, title, script, defaults, scenarios, measure, report }) {
  const main = async () => {
    const opts = parseRunOptions(process.argv.slice(2), defaults, `the comment at the top of ${script}`);
    onStopSignals();
    requireTools();
    const run = await runInterleaved(scenarios, opts, (s, redis) => measure(s, opts, redis));
    if (run === undefined) return;
    const med = Object.fromEntries(run.scenarios.map((s) => [s.name, summarizeRounds(run.rounds[s.name])]));
    const { how, table, rows, targets, extra } = report(run, opts, med);
    const command = `node ${script} ${process.argv.slice(2).join(' ')}`.trim();
    const lines = [...reportHead(title, run, opts, command, how), ...table, ...targetLines(targets), ...reportTail(rows, run)];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (opts.write) {
      const file = resultPath(kind, run.info.date);
      const json = { ...run.info, srcFingerprintAfter: run.srcFingerprintAfter, command, options: { ...opts, only: opts.only && [...opts.only] }, idleBeforeRunBusyPercent: run.quietBefore, ...extra, results: rows, targets, rounds: run.rounds };
      writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
      log(`wrote ${file}`);
    }
    if (rows.some((r) => r.problems.length > 0)) process.exitCode = 1;
  };
  main().catch((err) => {
    log(err.stack ?? String(err));
    killAll('SIGTERM');
    process.exitCode = 1;
  });
}
