// Invalidation across instances, in one process: two createCache instances on
// one real redis-server (same namespace), each behind its own Express app,
// requests through supertest. After an invalidation on A, B stops serving the
// old answer as soon as the bus message arrives, while unrelated entries keep
// hitting B's L1. Also: the fill/invalidation race, own messages, sequence
// gaps, Redis down, FLUSHALL / restart / lost counters (no ABA) and a bus
// reconnect after the server was killed. No Redis mock anywhere.
import assert from 'node:assert/strict';
import { PROVISIONAL_COUNTER_TTL_MS } from '../../../src/store/fill-protocol.js';
import { performance } from 'node:perf_hooks';
import express from 'express';
import request from 'supertest';
import { TierCache, TierCacheError, TierCacheInvalidationError, type CacheOptions } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { HIT_L1, HIT_L2 } from '../../../src/middleware/cache-status.js';
import { EPOCH_CHECK_MS } from '../../../src/store/invalidation-bus.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';
import { MAX_QUEUED } from '../../../src/store/invalidation-queue.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** How long another instance may take to act on an invalidation (target is ~5 ms; this is a "does not hang" bound). */
const PROPAGATION_MS = 1000;
/** How long a bus may take to come back after the server restarted. */
const RECONNECT_MS = 5000;

/** Every handler run in this file gets the next number, so old and new bodies always differ. */
let served = 0;

