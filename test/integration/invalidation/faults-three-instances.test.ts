// Invalidation across instances while links to Redis fail, one instance at a
// time: each TierCache (and each app process) reaches one real redis-server
// through its own TCP proxy, so a test can cut, slow or restore one link while
// the others keep theirs. What it holds: after an invalidation resolves, no
// instance that has heard it (or that could ask Redis) serves the old answer,
// from L1 or L2; a fill that was running meanwhile is stored nowhere; Redis
// restarted, flushed or slow loses no invalidation. Lines starting with
// spaces on stdout are measurements (how long until the others stopped).
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import express from 'express';
import request from 'supertest';
import type { TierCache, CacheOptions } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The "database": a version per movie and per user; handlers answer from it. */
const db = { movie: new Map<string, number>(), user: new Map<string, number>() };
let slowMs = 0;
let onSlow: (() => void) | undefined;

interface Inst {
  name: string;
  cache: TierCache;
  proxy: TcpProxy;
  get(url: string, headers?: Record<string, string>): Promise<{ body: string; cs: string }>;
}

function app(name: string, cache: TierCache) {
  const a = express();
  a.use(expressCache(cache, { tags: (req) => { const m = /^\/api\/movies\/([^/?]+)/.exec(req.originalUrl); return m ? ['movie:' + m[1]] : undefined; } }));
  const userRoute = expressCache(cache, { user: (req) => req.get('x-user') });
  const answer = async (req: express.Request, res: express.Response) => {
    const m = /\/api\/movies\/([^/?]+)/.exec(req.originalUrl);
    const u = req.get('x-user');
    const v = m ? db.movie.get(m[1]!) ?? 0 : db.user.get(u ?? '') ?? 0;
    if (slowMs > 0 && req.originalUrl.includes('slow')) {
      onSlow?.();
      await sleep(slowMs);
    }
    res.type('text/plain').send(`v=${v} ${req.originalUrl} u=${u ?? '-'} by ${name}`);
  };
  a.get(['/api/me', '/api/orders', '/api/prefs/x'], userRoute, answer);
  a.get(['/api/movies/:id', '/api/movies/:id/slow'], answer);
  return a;
}

/** Movie `id` at version 1; a GET of its slow route on `on` (handler `ms` long), once that handler has started. */
async function startSlowFill<T>(on: { get(url: string): Promise<T> }, id: string, ms: number): Promise<{ reply: Promise<T> }> {
  db.movie.set(id, 1);
  slowMs = ms;
  const started = new Promise<void>((r) => (onSlow = r));
  const pending = on.get(`/api/movies/${id}/slow`);
  await started;
  onSlow = undefined;
  return { reply: pending };
}

/**
 * `inst(name)`: a cache on the describe's redis-server through a TCP proxy of its own (closed after the test),
 * behind app(); a healthy link's commands get 3 s (a loaded machine), no fill lock (one taken before a cut
 * would hold the others up for its lifetime).
 */
function useProxiedInstances(ctx: ReturnType<typeof useRedisCaches>): (name: string, options?: CacheOptions) => Promise<Inst> {
  const proxies: TcpProxy[] = [];
  afterEach(async () => {
    for (const p of proxies.splice(0)) await p.close();
  });
  return async (name, options = {}) => {
    const proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 0, true);
    proxies.push(proxy);
    const cache = await ctx.open({ redis: proxy.url, l2: { commandTimeout: '3s', lockTimeout: 0 }, ...options });
    cache.on('error', () => undefined);
    const a = app(name, cache);
    return {
      name,
      cache,
      proxy,
      async get(url, headers = {}) {
        const res = await request(a).get(url).set(headers);
        return { body: res.text, cs: String(res.headers['cache-status']) };
      },
    };
  };
}

