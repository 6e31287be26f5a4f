// The workload of the Koa random-fault runs (faults-random-koa.chaos.ts on one
// redis-server, cluster-faults-random.chaos.ts on a Cluster): Koa apps over
// real HTTP servers, one per cache, every one of them invalidating (tags,
// prefixes, keys, and users through a PUT handler that awaits invalidateUser
// before it answers) while readers ask each (a table route, a slow one that
// coalesces, a stale-while-revalidate one, a stale-if-error one whose handler
// fails now and then, a user-scoped one; half the time revalidating with the
// ETag of a version seen before) and a data-API reader calls getOrSet. The faults are the caller's. Rules checked on every
// answer, the handler's included: its version is never older than an
// invalidation that resolved before the request began on its own instance, or
// whose message (by the sender's sequence number) the answering instance had
// heard by then, or that was delivered GRACE_MS (3.5 s) before (a 304 counts as the
// version revalidated); no answer is a 5xx but the app's own, and no getOrSet
// rejects.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type Koa from 'koa';
import type { TierCache } from '../../src/index.js';
import { koaCache } from '../../src/koa.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
export const rnd = (n: number) => Math.floor(Math.random() * n);
const IDS = 4;
/**
 * How long after a delivered invalidation resolved another instance may still serve what it invalidated without
 * having heard its message: the message's way on a slowed link, or a lost one's discovery (a gap; a route gone
 * silent, found out in two to three seconds by the PING or, on a Cluster, the heartbeat: measured 2.1-2.7 s and
 * 2.0-3.0 s, h191 and h192), and room for timers late on a loaded machine. GRACE_MS=Infinity leaves the rule out.
 */
const GRACE_MS = Number(process.env['GRACE_MS'] ?? 3_500);

/** The route table the workload needs on every cache. */
export const CHAOS_ROUTES = {
  '/api/movies': '1m',
  '/api/slow': '1m',
  '/api/me': '1m',
  '/api/swr': { ttl: 300, staleWhileRevalidate: '1m' },
  '/api/sie': { ttl: 300, staleIfError: '1m' },
} as const;
/** The workload's tagged routes (`/api/<route>/<id>`, tag movie:<id>): a table one, a stale-while-revalidate one, a slow one (waiters), a stale-if-error one whose handler fails a third of the time. */
const ROUTES = ['movies', 'swr', 'slow', 'sie'] as const;

export interface ChaosInstance {
  readonly name: string;
  readonly cache: TierCache;
  /** Koa 3 or Koa 2. */
  readonly Koa: typeof Koa;
}

export interface ChaosResult {
  readonly failures: string[];
  readonly summary: string;
  /** Answers the grace rule alone would fail that the outage fallback lets through (see `outage` in runKoaChaos). */
  readonly outage: string[];
}

/**
 * Runs the workload on `instances` for `ms`, with `faults` (each a loop the
 * caller writes, told to stop through `stopped()`; `now()` names the fault in
 * progress, for the failure lines).
 */