/** Polls `check` until true or `timeoutMs` passes; returns whether it became true. */
async function eventually(check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 5): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (performance.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

/** Rejects with a "hung" error when `promise` does not settle within `ms` (a generous bound, not a timing assert). */
function withinBound<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

interface Reply {
  readonly status: number;
  readonly body: string;
  readonly cacheStatus: string | undefined;
}

type Headers = Readonly<Record<string, string>>;

interface Instance {
  readonly name: string;
  readonly cache: TierCache;
  readonly app: express.Express;
  /** Handler runs on this instance (any route). */
  runs: number;
  /** What cache.keyFor(req) returned inside the handler, by request URL (the last run). */
  readonly keys: Map<string, string>;
  /** Called when the slow handler starts. */
  onSlowStart: (() => void) | undefined;
  get(url: string, headers?: Headers): Promise<Reply>;
}

/** Tags of the table-driven movie routes, from the URL (app-level middleware runs before routing, so no req.params). */
function movieTags(req: express.Request): string[] | undefined {
  const m = /^\/api\/movies\/([^/?]+)/i.exec(req.originalUrl);
  return m ? ['movie:' + m[1]] : undefined;
}

/**
 * One instance: a cache and an Express app using it both ways, app-wide with
 * the route table (`/api/movies`, `/api/moviesX`, `/api/keyed`) and per route
 * with `user` / `tags` options.
 */
function buildInstance(name: string, cache: TierCache): Instance {
  const app = express();
  const inst: Instance = {
    name,
    cache,
    app,
    runs: 0,
    keys: new Map(),
    onSlowStart: undefined,
    async get(url, headers = {}) {
      const res = await request(app).get(url).set(headers);
      const cs = res.headers['cache-status'];
      return { status: res.status, body: res.text, cacheStatus: typeof cs === 'string' ? cs : undefined };
    },
  };
  const handler = (req: express.Request, res: express.Response) => {
    inst.runs++;
    inst.keys.set(req.originalUrl, cache.keyFor(req));
    res.type('text/plain').send(`${name} ${req.originalUrl} user=${req.get('x-user') ?? '-'} #${++served}`);
  };
  app.use(expressCache(cache, { tags: movieTags }));
  app.get('/api/users/:id/profile', expressCache(cache, { user: (req) => req.get('x-user') }), handler);
  app.get('/api/reviews/:movieId', expressCache(cache, { tags: (req) => ['movie:' + String(req.params['movieId'])] }), handler);
  app.get('/api/slow', expressCache(cache, { tags: () => ['slow'] }), async (req, res) => {
    inst.onSlowStart?.();
    await sleep(400);
    handler(req, res);
  });
  app.get(['/api/movies', '/api/movies/:id', '/api/moviesX', '/api/keyed/:id'], handler);
  return inst;
}

const ROUTES: CacheOptions['routes'] = { '/api/movies': '1m', '/api/moviesX': '1m', '/api/keyed': '1m' };

/**
 * Redis for a describe block (see useRedisCaches; `serverPerTest` for tests
 * that stop, kill or restart the server), FLUSHALL before each test, plus
 * `instance()`: a ready cache + app on this test's namespace, and `pair()`: A and B.
 */
function useRedis(serverPerTest = false, defaults: CacheOptions = {}) {
  const ctx = useRedisCaches({ prefix: 'inv', serverPerTest, flush: true, defaults: { routes: ROUTES, ...defaults } });
  const instance = async (name: string, options: CacheOptions = {}): Promise<Instance> => {
    const cache = await ctx.open(options);
    assert.equal(cache.health().bus, 'ok', `${name}: the bus is not subscribed after ready()`);
    return buildInstance(name, cache);
  };
  const pair = async (): Promise<[Instance, Instance]> => [await instance('A'), await instance('B')];
  return Object.assign(ctx, { instance, pair });
}

/**
 * Fills `url` on `first` and warms `second` from L2; afterwards both serve the
 * same body from their L1. Returns that body (the "old answer").
 */
async function warmBoth(first: Instance, second: Instance, url: string, headers?: Headers): Promise<string> {
  const filled = await first.get(url, headers);
  assert.equal(filled.status, 200, `${first.name} ${url}: status ${filled.status}`);
  const again = await first.get(url, headers);
  assert.equal(again.cacheStatus, HIT_L1, `${first.name} ${url}: second request not served from L1`);
  assert.equal(again.body, filled.body);
  // The fill's answer ends once its store is done or has timed out; one that timed out (a loaded machine) may still
  // land. Asked on the first instance's own connection, after its store: B asks once the entry is there.
  const key = first.keys.get(url)!;
  const landed = await eventually(async () => (await first.cache.redisClient!.exists(key)) === 1, 2_000, 20);
  assert.ok(landed, `${first.name} ${url}: its fill is not in L2 (its store failed: ${JSON.stringify(first.cache.health())})`);
  const fromL2 = await second.get(url, headers);
  assert.equal(fromL2.body, filled.body, `${second.name} ${url}: did not get ${first.name}'s entry from L2 (${fromL2.cacheStatus})`);
  const fromL1 = await second.get(url, headers);
  assert.equal(fromL1.cacheStatus, HIT_L1, `${second.name} ${url}: second request not served from L1`);
  assert.equal(fromL1.body, filled.body);
  return filled.body;
}

/**
 * Runs `invalidation` (on `from`) and waits until `to`'s bus has received its
 * message (polling, at most PROPAGATION_MS). Waiting for the message rather
 * than for a miss means the periodic epoch check cannot stand in for it.
 */
async function invalidateAndDeliver(from: Instance, to: Instance, invalidation: () => Promise<unknown>): Promise<void> {
  const received = to.cache.bus!.received;
  await invalidation();
  const arrived = await eventually(() => to.cache.bus!.received > received, PROPAGATION_MS, 1);
  assert.ok(arrived, `${to.name} did not receive ${from.name}'s invalidation within ${PROPAGATION_MS} ms (bus ${to.cache.health().bus})`);
}

/**
 * `inst` does not serve `old` for `url`, at once and over a few more requests
 * (each miss refills, so the later ones are hits on the new answer). Returns the first reply.
 */
async function assertNeverServes(inst: Instance, url: string, old: string, headers?: Headers): Promise<Reply> {
  const first = await inst.get(url, headers);
  assert.equal(first.status, 200);
  assert.notEqual(first.body, old, `${inst.name} still served the old answer to ${url} (cache-status: ${first.cacheStatus}; bus ${inst.cache.health().bus})`);
  for (let i = 0; i < 5; i++) {
    const later = await inst.get(url, headers);
    assert.notEqual(later.body, old, `${inst.name} served the old answer to ${url} again (request ${i + 2}; cache-status: ${later.cacheStatus})`);
  }
  return first;
}

/** `inst` still answers `url` with `body` from its L1. */
async function assertStillHitsL1(inst: Instance, url: string, body: string, headers?: Headers): Promise<void> {
  const reply = await inst.get(url, headers);
  assert.equal(reply.body, body, `${inst.name} ${url}: an unrelated entry changed`);
  assert.equal(reply.cacheStatus, HIT_L1, `${inst.name} ${url}: an unrelated entry is no longer served from L1`);
}

/** Sends GET /api/slow to `inst` and resolves, with the pending reply, once its (400 ms) handler has started. */
async function startSlow(inst: Instance): Promise<{ reply: Promise<Reply> }> {
  let started!: () => void;
  const handlerStarted = new Promise<void>((resolve) => (started = resolve));
  inst.onSlowStart = started;
  const pending = inst.get('/api/slow');
  await withinBound(handlerStarted, 5000, 'the slow handler start');
  inst.onSlowStart = undefined;
  return { reply: pending };
}

const u1 = { 'x-user': 'u1' };
const u2 = { 'x-user': 'u2' };

describe('invalidation across two instances in one process (Express, real Redis)', () => {
  // No outage is played here: a command slower than the default 200 ms (a loaded machine) is not one.
  const ctx = useRedis(false, { l2: { commandTimeout: '3s' } });

  it("invalidateUser('u1') on A: B never again serves u1's old answers, u2's entries still hit on B", async function () {
    this.timeout(15_000);
    const [a, b] = await ctx.pair();
    const u1Profile = await warmBoth(a, b, '/api/users/1/profile', u1);
    const u1Tab = await warmBoth(a, b, '/api/users/1/profile?tab=history', u1);
    const u2Profile = await warmBoth(a, b, '/api/users/2/profile', u2);
    const u2OnU1Path = await warmBoth(a, b, '/api/users/1/profile', u2);
    const movie = await warmBoth(a, b, '/api/movies/7');
    assert.notEqual(u1Profile, u2OnU1Path, 'user scope: u1 and u2 must not share an entry');

    await invalidateAndDeliver(a, b, () => a.cache.invalidateUser('u1'));

    await assertNeverServes(b, '/api/users/1/profile', u1Profile, u1);
    await assertNeverServes(b, '/api/users/1/profile?tab=history', u1Tab, u1);
    await assertStillHitsL1(b, '/api/users/2/profile', u2Profile, u2);
    await assertStillHitsL1(b, '/api/users/1/profile', u2OnU1Path, u2);
    await assertStillHitsL1(b, '/api/movies/7', movie);
    // And A, the invalidating instance.
    await assertNeverServes(a, '/api/users/1/profile', u1Profile, u1);
    await assertStillHitsL1(a, '/api/users/2/profile', u2Profile, u2);
  });

  it("invalidatePrefix('/api/movies') on A: B drops /api/movies, /api/movies/7 and its query variants, keeps /api/moviesX", async function () {
    this.timeout(15_000);
    const [a, b] = await ctx.pair();
    const dropped = ['/api/movies', '/api/movies/7', '/api/movies/7?lang=fr', '/api/movies/7?lang=de&page=2', '/API/Movies/7'];
    const old = new Map<string, string>();
    for (const url of dropped) old.set(url, await warmBoth(a, b, url));
    const moviesX = await warmBoth(a, b, '/api/moviesX');
    const moviesXQuery = await warmBoth(a, b, '/api/moviesX?lang=fr');
    const profile = await warmBoth(a, b, '/api/users/2/profile', u2);

    await invalidateAndDeliver(a, b, () => a.cache.invalidatePrefix('/api/movies'));

    for (const url of dropped) await assertNeverServes(b, url, old.get(url)!);
    await assertStillHitsL1(b, '/api/moviesX', moviesX);
    await assertStillHitsL1(b, '/api/moviesX?lang=fr', moviesXQuery);
    await assertStillHitsL1(b, '/api/users/2/profile', profile, u2);
    for (const url of dropped) await assertNeverServes(a, url, old.get(url)!);
    await assertStillHitsL1(a, '/api/moviesX', moviesX);
  });

  it("invalidateTags(['movie:7']) on A: B drops every entry tagged movie:7 (two routes), keeps movie:8's", async function () {
    this.timeout(15_000);
    const [a, b] = await ctx.pair();
    const movie7 = await warmBoth(a, b, '/api/movies/7');
    const reviews7 = await warmBoth(a, b, '/api/reviews/7');
    const movie8 = await warmBoth(a, b, '/api/movies/8');
    const reviews8 = await warmBoth(a, b, '/api/reviews/8');

    await invalidateAndDeliver(a, b, () => a.cache.invalidateTags(['movie:7']));

    await assertNeverServes(b, '/api/movies/7', movie7);
    await assertNeverServes(b, '/api/reviews/7', reviews7);
    await assertStillHitsL1(b, '/api/movies/8', movie8);
    await assertStillHitsL1(b, '/api/reviews/8', reviews8);
    await assertNeverServes(a, '/api/movies/7', movie7);
    await assertNeverServes(a, '/api/reviews/7', reviews7);
    await assertStillHitsL1(a, '/api/movies/8', movie8);
  });

  it('invalidateKey(cache.keyFor(req)) on A: B drops that one entry, keeps its neighbours', async function () {
    this.timeout(15_000);
    const [a, b] = await ctx.pair();
    const one = await warmBoth(a, b, '/api/keyed/1');
    const oneQuery = await warmBoth(a, b, '/api/keyed/1?x=1');
    const two = await warmBoth(a, b, '/api/keyed/2');
    const key = a.keys.get('/api/keyed/1');
    assert.ok(key, "A's handler did not record cache.keyFor(req)");
    assert.notEqual(key, a.keys.get('/api/keyed/1?x=1'));

    await invalidateAndDeliver(a, b, () => a.cache.invalidateKey(key));

    await assertNeverServes(b, '/api/keyed/1', one);
    await assertStillHitsL1(b, '/api/keyed/1?x=1', oneQuery);
    await assertStillHitsL1(b, '/api/keyed/2', two);
    await assertNeverServes(a, '/api/keyed/1', one);
    await assertStillHitsL1(a, '/api/keyed/2', two);
    // Whichever instance refilled it, B computes the same key for the same request.
    if (b.keys.has('/api/keyed/1')) assert.equal(b.keys.get('/api/keyed/1'), key);
  });

  it('clear() on A: B never again serves any old answer; another namespace on the same Redis still hits', async function () {
    this.timeout(15_000);
    const [a, b] = await ctx.pair();
    const c = await ctx.instance('C', { namespace: `${ctx.ns}-other` });
    const urls: Array<[string, Headers | undefined]> = [
      ['/api/movies/7', undefined],
      ['/api/moviesX', undefined],
      ['/api/keyed/1', undefined],
      ['/api/reviews/8', undefined],
      ['/api/users/1/profile', u1],
    ];
    const old = new Map<string, string>();
    for (const [url, headers] of urls) old.set(url, await warmBoth(a, b, url, headers));
    const other = (await c.get('/api/movies/7')).body;
    assert.equal((await c.get('/api/movies/7')).cacheStatus, HIT_L1);

    await invalidateAndDeliver(a, b, () => a.cache.clear());

    for (const [url, headers] of urls) await assertNeverServes(b, url, old.get(url)!, headers);
    for (const [url, headers] of urls) await assertNeverServes(a, url, old.get(url)!, headers);
    await assertStillHitsL1(c, '/api/movies/7', other);
  });

  it("delete(key) on A (data API) removes B's L1 copy; other keys still hit B's L1", async function () {
    const [a, b] = await ctx.pair();
    await a.cache.set('k', 'old');
    await a.cache.set('other', 'kept');
    assert.equal(await b.cache.get('k'), 'old');
    assert.equal(await b.cache.get('other'), 'kept');
    const hits0 = b.cache.stats().l1.hits;
    assert.equal(await b.cache.get('k'), 'old');
    assert.equal(b.cache.stats().l1.hits, hits0 + 1, 'B does not serve k from its L1 before the delete');

    await invalidateAndDeliver(a, b, () => a.cache.delete('k'));

    assert.equal(await a.cache.get('k'), undefined, 'A still has k');
    for (let i = 0; i < 5; i++) assert.equal(await b.cache.get('k'), undefined, `B returned k again (${i + 1})`);
    const hits1 = b.cache.stats().l1.hits;
    assert.equal(await b.cache.get('other'), 'kept');
    assert.equal(b.cache.stats().l1.hits, hits1 + 1, "the delete of k cost B its L1 copy of 'other'");
  });

  it('a response whose handler was running when another instance invalidated its tag is served by neither instance afterwards', async function () {
    this.timeout(15_000);
    const [a, b] = await ctx.pair();
    const { reply: pending } = await startSlow(a);
    await sleep(100);
    await b.cache.invalidateTags(['slow']);
    const slow = await withinBound(pending, 5000, 'the slow request');
    assert.equal(slow.status, 200);
    assert.equal(a.runs, 1);

    // Next request on each instance, sent together so that both look up
    // before a new (400 ms) handler finishes: the handler runs again — once,
    // on one of them, since the cross-instance fill lock makes the other wait
    // for that fresh answer — and neither gets the old response.
    const [ra, rb] = await Promise.all([a.get('/api/slow'), b.get('/api/slow')]);
    assert.notEqual(ra.body, slow.body, `A served the response that was filled across the invalidation (${ra.cacheStatus})`);
    assert.notEqual(rb.body, slow.body, `B served the response that was filled across the invalidation (${rb.cacheStatus})`);
    assert.equal(a.runs + b.runs, 2, `the handler did not run again exactly once (${ra.cacheStatus} / ${rb.cacheStatus})`);
    for (const inst of [a, b]) {
      for (let i = 0; i < 3; i++) assert.notEqual((await inst.get('/api/slow')).body, slow.body, `${inst.name} served the old response later`);
    }
  });

  it('a fill overtaken by an invalidation from the other instance is stored in neither L1 nor L2', async function () {
    this.timeout(15_000);
    const [a, b] = await ctx.pair();
    const { reply: pending } = await startSlow(a);
    await sleep(100);
    await invalidateAndDeliver(b, a, () => b.cache.invalidateTags(['slow']));
    const slow = await withinBound(pending, 5000, 'the slow request');
    assert.equal(slow.status, 200);
    const key = a.keys.get('/api/slow');
    assert.ok(key);
    assert.equal(a.cache.store.l1?.peek(key), undefined, "the overtaken fill is in A's L1");
    assert.equal(await ctx.admin.exists(key), 0, 'the overtaken fill is in L2');
    assert.equal(a.cache.stats().fills, 0, 'the overtaken fill was counted as stored');
  });

  it('an invalidation still on its way when close() is called is delivered before close() resolves: B drops the entry, and A reports no loss', async function () {
    const [a, b] = await ctx.pair();
    await b.cache.set('k', 'old', { tags: ['t'] });
    assert.equal(await b.cache.get('k'), 'old');
    const errors: unknown[] = [];
    a.cache.on('error', (e) => errors.push(e));
    const pending = a.cache.invalidateTags(['t']);
    await a.cache.close();
    assert.deepEqual(await pending, { delivered: true });
    assert.deepEqual(errors, [], 'close() reported invalidations lost');
    assert.ok(await eventually(async () => (await b.cache.get('k')) === undefined, PROPAGATION_MS, 10), 'B still serves the entry');
  });

  it('tag invalidations made while one is on its way go out together, one bump and one message, up to 1,000 tags', async function () {
    const [a, b] = await ctx.pair();
    const tags = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    const messagesFor = async (batches: string[][]) => {
      const before = b.cache.bus!.received;
      const results = await Promise.all([a.cache.invalidateTags(['first']), ...batches.map((batch) => a.cache.invalidateTags(batch))]);
      assert.ok(results.every((r) => r.delivered));
      await sleep(100);
      return b.cache.bus!.received - before;
    };
    await b.cache.set('tagged-b', 'old', { tags: ['b7'] });
    await b.cache.set('tagged-d', 'old', { tags: ['d7'] });
    // The first goes alone; the two queued behind it make 1,000 tags: one message.
    assert.equal(await messagesFor([tags('a', 500), tags('b', 500)]), 2);
    assert.equal(await b.cache.get('tagged-b'), undefined, 'B still serves an entry of a tag of the merged message');
    // 1,200 tags: two messages.
    assert.equal(await messagesFor([tags('c', 600), tags('d', 600)]), 3);
    assert.equal(await b.cache.get('tagged-d'), undefined);
  });

  it('an instance ignores its own messages: A.bus.received and A.bus.flushes stay 0 and its other L1 entries still hit', async function () {
    this.timeout(15_000);
    const [a, b] = await ctx.pair();
    const movie7 = await warmBoth(a, b, '/api/movies/7');
    const movie8 = await warmBoth(a, b, '/api/movies/8');
    const busA = a.cache.bus!;
    const busB = b.cache.bus!;
    const l1Entries = a.cache.stats().l1.entries;

    await a.cache.invalidateTags(['movie:7']);
    await a.cache.invalidateUser('nobody');
    await a.cache.invalidatePrefix('/api/nothing');
    assert.ok(await eventually(() => busB.received === 3, PROPAGATION_MS), `B received ${busB.received} of A's 3 messages`);
    await sleep(50); // A's own messages went through Redis too; give them the same time to arrive

    assert.equal(busA.received, 0, 'A counted its own messages as received');
    assert.equal(busA.flushes, 0, 'A flushed on its own messages');
    assert.equal(busB.flushes, 0, 'B flushed although no message was missed');
    assert.equal(a.cache.stats().l1.entries, l1Entries, "A's L1 lost entries other than the invalidated one");
    await assertStillHitsL1(a, '/api/movies/8', movie8);
    await assertNeverServes(a, '/api/movies/7', movie7);
  });

  it("a gap in a sender's sequence (s:1 then s:3, crafted on the channel) makes every receiver flush its L1", async function () {
    this.timeout(15_000);
    const [a, b] = await ctx.pair();
    const body = await warmBoth(a, b, '/api/movies/8');
    const busB = b.cache.bus!;
    const channel = busB.channel;
    assert.equal(channel, a.cache.bus!.channel);
    const [flushesA, flushesB, receivedB] = [a.cache.bus!.flushes, busB.flushes, busB.received];

    // The first message seen from a sender is not a gap.
    assert.ok((await ctx.admin.publish(channel, JSON.stringify({ i: 'x', s: 1 }))) >= 2, 'the crafted message reached fewer than 2 subscribers');
    assert.ok(await eventually(() => busB.received === receivedB + 1, PROPAGATION_MS), 'B never received the crafted message');
    assert.equal(busB.flushes, flushesB, 'B flushed on the first message from a new sender');
    await assertStillHitsL1(b, '/api/movies/8', body);

    await ctx.admin.publish(channel, JSON.stringify({ i: 'x', s: 3 }));
    assert.ok(await eventually(() => busB.flushes === flushesB + 1, PROPAGATION_MS), `B did not flush after the gap (flushes ${busB.flushes})`);
    assert.ok(await eventually(() => a.cache.bus!.flushes === flushesA + 1, PROPAGATION_MS), `A did not flush after the gap (flushes ${a.cache.bus!.flushes})`);
    assert.equal(b.cache.stats().l1.entries, 0, "B's L1 still holds entries after the flush");

    const misses = b.cache.stats().l1.misses;
    const next = await b.get('/api/movies/8');
    assert.notEqual(next.cacheStatus, HIT_L1, 'B served from L1 right after flushing it');
    assert.equal(b.cache.stats().l1.misses, misses + 1, 'the next request on B was not an L1 miss');
    // The entry is still valid in Redis, so it comes back from L2, and then L1 again.
    assert.equal(next.cacheStatus, HIT_L2);
    assert.equal(next.body, body);
    await assertStillHitsL1(b, '/api/movies/8', body);

    // The next number in sequence is not a gap.
    await ctx.admin.publish(channel, JSON.stringify({ i: 'x', s: 4 }));
    assert.ok(await eventually(() => busB.received === receivedB + 3, PROPAGATION_MS));
    assert.equal(busB.flushes, flushesB + 1, 'B flushed on an in-sequence message');
    await assertStillHitsL1(b, '/api/movies/8', body);
  });

  it('FLUSHALL between fills and invalidations never brings an old body back, on either instance (old L2 bytes re-inserted)', async function () {
    this.timeout(30_000);
    const [a, b] = await ctx.pair();
    const url = '/api/movies/7';
    const old = new Set<string>();
    const oldBytes: Buffer[] = [];
    const assertNeverOld = async (inst: Instance, when: string) => {
      for (let i = 0; i < 6; i++) {
        const later = await inst.get(url);
        assert.ok(!old.has(later.body), `${inst.name} served an old body again ${when}: ${later.body} (${later.cacheStatus})`);
      }
    };

    let key: string | undefined;
    for (let round = 0; round < 4; round++) {
      const [filler, other] = round % 2 === 0 ? [a, b] : [b, a];
      // Rounds 0-1: the instance that did not fill invalidates; rounds 2-3: the filler does.
      const [invalidator, receiver] = round < 2 ? [other, filler] : [filler, other];
      // Fill (or reuse what the last round's checks stored) and spread to both instances.
      const bodies = new Set<string>();
      for (const inst of [filler, filler, other, other]) {
        const reply = await inst.get(url);
        assert.ok(!old.has(reply.body), `round ${round}: ${inst.name} served an old body before the invalidation: ${reply.body}`);
        bodies.add(reply.body);
      }
      key ??= a.keys.get(url) ?? b.keys.get(url);
      assert.ok(key, 'no handler recorded the key');
      const bytes = await ctx.admin.getBuffer(key);
      assert.ok(bytes, `round ${round}: no L2 entry under ${key}`);

      await invalidateAndDeliver(invalidator, receiver, () => invalidator.cache.invalidateTags(['movie:7']));
      for (const body of bodies) old.add(body);
      oldBytes.push(bytes);
      await ctx.admin.flushall();
      // As if only the counters had been lost: this round's entry is back in L2.
      await ctx.admin.set(key, bytes, 'PX', 60_000);

      for (const inst of [other, filler]) await assertNeverOld(inst, `after round ${round}'s invalidation and FLUSHALL`);
    }

    // Past the epoch checks (which notice a FLUSHALL without any message),
    // still nothing old, with each old entry back in L2, on a fresh instance too.
    await sleep(EPOCH_CHECK_MS * 2 + 100);
    const c = await ctx.instance('C');
    for (const [i, bytes] of oldBytes.entries()) {
      await ctx.admin.set(key!, bytes, 'PX', 60_000);
      for (const inst of [c, a, b]) await assertNeverOld(inst, `after the epoch checks (L2 holds round ${i}'s entry)`);
    }
  });

  it('the instance whose epoch check finds the epoch lost (FLUSHALL) tells the others at once: one whose own check is not due drops its L1 on that message', async () => {
    type Checks = { epochTimer: NodeJS.Timeout; checkEpoch(): void; received: number };
    const [a, b] = [await ctx.instance('A'), await ctx.instance('B')];
    const [busA, busB] = [a.cache.bus as unknown as Checks, b.cache.bus as unknown as Checks];
    // Neither checks on its own from here: A is asked once below, B only hears.
    clearInterval(busA.epochTimer);
    clearInterval(busB.epochTimer);
    await a.cache.set('k', 'old');
    assert.equal(await b.cache.get('k'), 'old');
    await ctx.admin.flushall();
    const received = busB.received;
    busA.checkEpoch();
    assert.ok(await eventually(() => busB.received > received, PROPAGATION_MS, 1), 'B heard nothing after A found the epoch lost');
    assert.equal(await b.cache.get('k'), undefined, 'B served its L1 copy from before the FLUSHALL');
  });

  it("losing a tag's version counter (as under eviction) never makes an old L2 entry valid again", async function () {
    this.timeout(15_000);
    const [a, b] = await ctx.pair();
    const url = '/api/movies/7';
    const old = await warmBoth(a, b, url);
    const key = a.keys.get(url)!;
    const bytes = await ctx.admin.getBuffer(key);
    assert.ok(bytes);

    await invalidateAndDeliver(a, b, () => a.cache.invalidateTags(['movie:7']));
    const counters = [...(await ctx.admin.keys(`${ctx.ns}:v:*`)), ...(await ctx.admin.keys(`{${ctx.ns}:*}:v`))];
    assert.ok(counters.includes(`${ctx.ns}:v:{movie:7}`), `no counter for movie:7 among ${counters.join(', ')}`);
    await ctx.admin.del(...counters);
    await ctx.admin.set(key, bytes, 'PX', 60_000);

    await assertNeverServes(b, url, old);
    await ctx.admin.set(key, bytes, 'PX', 60_000);
    const c = await ctx.instance('C');
    const fresh = await c.get(url);
    assert.notEqual(fresh.body, old, `a fresh instance served the old entry from L2 (${fresh.cacheStatus})`);
    await assertNeverServes(a, url, old);
  });

  it('a tag counter that went back (as on a replica that missed increments) is bumped past every version the invalidating instance saw', async function () {
    this.timeout(15_000);
    const [a, b] = await ctx.pair();
    const counter = `${ctx.ns}:v:{movie:7}`;
    for (let i = 0; i < 3; i++) await invalidateAndDeliver(a, b, () => a.cache.invalidateTags(['movie:7']));
    await a.cache.set('price', 10, { tags: ['movie:7'] });
    const recorded = Number(await ctx.admin.get(counter));
    // One increment lost: the next plain INCR would hand out the version 'price' recorded.
    await ctx.admin.set(counter, String(recorded - 1), 'PX', 60_000);

    await invalidateAndDeliver(a, b, () => a.cache.invalidateTags(['movie:7']));
    assert.ok(Number(await ctx.admin.get(counter)) > recorded, `the bump gave ${await ctx.admin.get(counter)}, not more than ${recorded}`);
    const c = await ctx.instance('C');
    for (const inst of [c, b, a]) assert.equal(await inst.cache.get('price'), undefined, `${inst.name} still returns the invalidated value`);
  });
});

describe('version counters in Redis: TTLs and floors (standalone)', () => {
  const ctx = useRedis();

  it('an epoch that went back (as on a replica that missed increments) is moved past every epoch the clearing instance saw', async function () {
    const [a, b] = await ctx.pair();
    const epochKey = `{${ctx.ns}}:epoch`;
    for (let i = 0; i < 2; i++) await invalidateAndDeliver(a, b, () => a.cache.clear());
    await a.cache.set('price', 10);
    const seen = Number(await ctx.admin.get(epochKey));
    await ctx.admin.set(epochKey, String(seen - 1));
    await invalidateAndDeliver(a, b, () => a.cache.clear());
    assert.ok(Number(await ctx.admin.get(epochKey)) > seen, `clear() moved the epoch to ${await ctx.admin.get(epochKey)}, not past ${seen}`);
    assert.equal(await ctx.admin.pttl(epochKey), -1, 'the epoch was given a TTL');
    const c = await ctx.instance('C');
    assert.equal(await c.cache.get('price'), undefined);
  });

  it('a tag counter a bump creates (or finds provisional) lives as long as a provisional one, one an entry recorded a week; an epoch a read creates again lives for ever; a read leaves a provisional counter its TTL', async function () {
    const a = await ctx.instance('A');
    await a.cache.invalidateTags(['fresh-tag']);
    const madeTtl = await ctx.admin.pttl(`${ctx.ns}:v:{fresh-tag}`);
    assert.ok(madeTtl > 0 && madeTtl <= PROVISIONAL_COUNTER_TTL_MS, `the counter the bump made lives ${madeTtl} ms`);
    await a.cache.invalidateTags(['fresh-tag']);
    const againTtl = await ctx.admin.pttl(`${ctx.ns}:v:{fresh-tag}`);
    assert.ok(againTtl > 0 && againTtl <= PROVISIONAL_COUNTER_TTL_MS, `the provisional counter bumped again lives ${againTtl} ms`);
    await a.cache.getOrSet('recorder', async () => 1, { tags: ['fresh-tag'] });
    await a.cache.invalidateTags(['fresh-tag']);
    const tagTtl = await ctx.admin.pttl(`${ctx.ns}:v:{fresh-tag}`);
    assert.ok(tagTtl > 6 * 24 * 3600_000 && tagTtl <= 7 * 24 * 3600_000, `the bumped counter lives ${tagTtl} ms`);
    // Lost (evicted, a FLUSHALL); a provisional counter another fill made meanwhile.
    await ctx.admin.del(`{${ctx.ns}}:epoch`);
    await ctx.admin.set(`${ctx.ns}:v:{provisional}`, '3', 'PX', 30_000);
    await a.cache.store.versions.stamp(['never-seen', 'provisional']);
    assert.equal(await ctx.admin.pttl(`{${ctx.ns}}:epoch`), -1, 'the epoch read back was made with a TTL');
    const provisional = await ctx.admin.pttl(`${ctx.ns}:v:{provisional}`);
    assert.ok(provisional > 0 && provisional <= 30_000, `a plain read changed a provisional counter's TTL to ${provisional} ms`);
    const made = await ctx.admin.pttl(`${ctx.ns}:v:{never-seen}`);
    assert.ok(made > 0 && made <= PROVISIONAL_COUNTER_TTL_MS, `a counter made by a read lives ${made} ms`);
  });
});

describe('invalidation across two instances: Redis faults (a redis-server per test)', () => {
  const ctx = useRedis(true);

  it('with Redis stopped, invalidateTags resolves { delivered: false }, emits a TierCacheInvalidationError, and A stops serving the old answer', async function () {
    this.timeout(15_000);
    const [a, b] = await ctx.pair();
    const old = await warmBoth(a, b, '/api/movies/7');
    const errors: unknown[] = [];
    a.cache.on('error', ({ err }) => errors.push(err));
    b.cache.on('error', () => undefined);

    await ctx.redis.stop();
    const result = await withinBound(a.cache.invalidateTags(['movie:7']), 5000, 'invalidateTags with Redis stopped');
    assert.deepEqual(result, { delivered: false });
    const queued = errors.find((err) => err instanceof TierCacheInvalidationError);
    assert.ok(queued instanceof TierCacheInvalidationError, `no TierCacheInvalidationError emitted (got: ${errors.map(String).join('; ')})`);
    assert.ok(queued instanceof TierCacheError);
    assert.equal(queued.code, 'TIERCACHE_INVALIDATION_NOT_BROADCAST');
    assert.match(queued.message, /queued/);

    const runs = a.runs;
    const next = await withinBound(a.get('/api/movies/7'), 5000, 'a request with Redis stopped');
    assert.equal(next.status, 200);
    assert.notEqual(next.body, old, `A served the invalidated answer (${next.cacheStatus})`);
    assert.equal(a.runs, runs + 1, 'A did not run the handler');
  });

  it('with Redis stopped, invalidateTags(tags, { strict: true }) rejects with a TierCacheInvalidationError, still applied on this instance', async function () {
    this.timeout(15_000);
    const [a, b] = await ctx.pair();
    const old = await warmBoth(a, b, '/api/movies/7');
    a.cache.on('error', () => undefined);
    b.cache.on('error', () => undefined);

    await ctx.redis.stop();
    const outcome = await withinBound(
      a.cache.invalidateTags(['movie:7'], { strict: true }).then(
        () => undefined,
        (err: unknown) => err,
      ),
      5000,
      'a strict invalidateTags with Redis stopped',
    );
    assert.ok(outcome instanceof TierCacheInvalidationError, `did not reject with a TierCacheInvalidationError: ${String(outcome)}`);
    const next = await withinBound(a.get('/api/movies/7'), 5000, 'a request with Redis stopped');
    assert.notEqual(next.body, old, `A served the invalidated answer (${next.cacheStatus})`);
  });

  it('after a restart (all Redis state lost), entries cached before never come back valid, even with their old L2 bytes re-inserted', async function () {
    this.timeout(20_000);
    const [a, b] = await ctx.pair();
    const urls = ['/api/movies/7', '/api/keyed/1', '/api/moviesX'];
    const old = new Map<string, string>();
    const bytes = new Map<string, Buffer>();
    for (const url of urls) {
      old.set(url, await warmBoth(a, b, url));
      const raw = await ctx.admin.getBuffer(a.keys.get(url)!);
      assert.ok(raw, `no L2 entry for ${url}`);
      bytes.set(url, raw);
    }
    const flushes = [a.cache.bus!.flushes, b.cache.bus!.flushes];

    await ctx.redis.restart();
    const back = await eventually(
      () => [a, b].every((inst, i) => inst.cache.health().bus === 'ok' && inst.cache.health().l2 === 'ok' && inst.cache.bus!.flushes > flushes[i]!),
      RECONNECT_MS,
      20,
    );
    assert.ok(back, `the buses did not come back (A ${JSON.stringify(a.cache.health())}, B ${JSON.stringify(b.cache.health())})`);
    for (const url of urls) await ctx.admin.set(a.keys.get(url)!, bytes.get(url)!, 'PX', 60_000);

    const c = await ctx.instance('C');
    for (const inst of [c, a, b]) {
      for (const url of urls) {
        for (let i = 0; i < 3; i++) {
          const reply = await inst.get(url);
          assert.notEqual(reply.body, old.get(url), `${inst.name} served the pre-restart answer to ${url} (${reply.cacheStatus})`);
        }
      }
    }
  });

  it("killing Redis mid-run emits 'error' once for L2 and once for the bus (each logged at warn), and their return is logged at info", async function () {
    this.timeout(20_000);
    const lines: Array<[string, string]> = [];
    const log = (level: string) => (_obj: object, msg?: string) => void lines.push([level, msg ?? '']);
    const logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
    const a = await ctx.instance('A', { logger });
    const errors: Error[] = [];
    a.cache.on('error', ({ err }) => errors.push(err));
    await warmBoth(a, a, '/api/movies/7');

    ctx.redis.kill('SIGKILL');
    await ctx.redis.exited();
    assert.ok(await eventually(() => a.cache.health().l2 === 'down' && a.cache.health().bus === 'reconnecting', RECONNECT_MS, 10), JSON.stringify(a.cache.health()));
    // Requests and reconnect attempts during the outage add no more reports.
    for (let i = 0; i < 5; i++) assert.equal((await a.get('/api/movies/8')).status, 200);
    assert.equal(await a.cache.get('k'), undefined);
    await sleep(500);
    const warnings = lines.filter(([level]) => level === 'warn').map(([, msg]) => msg);
    assert.equal(errors.length, 2, `'error' events during the outage: ${errors.map((e) => e.message).join('; ')}`);
    assert.equal(warnings.length, 2, `warnings: ${warnings.join('; ')}`);
    assert.ok(warnings.some((m) => /L2\) is unreachable/.test(m)), `no warning about L2: ${warnings.join('; ')}`);
    assert.ok(warnings.some((m) => /bus is disconnected/.test(m)), `no warning about the bus: ${warnings.join('; ')}`);

    await ctx.redis.restart();
    assert.ok(await eventually(() => a.cache.health().l2 === 'ok' && a.cache.health().bus === 'ok', RECONNECT_MS, 20), JSON.stringify(a.cache.health()));
    const infos = lines.filter(([level]) => level === 'info').map(([, msg]) => msg);
    assert.ok(infos.some((m) => /L2\) is reachable again/.test(m)), `no info line about L2 coming back: ${infos.join('; ')}`);
    assert.ok(infos.some((m) => /bus is connected again/.test(m)), `no info line about the bus coming back: ${infos.join('; ')}`);
    assert.equal(errors.length, 2, `'error' events after the restart: ${errors.map((e) => e.message).join('; ')}`);
  });

  it('a Redis restarted from an RDB snapshot taken before an invalidation never serves the invalidated entry again, on any instance', async function () {
    this.timeout(20_000);
    const [a, b] = await ctx.pair();
    const url = '/api/movies/7';
    const old = await warmBoth(a, b, url);
    const key = a.keys.get(url)!;
    const oldBytes = await ctx.admin.getBuffer(key);
    assert.ok(oldBytes !== null);
    assert.equal(await ctx.admin.save(), 'OK');
    await invalidateAndDeliver(a, b, () => a.cache.invalidateTags(['movie:7']));
    const fresh = await warmBoth(b, a, url);
    assert.notEqual(fresh, old);

    await ctx.redis.restart();
    assert.ok(await eventually(() => [a, b].every((inst) => inst.cache.health().l2 === 'ok' && inst.cache.health().bus === 'ok'), RECONNECT_MS, 20), 'the instances did not reconnect');
    // The snapshot brought the old entry back, with the counters it matched.
    assert.deepEqual(await ctx.admin.getBuffer(key), oldBytes, 'the snapshot did not restore the old entry: the test proves nothing');
    // The instances recorded which Redis process serves the namespace now.
    const runId = /run_id:(\w+)/.exec(await ctx.admin.info('server'))?.[1];
    assert.equal(await ctx.admin.get(`{${ctx.ns}}:server`), runId);

    const c = await ctx.instance('C');
    for (const inst of [a, b, c]) await assertNeverServes(inst, url, old);
  });

  // The record of which Redis process serves the namespace is what tells a restart from a snapshot; holding foreign
  // data of another type (a hash), it failed the check on every connection with WRONGTYPE, which moved nothing.
  it('a Redis restarted from an RDB snapshot whose record of the serving process holds a key of another type never serves the invalidated value again', async function () {
    this.timeout(20_000);
    const a = await ctx.open({ l1: false, l2: { commandTimeout: '3s' } });
    a.on('error', () => undefined);
    await a.set('k', 'old', { tags: ['t'] });
    const record = `{${ctx.ns}}:server`;
    await ctx.admin.del(record);
    await ctx.admin.hset(record, 'foreign', 'data');
    const oldBytes = await ctx.admin.getBuffer(a.dataKey('k'));
    assert.equal(await ctx.admin.save(), 'OK');
    assert.deepEqual(await a.invalidateTags(['t']), { delivered: true });
    assert.equal(await a.get('k'), undefined);

    await ctx.redis.restart();
    assert.deepEqual(await ctx.admin.getBuffer(a.dataKey('k')), oldBytes, 'the snapshot did not restore the old value: the test proves nothing');
    assert.ok(await eventually(() => a.health().l2 === 'ok' && a.health().bus === 'ok', RECONNECT_MS, 20), 'A did not reconnect');
    const c = await ctx.open({ l1: false, l2: { commandTimeout: '3s' } });
    for (const [name, cache] of [['A', a], ['C', c]] as const) {
      assert.equal(await cache.get('k'), undefined, `${name} serves the value invalidated before the restart`);
    }
  });

  it('an invalidation Redis refuses while it stays up (its user may not run scripts) is tried again every second: delivered once it is allowed', async function () {
    this.timeout(20_000);
    const user = `inv-${ctx.ns}`;
    await ctx.admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all', '-evalsha', '-eval', '-script');
    const a = await ctx.open({ redis: `redis://${user}:pw@127.0.0.1:${ctx.redis.port}` });
    a.on('error', () => undefined);
    const b = await ctx.open();
    await b.set('k', 'old', { tags: ['t'] });
    assert.equal(await b.get('k'), 'old');
    assert.equal(a.health().l2, 'ok', 'A is not connected');
    assert.deepEqual(await a.invalidateTags(['t']), { delivered: false });
    await sleep(1_500); // a retry or so, still refused
    assert.equal(await b.get('k'), 'old', 'B dropped the entry before the invalidation could be delivered');
    await ctx.admin.call('ACL', 'SETUSER', user, '+@all');
    assert.ok(await eventually(async () => (await b.get('k')) === undefined, 5_000, 50), 'the refused invalidation was never tried again');
  });

  it('kill + restart on the same port: both buses come back, flush L1, and an invalidation sent afterwards reaches the other instance', async function () {
    this.timeout(20_000);
    const [a, b] = await ctx.pair();
    const before7 = await warmBoth(a, b, '/api/movies/7');
    const before8 = await warmBoth(a, b, '/api/movies/8');
    const flushes = [a.cache.bus!.flushes, b.cache.bus!.flushes];

    await ctx.redis.restart();
    const back = await eventually(
      () => [a, b].every((inst, i) => inst.cache.health().bus === 'ok' && inst.cache.health().l2 === 'ok' && inst.cache.bus!.flushes > flushes[i]!),
      RECONNECT_MS,
      20,
    );
    assert.ok(
      back,
      `not back within ${RECONNECT_MS} ms: A ${JSON.stringify(a.cache.health())} flushes ${a.cache.bus!.flushes}, B ${JSON.stringify(b.cache.health())} flushes ${b.cache.bus!.flushes}`,
    );

    // Entries cached in L1 before the outage are not served once the bus is back.
    for (const inst of [b, a]) {
      for (const [url, body] of [['/api/movies/7', before7], ['/api/movies/8', before8]] as const) {
        const reply = await inst.get(url);
        assert.notEqual(reply.cacheStatus, HIT_L1, `${inst.name} served ${url} from its pre-outage L1`);
        assert.notEqual(reply.body, body, `${inst.name} served the pre-outage answer to ${url}`);
      }
    }

    // An invalidation sent after the restart reaches the other instance.
    const after7 = await warmBoth(a, b, '/api/movies/7');
    const after8 = await warmBoth(a, b, '/api/movies/8');
    await invalidateAndDeliver(a, b, () => a.cache.invalidateTags(['movie:7']));
    await assertNeverServes(b, '/api/movies/7', after7);
    await assertStillHitsL1(b, '/api/movies/8', after8);
  });

  it("when only the subscriber connections drop (CLIENT KILL TYPE pubsub, data kept), each bus flushes L1 on resubscribing, and a message missed meanwhile does no harm", async function () {
    this.timeout(20_000);
    const [a, b] = await ctx.pair();
    const movie7 = await warmBoth(a, b, '/api/movies/7');
    const movie8 = await warmBoth(a, b, '/api/movies/8');
    const flushes = [a.cache.bus!.flushes, b.cache.bus!.flushes];
    const epoch = await ctx.admin.get(`{${ctx.ns}}:epoch`);

    const killed = Number(await ctx.admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub'));
    assert.ok(killed >= 2, `CLIENT KILL TYPE pubsub killed ${killed} connections`);
    // Sent while B's subscriber is (most likely) still reconnecting: B may never see this message.
    await a.cache.invalidateTags(['movie:7']);

    const back = await eventually(
      () => [a, b].every((inst, i) => inst.cache.health().bus === 'ok' && inst.cache.bus!.flushes > flushes[i]!),
      RECONNECT_MS,
      20,
    );
    assert.ok(back, `the buses did not resubscribe and flush within ${RECONNECT_MS} ms: flushes A ${a.cache.bus!.flushes}, B ${b.cache.bus!.flushes}`);
    // Redis kept its data, so no epoch change explains the flush: the reconnect did.
    assert.equal(await ctx.admin.get(`{${ctx.ns}}:epoch`), epoch, 'the epoch moved');

    await assertNeverServes(b, '/api/movies/7', movie7);
    // movie 8 is still valid: after the flush it comes from L2, then L1 again.
    const next = await b.get('/api/movies/8');
    assert.equal(next.cacheStatus, HIT_L2, "B's next request for an entry cached before the drop was not an L1 miss");
    assert.equal(next.body, movie8);
    await assertStillHitsL1(b, '/api/movies/8', movie8);
  });
});

