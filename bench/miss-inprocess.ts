// Miss + store cost without sockets or a load generator: drives each app's
// request handler with node's own IncomingMessage / ServerResponse on a socket
// that discards what it is given, every request a never-seen URL (the handler
// and cache set-up of bench/http/miss.mjs). What it gives that the wrk run
// cannot: two builds of tiercache compared in ONE process, batch by batch
// interleaved, so load from other work on the machine falls on both alike.
// For finding where a miss's time goes and whether a change helped; the
// figures that count against DESIGN.md section 6 come from bench/http/miss.mjs.
//
//   node --import tsx bench/miss-inprocess.ts [--build name=dir ...] [--kinds express,express-tc,koa,koa-tc] [--rounds 8] [--batch 4000]
//   (kind express-noop: Express with one app-wide middleware that only calls next();
//   express-tc2 / koa-tc2: with L2 as well, on $REDIS_URL; express-tc-front: the front door
//   before express-tc; express-route-tc: tiercache mounted on the route alone; node-raw: DESIGN.md's raw node:http answer;
//   koa-minimal: bench/http's floor for what any Koa cache that keeps its bytes costs, miss-koa-minimal.ts;
//   koa-floor: koa-minimal plus what DESIGN.md section 3 asks of every stored answer, miss-koa-floor.ts)
//   --cpu: CPU time per request instead of event-loop busy time (steadier while others load the machine)
//   --hit: every request the same URL instead (an L1 hit once the first has filled);
//   kind express-bare is then DESIGN.md's bare route (an Express route sending prebuilt bytes)
//   --warm N: requests in each case's warm-up batch (default: --batch); --pause MS: after the warm-up, print
//   `MEASURE <pid>` and wait MS ms before the rounds, so a profiler can start on the measured requests alone
//   (bench/front-instructions.sh turns callgrind on there)
//
// --build: a compiled tiercache (its dist/esm directory); default `src=../src` (the
// TypeScript sources through tsx). E.g. compare a branch against main:
//   (cd ../other && npm run build) && node --import tsx bench/miss-inprocess.ts --build main=dist/esm --build other=../other/dist/esm
// Prints per (kind, build) the median main-thread time per request (event
// loop busy time, performance.eventLoopUtilization; with --cpu the process's
// CPU time) and every round's value.
import { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import express from 'express';
import Koa from 'koa';
import { DiscardingSocket } from '../src/middleware/refresh.js';
import { BENCH_PATH, BODY, CONTENT_TYPE, catalogFor } from './http/body.mjs';
import { koaMandatedFloor, minimalKoaCache } from './http/miss-app.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

function option(name: string, fallback: string): string[] {
  const out: string[] = [];
  for (let i = 2; i < process.argv.length; i++) if (process.argv[i] === `--${name}`) out.push(process.argv[++i]!);
  return out.length > 0 ? out : [fallback];
}

/** A socket that takes every write and answers nothing (the one background refreshes use). */
const Sink = DiscardingSocket;
type Sink = DiscardingSocket;
const LOOPBACK = { remoteAddress: '127.0.0.1', remotePort: 40000, remoteFamily: 'IPv4', localAddress: '127.0.0.1', localPort: 8080, encrypted: undefined, authorized: undefined, servername: undefined, alpnProtocol: undefined };

let served = 0;
const hits = process.argv.includes('--hit');
/** One GET for a never-seen URL (with --hit: the same URL every time), on `socket`; resolves when the answer is finished. */
function request(socket: Sink, handler: Handler): Promise<void> {
  const req = new IncomingMessage(socket as unknown as Socket);
  req.method = 'GET';
  req.url = hits ? BENCH_PATH : `${BENCH_PATH}?miss=${++served}`;
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  req.httpVersion = '1.1';
  // Given as an object, not left to node's lazy getter over rawHeaders: node's server builds that object
  // before any handler runs (parserOnIncoming reads req.headers.expect of every HTTP/1.1 request, and
  // ServerResponse req.headers.te of an HTTP/1.0 one), so a handler never meets it unbuilt.
  req.headers = { host: '127.0.0.1:8080', 'user-agent': 'bench', accept: '*/*' };
  req.rawHeaders = ['Host', '127.0.0.1:8080', 'User-Agent', 'bench', 'Accept', '*/*'];
  req.complete = true;
  req.push(null);
  const res = new ServerResponse(req);
  res.assignSocket(socket as unknown as Socket);
  return new Promise((done) => {
    res.once('finish', () => {
      res.detachSocket(socket as unknown as Socket);
      done();
    });
    handler(req, res);
  });
}

interface Build {
  createCache(o: object): { ready(): Promise<void> };
  expressCache(cache: unknown, options?: object): express.RequestHandler;
  koaCache(cache: unknown): Koa.Middleware;
  front(cache: unknown, handler: Handler): Handler;
}

async function loadBuild(dir: string): Promise<Build> {
  const url = (file: string) => pathToFileURL(resolve(isAbsolute(dir) ? dir : resolve(import.meta.dirname, '..', dir), file)).href;
  const ext = dir.endsWith('src') ? 'ts' : 'js';
  const [index, ex, koa, node] = await Promise.all([import(url(`index.${ext}`)), import(url(`express.${ext}`)), import(url(`koa.${ext}`)), import(url(`node.${ext}`))]);
  return { createCache: index.createCache, expressCache: ex.expressCache, koaCache: koa.koaCache, front: node.front };
}

async function app(kind: string, build: Build): Promise<Handler> {
  // Kinds ending in -tc2 keep L2 too, on $REDIS_URL (a throwaway redis-server: the runs fill it).
  const redis = kind.endsWith('-tc2') ? process.env.REDIS_URL : false;
  if (redis === undefined) throw new Error(`${kind} needs REDIS_URL`);
  // BENCH_COMMAND_TIMEOUT: under valgrind a reply can take longer than the default 200 ms to be
  // handled, which the cache rightly counts as an outage: counting instructions needs the healthy path.
  const l2 = process.env.BENCH_COMMAND_TIMEOUT ? { l2: { commandTimeout: process.env.BENCH_COMMAND_TIMEOUT } } : {};
  const cache = build.createCache({ redis, namespace: 'bench-miss', routes: { '/api': '1m' }, ...l2 });
  await cache.ready();
  if (kind === 'node-raw') {
    const headers = ['content-type', CONTENT_TYPE, 'content-length', String(BODY.length)];
    return (_req, res) => {
      res.writeHead(200, headers);
      res.end(BODY);
    };
  }
  if (kind.startsWith('express')) {
    const a = express();
    if (kind.startsWith('express-tc')) a.use(build.expressCache(cache));
    // The cost of one more app-wide layer that does nothing: the floor under express-tc.
    if (kind === 'express-noop') a.use((_req, _res, next) => next());
    // tiercache mounted on the route alone (DESIGN.md's per-route hit with --hit).
    if (kind === 'express-route-tc') {
      a.get(BENCH_PATH, build.expressCache(cache, { ttl: '1m' }), (req, res) => {
        res.json(catalogFor(String(req.query['miss'])));
      });
      return a as unknown as Handler;
    }
    if (kind === 'express-bare') {
      a.get(BENCH_PATH, (_req, res) => {
        res.set('content-type', CONTENT_TYPE);
        res.end(BODY);
      });
      return a as unknown as Handler;
    }
    a.get(BENCH_PATH, (req, res) => {
      res.json(catalogFor(String(req.query['miss'])));
    });
    // The front door in front of the same app (with --hit: DESIGN.md's front-door hit).
    if (kind === 'express-tc-front') return build.front(cache, a as unknown as Handler);
    return a as unknown as Handler;
  }
  const a = new Koa();
  if (kind.startsWith('koa-tc')) a.use(build.koaCache(cache));
  // bench/http/scenarios/miss-koa-minimal.ts's floor: the URL keys a byte-bounded LRU of the serialized body.
  if (kind === 'koa-minimal') a.use(minimalKoaCache());
  // miss-koa-floor.ts: koa-minimal plus what DESIGN.md section 3 asks of every stored answer.
  if (kind === 'koa-floor') a.use(koaMandatedFloor());
  a.use((ctx) => {
    if (ctx.path === BENCH_PATH) ctx.body = catalogFor(String(ctx.query['miss']));
  });
  return a.callback();
}

const builds = option('build', 'src=src').map((spec) => {
  const at = spec.indexOf('=');
  return { name: spec.slice(0, at), dir: spec.slice(at + 1) };
});
const kinds = option('kinds', 'express,express-tc,koa,koa-tc')[0]!.split(',');
const rounds = Number(option('rounds', '8')[0]);
const batchSize = Number(option('batch', '4000')[0]);
const CONCURRENCY = 16;

const cases: Array<{ label: string; handler: Handler; us: number[] }> = [];
for (const b of builds) {
  const build = await loadBuild(b.dir);
  for (const kind of kinds) {
    // Without a cache the build plays no part: measure the baseline once.
    const cached = kind.includes('-tc');
    if (!cached && cases.some((c) => c.label === kind)) continue;
    cases.push({ label: cached ? `${kind}@${b.name}` : kind, handler: await app(kind, build), us: [] });
  }
}

async function batch(handler: Handler, size = batchSize): Promise<void> {
  let left = size;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      const socket = new Sink(LOOPBACK);
      while (left-- > 0) await request(socket, handler);
    }),
  );
}

// --cpu: the process's CPU time instead: on a machine others load, the time this process is
// descheduled falls in the event loop's busy time but not in its CPU time.
const cpu = process.argv.includes('--cpu');
const warm = Number(option('warm', String(batchSize))[0]);
for (const c of cases) await batch(c.handler, warm); // warm-up
const pause = option('pause', '')[0];
if (pause !== '') {
  console.log(`MEASURE ${process.pid}`);
  await new Promise((r) => setTimeout(r, Number(pause)));
}
for (let r = 0; r < rounds; r++) {
  for (const c of cases) {
    if (cpu) {
      const before = process.cpuUsage();
      await batch(c.handler);
      const used = process.cpuUsage(before);
      c.us.push((used.user + used.system) / batchSize);
      continue;
    }
    const before = performance.eventLoopUtilization();
    await batch(c.handler);
    c.us.push((performance.eventLoopUtilization(before).active * 1000) / batchSize);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
for (const c of cases) console.log(`${c.label.padEnd(24)} ${median(c.us).toFixed(1).padStart(7)} µs/req   rounds ${c.us.map((x) => x.toFixed(2)).join(' ')}`);
process.exit(0);