describe('invalidation while one instance\'s link to Redis is cut (three instances, a redis-server per test)', function () {
  this.timeout(60_000);
  const ctx = useRedisCaches({ prefix: 'fcut', serverPerTest: true, flush: false, defaults: { routes: { '/api/movies': '1m' } } });
  const inst = useProxiedInstances(ctx);

  /** Requests `url` on each instance; fails if any answers with a body of version below `min`. */
  async function noneOld(insts: Inst[], url: string, min: number, what: string, headers?: Record<string, string>) {
    for (const i of insts) {
      const r = await i.get(url, headers);
      const v = Number(/^v=(\d+)/.exec(r.body)?.[1]);
      assert.ok(v >= min, `${what}: ${i.name} served ${r.body} (${r.cs}); health ${JSON.stringify(i.cache.health())}`);
    }
  }

  async function warm(insts: Inst[], url: string, headers?: Record<string, string>) {
    for (const i of insts) {
      await i.get(url, headers);
      await i.get(url, headers);
    }
    for (const i of insts) {
      const r = await i.get(url, headers);
      assert.match(r.cs, /hit; detail=L1/, `${i.name} warm ${url}`);
    }
  }

  const busOk = async (i: Inst, ms = 5000) => {
    const end = performance.now() + ms;
    while (i.cache.health().bus !== 'ok' || i.cache.health().l2 !== 'ok') {
      if (performance.now() > end) assert.fail(`${i.name} bus not back: ${JSON.stringify(i.cache.health())}`);
      await sleep(2);
    }
  };

  it('an instance cut off while another invalidates serves no invalidated answer: during the cut, right after the heal, or once its bus is back', async () => {
    const [a, b, c] = [await inst('A'), await inst('B'), await inst('C')];
    for (let round = 0; round < 5; round++) {
      const id = String(round);
      db.movie.set(id, round * 10);
      await warm([a, b, c], `/api/movies/${id}`);
      b.proxy.cut();
      await sleep(round * 3);
      db.movie.set(id, round * 10 + 1);
      const res = await a.cache.invalidateTags(['movie:' + id]);
      assert.deepEqual(res, { delivered: true });
      await noneOld([a], `/api/movies/${id}`, round * 10 + 1, 'A after its invalidation');
      await sleep(5);
      await noneOld([c], `/api/movies/${id}`, round * 10 + 1, 'C 5ms after');
      await noneOld([b], `/api/movies/${id}`, round * 10 + 1, 'B during cut');
      b.proxy.heal();
      for (let k = 0; k < 20; k++) {
        await noneOld([b], `/api/movies/${id}`, round * 10 + 1, `B after heal #${k}`);
      }
      await busOk(b);
      await noneOld([a, b, c], `/api/movies/${id}`, round * 10 + 1, 'after bus ok');
    }
  });

  it('cuts of a few milliseconds, some twice in a row during the resubscribe, lose no invalidation for the listener', async () => {
    const [a, b] = [await inst('A'), await inst('B')];
    for (let round = 0; round < 14; round++) {
      const id = 's' + round;
      db.movie.set(id, round * 10);
      await warm([a, b], `/api/movies/${id}`);
      b.proxy.cut();
      const inv = a.cache.invalidateTags(['movie:' + id]);
      db.movie.set(id, round * 10 + 1);
      await sleep(round % 5);
      b.proxy.heal();
      assert.deepEqual(await inv, { delivered: true });
      // B reconnecting: cut again at a random moment of its resubscribe
      if (round % 2 === 0) {
        await sleep(round % 7);
        b.proxy.cut();
        await sleep(1);
        b.proxy.heal();
      }
      for (let k = 0; k < 10; k++) await noneOld([b], `/api/movies/${id}`, round * 10 + 1, `B after heal #${k} round ${round}`);
      await busOk(b);
      await noneOld([a, b], `/api/movies/${id}`, round * 10 + 1, 'after bus ok');
    }
  });

  it('invalidateUser queued on a cut instance (three routes of the user): it never serves them, and the others stop once its link is back', async () => {
    const [a, b, c] = [await inst('A'), await inst('B'), await inst('C')];
    db.user.set('u1', 1);
    const u1 = { 'x-user': 'u1' };
    await warm([a, b, c], '/api/me', u1);
    await warm([a, b, c], '/api/orders', u1);
    await warm([a, b, c], '/api/prefs/x', u1);
    a.proxy.cut();
    await sleep(20);
    db.user.set('u1', 2);
    const res = await a.cache.invalidateUser('u1');
    assert.deepEqual(res, { delivered: false });
    for (const url of ['/api/me', '/api/orders', '/api/prefs/x']) await noneOld([a], url, 2, 'A after its own queued invalidation', u1);
    a.proxy.heal();
    const t0 = performance.now();
    // wait until B stops serving old on /api/me
    for (;;) {
      const r = await b.get('/api/me', u1);
      if (!r.body.startsWith('v=1')) break;
      if (performance.now() - t0 > 5000) assert.fail('B still old 5s after heal');
      await sleep(2);
    }
    console.log(`      B stopped serving old ${Math.round(performance.now() - t0)} ms after the heal`);
    await sleep(20);
    for (const url of ['/api/me', '/api/orders', '/api/prefs/x']) await noneOld([a, b, c], url, 2, 'after the replay', u1);
  });

  it('an HTTP fill running on B when A invalidates its tag is served by nobody afterwards: L2 up, B cut through the store, B cut and healed before the store', async () => {
    const [a, b, c] = [await inst('A'), await inst('B'), await inst('C')];
    for (const mode of ['up', 'cut-during', 'cut-heal-during', 'cut-at-store']) {
      for (let round = 0; round < 3; round++) {
        const id = `${mode}-${round}`;
        const { reply: pending } = await startSlowFill(b, id, 300);
        if (mode !== 'up') b.proxy.cut();
        db.movie.set(id, 2);
        const res = await a.cache.invalidateTags(['movie:' + id]);
        assert.deepEqual(res, { delivered: true });
        if (mode === 'cut-heal-during') {
          await sleep(50);
          b.proxy.heal();
        }
        if (mode === 'cut-at-store') {
          await sleep(250);
          b.proxy.heal();
        }
        const old = await pending;
        assert.match(old.body, /^v=1/);
        if (mode === 'cut-during') {
          await sleep(100);
          await noneOld([b], `/api/movies/${id}/slow`, 2, `${mode}: B while cut`);
          b.proxy.heal();
        }
        slowMs = 0;
        for (let k = 0; k < 5; k++) await noneOld([b, a, c], `/api/movies/${id}/slow`, 2, `${mode} ${round} #${k}`);
        await busOk(b);
        await noneOld([b, a, c], `/api/movies/${id}/slow`, 2, `${mode} ${round} after bus ok`);
      }
    }
  });

  it("SHUTDOWN NOSAVE and a new redis-server between the fill and invalidateUser (or while it is down): no instance serves the user's old answers", async () => {
    const [a, b, c] = [await inst('A'), await inst('B'), await inst('C')];
    const u = { 'x-user': 'u7' };
    for (const mode of ['after-restart', 'while-down']) {
      db.user.set('u7', (db.user.get('u7') ?? 0) + 1);
      const before = db.user.get('u7')!;
      for (const url of ['/api/me', '/api/orders', '/api/prefs/x']) await warm([a, b, c], url, u);
      await ctx.admin.shutdown('NOSAVE').catch(() => undefined);
      await ctx.redis.exited();
      db.user.set('u7', before + 1);
      let res;
      if (mode === 'while-down') {
        res = await a.cache.invalidateUser('u7');
        for (const url of ['/api/me', '/api/orders', '/api/prefs/x']) await noneOld([a, b, c], url, before + 1, 'while Redis is down', u);
        await ctx.redis.restart();
      } else {
        await ctx.redis.restart();
        res = await a.cache.invalidateUser('u7');
      }
      console.log(`      ${mode}: delivered ${res.delivered}`);
      for (let k = 0; k < 5; k++) for (const url of ['/api/me', '/api/orders', '/api/prefs/x']) await noneOld([a, b, c], url, before + 1, `${mode} #${k}`, u);
      for (const i of [a, b, c]) await busOk(i);
      for (const url of ['/api/me', '/api/orders', '/api/prefs/x']) await noneOld([a, b, c], url, before + 1, `${mode} after buses ok`, u);
    }
  });

  it("a getOrSet() loader running on B when A invalidates its tag: nobody reads its value afterwards, B while cut off included (L2 up, B cut, B cut and healed)", async () => {
    const [a, b, c] = [await inst('A'), await inst('B'), await inst('C')];
    for (const mode of ['up', 'cut-during', 'cut-heal-during']) {
      for (let round = 0; round < 3; round++) {
        const key = `k-${mode}-${round}`;
        const tag = `t-${mode}-${round}`;
        let v = 1;
        let started!: () => void;
        const isStarted = new Promise<void>((r) => (started = r));
        const fill = b.cache.getOrSet(key, async () => {
          const mine = v;
          started();
          await sleep(300);
          return `v=${mine}`;
        }, { ttl: '1m', tags: [tag] });
        await isStarted;
        if (mode !== 'up') b.proxy.cut();
        v = 2;
        assert.deepEqual(await a.cache.invalidateTags([tag]), { delivered: true });
        if (mode === 'cut-heal-during') {
          await sleep(50);
          b.proxy.heal();
        }
        assert.equal(await fill, 'v=1');
        if (mode === 'cut-during') {
          // Cut off, B cannot check the loader's value in its L1: it loads again (README, When Redis is down).
          const got = await b.cache.getOrSet(key, async () => `v=${v}`, { ttl: '1m', tags: [tag] });
          assert.equal(got, 'v=2', `${mode} ${round}: B got ${String(got)} while cut off (${JSON.stringify(b.cache.health())})`);
          b.proxy.heal();
          await busOk(b);
        }
        for (const i of [b, a, c]) {
          for (let k = 0; k < 3; k++) {
            const got = await i.cache.getOrSet(key, async () => `v=${v}`, { ttl: '1m', tags: [tag] });
            assert.equal(got, 'v=2', `${mode} ${round}: ${i.name} got ${String(got)} (${JSON.stringify(i.cache.health())})`);
          }
        }
        await busOk(b);
        for (const i of [b, a, c]) assert.equal(await i.cache.get(key), 'v=2', `${i.name} get after bus ok`);
      }
    }
  });
});

