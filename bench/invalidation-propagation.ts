// How long an invalidation takes to reach another instance (DESIGN.md section 4,
// promise 2: p95 under 5 ms on loopback). Two caches, each in its own child
// process, share one throwaway redis-server. Per round, B holds a tagged value
// in L1, A invalidates the tag, and the time from A's invalidateTags() promise
// resolving to B missing is recorded. Both processes stamp with
// performance.timeOrigin + performance.now() (one machine clock); the parent
// estimates the skew between the two children and reports it.
// Baseline, interleaved round by round: the same trip for a bare ioredis
// PUBLISH seen by a bare ioredis subscriber (the floor pub/sub allows).
//
//   node --import tsx bench/invalidation-propagation.ts [--rounds 200] [--warmup 50] [--observe event|poll] [--json]
//
// --observe event (default): B timestamps in its 'invalidate' listener
//   ({ remote: true }, emitted once the bus message is applied), then checks
//   with cache.get() that the value really misses.
// --observe poll: B calls cache.get() in a setImmediate loop and timestamps
//   the first miss.
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { createCache, type InvalidateEvent, type TierCache } from '../src/index.js';
import { startRedisServer, type RedisServerHandle } from '../test/support/redis-server.js';
import { runInfo } from './support/machine.mjs';
import { machineNow, rounded, summarize } from './support/stats.js';
import { forkWorker, serveParent, type Worker } from './support/workers.js';

const THIS_FILE = fileURLToPath(import.meta.url);
const NAMESPACE = 'bench-prop';
const RAW_CHANNEL = 'bench-prop:raw';
/** A round whose message has not arrived after this long counts as lost. */
const OBSERVE_TIMEOUT_MS = 2_000;
const TARGET_P95_MS = 5;

type Observe = 'event' | 'poll';

interface Observation {
  /** When B saw it (machine clock, ms); undefined if lost. */
  readonly at: number | undefined;
  /** Whether cache.get() missed at that moment (always true for the raw baseline). */
  readonly missed: boolean;
}

interface Stamps {
  readonly t0: number;
  readonly t1: number;
}

// ---------------------------------------------------------------- worker side

