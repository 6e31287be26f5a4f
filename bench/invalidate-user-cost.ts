// What invalidateUser() costs as the cache grows (DESIGN.md section 6: a user
// with 10 entries in a cache of 1,000,000 entries costs no more than 2x the
// same in a cache of 1,000). Invalidation is a version bump in Redis plus one
// publish, so it should not depend on the number of entries at all.
// Each size runs in its own child process against its own fresh redis-server,
// with identical cache options; the smallest size is the baseline. Per size:
// fill L1 and L2 with N small entries (10 per user, tagged user:<id>), warm
// up, then time `await cache.invalidateUser('u-target')`, re-storing the
// target's 10 entries (untimed) before every call so each one covers 10 live
// entries. The sizes take turns in blocks of 10 calls, so both see the same
// machine. A bare-ioredis INCR + PUBLISH pair is timed right after each call
// in the same process, as the floor two round trips allow.
//
//   node --import tsx bench/invalidate-user-cost.ts [--sizes 1000,1000000] [--rounds 200] [--warmup 200] [--json]
//   (BENCH_TRACE_GC=1 runs the workers with --trace-gc)
//
// Bulk fill: the target user's entries go through cache.set(); every other
// user's entry is built with the cache's own encoder and a stamp read from
// Redis as cache.set does, put in L1 through the internal store (all 10 keys
// of a user share one encoded entry) and in L2 by a Lua script issuing the
// same SET key bytes PX ttl that cache.set sends, 2,000 keys per call (one
// awaited round trip per entry would take minutes for 1,000,000 here).
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { createCache, type TierCache } from '../src/index.js';
import { encodeValue } from '../src/cache/data-value.js';
import { userTag } from '../src/keys/tags.js';
import { encodeEntry } from '../src/store/entry-codec.js';
import { L1Store } from '../src/store/l1-store.js';
import { startRedisServer, type RedisServerHandle } from '../test/support/redis-server.js';
import { runInfo } from './support/machine.mjs';
import { rounded, summarize, type Summary } from './support/stats.js';
import { forkWorker, serveParent, type Worker } from './support/workers.js';

const THIS_FILE = fileURLToPath(import.meta.url);
const NAMESPACE = 'bench-user';
const TARGET_USER = 'u-target';
const ENTRIES_PER_USER = 10;
const ENTRY_TTL_MS = 30 * 60_000;
/** Same L1 options for every size, so the number of entries is the only difference. */
const L1_OPTIONS = { maxEntries: 1_100_000, maxBytes: 1024 * 1024 * 1024 };
/** Users stamped and stored per Redis script call during the fill. */
const FILL_BATCH_USERS = 200;
/**
 * Bulk L2 fill: ARGV = ttl, key prefix, entries per user, then (user id,
 * encoded entry) pairs; stores prefix..id..':'..j for each j with SET PX,
 * exactly what cache.set sends per key. Keys are built in the script (not
 * declared), which standalone Redis allows; this is a benchmark fill, not
 * library code. ioredis's per-command cost made pipelined SETs too slow for
 * 1M entries within the time budget (about 27 us per SET on the reference machine).
 */
const FILL_L2_SCRIPT = `
local ttl, prefix, per = ARGV[1], ARGV[2], tonumber(ARGV[3])
local n = 0
for i = 4, #ARGV, 2 do
  for j = 0, per - 1 do
    redis.call('SET', prefix .. ARGV[i] .. ':' .. j, ARGV[i + 1], 'PX', ttl)
    n = n + 1
  end
end
return n`;
const TARGET_RATIO = 2;
/** Measured rounds per turn when the sizes take turns. */
const BLOCK_ROUNDS = 10;

