// Invalidation across real processes: two app processes (test/fixtures/
// invalidation-app.ts, each an Express app with its own tiercache on its own
// port) share one real redis-server and namespace. After an invalidation
// POSTed to process A resolves, process B never again serves the old answer
// (once the bus message reaches it), while unrelated entries still hit B's L1.
// Children are killed by PID (SIGKILL) in the after hook and at exit.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { HIT_L1 } from '../../../src/middleware/cache-status.js';
import { startApp, START_MS, stopAllApps, type AppProcess, type Headers, type Reply } from '../../support/app-process.js';
import { startRedisServer, type RedisServerHandle } from '../../support/redis-server.js';

/** How long the other process's bus may take to receive an invalidation (a "does not hang" bound). */
const PROPAGATION_MS = 1000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Fills `url` on `first`, warms `second` from L2; both then serve the same body from L1. Returns it. */
async function warmBoth(first: AppProcess, second: AppProcess, url: string, headers?: Headers): Promise<Reply> {
  const filled = await first.get(url, headers);
  const again = await first.get(url, headers);
  assert.equal(again.cacheStatus, HIT_L1, `${first.name} ${url}: second request not served from L1`);
  assert.equal(again.body, filled.body);
  const fromL2 = await second.get(url, headers);
  assert.equal(fromL2.body, filled.body, `${second.name} ${url}: did not get ${first.name}'s entry through Redis (${fromL2.cacheStatus})`);
  const fromL1 = await second.get(url, headers);
  assert.equal(fromL1.cacheStatus, HIT_L1, `${second.name} ${url}: second request not served from L1`);
  assert.equal(fromL1.body, filled.body);
  return filled;
}

/**
 * POSTs the invalidation to `from`, then polls `to`'s /admin/health until
 * its bus has received the message (at most PROPAGATION_MS). Waiting for the
 * message, not for a miss, keeps the periodic epoch check from standing in for it.
 */
async function invalidateAndDeliver(from: AppProcess, to: AppProcess, query: Record<string, string>): Promise<void> {
  const received = (await to.health()).received;
  await from.invalidate(query);
  const deadline = performance.now() + PROPAGATION_MS;
  for (;;) {
    const h = await to.health();
    if (h.received > received) return;
    if (performance.now() >= deadline) {
      assert.fail(`${to.name} (pid ${to.pid}) did not receive ${from.name}'s invalidation ${JSON.stringify(query)} within ${PROPAGATION_MS} ms: ${JSON.stringify(h)}`);
    }
    await sleep(2);
  }
}

/** `app` does not serve `old` for `url`, at once and over a few more requests. Returns the first reply. */
async function assertNeverServes(app: AppProcess, url: string, old: Reply, headers?: Headers): Promise<Reply> {
  const first = await app.get(url, headers);
  assert.notEqual(first.body, old.body, `${app.name} (pid ${app.pid}) still served the old answer to ${url}: ${first.body} (${first.cacheStatus})`);
  for (let i = 0; i < 5; i++) {
    const later = await app.get(url, headers);
    assert.notEqual(later.body, old.body, `${app.name} served the old answer to ${url} again (request ${i + 2}; ${later.cacheStatus})`);
  }
  return first;
}

async function assertStillHitsL1(app: AppProcess, url: string, old: Reply, headers?: Headers): Promise<void> {
  const reply = await app.get(url, headers);
  assert.equal(reply.body, old.body, `${app.name} ${url}: an unrelated entry changed`);
  assert.equal(reply.cacheStatus, HIT_L1, `${app.name} ${url}: an unrelated entry is no longer served from L1`);
}

