// What storing and reading a large value costs Redis, and every other client
// of it: per store or read, Redis's busy time (INFO commandstats: the usec of every command the
// store ran, scripts included), the longest single command (SLOWLOG with
// every command logged: Redis runs one at a time, so every other client
// waits that long) and the worst wait of a PING that another process sends
// in a loop meanwhile (on a loaded machine mostly a measure of CPU contention:
// the writer encoding the value, the prober and Redis share the cores). Reads: a
// value set (or, for the HTTP hit, a response filled) by one instance, read by
// another (L1 off) that has not read the key before: a getOrSet() hit, a get(),
// a pull(), an HTTP L2 hit; a plain GET of the same bytes as the baseline. Only
// the read is measured. The writer (tiercache, two instances, L1 off)
// and the prober are child processes of their own; a throwaway
// redis-server per build, started here and stopped by its PID. Builds are compared in
// the same run, interleaved size by size and round by round.
//
//   node --import tsx bench/large-values.ts [--build name=dir ...] [--rounds 7] [--sizes 65536,1048576,5242880]
//     [--ops 'plain SET,set,getOrSet,plain GET,getOrSet hit,get,pull,HTTP hit']
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
  const root = isAbsolute(dir) ? dir : resolve(REPO_ROOT, dir);
  const { createCache } = (await import(pathToFileURL(resolve(root, 'index.js')).href)) as typeof import('../src/index.js');
  const { expressCache } = (await import(pathToFileURL(resolve(root, 'express.js')).href)) as typeof import('../src/express.js');
  const { default: express } = await import('express');
  const { default: request } = await import('supertest');
  const cache = createCache({ redis: options('redis', '')[0]!, namespace: 'bench-large', l1: false, routes: { '/api': '1m' } });
  // The reader: another instance of the namespace, which has read none of the keys before. What it reads is
  // written by a third, whose command timeout a loaded machine does not reach (the writing is not measured there).
  const reader = createCache({ redis: options('redis', '')[0]!, namespace: 'bench-large', l1: false, routes: { '/api': '1m' } });
  const preparer = createCache({ redis: options('redis', '')[0]!, namespace: 'bench-large', l1: false, routes: { '/api': '1m' }, l2: { commandTimeout: '5s' } });
  await Promise.all([cache.ready(), reader.ready(), preparer.ready()]);
  // The baseline: the same bytes by a plain SET, no tiercache.
  const plain = new Redis(options('redis', '')[0]!);
  let n = 0;
  let body = Buffer.alloc(0);
  const appOf = (c: typeof cache) => express().use(expressCache(c, { maxBodyBytes: 64 * 1024 * 1024 })).get('/api/blob', (_req, res) => void res.type('application/octet-stream').send(body));
  const [writerApp, readerApp] = [appOf(preparer), appOf(reader)];
  const valueOf = (bytes: number) => Buffer.alloc(Math.ceil((bytes * 3) / 4), n & 0xff).toString('base64').slice(0, bytes);
  serveParent({
    // Before a read (not measured): the value it reads, under a key of its own.
    prepare: async ({ op, bytes }: { op: string; bytes: number }) => {
      n++;
      if (op === 'plain GET') await plain.set(`plain${n}`, valueOf(bytes), 'PX', 60_000);
      else if (op === 'HTTP hit') {
        body = Buffer.from(valueOf(bytes));
        const res = await request(writerApp).get(`/api/blob?n=${n}`);
        if (!String(res.headers['cache-status']).includes('stored')) throw new Error(`not stored: ${res.headers['cache-status']}`);
      } else await preparer.set(`r${n}`, valueOf(bytes), { ttl: '1m' });
      return true;
    },
    // The read; `found` when it got the whole value from L2.
    read: async ({ op, bytes }: { op: string; bytes: number }) => {
      const errors = reader.stats().l2.errors;
      let got: unknown;
      if (op === 'plain GET') got = await plain.get(`plain${n}`);
      else if (op === 'getOrSet hit') got = await reader.getOrSet(`r${n}`, () => 'loaded');
      else if (op === 'get') got = await reader.get(`r${n}`);
      else if (op === 'pull') got = await reader.pull(`r${n}`);
      else {
        const res = await request(readerApp).get(`/api/blob?n=${n}`);
        got = res.headers['cache-status'] === 'tiercache; hit; detail=L2' ? 'x'.repeat(Number(res.headers['content-length'])) : undefined;
      }
      return { found: typeof got === 'string' && got.length === bytes && reader.stats().l2.errors === errors };
    },
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
      await Promise.all([cache.close(), reader.close(), preparer.close()]);
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
    const STORES = ['plain SET', 'set', 'getOrSet'];
    const ops = options('ops', 'plain SET,set,getOrSet,plain GET,getOrSet hit,get,pull,HTTP hit')[0]!.split(',');
    for (let r = -1; r < rounds; r++) {
      for (const bytes of sizes) {
        for (const op of ops) {
          for (const w of setups) {
            const store = STORES.includes(op);
            if (!store) await w.writer.call('prepare', { op, bytes }, 30_000);
            await w.admin.config('RESETSTAT');
            await w.admin.call('SLOWLOG', 'RESET');
            await w.prober.call('start');
            const stored = store ? (await w.writer.call<{ stored: boolean }>('store', { op, bytes })).stored : (await w.writer.call<{ found: boolean }>('read', { op, bytes })).found;
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
    console.log(`Per store or read: Redis busy (commandstats usec, all its commands), its longest single command (SLOWLOG), and another process's worst PING wait; medians of ${rounds} rounds`);
    for (const [label, row] of rows) {
      const [name, bytes] = [label.slice(0, label.indexOf(' ')), label.slice(label.lastIndexOf(' ') + 1)];
      const op = label.slice(name.length + 1, label.length - bytes.length - 1);
      const size = Number(bytes) >= 1 << 20 ? `${Number(bytes) / (1 << 20)} MiB` : `${Number(bytes) / 1024} KiB`;
      console.log(
        `${name.padEnd(8)} ${op.padEnd(12)} ${size.padStart(7)}  redis busy ${median(row.busyMs).toFixed(2).padStart(7)} ms   longest command ${median(row.longestMs).toFixed(2).padStart(7)} ms   worst PING ${median(row.pingMs).toFixed(2).padStart(7)} ms` +
          `${row.failed > 0 ? `   (${row.failed} ${STORES.includes(op) ? 'not stored in L2' : 'not read whole from L2'})` : ''}   rounds busy ${row.busyMs.map((x) => x.toFixed(1)).join(' ')} | ping ${row.pingMs.map((x) => x.toFixed(1)).join(' ')}`,
      );
    }
  } finally {
    await cleanup();
  }
}