describe('invalidation during an outage: one instance cut from Redis through a TCP proxy, then healed', () => {
  const ctx = useRedis(true);
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  /** A talks to Redis through the proxy, B directly. No fill lock: one A took before the cut would hold up B for its lifetime. */
  async function cutPair(): Promise<[Instance, Instance, TcpProxy]> {
    proxy = await startTcpProxy(ctx.redis.port);
    const a = await ctx.instance('A', { redis: proxy.url, l2: { lockTimeout: 0 } });
    const b = await ctx.instance('B', { l2: { lockTimeout: 0 } });
    a.cache.on('error', () => undefined);
    return [a, b, proxy];
  }

  /**
   * Counts what `a` publishes from now on; the returned wait resolves once
   * `b` has received as many messages (at most PROPAGATION_MS after the last
   * was sent). A replay's publish resolves before the message reaches `b`.
   */
  function hearsEverySent(a: Instance, b: Instance): () => Promise<void> {
    const sent = a.cache.bus!.sent;
    const received = b.cache.bus!.received;
    return async () => {
      const caughtUp = () => b.cache.bus!.received - received >= a.cache.bus!.sent - sent;
      assert.ok(await eventually(caughtUp, PROPAGATION_MS, 1), `B received ${b.cache.bus!.received - received} of the ${a.cache.bus!.sent - sent} messages A sent`);
    };
  }

  async function cut(a: Instance, p: TcpProxy): Promise<void> {
    p.cut();
    assert.ok(await eventually(() => a.cache.health().l2 === 'down' && a.cache.health().bus === 'reconnecting', RECONNECT_MS, 5), `A still looks connected after the cut: ${JSON.stringify(a.cache.health())}`);
  }

  it('an invalidation made on A during the cut reaches B (L1 and L2) within a bounded time after the heal', async function () {
    this.timeout(20_000);
    const [a, b, p] = await cutPair();
    const movie7 = await warmBoth(a, b, '/api/movies/7');
    const reviews7 = await warmBoth(b, a, '/api/reviews/7');
    const movie8 = await warmBoth(a, b, '/api/movies/8');

    await cut(a, p);
    const result = await withinBound(a.cache.invalidateTags(['movie:7']), 5000, 'invalidateTags during the cut');
    assert.deepEqual(result, { delivered: false });
    await assertNeverServes(a, '/api/movies/7', movie7);
    // B was not told yet: the test would prove nothing otherwise.
    assert.equal((await b.get('/api/movies/7')).body, movie7, 'B dropped the entry before the heal');

    p.heal();
    const delivered = await eventually(async () => (await b.get('/api/movies/7')).body !== movie7, RECONNECT_MS, 20);
    assert.ok(delivered, `B still serves the invalidated answer ${RECONNECT_MS} ms after the heal (A ${JSON.stringify(a.cache.health())})`);
    await assertNeverServes(b, '/api/reviews/7', reviews7);
    await assertStillHitsL1(b, '/api/movies/8', movie8);
    // L2 too: a fresh instance does not get the old entries from Redis.
    const c = await ctx.instance('C');
    await assertNeverServes(c, '/api/movies/7', movie7);
    await assertNeverServes(c, '/api/reviews/7', reviews7);
    await assertNeverServes(a, '/api/movies/7', movie7);
  });

  it('a write route that awaits invalidateUser and invalidatePrefix answers 200, not 500, while its instance is cut from Redis', async function () {
    this.timeout(20_000);
    const [a, , p] = await cutPair();
    a.app.put('/api/users/:id', express.json(), async (req, res) => {
      await a.cache.invalidateUser(String(req.params['id']));
      await a.cache.invalidatePrefix(`/api/users/${String(req.params['id'])}`);
      res.json({ saved: true });
    });
    await cut(a, p);
    const res = await withinBound(request(a.app).put('/api/users/1').send({ name: 'x' }).then((r) => r), 5000, 'the write request');
    assert.equal(res.status, 200, `the write route answered ${res.status}: ${res.text}`);
    assert.deepEqual(res.body, { saved: true });
  });

  it('invalidateUser, invalidateKey and delete() queued during the cut are all replayed after the heal, with their publish', async function () {
    this.timeout(20_000);
    const [a, b, p] = await cutPair();
    const u1Profile = await warmBoth(a, b, '/api/users/1/profile', u1);
    const keyed = await warmBoth(a, b, '/api/keyed/1');
    const key = a.keys.get('/api/keyed/1')!;
    await b.cache.set('data', 'old');
    assert.equal(await a.cache.get('data'), 'old');

    await cut(a, p);
    assert.deepEqual(await a.cache.invalidateUser('u1'), { delivered: false });
    assert.deepEqual(await a.cache.invalidateKey(key), { delivered: false });
    await assertNeverServes(a, '/api/keyed/1', keyed);
    assert.deepEqual(await a.cache.delete('data'), { delivered: false });
    assert.equal(await a.cache.get('data'), undefined, 'A still has the deleted value');
    const received = b.cache.bus!.received;

    p.heal();
    assert.ok(await eventually(() => b.cache.bus!.received >= received + 1, RECONNECT_MS, 10), 'B received nothing after the heal');
    assert.ok(await eventually(async () => (await b.cache.get('data')) === undefined, PROPAGATION_MS, 10), 'B still has the deleted value');
    await assertNeverServes(b, '/api/users/1/profile', u1Profile, u1);
    await assertNeverServes(b, '/api/keyed/1', keyed);
    const c = await ctx.instance('C');
    assert.equal(await c.cache.get('data'), undefined, 'the deleted value is still in L2');
    await assertNeverServes(c, '/api/users/1/profile', u1Profile, u1);
  });

  it('an invalidation made the moment Redis is back, while the backlog is being replayed, is delivered with it (not refused as if Redis were still down)', async function () {
    this.timeout(20_000);
    const [a, , p] = await cutPair();
    await cut(a, p);
    assert.deepEqual(await a.cache.invalidateTags(['before']), { delivered: false });
    const during = new Promise<unknown>((resolve) => {
      a.cache.on('l2', (e: { state: string }) => {
        if (e.state === 'up') resolve(a.cache.invalidateTags(['during']));
      });
    });
    p.heal();
    assert.deepEqual(await withinBound(during, 10_000, 'the invalidation made as Redis came back'), { delivered: true });
  });

  it('invalidations queued during the cut are replayed as they were (no clear()), and the replay is logged once with their number', async function () {
    this.timeout(20_000);
    proxy = await startTcpProxy(ctx.redis.port);
    const infos: string[] = [];
    const logger = { debug: () => undefined, warn: () => undefined, error: () => undefined, info: (_: object, msg?: string) => void infos.push(String(msg)) };
    const a = await ctx.instance('A', { redis: proxy.url, l2: { lockTimeout: 0 }, logger });
    const b = await ctx.instance('B', { l2: { lockTimeout: 0 } });
    a.cache.on('error', () => undefined);
    const movie7 = await warmBoth(a, b, '/api/movies/7');
    const movie8 = await warmBoth(a, b, '/api/movies/8');
    // Delivered at once: not part of any replay.
    assert.deepEqual(await a.cache.invalidateTags(['warm-up-1']), { delivered: true });
    assert.deepEqual(await a.cache.invalidateTags(['warm-up-2']), { delivered: true });
    await cut(a, proxy);
    // The first makes the queue fail; the next two are queued behind it as they are.
    for (const tag of ['movie:7', 'movie:9', 'movie:10']) assert.deepEqual(await a.cache.invalidateTags([tag]), { delivered: false });
    const received = b.cache.bus!.received;
    const heard = hearsEverySent(a, b);
    proxy.heal();
    const replayed = (line: string) => /invalidation\(s\) queued while Redis was unreachable were delivered/.test(line);
    assert.ok(await eventually(() => infos.some(replayed), RECONNECT_MS, 20), `no replay logged: ${JSON.stringify(infos)}`);
    assert.deepEqual(infos.filter(replayed), ['tiercache: 3 invalidation(s) queued while Redis was unreachable were delivered']);
    await heard();
    await assertNeverServes(b, '/api/movies/7', movie7);
    await assertStillHitsL1(b, '/api/movies/8', movie8);
    // Consecutive tag invalidations share one bump and one message.
    assert.equal(b.cache.bus!.received, received + 1, 'the three were not replayed as one message');
    // Back to normal: the next one is delivered at once and is no replay.
    assert.deepEqual(await a.cache.invalidateTags(['after']), { delivered: true });
    assert.equal(infos.filter(replayed).length, 1);
  });

  it('a clear() queued during the cut takes the place of the invalidations queued before it: one message after the heal', async function () {
    this.timeout(20_000);
    const [a, b, p] = await cutPair();
    await cut(a, p);
    assert.deepEqual(await a.cache.invalidateTags(['x']), { delivered: false });
    assert.deepEqual(await a.cache.invalidateTags(['y']), { delivered: false });
    assert.deepEqual(await a.cache.clear(), { delivered: false });
    const received = b.cache.bus!.received;
    p.heal();
    assert.ok(await eventually(() => b.cache.bus!.received > received, RECONNECT_MS, 20), 'B heard nothing after the heal');
    await sleep(200);
    assert.equal(b.cache.bus!.received, received + 1, 'the backlog was sent as it was queued, not as one clear()');
  });

  it('a clear() made while the replay is delivering the first queued invalidation is not lost: B drops everything', async function () {
    this.timeout(20_000);
    const [a, b, p] = await cutPair();
    const movie8 = await warmBoth(a, b, '/api/movies/8');
    await cut(a, p);
    assert.deepEqual(await a.cache.invalidateTags(['movie:7']), { delivered: false });
    const heard = hearsEverySent(a, b);
    const cleared = new Promise<unknown>((resolve) => {
      a.cache.on('l2', (e: { state: string }) => {
        // Redis is back and the replay starts right after this listener; the clear() comes while its first step is out.
        if (e.state === 'up') queueMicrotask(() => resolve(a.cache.clear()));
      });
    });
    p.heal();
    assert.deepEqual(await withinBound(cleared, 10_000, 'the clear() made during the replay'), { delivered: true });
    // B stops serving it once the message reaches it (DESIGN §4 (2)), not when A's clear() resolves.
    await heard();
    await assertNeverServes(b, '/api/movies/8', movie8);
  });

  it('the replay starts as Redis comes back (on the L2 up event), not at the next retry a second later', async function () {
    this.timeout(20_000);
    const [a, , p] = await cutPair();
    await cut(a, p);
    assert.deepEqual(await a.cache.invalidateTags(['movie:7']), { delivered: false });
    const queue = (a.cache as unknown as { queue: { draining: Promise<boolean> | undefined } }).queue;
    const drainingOnUp = new Promise<boolean>((resolve) => {
      a.cache.on('l2', (e: { state: string }) => {
        if (e.state === 'up') queueMicrotask(() => resolve(queue.draining !== undefined));
      });
    });
    p.heal();
    assert.equal(await withinBound(drainingOnUp, 10_000, 'the L2 up event'), true, 'nothing was being replayed right after Redis came back');
  });

  it('closed while cut, with an invalidation queued: close() reports it lost and leaves no retry behind', async function () {
    this.timeout(20_000);
    const [a, , p] = await cutPair();
    await cut(a, p);
    assert.deepEqual(await a.cache.invalidateTags(['t']), { delivered: false });
    const errors: Array<{ where: string }> = [];
    a.cache.on('error', (e: { where: string }) => errors.push(e));
    await a.cache.close();
    assert.deepEqual(errors.map((e) => e.where), ['close']);
    const queue = (a.cache as unknown as { queue: { retryTimer: NodeJS.Timeout | undefined } }).queue;
    await sleep(1_500); // past a retry's delay
    assert.equal(queue.retryTimer, undefined, 'the closed queue keeps a retry timer going');
  });

  it('a backlog of key, tag and key invalidations is replayed with each kept apart: tag invalidations merge with each other only', async function () {
    this.timeout(20_000);
    const [a, b, p] = await cutPair();
    const one = await warmBoth(a, b, '/api/keyed/1');
    const two = await warmBoth(a, b, '/api/keyed/2');
    const movie7 = await warmBoth(a, b, '/api/movies/7');
    await cut(a, p);
    assert.deepEqual(await a.cache.invalidateKey(a.keys.get('/api/keyed/1')!), { delivered: false });
    assert.deepEqual(await a.cache.invalidateTags(['movie:7']), { delivered: false });
    assert.deepEqual(await a.cache.invalidateKey(a.keys.get('/api/keyed/2')!), { delivered: false });
    const received = b.cache.bus!.received;
    p.heal();
    assert.ok(await eventually(() => b.cache.bus!.received >= received + 3, RECONNECT_MS, 10), `B received ${b.cache.bus!.received - received} of the 3 messages after the heal`);
    await assertNeverServes(b, '/api/keyed/1', one);
    await assertNeverServes(b, '/api/movies/7', movie7);
    await assertNeverServes(b, '/api/keyed/2', two);
  });

  it(`only what waits counts toward the bound of ${MAX_QUEUED}: invalidations delivered before a cut (merged or not) never turn a short backlog into a clear()`, async function () {
    this.timeout(30_000);
    const [a, b, p] = await cutPair();
    const movie8 = await warmBoth(a, b, '/api/movies/8');
    const epochKey = `{${ctx.ns}}:epoch`;
    const epoch = await ctx.admin.get(epochKey);
    // Delivered at once: 600 of the same tag, most merged behind the first into one bump, then one of more tags than the bound.
    const same = await Promise.all(Array.from({ length: 600 }, () => a.cache.invalidateTags(['same'])));
    assert.ok(same.every((r) => r.delivered), 'an invalidation of tag same was not delivered');
    assert.deepEqual(await a.cache.invalidateTags(Array.from({ length: MAX_QUEUED + 1 }, (_, i) => `w${i}`)), { delivered: true });

    await cut(a, p);
    for (const tag of ['x', 'y', 'z']) assert.deepEqual(await a.cache.invalidateTags([tag]), { delivered: false });
    const received = b.cache.bus!.received;
    p.heal();
    assert.ok(await eventually(() => b.cache.bus!.received > received, RECONNECT_MS, 20), 'B heard nothing after the heal');
    await sleep(200);
    assert.equal(await ctx.admin.get(epochKey), epoch, 'the backlog of three tags was delivered as a clear()');
    await assertStillHitsL1(b, '/api/movies/8', movie8);
  });

  it(`past ${MAX_QUEUED} queued tags, the backlog becomes one clear(): after the heal B drops everything, once`, async function () {
    this.timeout(30_000);
    const [a, b, p] = await cutPair();
    const movie8 = await warmBoth(a, b, '/api/movies/8');
    const epochKey = `{${ctx.ns}}:epoch`;
    const epoch = Number(await ctx.admin.get(epochKey));

    await cut(a, p);
    for (let i = 0; i <= MAX_QUEUED; i++) assert.deepEqual(await a.cache.invalidateTags([`t${i}`]), { delivered: false });
    await assertStillHitsL1(b, '/api/movies/8', movie8);

    p.heal();
    // movie 8 carries none of the tags: only the clear() drops it.
    assert.ok(await eventually(async () => (await b.get('/api/movies/8')).body !== movie8, RECONNECT_MS, 20), 'B still serves movie 8 after the heal');
    assert.ok(Number(await ctx.admin.get(epochKey)) > epoch, 'the epoch did not move');
    const counters = await ctx.admin.keys(`${ctx.ns}:v:{t*`);
    assert.deepEqual(counters, [], `the collapsed tags were bumped one by one: ${counters.slice(0, 3).join(', ')} ...`);
  });

  it('a fill on A that began before a queued invalidateKey of its key is not stored in A\'s L1', async function () {
    this.timeout(20_000);
    const [a, , p] = await cutPair();
    await a.get('/api/slow'); // learns the key
    const key = a.keys.get('/api/slow')!;
    assert.deepEqual(await a.cache.invalidateKey(key), { delivered: true });
    const { reply: pending } = await startSlow(a);
    await cut(a, p);
    assert.deepEqual(await a.cache.invalidateKey(key), { delivered: false });
    const slow = await withinBound(pending, 5000, 'the slow request');
    assert.equal(slow.status, 200);
    assert.equal(a.cache.store.l1?.peek(key), undefined, "the overtaken fill is in A's L1");
  });

  it('a fill on A that began before a queued invalidation of its tag is not stored, and neither A nor B serves it after the heal', async function () {
    this.timeout(20_000);
    const [a, b, p] = await cutPair();
    const { reply: pending } = await startSlow(a);

    await cut(a, p);
    assert.deepEqual(await a.cache.invalidateTags(['slow']), { delivered: false });
    const slow = await withinBound(pending, 5000, 'the slow request');
    assert.equal(slow.status, 200);
    const key = a.keys.get('/api/slow')!;
    assert.equal(a.cache.store.l1?.peek(key), undefined, "the overtaken fill is in A's L1");

    p.heal();
    assert.ok(await eventually(() => a.cache.health().l2 === 'ok' && a.cache.health().bus === 'ok', RECONNECT_MS, 20), 'A did not reconnect');
    for (const inst of [a, b]) assert.notEqual((await inst.get('/api/slow')).body, slow.body, `${inst.name} served the overtaken fill`);
  });
});