describe('invalidation during a fill that others wait on', function () {
  this.timeout(60_000);
  const ctx = useRedisCaches({ prefix: 'fwait', flush: false, defaults: { routes: { '/api/movies': '1m' } } });
  it('requests waiting on a fill (on its instance, and on another through the fill lock) do not get an answer invalidated while it ran', async () => {
    const mk = async (name: string) => {
      const cache = await ctx.open({ l2: { commandTimeout: '3s' } });
      const a = app(name, cache);
      return { name, cache, get: async (url: string) => { const r = await request(a).get(url); return { body: r.text, cs: String(r.headers['cache-status']) }; } };
    };
    const [a, b, c] = [await mk('A'), await mk('B'), await mk('C')];
    for (let round = 0; round < 3; round++) {
      const id = 'w' + round;
      const { reply: p1 } = await startSlowFill(b, id, 400);
      const p2 = b.get(`/api/movies/${id}/slow`);
      const p3 = c.get(`/api/movies/${id}/slow`);
      await sleep(50);
      db.movie.set(id, 2);
      assert.deepEqual(await a.cache.invalidateTags(['movie:' + id]), { delivered: true });
      const [r1, r2, r3] = await Promise.all([p1, p2, p3]);
      slowMs = 0;
      console.log(`      r1 ${r1.body} (${r1.cs})\n      r2 ${r2.body} (${r2.cs})\n      r3 ${r3.body} (${r3.cs})`);
      for (const i of [a, b, c]) {
        const r = await i.get(`/api/movies/${id}/slow`);
        assert.match(r.body, /^v=2/, `${i.name} after: ${r.body} ${r.cs}`);
      }
    }
  });
});

