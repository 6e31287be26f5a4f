// Random faults while instances invalidate (run on demand, not in the suite:
// `FUZZ_MS=60000 npx mocha test/integration/invalidation/faults-random.chaos.ts`).
// Three instances, each behind its own TCP proxy to one redis-server, two of
// them invalidating (tags and prefixes), readers on all three (middleware and
// front door, a table route and a stale-while-revalidate one), while links are
// cut, cut twice in a row, blackholed or slowed past l2.commandTimeout. The
// rule checked: an answer from the cache is never older than an invalidation
// that resolved before the request began on its own instance, or whose message
// (by the sender's sequence number) the answering instance had heard by then.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import express from 'express';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { front } from '../../../src/node.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const rnd = (n: number) => Math.floor(Math.random() * n);
const SEED_IDS = 4;
const FUZZ_MS = Number(process.env['FUZZ_MS'] ?? 40_000);


describe('invalidation under random link faults (three instances, two invalidating)', function () {
  this.timeout(FUZZ_MS + 60_000);
  const ctx = useRedisCaches({ prefix: 'chaos', flush: false, defaults: { routes: { '/api/movies': '1m', '/api/swr': { ttl: 300, staleWhileRevalidate: '1m' } } } });
  it('no answer from the cache is older than an invalidation its instance made or heard before the request', async () => {
    const db = new Map<string, number>();
    const proxies: TcpProxy[] = [];
    type X = { name: string; cache: TierCache; proxy: TcpProxy; app: express.Express; door: ReturnType<typeof front> };
    const mk = async (name: string): Promise<X> => {
      const proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 0, true);
      proxies.push(proxy);
      const cache = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 300, lockTimeout: rnd(2) === 0 ? 0 : 500 } });
      cache.on('error', () => undefined);
      const app = express();
      app.use(expressCache(cache, { tags: (req) => { const m = /^\/api\/(?:movies|swr)\/([^/?]+)/.exec(req.originalUrl); return m ? ['movie:' + m[1]] : undefined; } }));
      app.get(['/api/movies/:id', '/api/swr/:id'], async (req, res) => {
        const v = db.get(String(req.params.id)) ?? 0;
        await sleep(rnd(3) === 0 ? rnd(150) : 0);
        res.type('text/plain').send(`v=${v} by ${name}`);
      });
      return { name, cache, proxy, app, door: front(cache, app) };
    };
    const xs = [await mk('A'), await mk('B'), await mk('C')];
    const [a, b, c] = xs as [X, X, X];
    const seqOf = (x: X) => (x.cache.bus as unknown as { seq: number }).seq;
    const heardFrom = (x: X, from: X) => (from === x ? Infinity : ((x.cache.bus as unknown as { lastSeq: Map<string, number> }).lastSeq.get(from.cache.bus!.instanceId) ?? -1));
    // Per id: resolved invalidations: version, sender, sender's seq (Infinity when queued: only the sender is bound).
    const done = new Map<string, Array<{ version: number; from: X; seq: number }>>();
    const required = (x: X, id: string): number => {
      let min = 0;
      for (const inv of done.get(id) ?? []) if (inv.from === x || heardFrom(x, inv.from) >= inv.seq) min = Math.max(min, inv.version);
      return min;
    };
    const failures: string[] = [];
    let stop = false;
    let checked = 0;
    const reader = async (x: X) => {
      while (!stop) {
        const id = String(rnd(SEED_IDS));
        const need = required(x, id);
        const url = `/api/${rnd(2) === 0 ? 'movies' : 'swr'}/${id}`;
        const viaDoor = rnd(2) === 0;
        const res = await request(viaDoor ? x.door : x.app).get(url);
        const cs = String(res.headers['cache-status']);
        const v = Number(/^v=(\d+)/.exec(res.text)?.[1]);
        if (/hit|collapsed/.test(cs)) {
          checked++;
          if (v < need) failures.push(`${x.name}${viaDoor ? ' (front door)' : ''} ${url}: ${res.text} (${cs}) needed v>=${need}; health ${JSON.stringify(x.cache.health())}`);
        }
        await sleep(rnd(5));
      }
    };
    const faults = async (x: X, pause: number) => {
      while (!stop) {
        await sleep(pause + rnd(600));
        const kind = rnd(6);
        if (kind === 0) { x.proxy.cut(); await sleep(rnd(300)); x.proxy.heal(); }
        else if (kind === 1) { x.proxy.cut(); await sleep(rnd(5)); x.proxy.heal(); }
        else if (kind === 2) { x.proxy.cut('blackhole'); await sleep(rnd(3000)); x.proxy.heal(); }
        else if (kind === 3) { x.proxy.setDelay(rnd(500)); await sleep(rnd(2000)); x.proxy.setDelay(0); }
        else if (kind === 4) { x.proxy.cut(); await sleep(rnd(50)); x.proxy.heal(); await sleep(rnd(30)); x.proxy.cut(); await sleep(rnd(10)); x.proxy.heal(); }
      }
    };
    let invs = 0;
    let queued = 0;
    const busy = new Set<string>();
    const writer = async (x: X) => {
      while (!stop) {
        await sleep(100 + rnd(500));
        const id = String(rnd(SEED_IDS));
        if (busy.has(id)) continue;
        busy.add(id);
        const version = (db.get(id) ?? 0) + 1;
        db.set(id, version);
        const kind = rnd(3);
        const res = kind === 0 ? await x.cache.invalidateTags(['movie:' + id]) : kind === 1 ? await x.cache.invalidatePrefix(`/api/movies/${id}`).then(async (r1) => { const r2 = await x.cache.invalidatePrefix(`/api/swr/${id}`); return { delivered: r1.delivered && r2.delivered }; }) : await x.cache.invalidateTags(['movie:' + id, 'other:' + rnd(9)]);
        invs++;
        if (!res.delivered) queued++;
        (done.get(id) ?? done.set(id, []).get(id)!).push({ version, from: x, seq: res.delivered ? seqOf(x) : Infinity });
        busy.delete(id);
      }
    };
    const t0 = performance.now();
    const all = [reader(a), reader(b), reader(b), reader(c), reader(c), faults(a, 2500), faults(b, 100), faults(c, 1500), writer(a), writer(c)];
    await sleep(FUZZ_MS);
    stop = true;
    await Promise.all(all);
    console.log(`      ${Math.round(performance.now() - t0)} ms: ${invs} invalidations (${queued} queued), ${checked} cached answers checked, ${failures.length} stale`);
    for (const p of proxies) await p.close();
    if (failures.length > 0) (await import('node:fs')).writeFileSync(`/tmp/invalidation-chaos-${Date.now()}.txt`, failures.join('\n'));
    assert.deepEqual(failures.slice(0, 3), []);
  });
});
