// The cost of encoding a fill's STORE step (EVALSHA with the entry's bytes
// and its counters) as ioredis does it (Command#toWritable) and as
// src/store/command-bytes.ts does for the clients tiercache opens. CPU only,
// no Redis, both in one process and interleaved round by round, so load
// from other work falls on both alike. Prints µs per command, median and
// every round.
//   node --import tsx bench/command-bytes.ts [--rounds 9] [--n 200000]
import { Command } from 'ioredis';
import { packedWritable } from '../src/store/command-bytes.js';
import { BODY } from './http/body.mjs';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]) || fallback;
}
const ROUNDS = arg('rounds', 9);
const N = arg('n', 200_000);

// What storeArgs sends for an entry of bench/http's route: the lock, the entry, three counters.
const entry = Buffer.concat([Buffer.alloc(160, 1), Buffer.from(BODY)]);
const command = (i: number) =>
  new Command('evalsha', ['9f0c3a4b1d2e5f60718293a4b5c6d7e8f9011223', 5, `tiercache:bench:lock:{/api/catalog?miss=${i}}`, `tiercache:bench:e:{/api/catalog?miss=${i}}`, 'tiercache:bench:epoch', 'tiercache:bench:t:path:/api', `tiercache:bench:t:key:{/api/catalog?miss=${i}}`, `tok${i}`, '1', entry, '60000', '17', '120000', '4', '120000', '1', '120000']);

const ways: Record<string, (c: Command) => unknown> = {
  ioredis: (c) => c.toWritable({}),
  packed: (c) => packedWritable.call(c as never),
};
const commands = Array.from({ length: 1024 }, (_, i) => command(i));
const us: Record<string, number[]> = { ioredis: [], packed: [] };
let sink = 0;
for (let r = -1; r < ROUNDS; r++) {
  for (const [name, way] of Object.entries(ways)) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink += (way(commands[i & 1023]!) as Buffer).length;
    if (r >= 0) us[name]!.push(Number(process.hrtime.bigint() - start) / 1000 / N);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
for (const [name, xs] of Object.entries(us)) console.log(`${name.padEnd(8)} ${median(xs).toFixed(2)} µs/command   rounds ${xs.map((x) => x.toFixed(2)).join(' ')}`);
if (sink === 0) console.log('');
