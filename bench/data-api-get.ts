// DESIGN.md section 6: "Data-API L1 get: >= 5 million ops/s". Each variant
// runs in its own child process: the baseline awaits a plain Map lookup, the
// candidate awaits cache.get() on an L1 hit (redis: false). Reports the
// median of 5 rounds of 2,000,000 sequential awaited gets.
//   node --import tsx bench/data-api-get.ts
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROUNDS = 5;
const N = 2_000_000;

async function worker(kind: string): Promise<void> {
  let get: () => unknown;
  if (kind === 'map') {
    const map = new Map([['tiercache:d:k', Object.freeze({ a: 1, b: 'x' })]]);
    get = () => Promise.resolve(map.get('tiercache:d:k'));
  } else {
    const { createCache } = await import('../src/index.js');
    const cache = createCache({ redis: false });
    await cache.set('k', { a: 1, b: 'x' });
    get = () => cache.get('k');
  }
  const rates: number[] = [];
  for (let r = 0; r < ROUNDS + 1; r++) {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await get();
    const rate = N / ((performance.now() - t0) / 1000);
    if (r > 0) rates.push(rate); // the first round warms up the JIT
  }
  rates.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ kind, median: rates[Math.floor(rates.length / 2)] }) + '\n');
}

if (process.argv[2] === '--worker') {
  await worker(process.argv[3]!);
} else {
  const self = fileURLToPath(import.meta.url);
  const run = (kind: string) => JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', self, '--worker', kind], { encoding: 'utf8' })) as { median: number };
  const map = run('map');
  const cache = run('tiercache');
  console.log(`date ${new Date().toISOString()}, node ${process.version}`);
  console.log(`baseline: await Map.get         ${(map.median / 1e6).toFixed(2)} M ops/s`);
  console.log(`tiercache: await cache.get (L1)  ${(cache.median / 1e6).toFixed(2)} M ops/s  (${(cache.median / map.median).toFixed(2)}x baseline; target 5 M ops/s)`);
}
