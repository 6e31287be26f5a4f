// DESIGN.md section 6: "Data-API L1 get: >= 0.8x awaiting a plain Map lookup
// in the same process". Each variant runs in its own child process: the
// baseline awaits a plain Map lookup, the candidate awaits cache.get() on an
// L1 hit (redis: false), and `parse` awaits a Map lookup plus JSON.parse of
// the stored text: the least a cache that holds bytes and parses on read
// would cost. Rounds are interleaved (map, tiercache, parse, map, ...) so a
// busy machine slows all variants alike; each round's ratio pairs it with the
// map run of the same round. Reports median and range over rounds.
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
  const rates: number[] = [];
  for (let r = 0; r < REPEATS + 1; r++) {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await get();
    if (r > 0) rates.push(N / ((performance.now() - t0) / 1000));
  }
  rates.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ kind, rate: rates[Math.floor(rates.length / 2)] }) + '\n');
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
  const run = (kind: string) => (JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', self, '--worker', kind, '--n', String(N)], { encoding: 'utf8' })) as { rate: number }).rate;
  const rates: Record<string, number[]> = { map: [], tiercache: [], parse: [] };
  const ratios: Record<string, number[]> = { tiercache: [], parse: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const kind of Object.keys(rates)) rates[kind]!.push(run(kind));
    for (const kind of Object.keys(ratios)) ratios[kind]!.push(rates[kind]![round]! / rates.map![round]!);
    console.log(`round ${round + 1}: map ${(rates.map![round]! / 1e6).toFixed(2)}, tiercache ${(rates.tiercache![round]! / 1e6).toFixed(2)}, parse ${(rates.parse![round]! / 1e6).toFixed(2)} M ops/s`);
  }
  const mops = (xs: number[]) => xs.map((x) => x / 1e6);
  console.log(`date ${new Date().toISOString()}, node ${process.version}, ${ROUNDS} interleaved rounds of ${N.toLocaleString('en')} sequential awaited gets; median (range)`);
  console.log(`baseline: await Map.get               ${summary(mops(rates.map!), 2)} M ops/s`);
  console.log(`tiercache: await cache.get (L1 hit)    ${summary(mops(rates.tiercache!), 2)} M ops/s, ${summary(ratios.tiercache!, 2)}x baseline (target >= 0.8x)`);
  console.log(`parse on read: Map.get + JSON.parse    ${summary(mops(rates.parse!), 2)} M ops/s, ${summary(ratios.parse!, 2)}x baseline`);
}
