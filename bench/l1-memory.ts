// What L1 and its bookkeeping really hold, against maxBytes. Three scenarios,
// each round of each in a fresh process (node --expose-gc):
//   http    DESIGN.md section 6: "RSS growth stays under 64 MiB over a
//           100,000-distinct-key scan with maxBytes 32 MiB". Scans distinct URLs
//           through the Express middleware (L1 only); the requests come from a
//           separate process, so the server's RSS is the cache's and the app's
//           alone. Reports RSS growth from before the scan to after it and one
//           full GC (both after a full GC), the peak RSS growth sampled every
//           10 ms during the scan (no GC forced), and the live heap and buffers.
//           Also the same growth with both ends read once the GC has released
//           what it freed ("settled"): V8 unmaps freed pages from a background
//           thread, so RSS read right after gc() still counts tens of MiB about
//           to go, at either end (BENCH_SETTLE=1 shows RSS over 3 s after the GC).
//   values  Data-API values of three shapes (records, arrays of small numbers,
//           `[{}, {}, ...]`) set until L1 (maxBytes 8 MiB) has evicted several
//           times over: heap held (heapUsed + arrayBuffers after a full GC,
//           against an empty cache) / maxBytes. Target: at most 1.5.
//   keys    10 KB data keys, maxBytes 1 MiB: heap held after get() of 20,000
//           absent keys and after set() of 50,000 keys.
//   node --expose-gc --import tsx bench/l1-memory.ts [--rounds 3] [--only http,values,keys] [--keys 100000]
//   BENCH_NO_CACHE=1 ...   the http scan with the cache switched off (the baseline)
//   --baseline             each http round also runs the app with the cache off, beside it (see below)
//   BENCH_MAXBYTES_MIB=n ... the http scan with L1's maxBytes n MiB instead of 32
//   BENCH_FLOOR=1 ...      the http scan through a minimal hand-written cache instead of tiercache
//                          (URL -> body bytes in lru-cache bounded to 32 MiB; no head, no tags):
//                          what any in-process cache that keeps 32 MiB of answers grows by;
//                          BENCH_FLOOR_MAX=n bounds it to n entries instead (n = the entries
//                          tiercache keeps, whose bound counts heads and bookkeeping too);
//                          BENCH_FLOOR_PAD=b: each floor entry also keeps ~b bytes of heap
//   BENCH_SPACES=1 ...     also prints each V8 heap space's growth, committed against live
//   BENCH_MAPS=1 ...       also prints where RSS grew by kind of mapping (malloc's main heap and
//                          thread arenas, other anonymous memory: V8's pages, large buffers)
//   BENCH_SAMPLING=f ...   writes an allocation sampling profile of the scan (objects a major GC
//                          collected included: what got promoted and then died) to f, a .heapprofile
//   BENCH_SNAPSHOT=f ...   writes a heap snapshot of the http worker after the scan
import { execFileSync, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { NextFunction, Request, Response } from 'express';
import { LRUCache } from 'lru-cache';
import { createCache } from '../src/index.js';

const MiB = 1024 * 1024;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}

/** heapUsed + arrayBuffers, after a full GC (twice: the second waits for the first's sweeping of buffers). */
function held(): number {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const mib = (bytes: number) => +(bytes / MiB).toFixed(1);

/** RSS once what the last GC freed has been released: V8 unmaps freed pages from a background thread within a few ms (see BENCH_SETTLE). */
async function settledRss(): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 250));
  return process.memoryUsage.rss();
}

/**
 * Resident bytes by kind of mapping, from /proc/self/smaps (Linux): '[heap]' is
 * malloc's main arena; anonymous mappings starting on a 64 MiB boundary are
 * malloc's thread arenas (glibc aligns them so); other anonymous ones are
 * mostly V8's heap pages and large mmap'd allocations.
 */
async function rssByKind(): Promise<Record<string, number>> {
  const { readFileSync } = await import('node:fs');
  const out: Record<string, number> = {};
  let kind = '';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head !== null) {
      const name = head[2]!;
      const start = BigInt('0x' + head[1]!);
      kind = name === '[heap]' ? 'malloc main' : name !== '' ? 'files and other' : start % (64n << 20n) === 0n ? 'malloc arenas' : 'other anonymous';
    } else if (line.startsWith('Rss:')) out[kind] = (out[kind] ?? 0) + Number(line.split(/\s+/)[1]) * 1024;
  }
  return out;
}