describe('invalidation during an outage: a frozen Redis (SIGSTOP / SIGCONT)', () => {
  const ctx = useRedis(true);

  it('an invalidation that timed out while Redis was frozen reaches B once Redis answers again', async function () {
    this.timeout(20_000);
    const a = await ctx.instance('A', { l2: { commandTimeout: 100, breakerCooldown: 200 } });
    const b = await ctx.instance('B');
    a.cache.on('error', () => undefined);
    const movie7 = await warmBoth(a, b, '/api/movies/7');

    ctx.redis.freeze();
    let result;
    try {
      result = await withinBound(a.cache.invalidateTags(['movie:7']), 5000, 'invalidateTags while Redis is frozen');
    } finally {
      ctx.redis.thaw();
    }
    assert.deepEqual(result, { delivered: false });
    const delivered = await eventually(async () => (await b.get('/api/movies/7')).body !== movie7, RECONNECT_MS, 20);
    assert.ok(delivered, `B still serves the invalidated answer ${RECONNECT_MS} ms after the thaw`);
    await assertNeverServes(a, '/api/movies/7', movie7);
  });

  it('an invalidation while the breaker is still open after a timeout (Redis answers again, no probe due yet) is delivered at once: bump and message both go through', async function () {
    this.timeout(20_000);
    const a = await ctx.instance('A', { l2: { commandTimeout: 100, breakerCooldown: 10_000 } });
    const b = await ctx.instance('B');
    a.cache.on('error', () => undefined);
    const movie7 = await warmBoth(a, b, '/api/movies/7');
    ctx.redis.freeze();
    try {
      await a.cache.get('anything'); // times out: the breaker opens
    } finally {
      ctx.redis.thaw();
    }
    assert.equal(a.cache.stats().l2.breaker, 'open', 'the premise: a timeout opened the breaker');
    const received = b.cache.bus!.received;
    assert.deepEqual(await a.cache.invalidateTags(['movie:7']), { delivered: true });
    assert.ok(await eventually(() => b.cache.bus!.received > received, PROPAGATION_MS, 1), 'B did not hear the invalidation sent through the open breaker');
    await assertNeverServes(b, '/api/movies/7', movie7);
  });

  it('a version script flushed from the script cache is loaded again: the next invalidation is delivered', async function () {
    this.timeout(15_000);
    const [a, b] = await ctx.pair();
    const movie7 = await warmBoth(a, b, '/api/movies/7');
    await ctx.admin.script('FLUSH');
    await invalidateAndDeliver(a, b, async () => assert.deepEqual(await a.cache.invalidateTags(['movie:7']), { delivered: true }));
    await assertNeverServes(b, '/api/movies/7', movie7);
  });
});
