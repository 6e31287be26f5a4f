// DESIGN.md section 6: "Data-API L1 get: >= 0.8x awaiting a plain Map lookup
// in the same process". Each variant runs in its own child process: the
// baseline awaits a plain Map lookup, the candidate awaits cache.get() on an
// L1 hit (redis: false), and `parse` awaits a Map lookup plus JSON.parse of
// the stored text: the least a cache that holds bytes and parses on read
// would cost. Rounds are interleaved (map, tiercache, parse, map, ...) so a
// busy machine slows all variants alike; each round's ratio pairs it with the
// map run of the same round. Reports median and range over rounds, of rates
// by wall-clock time and by the worker's CPU time (which other processes on a
// shared machine do not inflate).
//   node --import tsx bench/data-api-get.ts [--rounds 7] [--n 1000000]
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]) || fallback;
}

const ROUNDS = arg('rounds', 7);
const N = arg('n', 1_000_000);
/** Inner repetitions per worker: the first warms up the JIT, the median of the rest counts. */
const REPEATS = 4;
const VALUE = { a: 1, b: 'x' };

async function worker(kind: string): Promise<void> {
  let get: () => unknown;
  if (kind === 'map') {
    const map = new Map([['tiercache:d:k', Object.freeze({ ...VALUE })]]);
    get = () => Promise.resolve(map.get('tiercache:d:k'));
  } else if (kind === 'parse') {
    const map = new Map([['tiercache:d:k', JSON.stringify(VALUE)]]);
    get = () => Promise.resolve(JSON.parse(map.get('tiercache:d:k')!));
  } else {
    const { createCache } = await import('../src/index.js');
    const cache = createCache({ redis: false });
    await cache.set('k', VALUE);
    get = () => cache.get('k');
  }
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < REPEATS + 1; r++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    for (let i = 0; i < N; i++) await get();
    const c = process.cpuUsage(c0);
    if (r === 0) continue; // warms up the JIT
    wall.push(N / ((performance.now() - t0) / 1000));
    cpu.push(N / ((c.user + c.system) / 1e6));
  }
  process.stdout.write(JSON.stringify({ kind, wall: median(wall), cpu: median(cpu) }) + '\n');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function summary(xs: number[], digits: number): string {
  return `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)})`;
}

if (process.argv[2] === '--worker') {
  await worker(process.argv[3]!);
} else {
  const self = fileURLToPath(import.meta.url);
  type Rates = { wall: number; cpu: number };
  const run = (kind: string) => JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', self, '--worker', kind, '--n', String(N)], { encoding: 'utf8' })) as Rates;
  const kinds = ['map', 'tiercache', 'parse'] as const;
  const rounds: Array<Record<(typeof kinds)[number], Rates>> = [];
  for (let round = 0; round < ROUNDS; round++) {
    const r = { map: run('map'), tiercache: run('tiercache'), parse: run('parse') };
    rounds.push(r);
    console.log(`round ${round + 1} (M ops/s, wall / cpu): ${kinds.map((k) => `${k} ${(r[k].wall / 1e6).toFixed(2)} / ${(r[k].cpu / 1e6).toFixed(2)}`).join(', ')}`);
  }
  console.log(`date ${new Date().toISOString()}, node ${process.version}, ${ROUNDS} interleaved rounds of ${N.toLocaleString('en')} sequential awaited gets; median (range)`);
  for (const clock of ['wall', 'cpu'] as const) {
    const rate = (k: (typeof kinds)[number]) => rounds.map((r) => r[k][clock] / 1e6);
    const ratio = (k: (typeof kinds)[number]) => rounds.map((r) => r[k][clock] / r.map[clock]);
    console.log(`by ${clock} time:`);
    console.log(`  baseline: await Map.get               ${summary(rate('map'), 2)} M ops/s`);
    console.log(`  tiercache: await cache.get (L1 hit)    ${summary(rate('tiercache'), 2)} M ops/s, ${summary(ratio('tiercache'), 2)}x baseline (target >= 0.8x)`);
    console.log(`  parse on read: Map.get + JSON.parse    ${summary(rate('parse'), 2)} M ops/s, ${summary(ratio('parse'), 2)}x baseline`);
  }
}