export async function runKoaChaos(
  instances: readonly ChaosInstance[],
  ms: number,
  faults: ReadonlyArray<(stopped: () => boolean) => Promise<void>>,
  now: () => string,
): Promise<ChaosResult> {
  const db = new Map<string, number>();
  const servers: Server[] = [];
  type X = ChaosInstance & { base: string };
  const seqOf = (cache: TierCache) => (cache.bus as unknown as { seq: number }).seq;
  const xs: X[] = [];
  for (const i of instances) {
    const { cache, name } = i;
    const app = new i.Koa();
    app.use(
      koaCache<Koa.Context>(cache, {
        tags: (c) => {
          const m = /^\/api\/(?:movies|swr|slow|sie)\/([^/?]+)/.exec(c.path);
          return m ? ['movie:' + m[1]] : undefined;
        },
        user: (c) => c.get('x-user') || undefined,
      }),
    );
    app.use(async (c) => {
      const m = /^\/api\/(movies|swr|slow|sie)\/([^/?]+)$/.exec(c.path);
      const u = c.get('x-user');
      if (c.method === 'PUT' && c.path === '/api/me') {
        const version = (db.get('u:' + u) ?? 0) + 1;
        db.set('u:' + u, version);
        const res = await cache.invalidateUser(u);
        c.body = { version, delivered: res.delivered, seq: seqOf(cache) };
        return;
      }
      if (c.method !== 'GET') return;
      let v: number;
      if (m) v = db.get(m[2]!) ?? 0;
      else if (c.path === '/api/me' && u) v = db.get('u:' + u) ?? 0;
      else return;
      await sleep(m?.[1] === 'slow' ? 50 + rnd(250) : rnd(3) === 0 ? rnd(150) : 0);
      if (m?.[1] === 'sie' && rnd(3) === 0) {
        // The app's own failure, for stale-if-error to stand in.
        c.status = 500;
        c.body = `failed by ${name}`;
        return;
      }
      c.set('etag', `"v${v}"`);
      c.type = 'text/plain';
      c.body = `v=${v} by ${name}`;
    });
    const server = createServer(app.callback());
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    xs.push({ ...i, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  }
  const heardFrom = (x: X, from: X) => (from === x ? Infinity : ((x.cache.bus as unknown as { lastSeq: Map<string, number> }).lastSeq.get(from.cache.bus!.instanceId) ?? -1));
  // Per db key: resolved invalidations: version, sender, sender's seq (Infinity when queued: only the sender is bound), when it resolved.
  const done = new Map<string, Array<{ version: number; from: X; seq: number; at: number }>>();
  /** The version `x` must answer at least for `id` now, and why (which invalidation binds it: its own, heard, or past the grace). */
  const required = (x: X, id: string): { min: number; why: string; rule: string } => {
    let min = 0;
    let why = '';
    let bound = '';
    const now = performance.now();
    for (const inv of done.get(id) ?? []) {
      if (inv.version <= min) continue;
      // Delivered and GRACE_MS old: the message came, or its loss was found out (a gap, a heartbeat), whatever became of it.
      const rule = inv.from === x ? 'own' : heardFrom(x, inv.from) >= inv.seq ? 'heard' : inv.seq !== Infinity && now - inv.at > GRACE_MS ? 'grace' : undefined;
      if (rule === undefined) continue;
      min = inv.version;
      bound = rule;
      why = `v${inv.version}: ${rule}, by ${inv.from.name} ${inv.seq === Infinity ? 'queued' : 'delivered'} ${Math.round(now - inv.at)} ms before`;
    }
    return { min, why, rule: bound };
  };
  const failures: string[] = [];
  // Older than the grace allows, from an instance cut off from Redis on both connections: what README's "When Redis
  // is down" lets through (stale-if-error standing in for a 5xx), bounded by l1.ttl. Since h204 the data API serves
  // no L1 value it cannot check: a getOrSet() here is a loader's own caller (its load ran through the invalidation).
  const outage: string[] = [];
  let stop = false;
  let checked = 0;
  let cachedAnswers = 0;
  let dataChecked = 0;
  // The last version a reader saw per path (readers of the first instance, and of the others).
  const lastSeen = new Map<string, number>();
  const lastSeenOther = new Map<string, number>();
  const reader = async (x: X) => {
    while (!stop) {
      const id = String(rnd(IDS));
      const kind = rnd(ROUTES.length + 1);
      const user = kind === ROUTES.length;
      const path = user ? '/api/me' : `/api/${ROUTES[kind]}/${id}`;
      const dbKey = user ? 'u:' + id : id;
      const need = required(x, dbKey);
      const busAtStart = x.cache.health().bus;
      const headers: Record<string, string> = user ? { 'x-user': id } : {};
      // Half the time revalidating a version this reader had: a 304 vouches for it.
      const had = rnd(2) === 0 ? (x === xs[0] ? lastSeen : lastSeenOther).get(path + id) : undefined;
      if (had !== undefined) headers['if-none-match'] = `"v${had}"`;
      let status: number;
      let text: string;
      let cs: string;
      try {
        const res = await fetch(x.base + path, { headers });
        status = res.status;
        text = await res.text();
        cs = res.headers.get('cache-status') ?? '';
        if (status === 304) text = `v=${had} (304)`;
      } catch (err) {
        failures.push(`${x.name} ${path}: request failed: ${(err as Error).message}`);
        continue;
      }
      checked++;
      if (/hit|detail=waited|collapsed/.test(cs)) cachedAnswers++;
      const v = Number(/^v=(\d+)/.exec(text)?.[1]);
      if (Number.isFinite(v)) (x === xs[0] ? lastSeen : lastSeenOther).set(path + id, v);
      // The app's own failure (no stale entry stood in) says no version.
      if (text.startsWith('failed by')) continue;
      if (status >= 500) failures.push(`${x.name} ${path}: ${status} ${text} (${cs}) during ${now()}`);
      else if (!(v >= need.min) && need.rule === 'grace' && path.startsWith('/api/sie/') && /ttl=-/.test(cs) && (busAtStart !== 'ok' || x.cache.health().bus !== 'ok')) outage.push(`${x.name} ${path}: ${text} (${cs}) needed ${need.why}`);
      else if (!(v >= need.min)) failures.push(`${x.name} ${path}: ${text} (${cs}) needed ${need.why}; during ${now()}; health ${JSON.stringify(x.cache.health())}`);
      await sleep(rnd(5));
    }
  };
  // The data API: getOrSet of `d:<id>` (tagged movie:<id>), whose loader reads the db.
  const dataReader = async (x: X) => {
    while (!stop) {
      const id = String(rnd(IDS));
      const need = required(x, id);
      const busAtStart = x.cache.health().bus;
      try {
        const got = await x.cache.getOrSet(`d:${id}`, async () => {
          const v = db.get(id) ?? 0;
          await sleep(rnd(3) === 0 ? rnd(150) : 0);
          return { v, by: x.name };
        }, { ttl: '1m', tags: ['movie:' + id] });
        dataChecked++;
        if (!(got.v >= need.min) && need.rule === 'grace' && (busAtStart !== 'ok' || x.cache.health().bus !== 'ok')) outage.push(`${x.name} getOrSet d:${id}: v=${got.v} by ${got.by} needed ${need.why}`);
        else if (!(got.v >= need.min)) failures.push(`${x.name} getOrSet d:${id}: v=${got.v} by ${got.by} needed ${need.why}; during ${now()}; health ${JSON.stringify(x.cache.health())}`);
      } catch (err) {
        failures.push(`${x.name} getOrSet d:${id} rejected: ${(err as Error).message} during ${now()}`);
      }
      await sleep(rnd(10));
    }
  };
  let invs = 0;
  let queued = 0;
  const busy = new Set<string>();
  const record = (dbKey: string, version: number, x: X, delivered: boolean, seq: number) => {
    invs++;
    if (!delivered) queued++;
    (done.get(dbKey) ?? done.set(dbKey, []).get(dbKey)!).push({ version, from: x, seq: delivered ? seq : Infinity, at: performance.now() });
  };
  const writer = async (x: X) => {
    while (!stop) {
      await sleep(100 + rnd(500));
      const id = String(rnd(IDS));
      const kind = rnd(5);
      const dbKey = kind === 4 ? 'u:' + id : id;
      if (busy.has(dbKey)) continue;
      busy.add(dbKey);
      try {
        if (kind === 4) {
          // A write handler that awaits invalidateUser before it answers: visible everywhere once the answer is in.
          const res = await fetch(x.base + '/api/me', { method: 'PUT', headers: { 'x-user': id } });
          const body = (await res.json()) as { version: number; delivered: boolean; seq: number };
          record(dbKey, body.version, x, body.delivered, body.seq);
          continue;
        }
        const version = (db.get(id) ?? 0) + 1;
        db.set(id, version);
        let delivered: boolean;
        if (kind === 0) delivered = (await x.cache.invalidateTags(['movie:' + id])).delivered;
        else if (kind === 1) {
          const rs = await Promise.all(ROUTES.map((r) => x.cache.invalidatePrefix(`/api/${r}/${id}`)));
          // The data API's value has no path: its tag goes with them.
          rs.push(await x.cache.invalidateTags(['movie:' + id]));
          delivered = rs.every((r) => r.delivered);
        } else if (kind === 2) delivered = (await x.cache.invalidateTags(['movie:' + id, 'other:' + rnd(9)])).delivered;
        else {
          // By key: the three keys of the id's routes as the middleware built them, and the data key.
          const keys = ROUTES.map((r) => x.cache.keyFor({ method: 'GET', url: `/api/${r}/${id}`, headers: {} }));
          const rs = await Promise.all([...keys.map((k) => x.cache.invalidateKey(k)), x.cache.delete(`d:${id}`)]);
          delivered = rs.every((r) => r.delivered);
        }
        record(dbKey, version, x, delivered, seqOf(x.cache));
      } catch (err) {
        failures.push(`${x.name} writer: ${(err as Error).message}`);
      } finally {
        busy.delete(dbKey);
      }
    }
  };
  const t0 = performance.now();
  const all = xs.flatMap((x) => [reader(x), reader(x), dataReader(x), writer(x)]);
  const stopped = () => stop;
  const faulting = faults.map((f) => f(stopped));
  await sleep(ms);
  stop = true;
  await Promise.all([...all, ...faulting]);
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
  return {
    failures,
    outage,
    summary: `${Math.round(performance.now() - t0)} ms: ${invs} invalidations (${queued} queued), ${checked} HTTP answers checked (${cachedAnswers} from the cache), ${dataChecked} getOrSet, ${outage.length} answers the outage fallback let through past the grace, ${failures.length} failures`,
  };
}

/** Link faults on one proxy-like link, until stopped: cut, cut briefly, blackholed, slowed, cut twice, stalled. */
export async function linkFaults(
  link: { cut(mode?: 'refuse' | 'blackhole'): void; heal(): void; setDelay(ms: number): void },
  pause: number,
  stopped: () => boolean,
): Promise<void> {
  while (!stopped()) {
    await sleep(pause + rnd(600));
    const kind = rnd(6);
    if (kind === 0) { link.cut(); await sleep(rnd(300)); link.heal(); }
    else if (kind === 1) { link.cut(); await sleep(rnd(5)); link.heal(); }
    else if (kind === 2) { link.cut('blackhole'); await sleep(rnd(3000)); link.heal(); }
    else if (kind === 3) { link.setDelay(rnd(500)); await sleep(rnd(2000)); link.setDelay(0); }
    else if (kind === 4) { link.cut(); await sleep(rnd(50)); link.heal(); await sleep(rnd(30)); link.cut(); await sleep(rnd(10)); link.heal(); }
    // A stall: the connections stay up, silent for seconds (a congested route), then everything arrives.
    else if (rnd(2) === 0) { link.setDelay(1000 + rnd(5000)); await sleep(rnd(5000)); link.setDelay(0); }
  }
}
