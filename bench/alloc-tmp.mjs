// Allocation sampling over a steady run, collected objects included: bytes allocated per request by function.
// node --import tsx alloc.mjs <dist dir> <kind: koa|koa-tc> [n]
import { Session } from 'node:inspector/promises';
import { IncomingMessage, ServerResponse } from 'node:http';
import Koa from 'koa';
const { DiscardingSocket } = await import('/work/main/src/middleware/refresh.ts');
const { BENCH_PATH, catalogFor } = await import('/work/main/bench/http/body.mjs');
const [dir, kind, nArg] = process.argv.slice(2);
const { createCache } = await import(`${dir}/index.js`);
const { koaCache } = await import(`${dir}/koa.js`);
const cache = createCache({ redis: false, namespace: 'bench-miss', routes: { '/api': '1m' } });
await cache.ready();
const a = new Koa();
if (kind === 'koa-tc') a.use(koaCache(cache));
a.use((ctx) => { if (ctx.path === BENCH_PATH) ctx.body = catalogFor(String(ctx.query['miss'])); });
const handler = a.callback();
const LOOPBACK = { remoteAddress: '127.0.0.1', remotePort: 40000, remoteFamily: 'IPv4', localAddress: '127.0.0.1', localPort: 8080 };
let served = 0;
function request(socket) {
  const req = new IncomingMessage(socket);
  req.method = 'GET'; req.url = `${BENCH_PATH}?miss=${++served}`;
  req.httpVersionMajor = 1; req.httpVersionMinor = 1; req.httpVersion = '1.1';
  req.headers = { host: '127.0.0.1:8080', 'user-agent': 'bench', accept: '*/*' };
  req.rawHeaders = ['Host', '127.0.0.1:8080', 'User-Agent', 'bench', 'Accept', '*/*'];
  req.complete = true; req.push(null);
  const res = new ServerResponse(req); res.assignSocket(socket);
  return new Promise((done) => { res.once('finish', () => { res.detachSocket(socket); done(); }); handler(req, res); });
}
async function run(n) { let left = n; await Promise.all(Array.from({ length: 16 }, async () => { const s = new DiscardingSocket(LOOPBACK); while (left-- > 0) await request(s); })); }
await run(15000);
const N = Number(nArg ?? 20000);
const session = new Session(); session.connect();
await session.post('HeapProfiler.startSampling', { samplingInterval: 64, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
await run(N);
const { profile } = await session.post('HeapProfiler.stopSampling');
const self = new Map(); let total = 0;
(function walk(node) {
  const f = node.callFrame; const s = node.selfSize;
  if (s > 0) { const k = `${f.functionName || '(anon)'} ${f.url.replace(/^.*\/(esm|c[0-9])\//, 'tc/').replace(/^.*node_modules\//, '')}:${f.lineNumber + 1}`; self.set(k, (self.get(k) ?? 0) + s); total += s; }
  for (const c of node.children) walk(c);
})(profile.head);
console.log(`${kind}: total ${(total / N).toFixed(0)} B/request sampled`);
for (const [k, b] of [...self].sort((x, y) => y[1] - x[1]).slice(0, 400)) console.log(`${(b / N).toFixed(0).padStart(6)}  ${k}`);
process.exit(0);