function runWorker(role: string, redisUrl: string): void {
  let cache: TierCache | undefined;
  let raw: Redis | undefined;
  let armed: { resolve: (o: Observation) => void; promise: Promise<Observation>; done: boolean } | undefined;

  function arm(): void {
    let resolve!: (o: Observation) => void;
    const promise = new Promise<Observation>((r) => (resolve = r));
    const state = { resolve, promise, done: false };
    state.resolve = (o) => {
      if (state.done) return;
      state.done = true;
      resolve(o);
    };
    armed = state;
  }

  serveParent({
    async init() {
      cache = createCache({ namespace: NAMESPACE, redis: redisUrl, ttl: '10m', l1: { maxEntries: 10_000 } });
      cache.on('error', ({ err }) => process.stderr.write(`[${role}] cache error: ${err.message}\n`));
      await cache.ready();
      if (cache.health().bus !== 'ok' || cache.health().l2 !== 'ok') throw new Error(`cache not connected: ${JSON.stringify(cache.health())}`);
      raw = new Redis(redisUrl);
      if (role === 'b') {
        await raw.subscribe(RAW_CHANNEL);
        raw.on('message', (_channel: string, _payload: string) => {
          const at = machineNow();
          armed?.resolve({ at, missed: true });
        });
      }
      return { role, pid: process.pid };
    },

    clock() {
      return machineNow();
    },

    // A: stores the round's value under its tag; false if Redis failed (cache.set does not throw for that).
    async set({ key, tag }: { key: string; tag: string }) {
      const before = cache!.stats().l2.errors;
      await cache!.set(key, { key, pad: 'x'.repeat(64) }, { tags: [tag] });
      return cache!.stats().l2.errors === before;
    },

    // B: reads until the value is an L1 hit (the first read warms L1 from L2).
    // A Redis timeout on this loaded machine opens the cache's breaker for
    // breakerCooldown (1 s): wait it out instead of aborting the run; such
    // rounds are counted (stats().l2.errors) and reported.
    async prime({ key }: { key: string }) {
      for (let tries = 1; tries <= 20; tries++) {
        const before = cache!.stats().l1.hits;
        const value = await cache!.get(key);
        if (value === undefined) {
          await new Promise((resolve) => setTimeout(resolve, 250));
          continue;
        }
        if (cache!.stats().l1.hits === before + 1) return tries;
      }
      throw new Error(`${key} never became an L1 hit on B`);
    },

    // B: gets ready to see the round's invalidation.
    arm({ key, tag, observe }: { key: string; tag: string; observe: Observe }) {
      arm();
      const state = armed!;
      const c = cache!;
      if (observe === 'event') {
        const onInvalidate = (event: InvalidateEvent) => {
          if (event.remote !== true || event.tags?.includes(tag) !== true) return;
          const at = machineNow();
          c.off('invalidate', onInvalidate);
          void c.get(key).then((value) => state.resolve({ at, missed: value === undefined }));
        };
        c.on('invalidate', onInvalidate);
      } else {
        const poll = () => {
          if (state.done) return;
          c.get(key).then((value) => {
            if (value === undefined) state.resolve({ at: machineNow(), missed: true });
            else setImmediate(poll);
          }, (err: unknown) => {
            process.stderr.write(`[${role}] get failed while polling: ${String(err)}\n`);
            state.resolve({ at: undefined, missed: false });
          });
        };
        setImmediate(poll);
      }
      return true;
    },

    // B (raw baseline): gets ready for the next bare message.
    armRaw() {
      arm();
      return true;
    },

    // B: resolves when the armed round was seen (or reports it lost).
    async observed(): Promise<Observation> {
      const state = armed!;
      const timer = setTimeout(() => state.resolve({ at: undefined, missed: false }), OBSERVE_TIMEOUT_MS);
      const o = await state.promise;
      clearTimeout(timer);
      return o;
    },

    // A: the measured call.
    async invalidate({ tag }: { tag: string }): Promise<Stamps & { failed?: string }> {
      const t0 = machineNow();
      try {
        await cache!.invalidateTags([tag]);
      } catch (err) {
        return { t0, t1: machineNow(), failed: err instanceof Error ? err.message : String(err) };
      }
      const t1 = machineNow();
      return { t0, t1 };
    },

    // A (raw baseline): one bare PUBLISH.
    async publishRaw({ n }: { n: number }): Promise<Stamps> {
      const t0 = machineNow();
      await raw!.publish(RAW_CHANNEL, String(n));
      const t1 = machineNow();
      return { t0, t1 };
    },

    stats() {
      const bus = cache!.bus;
      return { ...cache!.stats(), busReceived: bus?.received ?? 0, busFlushes: bus?.flushes ?? 0, health: cache!.health() };
    },

    async shutdown() {
      await cache?.close();
      raw?.disconnect();
    },
  });
}

// ---------------------------------------------------------------- parent side

/** Offset of each child's clock from the parent's, from the round trip with the least delay. */
async function clockOffsets(workers: readonly Worker[], samples = 50): Promise<{ offset: number; rtt: number }[]> {
  const best = workers.map(() => ({ offset: 0, rtt: Infinity }));
  for (let i = 0; i < samples; i++) {
    for (let w = 0; w < workers.length; w++) {
      const p0 = machineNow();
      const c = await workers[w]!.call<number>('clock');
      const p1 = machineNow();
      if (p1 - p0 < best[w]!.rtt) best[w] = { offset: c - (p0 + p1) / 2, rtt: p1 - p0 };
    }
  }
  return best;
}

