// Runs the invalidation benchmarks one after another, each in its own process
// (which starts its own redis-server and workers), prints one markdown table
// and writes everything to bench/results/invalidation-<date>.json.
//
//   node bench/run-invalidation.mjs
//
// Scenarios: invalidation-propagation.ts with --observe event (the figure
// DESIGN.md section 4 targets) and --observe poll (cross-check: B spins on
// cache.get(), which also costs a core), then invalidate-user-cost.ts.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInfo } from './support/machine.mjs';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');

const RUNS = [
  { name: 'propagation-event', file: 'bench/invalidation-propagation.ts', args: ['--observe', 'event'] },
  { name: 'propagation-poll', file: 'bench/invalidation-propagation.ts', args: ['--observe', 'poll'] },
  { name: 'invalidate-user-cost', file: 'bench/invalidate-user-cost.ts', args: [] },
];

let current; // the child being run, so a signal can stop it by PID

function runOne(run) {
  const argv = ['--import', 'tsx', run.file, '--json', ...run.args];
  process.stderr.write(`\n$ node ${argv.join(' ')}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    current = child;
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => (out += chunk));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      current = undefined;
      if (code !== 0) return reject(new Error(`${run.file} ${run.args.join(' ')} failed (code ${code}, signal ${signal})`));
      const line = out.trim().split('\n').pop();
      try {
        resolve({ command: `node ${argv.join(' ')}`, ...JSON.parse(line) });
      } catch (err) {
        reject(new Error(`${run.file} printed no JSON result: ${String(err)}`));
      }
    });
  });
}

function onSignal(signal) {
  // The child stops its own workers and redis-server on SIGTERM.
  if (current?.pid !== undefined) process.kill(current.pid, 'SIGTERM');
  process.exitCode = signal === 'SIGINT' ? 130 : 143;
}
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

const ms = (v) => v.toFixed(3);
const yes = (b) => (b ? 'yes' : '**no**');

async function main() {
  const started = Date.now();
  const info = runInfo();

  const results = {};
  for (const run of RUNS) results[run.name] = await runOne(run);

  const rows = [];
  for (const name of ['propagation-event', 'propagation-poll']) {
    const r = results[name];
    const tc = r.results.tiercache;
    const base = r.results.baselineRawPubSub;
    const label = `propagation (${r.params.observe})`;
    rows.push([label, 'invalidateTags() resolved on A → B misses', tc.fromResolveMs, `p95 < ${r.target.p95Ms} ms`, yes(r.target.met)]);
    rows.push([label, 'invalidateTags() called on A → B misses', tc.fromCallMs, '', '']);
    rows.push([label, 'baseline: bare PUBLISH resolved → bare subscriber', base.fromResolveMs, '', '']);
  }
  const cost = results['invalidate-user-cost'];
  for (const r of cost.results) {
    rows.push([`invalidateUser, ${r.size.toLocaleString('en-US')} entries`, 'await invalidateUser(user with 10 entries)', r.invalidateUserMs, '', '']);
    rows.push([`invalidateUser, ${r.size.toLocaleString('en-US')} entries`, 'baseline: bare INCR + PUBLISH', r.baselineIncrPublishMs, '', '']);
  }

  const lines = [];
  lines.push(`## Invalidation benchmarks, ${info.date.slice(0, 10)}`);
  lines.push('');
  lines.push(`Node ${info.node}; ${info.machine.cpu}, ${info.machine.cores} cores, ${info.machine.memoryGiB} GiB; ${info.machine.os}; redis-server ${info.machine.redis} on loopback. Medians (p50) and nearest-rank p95, ms.`);
  lines.push('');
  lines.push('| scenario | measure | n | p50 | p95 | max | target | met |');
  lines.push('|---|---|---|---|---|---|---|---|');
  for (const [scenario, measure, s, target, met] of rows) {
    lines.push(`| ${scenario} | ${measure} | ${s.n} | ${ms(s.p50)} | ${ms(s.p95)} | ${ms(s.max)} | ${target} | ${met} |`);
  }
  lines.push(`| invalidateUser | ratio ${cost.ratio.of} | | ${cost.ratio.p50}x | ${cost.ratio.p95}x | | p50 <= ${cost.target.maxRatio}x | ${yes(cost.target.met)} |`);
  lines.push('');
  const pe = results['propagation-event'];
  lines.push(
    `Propagation: B had already missed before A's promise resolved in ${pe.results.tiercache.missedBeforeResolve} of ${pe.results.tiercache.fromResolveMs.n} rounds (negative deltas); ` +
      `lost ${pe.results.tiercache.lost}; clock skew B-A ${pe.clock.before.skewMs} ms (±${pe.clock.before.uncertaintyMs}).`,
  );
  for (const name of ['propagation-event', 'propagation-poll']) {
    const tc = results[name].results.tiercache;
    lines.push(`Redis errors during ${name} (A/B): ${tc.redisErrors.a}/${tc.redisErrors.b}; rounds repeated after a rejected invalidateTags: ${tc.failedRounds}; sets stored again: ${tc.retriedSets}.`);
  }
  lines.push(`invalidateUser: Redis errors per size ${cost.results.map((r) => `${r.size}: ${r.checks.l2Errors}`).join(', ')}; calls repeated after rejecting: ${cost.results.map((r) => r.failedCalls).join(', ')}.`);
  lines.push(`Fill for 1M: ${cost.results.at(-1).fillS} s; checks ${cost.target.checksOk ? 'ok' : 'FAILED'} (L1 still full at the end, target misses, other users still L1 hits, bulk L2 entries valid, no evictions): ${cost.results.map((r) => `${r.size}: ${JSON.stringify(r.checks)}`).join('; ')}.`);
  const table = lines.join('\n');
  process.stdout.write(`\n${table}\n`);

  mkdirSync(RESULTS_DIR, { recursive: true });
  const day = info.date.slice(0, 10);
  let file = join(RESULTS_DIR, `invalidation-${day}.json`);
  for (let i = 2; existsSync(file); i++) file = join(RESULTS_DIR, `invalidation-${day}-${i}.json`);
  const elapsedS = Math.round((Date.now() - started) / 100) / 10;
  writeFileSync(file, JSON.stringify({ ...info, elapsedS, table, runs: results }, null, 2) + '\n');
  process.stdout.write(`\nwrote ${file} (${elapsedS} s)\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exitCode = 1;
});