/** Starts V8's sampling heap profiler, keeping objects GCs collected; returns the stop function. */
async function startSampling(): Promise<() => Promise<unknown>> {
  const { Session } = await import('node:inspector');
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) => session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))));
  await post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false });
  return async () => {
    const { profile } = (await post('HeapProfiler.stopSampling')) as { profile: unknown };
    session.disconnect();
    return profile;
  };
}

async function httpScan(): Promise<object> {
  const keys = Number(option('keys') ?? 100_000);
  const { default: express } = await import('express');
  const { expressCache } = await import('../src/express.js');
  const body = JSON.stringify({ items: Array.from({ length: 30 }, (_, i) => ({ id: i, name: `item-${i}`, tags: ['a', 'b'] })) }).slice(0, 1536);
  const cache = createCache({ redis: false, enabled: process.env.BENCH_NO_CACHE !== '1', l1: { maxBytes: Number(process.env.BENCH_MAXBYTES_MIB ?? 32) * MiB, maxEntries: 100_000 } });
  const app = express();
  const floor = process.env.BENCH_FLOOR === '1' ? floorCache() : undefined;
  app.use(floor?.middleware ?? expressCache(cache, { ttl: '1h' }));
  app.get('/scan', (_req, res) => {
    res.type('application/json').send(body);
  });
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  /** Sends `count` requests for distinct URLs `/scan?<label>=<i>` from a child process, 32 at a time. */
  const scan = (label: string, count: number) =>
    new Promise<void>((resolve, reject) => {
      const client = `
        let next = 0;
        const one = async () => { while (next < ${count}) { const i = next++; await fetch('${base}/scan?${label}=' + i).then((r) => r.arrayBuffer()); } };
        Promise.all(Array.from({ length: 32 }, one)).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });`;
      const child = spawn(process.execPath, ['-e', client], { stdio: 'inherit' });
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`client exited with ${code}`))));
    });

  // Warm up the process (JIT, Express, sockets) before the baseline.
  await scan('warm', 5_000);
  await cache.clear();
  floor?.lru.clear();
  gc!();
  const { getHeapSpaceStatistics, writeHeapSnapshot } = await import('node:v8');
  const spaces0 = getHeapSpaceStatistics();
  const maps0 = process.env.BENCH_MAPS === '1' ? await rssByKind() : undefined;
  const mem0 = process.memoryUsage();
  const settled0 = await settledRss();
  let peakRss = mem0.rss;
  // V8's heap and the buffers at their highest during the scan: the RSS peak is mostly these two.
  let peakHeapTotal = mem0.heapTotal;
  let peakArrayBuffers = mem0.arrayBuffers;
  let maxL1 = 0;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeapTotal = Math.max(peakHeapTotal, m.heapTotal);
    peakArrayBuffers = Math.max(peakArrayBuffers, m.arrayBuffers);
    maxL1 = Math.max(maxL1, cache.stats().l1.bytes);
  }, 10);
  const sampling = process.env.BENCH_SAMPLING === undefined ? undefined : await startSampling();
  // A snapshot in the middle of the scan: what requests leave alive for longer than they last.
  const midSnapshot = process.env.BENCH_MID_SNAPSHOT === undefined ? undefined : setTimeout(() => writeHeapSnapshot(process.env.BENCH_MID_SNAPSHOT), 5000);
  await scan('k', keys);
  clearTimeout(midSnapshot);
  clearInterval(sampler);
  if (sampling !== undefined) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(process.env.BENCH_SAMPLING!, JSON.stringify(await sampling()));
  }
  gc!();
  const mem1 = process.memoryUsage();
  const settled1 = process.env.BENCH_SETTLE === '1' ? 0 : await settledRss();
  if (process.env.BENCH_SETTLE === '1') {
    const seen: string[] = [];
    const t0 = Date.now();
    for (const wait of [0, 10, 50, 200, 1000, 3000]) {
      while (Date.now() - t0 < wait) await new Promise((r) => setTimeout(r, 1));
      seen.push(`${wait} ms: +${mib(process.memoryUsage.rss() - mem0.rss)}`);
    }
    console.error('RSS growth after the final GC, by time waited: ' + seen.join(', '));
  }
  // Where RSS goes beyond the live heap: each V8 space's committed size against what is live in it.
  if (maps0 !== undefined) {
    const maps1 = await rssByKind();
    const total = (m: Record<string, number>) => Object.values(m).reduce((a, b) => a + b, 0);
    console.error(`RSS growth by mapping (total +${mib(total(maps1) - total(maps0))} MiB): ` + Object.keys(maps1).map((k) => `${k} +${mib(maps1[k]! - (maps0[k] ?? 0))} MiB`).join(', '));
  }
  if (process.env.BENCH_SPACES === '1') {
    const spaces1 = getHeapSpaceStatistics();
    for (const [i, s1] of spaces1.entries()) {
      const s0 = spaces0[i]!;
      if (s1.space_size !== s0.space_size) console.error(`${s1.space_name}: committed +${mib(s1.space_size - s0.space_size)} MiB, live +${mib(s1.space_used_size - s0.space_used_size)} MiB`);
    }
  }
  if (process.env.BENCH_SNAPSHOT) writeHeapSnapshot(process.env.BENCH_SNAPSHOT);
  const stats = cache.stats();
  // Every URL of the scan was stored once: what is not there was evicted.
  if (floor !== undefined) stats.l1 = { ...stats.l1, bytes: floor.lru.calculatedSize || floor.lru.size * body.length, entries: floor.lru.size, evictions: keys - floor.lru.size };
  server.close();
  await cache.close();
  return {
    keys,
    l1MiB: mib(stats.l1.bytes),
    l1MaxSeenMiB: mib(Math.max(maxL1, stats.l1.bytes)),
    l1Entries: stats.l1.entries,
    evictions: stats.l1.evictions,
    tagVersionsMiB: mib(cache.store.versions.localBytes),
    heapUsedGrowthMiB: mib(mem1.heapUsed - mem0.heapUsed),
    heapTotalGrowthMiB: mib(mem1.heapTotal - mem0.heapTotal),
    externalGrowthMiB: mib(mem1.external - mem0.external),
    arrayBuffersGrowthMiB: mib(mem1.arrayBuffers - mem0.arrayBuffers),
    rssGrowthMiB: mib(mem1.rss - mem0.rss),
    peakRssGrowthMiB: mib(Math.max(peakRss, mem1.rss) - mem0.rss),
    peakHeapTotalGrowthMiB: mib(peakHeapTotal - mem0.heapTotal),
    peakArrayBuffersGrowthMiB: mib(peakArrayBuffers - mem0.arrayBuffers),
    settledRssGrowthMiB: mib(settled1 - settled0),
  };
}