async function skew(a: Worker, b: Worker): Promise<{ skewMs: number; uncertaintyMs: number }> {
  const [oa, ob] = await clockOffsets([a, b]);
  return { skewMs: ob!.offset - oa!.offset, uncertaintyMs: (oa!.rtt + ob!.rtt) / 2 };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '200' },
      warmup: { type: 'string', default: '50' },
      observe: { type: 'string', default: 'event' },
      json: { type: 'boolean', default: false },
    },
  });
  const rounds = Number(values.rounds);
  const warmup = Number(values.warmup);
  const observe = values.observe as Observe;
  if (observe !== 'event' && observe !== 'poll') throw new Error(`--observe must be event or poll; got ${observe}`);
  const log = (line: string) => (values.json ? process.stderr : process.stdout).write(line + '\n');

  const info = runInfo();
  let server: RedisServerHandle | undefined;
  const workers: Worker[] = [];
  const cleanup = async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await server?.stop();
  };
  const onSignal = (signal: NodeJS.Signals) => {
    void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const started = performance.now();
  try {
    server = await startRedisServer();
    log(`redis-server pid ${server.pid} on ${server.url}`);
    const a = forkWorker('A', THIS_FILE, ['--worker', 'a', '--redis', server.url]);
    workers.push(a);
    const b = forkWorker('B', THIS_FILE, ['--worker', 'b', '--redis', server.url]);
    workers.push(b);
    log(`instance A pid ${a.pid}, instance B pid ${b.pid}, observe=${observe}`);
    await Promise.all([a.call('init', undefined, 15_000), b.call('init', undefined, 15_000)]);
    const skewBefore = await skew(a, b);

    const fromResolve: number[] = [];
    const fromCall: number[] = [];
    const callTime: number[] = [];
    const rawFromResolve: number[] = [];
    const rawFromCall: number[] = [];
    let lost = 0;
    let notMissed = 0;
    let rawLost = 0;
    let retriedSets = 0;
    let serial = 0;
    let failedRounds = 0;

    for (let r = 0; r < warmup + rounds; r++) {
      const measured = r >= warmup;
      // tiercache round
      serial++;
      const key = `p:${serial}`;
      const tag = `t:${serial}`;
      // A Redis timeout (on a loaded machine) makes set store in A's L1 only: wait out the breaker and store again.
      for (let attempt = 1; !(await a.call<boolean>('set', { key, tag })); attempt++) {
        if (attempt === 5) throw new Error(`A could not store ${key} in Redis`);
        retriedSets++;
        await new Promise((resolve) => setTimeout(resolve, 1_100));
      }
      await b.call('prime', { key });
      await b.call('arm', { key, tag, observe });
      const seen = b.call<Observation>('observed', undefined, OBSERVE_TIMEOUT_MS + 1_000);
      const stamps = await a.call<Stamps & { failed?: string }>('invalidate', { tag });
      const o = await seen;
      if (stamps.failed !== undefined) {
        log(`round ${r}: invalidateTags rejected (${stamps.failed}); round not counted`);
        failedRounds++;
        await new Promise((resolve) => setTimeout(resolve, 1_100));
        r--;
        if (failedRounds > 20) throw new Error('too many failed invalidations; is the machine overloaded?');
        continue;
      }
      if (measured) {
        callTime.push(stamps.t1 - stamps.t0);
        if (o.at === undefined) lost++;
        else {
          fromResolve.push(o.at - stamps.t1);
          fromCall.push(o.at - stamps.t0);
          if (!o.missed) notMissed++;
        }
      }
      // baseline round: bare PUBLISH -> bare subscriber
      await b.call('armRaw');
      const rawSeen = b.call<Observation>('observed', undefined, OBSERVE_TIMEOUT_MS + 1_000);
      const rawStamps = await a.call<Stamps>('publishRaw', { n: r });
      const ro = await rawSeen;
      if (measured) {
        if (ro.at === undefined) rawLost++;
        else {
          rawFromResolve.push(ro.at - rawStamps.t1);
          rawFromCall.push(ro.at - rawStamps.t0);
        }
      }
    }

    const skewAfter = await skew(a, b);
    const [statsA, statsB] = await Promise.all([a.call('stats'), b.call('stats')]);
    const elapsedS = (performance.now() - started) / 1000;

    const tc = rounded(summarize(fromResolve));
    const result = {
      scenario: 'invalidation-propagation',
      ...info,
      params: { rounds, warmup, observe, redis: `redis-server ${info.machine.redis} on 127.0.0.1 (loopback)`, processes: 'A and B in separate child processes' },
      clock: {
        note: 'offset of B from A (machine clock); the figures below are not corrected for it',
        before: { skewMs: round(skewBefore.skewMs), uncertaintyMs: round(skewBefore.uncertaintyMs) },
        after: { skewMs: round(skewAfter.skewMs), uncertaintyMs: round(skewAfter.uncertaintyMs) },
      },
      results: {
        tiercache: {
          fromResolveMs: tc,
          fromCallMs: rounded(summarize(fromCall)),
          invalidateTagsCallMs: rounded(summarize(callTime)),
          lost,
          notMissed,
          /** Rounds repeated because invalidateTags() rejected (Redis timed out), and sets stored again. */
          failedRounds,
          retriedSets,
          redisErrors: { a: (statsA as { l2: { errors: number } }).l2.errors, b: (statsB as { l2: { errors: number } }).l2.errors },
          /** Rounds in which B already missed before A's promise resolved (negative fromResolve). */
          missedBeforeResolve: fromResolve.filter((d) => d < 0).length,
        },
        baselineRawPubSub: {
          fromResolveMs: rounded(summarize(rawFromResolve)),
          fromCallMs: rounded(summarize(rawFromCall)),
          lost: rawLost,
        },
      },
      target: { p95Ms: TARGET_P95_MS, met: lost === 0 && notMissed === 0 && tc.p95 < TARGET_P95_MS },
      instances: { a: statsA, b: statsB },
      elapsedS: round(elapsedS, 1),
    };

    const row = (name: string, s: ReturnType<typeof rounded>) =>
      `| ${name} | ${s.n} | ${s.min.toFixed(3)} | ${s.p50.toFixed(3)} | ${s.p95.toFixed(3)} | ${s.p99.toFixed(3)} | ${s.max.toFixed(3)} |`;
    log('');
    log(`invalidation propagation, ${rounds} rounds (+${warmup} warm-up), observe=${observe}; ${info.date}, Node ${info.node}, ${info.machine.cpu} x${info.machine.cores}`);
    log(`clock skew B-A: ${result.clock.before.skewMs} ms (±${result.clock.before.uncertaintyMs}) before, ${result.clock.after.skewMs} ms (±${result.clock.after.uncertaintyMs}) after`);
    log('| ms | n | min | p50 | p95 | p99 | max |');
    log('|---|---|---|---|---|---|---|');
    log(row('tiercache: invalidateTags resolved -> B misses', tc));
    log(row('tiercache: invalidateTags called -> B misses', result.results.tiercache.fromCallMs));
    log(row('tiercache: invalidateTags call on A', result.results.tiercache.invalidateTagsCallMs));
    log(row('baseline: PUBLISH resolved -> subscriber', result.results.baselineRawPubSub.fromResolveMs));
    log(row('baseline: PUBLISH called -> subscriber', result.results.baselineRawPubSub.fromCallMs));
    log(`B already missing when A's promise resolved: ${result.results.tiercache.missedBeforeResolve} of ${fromResolve.length} rounds (negative deltas)`);
    log(`Redis errors A/B: ${result.results.tiercache.redisErrors.a}/${result.results.tiercache.redisErrors.b}, repeated rounds: ${failedRounds}, re-stored sets: ${retriedSets}`);
    log(`lost: ${lost}, seen but not missing: ${notMissed}, baseline lost: ${rawLost}; target p95 < ${TARGET_P95_MS} ms: ${result.target.met ? 'met' : 'NOT met'}; ${result.elapsedS} s`);
    if (values.json) process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function round(v: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

const workerIndex = process.argv.indexOf('--worker');
if (workerIndex !== -1) {
  const redisIndex = process.argv.indexOf('--redis');
  runWorker(process.argv[workerIndex + 1]!, process.argv[redisIndex + 1]!);
} else {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