import { startApp, stopAllApps, START_MS } from '../../support/app-process.js';

describe('invalidation across two app processes, each behind its own proxy', function () {
  this.timeout(120_000);
  const ctx = useRedisCaches({ prefix: 'fproc', serverPerTest: true, flush: false });
  after(stopAllApps);
  it('two processes: the listener cut, the invalidator cut, Redis killed and restarted, FLUSHALL: no old answer after the invalidation', async function () {
    this.timeout(START_MS * 2 + 60_000);
    const pa = await startTcpProxy(ctx.redis.port, '127.0.0.1', 0, true);
    const pb = await startTcpProxy(ctx.redis.port, '127.0.0.1', 0, true);
    try {
      const env = { NAMESPACE: ctx.ns, COMMAND_TIMEOUT: '3000' };
      const [A, B] = await Promise.all([startApp('A', { ...env, REDIS_URL: pa.url }), startApp('B', { ...env, REDIS_URL: pb.url })]);
      // Both up before warming: after a cut, an instance's L2 stays down for its breaker's cooldown and its bus
      // reconnects, and until then it neither fills L1 from the other's entry nor serves an L1 hit it cannot vouch for.
      const bothUp = async () => {
        const t0 = performance.now();
        for (;;) {
          const states = await Promise.all([A.health(), B.health()]);
          if (states.every((s) => s.health.l2 === 'ok' && s.health.bus === 'ok')) return;
          if (performance.now() - t0 > 15_000) assert.fail(`not both up within 15 s: ${JSON.stringify(states)}`);
          await sleep(20);
        }
      };
      const warm2 = async (url: string) => {
        await bothUp();
        const first = await A.get(url);
        await A.get(url);
        await B.get(url);
        const hit = await B.get(url);
        assert.match(String(hit.cacheStatus), /detail=L1/);
        assert.equal(hit.json.n, first.json.n);
        return first.json;
      };
      const inv = async (app: typeof A, query: Record<string, string>) => {
        const res = await fetch(`http://127.0.0.1:${app.port}/admin/invalidate?${new URLSearchParams(query)}`, { method: 'POST' });
        assert.equal(res.status, 204);
        return res.headers.get('x-delivered');
      };
      const neverOld = async (app: typeof A, url: string, old: { pid: number; n: number }, what: string, times = 5) => {
        for (let k = 0; k < times; k++) {
          const r = await app.get(url);
          assert.ok(!(r.json.pid === old.pid && r.json.n === old.n), `${what}: ${app.name} served old ${r.body} (${r.cacheStatus}) ${JSON.stringify(await app.health())}`);
        }
      };
      // 1. B cut, A invalidates, delivered true
      let old = await warm2('/api/movies/1');
      pb.cut();
      await sleep(30);
      assert.equal(await inv(A, { tag: 'movie:1' }), 'true');
      await neverOld(A, '/api/movies/1', old, 'A after');
      await neverOld(B, '/api/movies/1', old, 'B during cut');
      pb.heal();
      await neverOld(B, '/api/movies/1', old, 'B after heal', 20);
      // 2. A cut, delivered false, heal: B stops
      old = await warm2('/api/movies/2');
      pa.cut();
      await sleep(30);
      assert.equal(await inv(A, { tag: 'movie:2' }), 'false');
      await neverOld(A, '/api/movies/2', old, 'A after its queued invalidation');
      pa.heal();
      const t0 = performance.now();
      for (;;) {
        const r = await B.get('/api/movies/2');
        if (r.json.n !== old.n || r.json.pid !== old.pid) break;
        if (performance.now() - t0 > 10_000) assert.fail('B old 10 s after heal');
        await sleep(5);
      }
      console.log(`      process B stopped serving old ${Math.round(performance.now() - t0)} ms after A's heal`);
      // 3. Redis restarted (SIGKILL) between the fill and the invalidation
      old = await warm2('/api/movies/3');
      await ctx.redis.restart();
      const d = await inv(A, { tag: 'movie:3' });
      console.log(`      invalidation right after restart: delivered=${d}`);
      await neverOld(A, '/api/movies/3', old, 'A after restart');
      await neverOld(B, '/api/movies/3', old, 'B after restart', 20);
      // 4. FLUSHALL then invalidation
      old = await warm2('/api/movies/4');
      await ctx.admin.flushall();
      assert.equal(await inv(A, { tag: 'movie:4' }), 'true');
      await sleep(20);
      await neverOld(A, '/api/movies/4', old, 'A after flushall');
      await neverOld(B, '/api/movies/4', old, 'B after flushall+inv', 10);
    } finally {
      await stopAllApps();
      await pa.close();
      await pb.close();
    }
  });
});