/**
 * BENCH_FLOOR: the least an in-process cache that keeps what it stores does, for
 * comparison: the URL as key, the body's bytes (a copy of their own, as a cache
 * that keeps no pool slab alive must make) in an LRU bounded by bytes.
 */
function floorCache() {
  const max = Number(process.env.BENCH_FLOOR_MAX ?? 0);
  // BENCH_FLOOR_PAD=n: each entry also keeps ~n bytes of heap (an array of small integers), to see what per-entry heap costs in RSS.
  const pad = Number(process.env.BENCH_FLOOR_PAD ?? 0);
  const pads = new Map<string, number[]>();
  const dispose = pad > 0 ? (_v: Buffer, key: string) => void pads.delete(key) : undefined;
  const lru = new LRUCache<string, Buffer>(max > 0 ? { max, dispose } : { maxSize: 32 * MiB, sizeCalculation: (b) => b.length, dispose });
  const middleware = (req: Request, res: Response, next: NextFunction) => {
    const hit = lru.get(req.originalUrl);
    if (hit !== undefined) {
      res.type('application/json').end(hit);
      return;
    }
    const send = res.send;
    res.send = function (this: Response, body: unknown) {
      if (res.statusCode === 200 && typeof body === 'string') {
        const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(body));
        bytes.write(body);
        lru.set(req.originalUrl, bytes);
        if (pad > 0) pads.set(req.originalUrl, Array.from({ length: Math.max(1, Math.round((pad - 48) / 8)) }, (_, i) => i));
      }
      return send.call(this, body);
    };
    next();
  };
  return { lru, middleware };
}

