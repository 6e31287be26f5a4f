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
import {
  SCENARIOS,
  checkAnswer,
  measureWindow,
  startServer,
  waitQuiet,
  warmAndVerify,
  wrk,
} from './harness.mjs';
import { runBenchmark } from './runner.mjs';
import { checkTargets, ratioOf, roundsCell } from './summary.mjs';
import { BODY_BYTES } from './body.mjs';

/** DESIGN.md section 6 targets that this run can check: candidate / baseline >= min. */
const TARGETS = [
  { candidate: 'express-tiercache-app', baseline: 'express-bare', min: 1.0, text: 'Express L1 hit, app-level >= 1.0x the bare route' },
  { candidate: 'express-tiercache-app', baseline: 'express-apicache', min: 1.05, text: 'Express L1 hit, app-level >= 1.05x apicache (memory)' },
  { candidate: 'express-tiercache-route', baseline: 'express-bare', min: 1.0, text: 'Express L1 hit, per-route >= 1.0x the bare route' },
  { candidate: 'express-tiercache-route', baseline: 'express-apicache', min: 1.05, text: 'Express L1 hit, per-route >= 1.05x apicache (memory)' },
  { candidate: 'express-tiercache-front', baseline: 'node-raw', min: 0.8, text: 'Front door, Express L1 hit >= 0.8x raw node:http' },
  { candidate: 'koa-tiercache-app', baseline: 'koa-cash', min: 1.05, text: 'Koa L1 hit, app-level >= 1.05x koa-cash (lru-cache)' },
  { candidate: 'express-tiercache-l2', baseline: 'express-redis-bare', min: 0.95, text: 'L2 hit (L1 off) >= 0.95x a bare route doing one ioredis GET' },
  { candidate: 'express-tiercache-l2', baseline: 'express-route-cache-redis', min: 1.3, text: 'L2 hit (L1 off) >= 1.3x route-cache with ioredis' },
];

/** Extra ratios shown per row, besides "vs express-bare". */
const COMPARE = {
  'express-tiercache-app': ['express-apicache', 'node-raw'],
  'express-tiercache-route': ['express-apicache'],
  'express-tiercache-front': ['node-raw'],
  'koa-tiercache-app': ['koa-bare', 'koa-cash'],
  'koa-cash': ['koa-bare'],
  'express-tiercache-l2': ['express-redis-bare', 'express-route-cache-redis'],
  'express-route-cache-redis': ['express-redis-bare'],
};

async function measureOnce(scenario, opts, redis) {
  const before = await waitQuiet(opts.quietWait * 1000);
  const startedAt = new Date().toISOString();
  const server = await startServer(scenario.name, { env: redis === undefined ? {} : { REDIS_URL: redis.url } });
  try {
    const hitHeaders = await warmAndVerify(server, scenario);
    await wrk(server.url, { seconds: opts.warmup, connections: opts.connections });
    const w = await measureWindow(server, server.url, { seconds: opts.duration, connections: opts.connections }, before);
    await checkAnswer(server, scenario);
    if (scenario.cached && w.handlerRunsWhileMeasured !== 0) w.problems.push(`handler ran ${w.handlerRunsWhileMeasured} times while measured (not all hits)`);
    return { startedAt, ...w, hitHeaders: scenario.hit === undefined ? undefined : { [scenario.hit[0]]: hitHeaders[scenario.hit[0]] } };
  } finally {
    await server.stop();
  }
}

runBenchmark({
  kind: 'http',
  title: 'HTTP hit paths',
  script: 'bench/http/run.mjs',
  defaults: { rounds: 3, warmup: 2, duration: 10 },
  scenarios: SCENARIOS,
  measure: measureOnce,
  report: (run, opts, med) => {
    const rows = run.scenarios.map((s) => {
      const others = (COMPARE[s.name] ?? []).filter((b) => ratioOf(med, s.name, b) !== undefined).map((b) => `${ratioOf(med, s.name, b).toFixed(2)}x ${b}`);
      return { scenario: s.name, ...med[s.name], vsExpressBare: ratioOf(med, s.name, 'express-bare'), vsOther: others };
    });
    const table = [
      '| scenario | median req/s | rounds req/s | vs express-bare | other ratios | p99 ms | bytes/resp | server cpu % | server CPU µs/req | cpu0 (wrk) busy % |',
      '|---|---:|---|---:|---|---:|---:|---:|---:|---:|',
      ...rows.map((r) => `| ${r.scenario} | ${r.medianRps} | ${roundsCell(r)} | ${r.vsExpressBare === undefined ? '' : r.vsExpressBare.toFixed(2) + 'x'} | ${r.vsOther.join('; ')} | ${r.medianP99Ms} | ${r.bytesPerResponse} | ${r.medianServerCpuPercent} | ${r.medianCpuUsPerRequest} | ${r.medianLoadCoreBusyPercent} |`),
    ];
    const how = [`Server pinned to cpu 1, wrk (1 thread, ${opts.connections} connections) and redis-server on cpu 0, loopback. ${BODY_BYTES}-byte JSON body.`];
    return { how, table, rows, targets: checkTargets(TARGETS, med, run.rounds), extra: { bodyBytes: BODY_BYTES } };
  },
});
