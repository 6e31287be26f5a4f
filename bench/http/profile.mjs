// Where one scenario's server spends its CPU under load: runs it with
// `node --cpu-prof` (pinned like run.mjs), drives wrk for a warm-up and a
// measured window, then summarizes only the samples taken in the measured
// window: self time by owner (tiercache src/, express and its deps, other
// packages, node core, V8/GC) and the top functions by self and total time.
//
//   node bench/http/profile.mjs [--scenario express-tiercache-app] [--warmup 3] [--seconds 10] [--connections 64] [--interval 250] [--top 30]
//   node bench/http/profile.mjs --scenario miss-express-tiercache-l1     (a miss scenario: every request a new URL)
//
// The .cpuprofile files and a JSON summary go to .bench-results/profiles/<scenario>-<time>/ (not committed).
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT, SCENARIOS, handlerRuns, killAll, machineInfo, startRedis, startServer, warmAndVerify, wrk } from './harness.mjs';

const EXPRESS_FAMILY = new Set([
  'express', 'router', 'finalhandler', 'parseurl', 'path-to-regexp', 'qs', 'on-finished', 'depd', 'debug', 'send', 'fresh', 'statuses',
  'content-type', 'type-is', 'accepts', 'mime-types', 'mime-db', 'encodeurl', 'escape-html', 'vary', 'proxy-addr', 'http-errors',
  'setprototypeof', 'cookie', 'cookie-signature', 'merge-descriptors', 'range-parser', 'content-disposition', 'serve-static', 'body-parser', 'once', 'wrappy', 'is-promise',
]);

