// What storing a large value costs Redis, and every other client of it: per
// store, Redis's busy time (INFO commandstats: the usec of every command the
// store ran, scripts included), the longest single command (SLOWLOG with
// every command logged: Redis runs one at a time, so every other client
// waits that long) and the worst wait of a PING that another process sends
// in a loop meanwhile (on a loaded machine mostly a measure of CPU contention:
// the writer encoding the value, the prober and Redis share the cores). The writer (tiercache, data API, L1 off)
// and the prober are child processes of their own; a throwaway
// redis-server per build, started here and stopped by its PID. Builds are compared in
// the same run, interleaved size by size and round by round.
//
//   node --import tsx bench/large-values.ts [--build name=dir ...] [--rounds 7] [--sizes 65536,1048576,5242880]
//
// --build: a tiercache source or dist/esm directory (its index.js/.ts is
// imported); default `src=src`. Before/after against another worktree:
//   node --import tsx bench/large-values.ts --build before=../main/src --build after=src
// Prints, per build, size and operation, the medians over rounds (and every round).
import { performance } from 'node:perf_hooks';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { startRedisServer, type RedisServerHandle } from '../test/support/redis-server.js';
import { forkWorker, REPO_ROOT, serveParent, type Worker } from './support/workers.js';

const THIS_FILE = fileURLToPath(import.meta.url);

