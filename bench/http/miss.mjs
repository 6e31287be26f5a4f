// Miss + store throughput (DESIGN.md section 6, "Misses"): every request asks
// for a URL never asked before (GET /api/catalog?miss=<n>, wrk-distinct.lua),
// on a cached route whose handler builds its JSON for that URL; the same app
// without a cache is measured in the same interleaved run, per framework.
// Scenarios are bench/http/scenarios/miss-<name>.ts (shared handler and cache
// setup: bench/http/miss-app.ts); harness.mjs pins, starts and stops them.
// Prints a markdown table and writes bench/results/miss-<date>.json.
//
//   node bench/http/miss.mjs [--rounds 3] [--warmup 2] [--duration 8] [--connections 64] [--quiet-wait 10] [--only a,b] [--no-write]
//
// Each round of a scenario: wait (up to --quiet-wait s) for both cpus to be
// idle; FLUSHALL when it uses Redis; fresh process; check a fresh URL (200,
// a body built for that URL, tiercache: `cache-status: tiercache; fwd=miss;
// stored`) and that asking it again is answered from the cache without the
// handler (so the scenario really stores what it serves); `warmup` s of wrk
// (discarded), `duration` s of wrk (measured), each window on URLs of its own;
// then the handler must have run at least once per answer (every answer a
// miss), Redis must have gained at least one key per answer (the L2 writes landed),
// and a fresh URL is checked again as before.
import { curl, distinctPath, handlerRuns, measureWindow, sleep, startServer, waitQuiet, wrk } from './harness.mjs';
import { runBenchmark } from './runner.mjs';
import { checkTargets, pairedRange, ratioOf, roundsCell } from './summary.mjs';

/**
 * The miss scenarios, in run order. `cache` names what is in front of the
 * handler (none for the framework's baseline, `<framework>-nocache`).
 */
const MISS_SCENARIOS = [
  { name: 'express-nocache', framework: 'express' },
  { name: 'express-tiercache-l1', framework: 'express', cache: 'tiercache' },
  { name: 'express-tiercache-l2', framework: 'express', cache: 'tiercache', redis: true },
  { name: 'express-apicache', framework: 'express', cache: 'apicache' },
  { name: 'express-route-cache', framework: 'express', cache: 'route-cache' },
  { name: 'express-route-cache-redis', framework: 'express', cache: 'route-cache', redis: true },
  { name: 'koa-nocache', framework: 'koa' },
  { name: 'koa-tiercache-l1', framework: 'koa', cache: 'tiercache' },
  { name: 'koa-tiercache-l2', framework: 'koa', cache: 'tiercache', redis: true },
  { name: 'koa-cash', framework: 'koa', cache: 'koa-cash' },
  // Not a product: a floor for what keeping a Koa miss costs (see the scenario file).
  { name: 'koa-minimal', framework: 'koa', cache: 'minimal' },
  // Not a product: koa-minimal plus what DESIGN.md section 3 asks of every stored answer (ETag, Date, Age,
  // Cache-Status, the storage rules on the response's headers): the floor the contract itself sets.
  { name: 'koa-floor', framework: 'koa', cache: 'floor' },
];
const baselineOf = (s) => `${s.framework}-nocache`;

/** DESIGN.md section 6 miss targets: candidate / baseline >= min. */
const TARGETS = [
  { candidate: 'express-tiercache-l1', baseline: 'express-nocache', min: 0.85, text: 'Miss + store, Express, L1 only >= 0.85x the same app without tiercache' },
  { candidate: 'express-tiercache-l2', baseline: 'express-nocache', min: 0.75, text: 'Miss + store, Express, L1 + L2 >= 0.75x the same app without tiercache' },
  { candidate: 'koa-tiercache-l1', baseline: 'koa-nocache', min: 0.85, text: 'Miss + store, Koa, L1 only >= 0.85x the same app without tiercache' },
  { candidate: 'koa-tiercache-l2', baseline: 'koa-nocache', min: 0.75, text: 'Miss + store, Koa, L1 + L2 >= 0.75x the same app without tiercache' },
];

const MISS_STORED = 'tiercache; fwd=miss; stored';
/** How long every scenario keeps an entry (tiercache's route table '1m', apicache '1 minute', route-cache 60 s). */
const ENTRY_LIFE_S = 60;

/** Window ids for wrk-distinct.lua and the runner's own check URLs: one per use, never reused in a run. */
let lastWindow = 0;
const newWindow = () => ++lastWindow;

/**
 * Asks for one fresh URL: it must be answered 200 by the handler with a body
 * built for that URL (tiercache: marked as a stored miss). Then the same URL
 * again must come from the cache, byte for byte, without the handler: a
 * scenario that skipped storing would measure less than miss + store. A few
 * tries for the repeat, as some stores land after the answer has gone out.
 */