function parseArgs(argv) {
  const o = { scenario: 'express-tiercache-app', warmup: 3, seconds: 10, connections: 64, interval: 250, top: 30 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[++i];
    if (a === '--scenario') o.scenario = v;
    else if (['--warmup', '--seconds', '--connections', '--interval', '--top'].includes(a)) o[a.slice(2)] = Number(v);
    else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

const srcUrl = pathToFileURL(join(REPO_ROOT, 'src')).href + '/';
const distUrl = pathToFileURL(join(REPO_ROOT, 'dist', 'esm')).href + '/';
const benchUrl = pathToFileURL(join(REPO_ROOT, 'bench')).href + '/';

/** Who owns a call frame: [group, detail]. */
function ownerOf(frame) {
  const url = frame.url;
  if (url.startsWith(srcUrl)) return ['tiercache', `src/${url.slice(srcUrl.length)}`];
  // The scenarios run the build (harness.mjs): named by its source file.
  if (url.startsWith(distUrl)) return ['tiercache', `src/${url.slice(distUrl.length).replace(/\.js$/, '.ts')}`];
  if (url.startsWith('file://') && url.includes('/node_modules/')) {
    const tail = url.slice(url.lastIndexOf('/node_modules/') + 14).split('/');
    const pkg = tail[0].startsWith('@') ? `${tail[0]}/${tail[1]}` : tail[0];
    if (EXPRESS_FAMILY.has(pkg)) return ['express', pkg];
    if (pkg === 'koa' || pkg.startsWith('koa-') || pkg.startsWith('@koa/')) return ['koa', pkg];
    if (pkg === 'tsx' || pkg === 'esbuild') return ['loader (tsx)', pkg];
    return ['other packages', pkg];
  }
  if (url.startsWith(benchUrl)) return ['bench scenario', url.slice(benchUrl.length)];
  if (url.startsWith('node:')) return ['node core', url.slice(5)];
  const fn = frame.functionName;
  if (fn === '(garbage collector)') return ['V8 GC', fn];
  if (fn === '(idle)') return ['idle', fn];
  if (fn === '(program)') return ['V8/native (program)', fn];
  if (fn === '(root)') return ['V8/native (program)', fn];
  return ['native builtins', fn || '(anonymous)'];
}

function fileLabel(frame) {
  const url = frame.url;
  if (url === '') return '(native)';
  if (url.startsWith('file://')) {
    const path = relative(REPO_ROOT, new URL(url).pathname);
    return `${path}:${frame.lineNumber + 1}`;
  }
  return `${url}:${frame.lineNumber + 1}`;
}

/** Self and total time per function, over samples taken within [fromUs, toUs] (profile clock). */
function summarize(profile, fromUs, toUs, top) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = (n) => `${n.callFrame.functionName}|${n.callFrame.url}|${n.callFrame.lineNumber}|${n.callFrame.columnNumber}`;
  const fns = new Map(); // key -> { frame, self, total }
  const groups = new Map(); // group -> samples
  const details = new Map(); // group|detail -> samples
  let t = profile.startTime;
  let counted = 0;
  let idle = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (t < fromUs || t > toUs) continue;
    const leaf = byId.get(profile.samples[i]);
    const [group, detail] = ownerOf(leaf.callFrame);
    if (group === 'idle') {
      idle++;
      continue;
    }
    counted++;
    groups.set(group, (groups.get(group) ?? 0) + 1);
    details.set(`${group}|${detail}`, (details.get(`${group}|${detail}`) ?? 0) + 1);
    const seen = new Set();
    for (let id = leaf.id, first = true; id !== undefined; id = parent.get(id), first = false) {
      const n = byId.get(id);
      const k = keyOf(n);
      let f = fns.get(k);
      if (f === undefined) fns.set(k, (f = { frame: n.callFrame, self: 0, total: 0 }));
      if (first) f.self++;
      if (!seen.has(k)) {
        seen.add(k);
        f.total++;
      }
    }
  }
  const pct = (x) => Math.round((1000 * x) / Math.max(1, counted)) / 10;
  const row = (f) => ({ function: f.frame.functionName || '(anonymous)', where: fileLabel(f.frame), owner: ownerOf(f.frame).join(': '), selfPct: pct(f.self), totalPct: pct(f.total) });
  const all = [...fns.values()].filter((f) => !['(root)', '(program)', '(idle)'].includes(f.frame.functionName) || f.self > 0);
  return {
    samples: counted,
    idleSamples: idle,
    byOwner: [...groups.entries()].sort((a, b) => b[1] - a[1]).map(([group, n]) => ({ owner: group, selfPct: pct(n) })),
    byPackageOrFile: [...details.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([k, n]) => ({ owner: k.replace('|', ': '), selfPct: pct(n) })),
    topSelf: [...all].sort((a, b) => b.self - a.self).slice(0, top).map(row),
    tiercacheTotal: all.filter((f) => f.frame.url.startsWith(srcUrl) || f.frame.url.startsWith(distUrl)).sort((a, b) => b.total - a.total).slice(0, 20).map(row),
  };
}