/** ~6-9 KB of JSON each; the three shapes. */
const SHAPES: Record<string, (i: number) => unknown> = {
  records: (i) =>
    Array.from({ length: 40 }, (_, j) => ({
      id: i * 40 + j,
      name: `User ${i}-${j}`,
      email: `user${i}.${j}@example.com`,
      active: j % 3 !== 0,
      score: j * 1.5,
      roles: ['reader', 'writer'],
      address: { city: 'Paris', zip: `750${j % 20}` },
    })),
  smallNumbers: (i) => Array.from({ length: 4000 }, (_, j) => (i + j) % 10),
  emptyObjects: () => Array.from({ length: 3000 }, () => ({})),
};

async function valueShape(shape: string): Promise<object> {
  const make = SHAPES[shape]!;
  const maxBytes = 8 * MiB;
  const cache = createCache({ redis: false, l1: { maxBytes, maxEntries: 1_000_000 } });
  const jsonBytes = JSON.stringify(make(0)).length;
  // Enough values for four times maxBytes of JSON: L1 evicts all along.
  const count = Math.ceil((4 * maxBytes) / jsonBytes);
  for (let i = 0; i < 50; i++) await cache.set(`warm${i}`, make(i));
  await cache.clear();
  const before = held();
  for (let i = 0; i < count; i++) await cache.set(`k${i}`, make(i));
  const after = held();
  const stats = cache.stats().l1;
  return { shape, jsonBytesPerValue: jsonBytes, values: count, maxBytesMiB: 8, l1MiB: mib(stats.bytes), l1Entries: stats.entries, heldMiB: mib(after - before), heldPerMaxBytes: +((after - before) / maxBytes).toFixed(2) };
}