describe('invalidation across two app processes (child processes, real Redis)', function () {
  this.timeout(20_000);
  let server: RedisServerHandle;
  let a: AppProcess;
  let b: AppProcess;
  /** Ids unique to each test, so one test's entries never meet another's. */
  let id = 100;
  const nextId = () => String(++id);

  before(async function () {
    this.timeout(START_MS * 2 + 10_000);
    server = await startRedisServer();
    const namespace = `procs${process.pid}`;
    const env = { REDIS_URL: server.url, NAMESPACE: namespace };
    const started = await Promise.allSettled([startApp('A', env), startApp('B', env)]);
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    [a, b] = started.map((s) => (s as PromiseFulfilledResult<AppProcess>).value) as [AppProcess, AppProcess];
    assert.notEqual(a.pid, b.pid);
    for (const app of [a, b]) {
      const h = await app.health();
      assert.equal(h.health.bus, 'ok', `${app.name}'s bus is not subscribed: ${JSON.stringify(h)}`);
    }
  });

  after(async function () {
    this.timeout(15_000);
    await stopAllApps();
    await server?.stop();
  });

  it("invalidateUser('u1') on process A: B never again serves u1's old profile, u2's entries still hit on B", async () => {
    const [p1, p2] = [nextId(), nextId()];
    const u1 = { 'x-user': `u1-${p1}` };
    const u2 = { 'x-user': `u2-${p1}` };
    const u1Profile = await warmBoth(a, b, `/api/users/${p1}/profile`, u1);
    assert.equal(u1Profile.json.pid, a.pid, 'the warm-up fill did not run on A');
    const u1Other = await warmBoth(a, b, `/api/users/${p2}/profile`, u1);
    const u2Profile = await warmBoth(a, b, `/api/users/${p1}/profile`, u2);
    const u2Other = await warmBoth(a, b, `/api/users/${p2}/profile`, u2);
    assert.notEqual(u1Profile.body, u2Profile.body, 'u1 and u2 share an entry');

    await invalidateAndDeliver(a, b, { user: u1['x-user'] });

    const fresh = await assertNeverServes(b, `/api/users/${p1}/profile`, u1Profile, u1);
    assert.equal(fresh.json.user, u1['x-user']);
    await assertNeverServes(b, `/api/users/${p2}/profile`, u1Other, u1);
    await assertStillHitsL1(b, `/api/users/${p1}/profile`, u2Profile, u2);
    await assertStillHitsL1(b, `/api/users/${p2}/profile`, u2Other, u2);
    await assertNeverServes(a, `/api/users/${p1}/profile`, u1Profile, u1);
    await assertStillHitsL1(a, `/api/users/${p1}/profile`, u2Profile, u2);
  });

  it("invalidatePrefix('/api/movies') on process A: B drops /api/movies/<id> and its query variants, not /api/moviesX (segment-wise)", async () => {
    const m = nextId();
    const dropped = [`/api/movies/${m}`, `/api/movies/${m}?lang=fr`, `/api/movies/${m}?lang=de&page=2`];
    const old = new Map<string, Reply>();
    for (const url of dropped) old.set(url, await warmBoth(a, b, url));
    const moviesX = await warmBoth(a, b, `/api/moviesX?v=${m}`);
    const profile = await warmBoth(a, b, `/api/users/${m}/profile`, { 'x-user': `u-${m}` });

    await invalidateAndDeliver(a, b, { prefix: '/api/movies' });

    for (const url of dropped) await assertNeverServes(b, url, old.get(url)!);
    await assertStillHitsL1(b, `/api/moviesX?v=${m}`, moviesX);
    await assertStillHitsL1(b, `/api/users/${m}/profile`, profile, { 'x-user': `u-${m}` });
    for (const url of dropped) await assertNeverServes(a, url, old.get(url)!);
    await assertStillHitsL1(a, `/api/moviesX?v=${m}`, moviesX);
  });

  it('invalidateTags([movie:<id>]) on process A: B drops that movie, other movies still hit on B', async () => {
    const [m7, m8] = [nextId(), nextId()];
    const movie7 = await warmBoth(a, b, `/api/movies/${m7}`);
    const movie7Query = await warmBoth(a, b, `/api/movies/${m7}?lang=fr`);
    const movie8 = await warmBoth(a, b, `/api/movies/${m8}`);
    await invalidateAndDeliver(a, b, { tag: `movie:${m7}` });

    await assertNeverServes(b, `/api/movies/${m7}`, movie7);
    await assertNeverServes(b, `/api/movies/${m7}?lang=fr`, movie7Query);
    await assertStillHitsL1(b, `/api/movies/${m8}`, movie8);
    await assertNeverServes(a, `/api/movies/${m7}`, movie7);
    await assertStillHitsL1(a, `/api/movies/${m8}`, movie8);
  });

  it('invalidateKey(key from the response) on process A: B drops that entry only', async () => {
    const m = nextId();
    const target = await warmBoth(a, b, `/api/movies/${m}?lang=fr`);
    const sibling = await warmBoth(a, b, `/api/movies/${m}?lang=de`);
    assert.ok(target.json.key, 'the fixture did not report cache.keyFor(req)');

    await invalidateAndDeliver(a, b, { key: target.json.key });

    await assertNeverServes(b, `/api/movies/${m}?lang=fr`, target);
    await assertStillHitsL1(b, `/api/movies/${m}?lang=de`, sibling);
    await assertNeverServes(a, `/api/movies/${m}?lang=fr`, target);
  });

  it('clear() on process A: B never again serves any old answer', async () => {
    const m = nextId();
    const user = { 'x-user': `u-${m}` };
    const urls: Array<[string, Headers | undefined]> = [
      [`/api/movies/${m}`, undefined],
      [`/api/moviesX?v=${m}`, undefined],
      [`/api/users/${m}/profile`, user],
    ];
    const old = new Map<string, Reply>();
    for (const [url, headers] of urls) old.set(url, await warmBoth(a, b, url, headers));

    await invalidateAndDeliver(a, b, { clear: '1' });

    for (const [url, headers] of urls) await assertNeverServes(b, url, old.get(url)!, headers);
    for (const [url, headers] of urls) await assertNeverServes(a, url, old.get(url)!, headers);
  });
});