function markdown(s, meta) {
  const out = [];
  out.push(`### CPU profile: ${meta.scenario} under wrk, ${meta.date.slice(0, 10)}`);
  out.push('');
  out.push(`${meta.cpu}; Node ${meta.node}; ${meta.seconds} s measured window (after ${meta.warmup} s warm-up), sampling every ${meta.interval} µs: ${s.samples} busy samples, ${s.idleSamples} idle; ${meta.rps} req/s while profiled (profiler overhead included).`);
  out.push(`Command: \`${meta.command}\`. Code: commit ${meta.source.commit}${meta.source.srcChangesNotCommitted.length ? ` plus uncommitted src/ changes (${meta.source.srcChangesNotCommitted.join(', ')})` : ''}. Profile: ${meta.profile}`);
  out.push('');
  out.push('Self time by owner (% of busy samples):');
  out.push('');
  out.push('| owner | self % |');
  out.push('|---|---:|');
  for (const g of s.byOwner) out.push(`| ${g.owner} | ${g.selfPct} |`);
  out.push('');
  out.push('| package / file | self % |');
  out.push('|---|---:|');
  for (const g of s.byPackageOrFile) out.push(`| ${g.owner} | ${g.selfPct} |`);
  out.push('');
  out.push(`Top ${s.topSelf.length} functions by self time:`);
  out.push('');
  out.push('| function | where | owner | self % | total % |');
  out.push('|---|---|---|---:|---:|');
  for (const r of s.topSelf) out.push(`| ${r.function} | ${r.where} | ${r.owner} | ${r.selfPct} | ${r.totalPct} |`);
  out.push('');
  out.push('tiercache functions by total (inclusive) time:');
  out.push('');
  out.push('| function | where | self % | total % |');
  out.push('|---|---|---:|---:|');
  for (const r of s.tiercacheTotal) out.push(`| ${r.function} | ${r.where} | ${r.selfPct} | ${r.totalPct} |`);
  return out.join('\n');
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  // Miss scenarios (bench/http/scenarios/miss-*.ts) are driven with never-seen URLs, hit ones with one URL.
  const miss = o.scenario.startsWith('miss-');
  const scenario = miss ? { name: o.scenario, cached: false, redis: /-l2$|-redis$/.test(o.scenario) } : SCENARIOS.find((s) => s.name === o.scenario);
  if (scenario === undefined) throw new Error(`no scenario ${o.scenario}`);
  const info = machineInfo();
  const stamp = info.date.replace(/[:.]/g, '-');
  // One folder per run: node writes one profile per thread (tsx's loader runs in a worker).
  const dir = join(REPO_ROOT, '.bench-results', 'profiles', `${o.scenario}-${stamp}`);
  mkdirSync(dir, { recursive: true });
  const redis = scenario.redis ? await startRedis() : undefined;
  let r;
  let fromUs;
  let toUs;
  let serverPid;
  try {
    const server = await startServer(o.scenario, {
      env: redis ? { REDIS_URL: redis.url } : {},
      nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', String(o.interval)],
    });
    serverPid = server.pid;
    try {
      if (!miss) await warmAndVerify(server, scenario);
      await wrk(server.url, { seconds: o.warmup, connections: o.connections, distinct: miss ? 1 : undefined });
      const runsBefore = await handlerRuns(server);
      // V8's profile clock and process.hrtime are both CLOCK_MONOTONIC (checked below).
      fromUs = Number(process.hrtime.bigint() / 1000n);
      r = await wrk(server.url, { seconds: o.seconds, connections: o.connections, distinct: miss ? 2 : undefined });
      toUs = Number(process.hrtime.bigint() / 1000n);
      const ran = (await handlerRuns(server)) - runsBefore;
      if (scenario.cached && ran !== 0) throw new Error(`handler ran ${ran} times while profiled: not a pure hit path`);
    } finally {
      await server.stop(); // SIGTERM -> process.exit(0) -> the profile is written
    }
  } finally {
    await redis?.stop();
  }
  // Default names are CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread is 0.
  const name = readdirSync(dir).find((f) => f.includes(`.${serverPid}.0.`) && f.endsWith('.cpuprofile'));
  if (name === undefined) throw new Error(`no main-thread profile for pid ${serverPid} in ${dir}: ${readdirSync(dir).join(', ')}`);
  const file = join(dir, name);
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  if (!(profile.startTime < fromUs && toUs < profile.endTime)) {
    throw new Error(`measured window ${fromUs}-${toUs} is not inside the profile's ${profile.startTime}-${profile.endTime}: clocks differ`);
  }
  const summary = summarize(profile, fromUs, toUs, o.top);
  const command = `node bench/http/profile.mjs ${process.argv.slice(2).join(' ')}`.trim();
  const meta = { scenario: o.scenario, date: info.date, node: info.node, cpu: info.machine.cpu, seconds: o.seconds, warmup: o.warmup, interval: o.interval, rps: Math.round(r.rps), command, profile: relative(REPO_ROOT, file), source: info.source };
  writeFileSync(file.replace(/\.cpuprofile$/, '.summary.json'), `${JSON.stringify({ ...info, ...meta, ...summary }, null, 2)}\n`);
  process.stdout.write(`${markdown(summary, meta)}\n`);
}

process.once('SIGINT', () => {
  killAll('SIGTERM');
  process.exitCode = 130;
});
main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  killAll('SIGTERM');
  process.exitCode = 1;
});