describe('invalidation while a link resubscribes, is slow, or Redis is flushed', function () {
  this.timeout(120_000);
  const ctx = useRedisCaches({ prefix: 'fslow', flush: false, defaults: { routes: { '/api/movies': '1m' } } });
  const inst = useProxiedInstances(ctx);
  const version = (body: string) => Number(/^v=(\d+)/.exec(body)?.[1]);

  it('a link cut again while its SUBSCRIBE (or the reply) is in flight: no invalidated answer, and the resubscribed bus hears the next one', async () => {
    const [a, b] = [await inst('A'), await inst('B')];
    for (let round = 0; round < 6; round++) {
      const id = 'r' + round;
      db.movie.set(id, 1);
      const seen: string[] = [];
      for (const i of [a, b]) { seen.push((await i.get(`/api/movies/${id}`)).cs); seen.push((await i.get(`/api/movies/${id}`)).cs); }
      const third = await b.get(`/api/movies/${id}`);
      assert.match(third.cs, /L1/, `round ${round} warm: ${seen.join(' | ')} | ${third.cs} ${third.body} ${JSON.stringify(b.cache.health())} ${b.cache.bus!.flushes}`);
      const subs = b.proxy.watch(['*2\r\n$9\r\nsubscribe', '*2\r\n$9\r\nSUBSCRIBE']);
      b.proxy.setDelay(30);
      b.proxy.cut();
      db.movie.set(id, 2);
      const res = a.cache.invalidateTags(['movie:' + id]);
      b.proxy.heal();
      const t0 = performance.now();
      // The watch sees a chunk's start: a SUBSCRIBE written behind another command (a PING sent again) is not
      // seen, and the cut then falls at another moment of the reconnect.
      while (subs() === 0 && performance.now() - t0 < 1000) await sleep(0);
      await sleep(round % 2 === 0 ? 1 : 40 + (round % 3) * 5);
      b.proxy.cut();
      b.proxy.setDelay(0);
      await sleep(round % 4);
      b.proxy.heal();
      assert.deepEqual(await res, { delivered: true });
      for (let k = 0; k < 10; k++) {
        const r = await b.get(`/api/movies/${id}`);
        assert.equal(version(r.body), 2, `round ${round} #${k}: B ${r.body} (${r.cs}) ${JSON.stringify(b.cache.health())}`);
      }
      const end = performance.now() + 5000;
      while (b.cache.health().bus !== 'ok') { if (performance.now() > end) assert.fail('bus not back ' + JSON.stringify(b.cache.health())); await sleep(5); }
      const f1 = b.cache.bus!.flushes;
      await sleep(300);
      if (b.cache.bus!.flushes !== f1) console.log(`      round ${round}: B flushed ${b.cache.bus!.flushes - f1} more time(s) after its bus was back`);
      // A invalidates again now that B is subscribed: B must hear it
      const old2 = await b.get(`/api/movies/${id}`);
      await b.get(`/api/movies/${id}`);
      db.movie.set(id, 3);
      assert.deepEqual(await a.cache.invalidateTags(['movie:' + id]), { delivered: true });
      const t1 = performance.now();
      for (;;) {
        const r = await b.get(`/api/movies/${id}`);
        if (version(r.body) === 3) break;
        if (performance.now() - t1 > 3000) assert.fail(`round ${round}: B deaf after resubscribe: ${r.body} ${r.cs} ${JSON.stringify(b.cache.health())} (old2 ${old2.body})`);
        await sleep(2);
      }
    }
  });

  // A link slower than two epoch checks makes B distrust L1 until a PING comes back (README, When Redis is down):
  // meanwhile it runs the handler, and once the PING's answer is in, L1 is as current as that answer, which comes
  // before A's later message. So B may go new, old, new: what is held is that once the message is in, never old.
  it('a listener whose link is slower than, or about, l2.commandTimeout serves no old answer once the message has arrived', async () => {
    const [a, b] = [await inst('A'), await inst('B', { l2: { commandTimeout: 200, lockTimeout: 0 } })];
    const heardFromA = () => (b.cache.bus as unknown as { lastSeq: Map<string, number> }).lastSeq.get(a.cache.bus!.instanceId) ?? 0;
    for (const delay of [50, 150, 400, 1500]) {
      const id = 'd' + delay;
      db.movie.set(id, 1);
      for (const i of [a, b]) { await i.get(`/api/movies/${id}`); await i.get(`/api/movies/${id}`); }
      b.proxy.setDelay(delay);
      await sleep(delay * 2 + 50);
      db.movie.set(id, 2);
      assert.deepEqual(await a.cache.invalidateTags(['movie:' + id]), { delivered: true });
      const sent = (a.cache.bus as unknown as { seq: number }).seq;
      const t0 = performance.now();
      let lastOld = 0;
      for (;;) {
        const heard = heardFromA() >= sent;
        const r = await b.get(`/api/movies/${id}`);
        if (version(r.body) !== 2) {
          assert.ok(!heard, `delay ${delay}: B served the old answer after the message had arrived: ${r.body} (${r.cs})`);
          lastOld = performance.now() - t0;
        }
        if (heard && performance.now() - t0 > delay + 100) break;
        assert.ok(performance.now() - t0 < delay * 4 + 3000, `delay ${delay}: B never heard the message: ${r.body} (${r.cs}) ${JSON.stringify(b.cache.health())}`);
        await sleep(5);
      }
      console.log(`      link delay ${delay} ms: B's last old answer ${Math.round(lastOld)} ms after the invalidation`);
      b.proxy.setDelay(0);
      await sleep(1500);
    }
  });

  it('an invalidator whose link is slower than l2.commandTimeout queues; the others stop serving the old answer once its link is fast again', async () => {
    const [a, b, c] = [await inst('A', { l2: { commandTimeout: 200, lockTimeout: 0 } }), await inst('B'), await inst('C')];
    const id = 'slowA';
    db.movie.set(id, 1);
    for (const i of [a, b, c]) { await i.get(`/api/movies/${id}`); await i.get(`/api/movies/${id}`); }
    a.proxy.setDelay(400);
    db.movie.set(id, 2);
    const res = await a.cache.invalidateTags(['movie:' + id]);
    console.log(`      A delivered ${res.delivered}`);
    await sleep(1000);
    for (const i of [b, c]) { const r = await i.get(`/api/movies/${id}`); console.log(`      ${i.name} 1s later: ${r.body} ${r.cs}`); }
    a.proxy.setDelay(0);
    const t0 = performance.now();
    for (;;) {
      const rs = await Promise.all([b.get(`/api/movies/${id}`), c.get(`/api/movies/${id}`)]);
      if (rs.every((r) => version(r.body) === 2)) break;
      if (performance.now() - t0 > 10_000) assert.fail('still old ' + rs.map((r) => r.body + r.cs).join(' | '));
      await sleep(10);
    }
    console.log(`      B and C new ${Math.round(performance.now() - t0)} ms after A's link is fast again`);
  });

  it('FLUSHALL between a fill and an invalidation, with a fill running over both: no instance serves the old answer', async () => {
    const [a, b, c] = [await inst('A', { l2: { commandTimeout: '3s', lockTimeout: 0 } }), await inst('B'), await inst('C')];
    const id = 'fa';
    db.movie.set(id, 1);
    for (const i of [a, b, c]) { await i.get(`/api/movies/${id}`); await i.get(`/api/movies/${id}`); }
    slowMs = 300;
    const started = new Promise<void>((r) => (onSlow = r));
    const pending = b.get(`/api/movies/${id}/slow`);
    await started;
    await ctx.admin.flushall();
    db.movie.set(id, 2);
    assert.deepEqual(await a.cache.invalidateTags(['movie:' + id]), { delivered: true });
    await pending;
    slowMs = 0;
    await sleep(20);
    for (const i of [a, b, c]) for (const u of [`/api/movies/${id}`, `/api/movies/${id}/slow`]) {
      const r = await i.get(u);
      assert.equal(version(r.body), 2, `${i.name} ${u}: ${r.body} ${r.cs}`);
    }
  });
});