async function checkFreshUrl(server, scenario) {
  const miss = distinctPath(newWindow(), 1);
  const value = miss.slice(miss.indexOf('=') + 1);
  const runs0 = await handlerRuns(server);
  const first = await curl(server.origin + miss);
  const ran = (await handlerRuns(server)) - runs0;
  const problems = [];
  if (first.status !== 200) problems.push(`status ${first.status}`);
  let doc;
  try {
    doc = JSON.parse(first.body.toString('utf8'));
  } catch {
    problems.push('body is not JSON');
  }
  if (doc !== undefined && doc.query?.miss !== value) problems.push(`body was not built for this URL (query ${JSON.stringify(doc.query)})`);
  if (ran !== 1) problems.push(`handler ran ${ran} times for one fresh URL`);
  if (scenario.cache === 'tiercache' && first.headers['cache-status'] !== MISS_STORED) problems.push(`cache-status ${JSON.stringify(first.headers['cache-status'])}, expected "${MISS_STORED}"`);
  if (problems.length > 0) throw new Error(`fresh URL ${miss}: ${problems.join('; ')}`);
  if (scenario.cache === undefined) return first.headers;
  for (let attempt = 1; ; attempt++) {
    const before = await handlerRuns(server);
    const again = await curl(server.origin + miss);
    const reran = (await handlerRuns(server)) - before;
    const hitMarked = scenario.cache !== 'tiercache' || (again.headers['cache-status'] ?? '').includes('; hit');
    if (again.status === 200 && reran === 0 && hitMarked && again.body.equals(first.body)) return first.headers;
    if (attempt >= 5) throw new Error(`asked again, ${miss} was not answered from the cache (handler ran ${reran} times, cache-status ${JSON.stringify(again.headers['cache-status'])}, body ${again.body.equals(first.body) ? 'same' : 'differs'})`);
    await sleep(200);
  }
}

async function measureOnce(scenario, opts, redis) {
  const before = await waitQuiet(opts.quietWait * 1000);
  const startedAt = new Date().toISOString();
  // Redis scenarios start from an empty Redis: no earlier round's entries, and DBSIZE counts this round's stores.
  if (scenario.redis) await redis.command('FLUSHALL');
  const server = await startServer(scenario.name, { file: `miss-${scenario.name}`, env: scenario.redis ? { REDIS_URL: redis.url } : {} });
  try {
    const freshHeaders = await checkFreshUrl(server, scenario);
    await wrk(server.url, { seconds: opts.warmup, connections: opts.connections, distinct: newWindow() });
    const keysBefore = scenario.redis ? Number(await redis.command('DBSIZE')) : undefined;
    const w = await measureWindow(server, server.url, { seconds: opts.duration, connections: opts.connections, distinct: newWindow() }, before, scenario.redis ? { redis: redis.pid } : {});
    if (w.handlerRunsWhileMeasured < w.requests) w.problems.push(`handler ran ${w.handlerRunsWhileMeasured} times for ${w.requests} answers: not every answer was a miss`);
    let redisKeysAdded;
    if (scenario.redis) {
      await sleep(300); // stores sent after the last answers
      redisKeysAdded = Number(await redis.command('DBSIZE')) - keysBefore;
      // Entries live 60 s: in longer rounds the first ones have expired by now.
      if (redisKeysAdded < w.requests && opts.warmup + opts.duration < ENTRY_LIFE_S) w.problems.push(`Redis gained ${redisKeysAdded} keys over ${w.requests} answers stored: L2 writes were skipped or lost`);
    }
    // Still storing after the load (not, say, past some limit or with Redis given up on).
    await checkFreshUrl(server, scenario);
    return { startedAt, ...w, redisKeysAdded, freshUrlHeaders: scenario.cache === 'tiercache' ? { 'cache-status': freshHeaders['cache-status'] } : undefined };
  } finally {
    await server.stop();
  }
}

runBenchmark({
  kind: 'miss',
  title: 'HTTP miss + store',
  script: 'bench/http/miss.mjs',
  defaults: { rounds: 3, warmup: 2, duration: 8 },
  scenarios: MISS_SCENARIOS,
  measure: measureOnce,
  report: (run, opts, med) => {
    const rows = run.scenarios.map((s) => {
      const own = s.name === baselineOf(s);
      return { scenario: s.name, baseline: baselineOf(s), ...med[s.name], vsBaseline: own ? undefined : ratioOf(med, s.name, baselineOf(s)), vsBaselinePerRound: own ? undefined : pairedRange(run.rounds, s.name, baselineOf(s)) };
    });
    const cell = (v) => v ?? '';
    const table = [
      '| scenario | median req/s | rounds req/s | vs no cache (medians) | per-round range | server CPU µs/req | of which kernel | redis CPU µs/req | p99 ms | bytes/resp | server cpu % | cpu0 (wrk, redis) busy % |',
      '|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|',
      ...rows.map((r) => {
        const range = r.vsBaselinePerRound?.map((v) => v.toFixed(2)).join('-');
        return `| ${r.scenario} | ${r.medianRps} | ${roundsCell(r)} | ${r.vsBaseline === undefined ? '' : `${r.vsBaseline.toFixed(2)}x`} | ${range === undefined ? '' : `${range}x`} | ${cell(r.medianCpuUsPerRequest)} | ${cell(r.medianKernelUsPerRequest)} | ${cell(r.medianOtherCpuUsPerRequest?.redis)} | ${cell(r.medianP99Ms)} | ${cell(r.bytesPerResponse)} | ${cell(r.medianServerCpuPercent)} | ${cell(r.medianLoadCoreBusyPercent)} |`;
      }),
    ];
    const how = [
      `Server pinned to cpu 1, wrk (1 thread, ${opts.connections} connections, every request a never-seen /api/catalog?miss=<n>) and redis-server on cpu 0, loopback.`,
      'Every handler builds a ~1.5 KB JSON document for its URL; ratios are against the same framework without a cache (per-round range: round r of both).',
    ];
    return { how, table, rows, targets: checkTargets(TARGETS, med, run.rounds), extra: {} };
  },
});