function options(name: string, fallback: string): string[] {
  const out: string[] = [];
  for (let i = 2; i < process.argv.length; i++) if (process.argv[i] === `--${name}`) out.push(process.argv[++i]!);
  return out.length > 0 ? out : [fallback];
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

if (options('worker', '')[0] === 'writer') {
  // A tiercache instance: set() and getOrSet() of a value of the given size, on call.
  const dir = options('dir', 'src')[0]!;
  const { createCache } = (await import(pathToFileURL(resolve(isAbsolute(dir) ? dir : resolve(REPO_ROOT, dir), 'index.js')).href)) as typeof import('../src/index.js');
  const cache = createCache({ redis: options('redis', '')[0]!, namespace: 'bench-large', l1: false });
  await cache.ready();
  // The baseline: the same bytes by a plain SET, no tiercache.
  const plain = new Redis(options('redis', '')[0]!);
  let n = 0;
  serveParent({
    store: async ({ op, bytes }: { op: 'set' | 'getOrSet' | 'plain SET'; bytes: number }) => {
      // A string of `bytes` characters (base64 of random bytes): the stored entry is that and a small header.
      const value = Buffer.alloc(Math.ceil((bytes * 3) / 4), n++ & 0xff).toString('base64').slice(0, bytes);
      const errors = cache.stats().l2.errors;
      if (op === 'plain SET') return { stored: (await plain.set(`plain${n}`, value, 'PX', 60_000)) === 'OK' };
      if (op === 'set') await cache.set(`k${n}`, value, { ttl: '1m' });
      else await cache.getOrSet(`k${n}`, () => value, { ttl: '1m' });
      return { stored: cache.stats().l2.errors === errors };
    },
    shutdown: async () => {
      plain.disconnect();
      await cache.close();
    },
  });
} else if (options('worker', '')[0] === 'prober') {
  // Another client of the same Redis: PINGs one after another, and the worst wait since 'start'.
  const probe = new Redis(options('redis', '')[0]!);
  let worst = 0;
  let running = true;
  let inFlight: Promise<unknown> = Promise.resolve();
  void (async () => {
    while (running) {
      const t = performance.now();
      inFlight = probe.ping();
      await inFlight;
      worst = Math.max(worst, performance.now() - t);
    }
  })();
  serveParent({
    start: () => void (worst = 0),
    // A PING still waiting (behind a script that outlived the writer's timeout) counts too.
    stop: async () => {
      // The loop awaited it first: its wait is in `worst` once this await returns.
      await inFlight;
      return worst;
    },
    shutdown: () => {
      running = false;
      probe.disconnect();
    },
  });
} else {
  const rounds = Number(options('rounds', '7')[0]);
  const sizes = options('sizes', '65536,1048576,5242880')[0]!.split(',').map(Number);
  const builds = options('build', 'src=src').map((spec) => {
    const [name, dir] = spec.split('=') as [string, string];
    return { name, dir };
  });
  const servers: RedisServerHandle[] = [];
  const admins: Redis[] = [];
  const workers: Worker[] = [];
  const cleanup = async () => {
    await Promise.all(workers.map((w) => w.stop()));
    for (const admin of admins) admin.disconnect();
    await Promise.all(servers.map((s) => s.stop()));
  };
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));
  try {
    // A redis-server per build: one Lua VM would leave the garbage of one build's scripts to be collected in the other's.
    const setups = [];
    for (const b of builds) {
      const server = await startRedisServer();
      servers.push(server);
      const admin = new Redis(server.url);
      admins.push(admin);
      await admin.config('SET', 'slowlog-log-slower-than', '0');
      await admin.config('SET', 'slowlog-max-len', '4096');
      const writer = forkWorker(b.name, THIS_FILE, ['--worker', 'writer', '--dir', b.dir, '--redis', server.url]);
      const prober = forkWorker(`${b.name}-prober`, THIS_FILE, ['--worker', 'prober', '--redis', server.url]);
      workers.push(writer, prober);
      console.error(`${b.name}: redis-server pid ${server.pid} on ${server.url}, writer pid ${writer.pid}, prober pid ${prober.pid}`);
      setups.push({ ...b, admin, writer, prober });
    }
    // Every child's cache ready (a first call answers once serveParent is up).
    await Promise.all(setups.map((w) => w.writer.call('store', { op: 'set', bytes: 1024 }, 15_000)));
    const busy = async (admin: Redis) => {
      let usec = 0;
      for (const [, name, total] of String(await admin.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=\d+,usec=(\d+)/gm)) {
        if (!/^(info|config|ping)/.test(name!)) usec += Number(total);
      }
      return usec;
    };
    // The longest any one command ran (SLOWLOG, every command logged): how long Redis kept every other client waiting at once.
    const longestCommand = async (admin: Redis) => {
      const log = (await admin.call('SLOWLOG', 'GET', '4096')) as Array<[number, number, number, string[]]>;
      return Math.max(0, ...log.filter((e) => !/^(slowlog|info|config|ping)/i.test(String(e[3][0]))).map((e) => e[2])) / 1000;
    };
    type Row = { busyMs: number[]; longestMs: number[]; pingMs: number[]; failed: number };
    const rows = new Map<string, Row>();
    for (let r = -1; r < rounds; r++) {
      for (const bytes of sizes) {
        for (const op of ['plain SET', 'set', 'getOrSet'] as const) {
          for (const w of setups) {
            await w.admin.config('RESETSTAT');
            await w.admin.call('SLOWLOG', 'RESET');
            await w.prober.call('start');
            const { stored } = await w.writer.call<{ stored: boolean }>('store', { op, bytes });
            await new Promise((done) => setTimeout(done, 10));
            const ping = await w.prober.call<number>('stop');
            const usec = await busy(w.admin);
            const longest = await longestCommand(w.admin);
            if (r < 0) continue; // warm-up
            const label = `${w.name} ${op} ${bytes}`;
            const row = rows.get(label) ?? { busyMs: [], longestMs: [], pingMs: [], failed: 0 };
            rows.set(label, row);
            row.busyMs.push(usec / 1000);
            row.longestMs.push(longest);
            row.pingMs.push(ping);
            if (!stored) row.failed++;
          }
        }
      }
    }
    console.log(`Per store: Redis busy (commandstats usec, all its commands), its longest single command (SLOWLOG), and another process's worst PING wait; medians of ${rounds} rounds`);
    for (const [label, row] of rows) {
      const [name, bytes] = [label.slice(0, label.indexOf(' ')), label.slice(label.lastIndexOf(' ') + 1)];
      const op = label.slice(name.length + 1, label.length - bytes.length - 1);
      const size = Number(bytes) >= 1 << 20 ? `${Number(bytes) / (1 << 20)} MiB` : `${Number(bytes) / 1024} KiB`;
      console.log(
        `${name.padEnd(8)} ${op.padEnd(9)} ${size.padStart(7)}  redis busy ${median(row.busyMs).toFixed(2).padStart(7)} ms   longest command ${median(row.longestMs).toFixed(2).padStart(7)} ms   worst PING ${median(row.pingMs).toFixed(2).padStart(7)} ms` +
          `${row.failed > 0 ? `   (${row.failed} not stored in L2)` : ''}   rounds busy ${row.busyMs.map((x) => x.toFixed(1)).join(' ')} | ping ${row.pingMs.map((x) => x.toFixed(1)).join(' ')}`,
      );
    }
  } finally {
    await cleanup();
  }
}