interface SizeResult {
  readonly size: number;
  readonly users: number;
  readonly fillS: number;
  /** Fill batches whose versions were read again after a Redis error. */
  readonly fillRetries: number;
  readonly l1Entries: number;
  readonly l1Bytes: number;
  readonly redisKeys: number;
  readonly redisUsedMemory: string;
  readonly rssMiB: number;
  readonly heapUsedMiB: number;
  /** invalidateUser calls that rejected (Redis timed out) and were repeated, not counted. */
  readonly failedCalls: number;
  readonly invalidateUserMs: Summary;
  readonly baselineIncrPublishMs: Summary;
  readonly checks: {
    readonly l1EntriesAtEnd: number;
    readonly targetMissesAfter: number;
    readonly othersL1HitsAfter: number;
    readonly othersChecked: number;
    readonly bulkL2Readable: number;
    readonly l2Checked: number;
    readonly l2Errors: number;
    readonly l1Evictions: number;
  };
}

function value(user: string): { u: string; s: string } {
  return { u: user, s: 'abcdefghijklmnop' };
}

// ---------------------------------------------------------------- worker side

function runWorker(redisUrl: string, size: number): void {
  const users = size / ENTRIES_PER_USER;
  let cache: TierCache | undefined;
  let admin: Redis | undefined;
  let prefix = '';
  let fillS = 0;
  let fillRetries = 0;
  let filledL1Entries = 0;
  let filledL1Bytes = 0;

  const storeTarget = async (c: TierCache) => {
    for (let j = 0; j < ENTRIES_PER_USER; j++) {
      await c.set(`${TARGET_USER}:${j}`, value(TARGET_USER), { tags: [userTag(TARGET_USER)] });
    }
  };

  serveParent({
    async fill(): Promise<void> {
      const c = createCache({ namespace: NAMESPACE, redis: redisUrl, ttl: ENTRY_TTL_MS, l1: L1_OPTIONS });
      cache = c;
      c.on('error', ({ err }) => process.stderr.write(`[size ${size}] cache error: ${err.message}\n`));
      await c.ready();
      admin = new Redis(redisUrl);
      const l1 = c.store.l1!;
      prefix = c.dataKey('x').slice(0, -1); // 'namespace:d:'

      const fillStart = performance.now();
      await storeTarget(c);
      const fillL2 = (await admin.script('LOAD', FILL_L2_SCRIPT)) as string;
      let seenErrors = c.stats().l2.errors;
      for (let first = 0; first < users - 1; first += FILL_BATCH_USERS) {
        const ids: string[] = [];
        for (let u = first; u < Math.min(first + FILL_BATCH_USERS, users - 1); u++) ids.push(`u${u}`);
        // The versions a fill records, read (and created) in Redis as cache.set does; one script call for the batch.
        const tags = ids.map((id) => userTag(id));
        // A Redis timeout (a long GC pause on a loaded machine is enough) makes stamp() fall back to
        // made-up versions: wait out the breaker's cooldown and read again, so every entry is valid.
        let batch = await c.store.versions.stamp(tags);
        for (let errors = c.stats().l2.errors; errors !== seenErrors; errors = c.stats().l2.errors) {
          seenErrors = errors;
          fillRetries++;
          if (fillRetries > 10) throw new Error('Redis keeps failing during the fill; is the machine overloaded?');
          process.stderr.write(`[size ${size}] Redis error during the fill at user ${first}; reading the batch's versions again\n`);
          await new Promise((resolve) => setTimeout(resolve, 1_100));
          batch = await c.store.versions.stamp(tags);
        }
        const now = Date.now();
        const args: Array<string | Buffer | number> = [ENTRY_TTL_MS, prefix, ENTRIES_PER_USER];
        for (let i = 0; i < ids.length; i++) {
          const id = ids[i]!;
          const stamp = { epoch: batch.epoch, tags: [tags[i]!], versions: [batch.versions[i]!] };
          // One encoded entry per user, shared by its 10 keys (the values are equal; the keys differ).
          const { entry, l1Entry } = encodeValue(`${id}:0`, value(id), stamp, now, ENTRY_TTL_MS);
          for (let j = 0; j < ENTRIES_PER_USER; j++) {
            const storeKey = `${prefix}${id}:${j}`;
            l1.set(storeKey, l1Entry, L1Store.sizeOf(storeKey, entry));
          }
          args.push(id, encodeEntry(entry));
        }
        await admin.evalsha(fillL2, 0, ...args);
        // Let the cache's own I/O (bus, epoch checks) through between batches, as live traffic would.
        await new Promise((resolve) => setImmediate(resolve));
      }
      fillS = (performance.now() - fillStart) / 1000;
      filledL1Entries = l1.entries;
      filledL1Bytes = l1.bytes;
      if (l1.entries !== size) throw new Error(`L1 holds ${l1.entries} entries, expected ${size}`);
      // Drop the fill's garbage so it is not collected inside the timed loop (same for every size).
      // The pause (~0.4 s at 1M here) can time out a Redis command in flight and open the breaker
      // for its cooldown (1 s): let that pass before anything is timed.
      (globalThis as { gc?: () => void }).gc?.();
      await new Promise((resolve) => setTimeout(resolve, 1_500));
    },

    // `count` rounds: re-store the target's 10 entries (untimed), time invalidateUser, then time the bare baseline.
    // A call that rejects (a Redis timeout on a loaded machine) is not counted; the breaker's cooldown is waited out.
    async measure({ count }: { count: number }): Promise<{ inv: number[]; base: number[]; failed: number }> {
      const c = cache!;
      const inv: number[] = [];
      const base: number[] = [];
      let failed = 0;
      for (let r = 0; r < count; r++) {
        await storeTarget(c);
        const t0 = performance.now();
        try {
          await c.invalidateUser(TARGET_USER);
        } catch (err) {
          process.stderr.write(`[size ${size}] invalidateUser rejected, not counted: ${err instanceof Error ? err.message : String(err)}\n`);
          if (++failed > 10) throw err;
          await new Promise((resolve) => setTimeout(resolve, 1_100));
          r--;
          continue;
        }
        const t1 = performance.now();
        await admin!.incr('bench-baseline:v');
        await admin!.publish('bench-baseline:bus', 'x');
        const t2 = performance.now();
        inv.push(t1 - t0);
        base.push(t2 - t1);
      }
      return { inv, base, failed };
    },

    // The target's entries miss, other users' entries still hit in L1, bulk L2 entries are valid.
    async finish(): Promise<Omit<SizeResult, 'invalidateUserMs' | 'baselineIncrPublishMs' | 'failedCalls'>> {
      const c = cache!;
      // Less than `size` means L1 was flushed: a rejected invalidation drops everything local (by design).
      const l1EntriesAtEnd = c.store.l1!.entries;
      let targetMissesAfter = 0;
      for (let j = 0; j < ENTRIES_PER_USER; j++) if ((await c.get(`${TARGET_USER}:${j}`)) === undefined) targetMissesAfter++;
      const othersChecked = Math.min(100, size - ENTRIES_PER_USER);
      const hitsBefore = c.stats().l1.hits;
      for (let i = 0; i < othersChecked; i++) {
        const u = Math.floor((i * (users - 1)) / othersChecked);
        const j = i % ENTRIES_PER_USER;
        if ((await c.get(`u${u}:${j}`)) === undefined) throw new Error(`u${u}:${j} missed after invalidating ${TARGET_USER}`);
      }
      const othersL1HitsAfter = c.stats().l1.hits - hitsBefore;
      let bulkL2Readable = 0;
      const l2Checked = Math.min(10, users - 1);
      for (let i = 0; i < l2Checked; i++) if ((await c.store.getL2(`${prefix}u${i}:${i % ENTRIES_PER_USER}`)) !== undefined) bulkL2Readable++;
      const stats = c.stats();
      const mem = process.memoryUsage();
      return {
        size,
        users,
        fillS: Math.round(fillS * 10) / 10,
        fillRetries,
        l1Entries: filledL1Entries,
        l1Bytes: filledL1Bytes,
        redisKeys: await admin!.dbsize(),
        redisUsedMemory: /used_memory_human:(\S+)/.exec(await admin!.info('memory'))?.[1] ?? '?',
        rssMiB: Math.round(mem.rss / 2 ** 20),
        heapUsedMiB: Math.round(mem.heapUsed / 2 ** 20),
        checks: {
          l1EntriesAtEnd,
          targetMissesAfter,
          othersL1HitsAfter,
          othersChecked,
          bulkL2Readable,
          l2Checked,
          l2Errors: stats.l2.errors,
          l1Evictions: stats.l1.evictions,
        },
      };
    },

    async shutdown() {
      await cache?.close();
      admin?.disconnect();
    },
  });
}