async function longKeys(): Promise<object> {
  const maxBytes = 1 * MiB;
  const cache = createCache({ redis: false, l1: { maxBytes } });
  // Each key a flat string of its own, as keys read from requests or records are
  // (V8 flattens a concatenated string when a character is read).
  const filler = 'k'.repeat(10_000);
  const long = (label: string, i: number) => {
    const key = label + String(i).padStart(6, '0') + filler;
    key.charCodeAt(0);
    return key;
  };
  await cache.get(long('warm', 0));
  const before = held();
  for (let i = 0; i < 20_000; i++) await cache.get(long('absent', i));
  const afterGets = held();
  for (let i = 0; i < 50_000; i++) await cache.set(long('key', i), { i });
  const afterSets = held();
  return {
    keyChars: long('key', 0).length,
    maxBytesMiB: 1,
    heldAfter20kAbsentGetsMiB: mib(afterGets - before),
    heldAfter50kSetsMiB: mib(afterSets - before),
    l1MiB: mib(cache.stats().l1.bytes),
    tagVersionsMiB: mib(cache.store.versions.localBytes),
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const range = (xs: number[]) => `${median(xs)} (${Math.min(...xs)}-${Math.max(...xs)})`;

if (process.argv[2] === '--worker') {
  const which = process.argv[3]!;
  const result = which === 'http' ? await httpScan() : which === 'keys' ? await longKeys() : await valueShape(which);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
} else {
  const rounds = Number(option('rounds') ?? 3);
  const only = new Set((option('only') ?? 'http,values,keys').split(','));
  const self = fileURLToPath(import.meta.url);
  const extra = option('keys') === undefined ? [] : ['--keys', option('keys')!];
  const run = <T>(which: string, env: NodeJS.ProcessEnv = process.env): T =>
    JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', self, '--worker', which, ...extra], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'] })) as T;
  // --baseline: each round also scans through the same app with the cache off, in a process of its own,
  // the two in turn (which goes first alternates). Express promotes ~7 KB of every request's garbage to the
  // old space with or without a cache, so the app alone peaks tens of MiB above its start, and by how much
  // varies with when V8 collects: the round's baseline shows what of a round's figures is the app's.
  const baseline = process.argv.includes('--baseline');
  console.log(`date ${new Date().toISOString()}, node ${process.version}, ${rounds} rounds, each in a fresh process; median (range)`);
  if (only.has('http')) {
    type Http = { keys: number; l1MiB: number; l1Entries: number; evictions: number; tagVersionsMiB: number; heapUsedGrowthMiB: number; heapTotalGrowthMiB: number; arrayBuffersGrowthMiB: number; rssGrowthMiB: number; peakRssGrowthMiB: number; peakHeapTotalGrowthMiB: number; settledRssGrowthMiB: number };
    const results: Http[] = [];
    const apps: Http[] = [];
    const appAlone = (r: number) => {
      apps.push(run<Http>('http', { ...process.env, BENCH_NO_CACHE: '1' }));
      console.log(`http round ${r + 1}, app alone (cache off): ${JSON.stringify(apps[r])}`);
    };
    for (let r = 0; r < rounds; r++) {
      if (baseline && r % 2 === 0) appAlone(r);
      results.push(run<Http>('http'));
      console.log(`http round ${r + 1}: ${JSON.stringify(results[r])}`);
      if (baseline && r % 2 === 1) appAlone(r);
    }
    const col = (k: keyof Http) => results.map((x) => x[k]);
    if (baseline) {
      const app = (k: keyof Http) => apps.map((x) => x[k]);
      const over = (k: keyof Http) => results.map((x, i) => +(x[k] - apps[i]![k]).toFixed(1));
      console.log(
        `the app alone (cache off), ${apps.length} rounds: RSS growth after a full GC ${range(app('rssGrowthMiB'))} MiB, peak ${range(app('peakRssGrowthMiB'))} MiB, ` +
          `heapTotal growth ${range(app('heapTotalGrowthMiB'))} MiB, peak ${range(app('peakHeapTotalGrowthMiB'))} MiB; ` +
          `the cache's rounds over their own round's app alone: after a full GC ${range(over('rssGrowthMiB'))} MiB, peak ${range(over('peakRssGrowthMiB'))} MiB`,
      );
    }
    console.log(
      `http scan of ${results[0]!.keys} URLs, maxBytes ${process.env.BENCH_MAXBYTES_MIB ?? 32} MiB${process.env.BENCH_NO_CACHE === '1' ? ' (cache off)' : process.env.BENCH_FLOOR === '1' ? ' (minimal hand-written cache)' : ''}: L1 ${range(col('l1MiB'))} MiB in ${range(col('l1Entries'))} entries; ` +
        `live heap +${range(col('heapUsedGrowthMiB'))} MiB, buffers +${range(col('arrayBuffersGrowthMiB'))} MiB (tag versions ${range(col('tagVersionsMiB'))} MiB); ` +
        `RSS growth after a full GC ${range(col('rssGrowthMiB'))} MiB, peak during the scan ${range(col('peakRssGrowthMiB'))} MiB (target < 64 MiB: every round); ` +
        `heapTotal growth ${range(col('heapTotalGrowthMiB'))} MiB, peak ${range(col('peakHeapTotalGrowthMiB'))} MiB; ` +
        `settled (both ends read 250 ms after their GC) ${range(col('settledRssGrowthMiB'))} MiB`,
    );
  }
  if (only.has('values')) {
    for (const shape of Object.keys(SHAPES)) {
      type Values = { jsonBytesPerValue: number; values: number; l1MiB: number; l1Entries: number; heldMiB: number; heldPerMaxBytes: number };
      const results = Array.from({ length: rounds }, () => run<Values>(shape));
      const col = (k: keyof Values) => results.map((x) => x[k]);
      console.log(
        `values ${shape} (${results[0]!.jsonBytesPerValue} bytes of JSON each, ${results[0]!.values} set), maxBytes 8 MiB: L1 ${range(col('l1MiB'))} MiB in ${range(col('l1Entries'))} entries, ` +
          `heap held ${range(col('heldMiB'))} MiB = ${range(col('heldPerMaxBytes'))}x maxBytes (target <= 1.5x)`,
      );
    }
  }
  if (only.has('keys')) {
    type Keys = { keyChars: number; heldAfter20kAbsentGetsMiB: number; heldAfter50kSetsMiB: number; l1MiB: number; tagVersionsMiB: number };
    const results = Array.from({ length: rounds }, () => run<Keys>('keys'));
    const col = (k: keyof Keys) => results.map((x) => x[k]);
    console.log(
      `keys of ${results[0]!.keyChars} characters, maxBytes 1 MiB: heap held after get() of 20,000 absent keys ${range(col('heldAfter20kAbsentGetsMiB'))} MiB, ` +
        `after set() of 50,000 keys ${range(col('heldAfter50kSetsMiB'))} MiB (L1 ${range(col('l1MiB'))} MiB, tag versions ${range(col('tagVersionsMiB'))} MiB)`,
    );
  }
}
