// DESIGN.md section 6: "L1 never holds more than maxBytes of entries; RSS
// growth stays under 64 MiB over a 100,000-distinct-key scan with maxBytes
// 32 MiB". Scans 100,000 distinct URLs through the Express middleware (L1
// only); the requests come from a separate process, so the server's RSS is
// the cache's and the app's alone. Reports L1 bytes and RSS growth after a full GC.
//   node --expose-gc --import tsx bench/l1-memory.ts [--keys 100000]
//   BENCH_NO_CACHE=1 ...   the same scan with the cache switched off (the baseline)
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createCache } from '../src/index.js';
import { expressCache } from '../src/express.js';

const keys = Number(process.argv[process.argv.indexOf('--keys') + 1] || 100_000) || 100_000;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');
const MiB = 1024 * 1024;
const body = JSON.stringify({ items: Array.from({ length: 30 }, (_, i) => ({ id: i, name: `item-${i}`, tags: ['a', 'b'] })) }).slice(0, 1536);

const cache = createCache({ redis: false, enabled: process.env.BENCH_NO_CACHE !== '1', l1: { maxBytes: 32 * MiB, maxEntries: 100_000 } });
const app = express();
app.use(expressCache(cache, { ttl: '1h' }));
app.get('/scan', (_req, res) => {
  res.type('application/json').send(body);
});
const server: Server = createServer(app);
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

/** Sends `count` requests for distinct URLs `/scan?<label>=<i>` from a child process, 32 at a time. */
function scan(label: string, count: number): Promise<void> {
  const client = `
    let next = 0;
    const one = async () => { while (next < ${count}) { const i = next++; await fetch('${base}/scan?${label}=' + i).then((r) => r.arrayBuffer()); } };
    Promise.all(Array.from({ length: 32 }, one)).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', client], { stdio: 'inherit' });
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`client exited with ${code}`))));
  });
}

// Warm up the process (JIT, Express, sockets) before the baseline.
await scan('warm', 5_000);
await cache.clear();
gc();
const mem0 = process.memoryUsage();
const before = mem0.rss;
let maxL1 = 0;
const sampler = setInterval(() => (maxL1 = Math.max(maxL1, cache.stats().l1.bytes)), 10);
await scan('k', keys);
clearInterval(sampler);
gc();
const mem1 = process.memoryUsage();
const after = mem1.rss;
console.log('heapUsed MiB', ((mem1.heapUsed - mem0.heapUsed) / MiB).toFixed(1), 'external MiB', ((mem1.external - mem0.external) / MiB).toFixed(1), 'arrayBuffers MiB', ((mem1.arrayBuffers - mem0.arrayBuffers) / MiB).toFixed(1));
const stats = cache.stats();
server.close();
await cache.close();
const result = {
  date: new Date().toISOString(),
  node: process.version,
  keys,
  maxBytesMiB: 32,
  l1BytesMiB: +(stats.l1.bytes / MiB).toFixed(1),
  l1MaxSeenMiB: +(Math.max(maxL1, stats.l1.bytes) / MiB).toFixed(1),
  l1Entries: stats.l1.entries,
  evictions: stats.l1.evictions,
  rssGrowthMiB: +((after - before) / MiB).toFixed(1),
};
console.log(JSON.stringify(result));
console.log(`L1 ${result.l1BytesMiB} MiB (max seen ${result.l1MaxSeenMiB}) in ${result.l1Entries} entries, ${result.evictions} evictions; RSS growth ${result.rssGrowthMiB} MiB (target < 64 MiB)`);
process.exit(0);