// ---------------------------------------------------------------- parent side

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '1000,1000000' },
      rounds: { type: 'string', default: '200' },
      warmup: { type: 'string', default: '200' },
      json: { type: 'boolean', default: false },
    },
  });
  const sizes = values.sizes.split(',').map((s) => Number(s.replace(/_/g, '')));
  for (const s of sizes) if (!Number.isInteger(s) || s < 2 * ENTRIES_PER_USER || s % ENTRIES_PER_USER !== 0) throw new Error(`size ${s} must be a multiple of ${ENTRIES_PER_USER}, at least ${2 * ENTRIES_PER_USER}`);
  const rounds = Number(values.rounds);
  const warmup = Number(values.warmup);
  const log = (line: string) => (values.json ? process.stderr : process.stdout).write(line + '\n');
  const info = runInfo();

  const servers: RedisServerHandle[] = [];
  const workers: Worker[] = [];
  const cleanup = async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await Promise.all(servers.map((s) => s.stop()));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const started = performance.now();
  const results: SizeResult[] = [];
  try {
    // One redis-server and one worker per size, filled one after another.
    for (const size of sizes) {
      const server = await startRedisServer();
      servers.push(server);
      const worker = forkWorker(`size ${size}`, THIS_FILE, ['--worker', '--redis', server.url, '--size', String(size)], {
        nodeFlags: ['--expose-gc', '--max-old-space-size=4096', ...(process.env['BENCH_TRACE_GC'] ? ['--trace-gc'] : [])],
      });
      workers.push(worker);
      log(`size ${size}: redis-server pid ${server.pid} on ${server.url}, worker pid ${worker.pid}; filling`);
      await worker.call('fill', undefined, 120_000);
    }
    // Warm-up, then the measured rounds in blocks that alternate between the
    // sizes (order flipped every block), so drift in the machine's state
    // (noisy neighbours, CPU frequency) falls on every size alike.
    const inv = workers.map((): number[] => []);
    const base = workers.map((): number[] => []);
    const failed = workers.map(() => 0);
    for (let i = 0; i < workers.length; i++) failed[i]! += (await workers[i]!.call<{ failed: number }>('measure', { count: warmup }, 120_000)).failed;
    for (let done = 0, block = 0; done < rounds; done += BLOCK_ROUNDS, block++) {
      const count = Math.min(BLOCK_ROUNDS, rounds - done);
      const order = workers.map((_, i) => (block % 2 === 0 ? i : workers.length - 1 - i));
      for (const i of order) {
        const m = await workers[i]!.call<{ inv: number[]; base: number[]; failed: number }>('measure', { count }, 60_000);
        inv[i]!.push(...m.inv);
        base[i]!.push(...m.base);
        failed[i]! += m.failed;
      }
    }
    for (let i = 0; i < workers.length; i++) {
      const facts = await workers[i]!.call<Omit<SizeResult, 'invalidateUserMs' | 'baselineIncrPublishMs' | 'failedCalls'>>('finish', undefined, 60_000);
      const r: SizeResult = { ...facts, failedCalls: failed[i]!, invalidateUserMs: rounded(summarize(inv[i]!), 4), baselineIncrPublishMs: rounded(summarize(base[i]!), 4) };
      results.push(r);
      log(
        `size ${r.size}: filled in ${r.fillS} s (L1 ${r.l1Entries} entries / ${(r.l1Bytes / 2 ** 20).toFixed(1)} MiB, Redis ${r.redisKeys} keys / ${r.redisUsedMemory}, RSS ${r.rssMiB} MiB); ` +
          `invalidateUser p50 ${r.invalidateUserMs.p50} ms p95 ${r.invalidateUserMs.p95} ms`,
      );
    }
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const baseline = results[0]!;
  const largest = results[results.length - 1]!;
  const ratio = {
    of: `${largest.size} / ${baseline.size}`,
    p50: round(largest.invalidateUserMs.p50 / baseline.invalidateUserMs.p50),
    p95: round(largest.invalidateUserMs.p95 / baseline.invalidateUserMs.p95),
  };
  const checksOk = results.every((r) => r.checks.l1EntriesAtEnd === r.size && r.checks.targetMissesAfter === ENTRIES_PER_USER && r.checks.othersL1HitsAfter === r.checks.othersChecked && r.checks.bulkL2Readable === r.checks.l2Checked && r.checks.l1Evictions === 0);
  const result = {
    scenario: 'invalidate-user-cost',
    ...info,
    params: {
      rounds,
      warmup,
      entriesPerUser: ENTRIES_PER_USER,
      l1: L1_OPTIONS,
      entryTtlMs: ENTRY_TTL_MS,
      redis: `redis-server ${info.machine.redis} on 127.0.0.1 (loopback), a fresh one per size`,
      processes: 'one child process and one redis-server per size, all alive together; measured in alternating blocks',
      blockRounds: BLOCK_ROUNDS,
    },
    results,
    ratio,
    target: { maxRatio: TARGET_RATIO, met: checksOk && ratio.p50 <= TARGET_RATIO, checksOk },
    elapsedS: round((performance.now() - started) / 1000, 1),
  };

  log('');
  log(`invalidateUser('${TARGET_USER}') with ${ENTRIES_PER_USER} entries, ${rounds} calls (+${warmup} warm-up) per size; ${info.date}, Node ${info.node}, ${info.machine.cpu} x${info.machine.cores}`);
  log('| entries in cache | p50 ms | p95 ms | max ms | baseline INCR+PUBLISH p50 / p95 ms | p50 / baseline p50 |');
  log('|---|---|---|---|---|---|');
  for (const r of results) {
    log(
      `| ${r.size.toLocaleString('en-US')} | ${r.invalidateUserMs.p50.toFixed(3)} | ${r.invalidateUserMs.p95.toFixed(3)} | ${r.invalidateUserMs.max.toFixed(3)} | ` +
        `${r.baselineIncrPublishMs.p50.toFixed(3)} / ${r.baselineIncrPublishMs.p95.toFixed(3)} | ${(r.invalidateUserMs.p50 / r.baselineIncrPublishMs.p50).toFixed(2)}x |`,
    );
  }
  for (const r of results) log(`checks, size ${r.size}: ${JSON.stringify(r.checks)}`);
  log(`ratio ${ratio.of}: p50 ${ratio.p50}x, p95 ${ratio.p95}x (target <= ${TARGET_RATIO}x on p50: ${result.target.met ? 'met' : 'NOT met'}; checks ${checksOk ? 'ok' : 'FAILED'}); ${result.elapsedS} s`);
  if (values.json) process.stdout.write(JSON.stringify(result) + '\n');
}

function round(v: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

if (process.argv.includes('--worker')) {
  const arg = (name: string) => process.argv[process.argv.indexOf(name) + 1]!;
  runWorker(arg('--redis'), Number(arg('--size')));
} else {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
