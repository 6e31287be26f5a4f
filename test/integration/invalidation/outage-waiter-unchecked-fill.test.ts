// A request that waits on a fill under way is not given that fill's answer
// when this instance can neither trust its versions (its bus is down) nor ask
// Redis (README, "When Redis is down": no answer it cannot check, "nor to a
// request that waits on another's fill, either"). A fill whose store was on
// its way to Redis when the instance was cut off keeps its answer in L1 alone
// and settles once the store fails (a command timeout later); a request that
// arrived meanwhile, after another instance's invalidation had resolved, took
// that answer as a collapsed miss: the waiter refused only what local state
// knew to be invalidated, and local state, cut off, knew nothing (found by the
// h92 stress harness: collapsed misses 50-110 ms after other instances'
// invalidateTags resolved, on an instance cut off 60-110 ms before). Now, with
// the bus down, Redis must vouch for the answer, and when it cannot the waiter
// runs the handler. Two caches on one real redis-server; B reaches it through
// a slow TCP proxy (50 ms each way) that is cut (connections refused), A
// invalidates directly. The requests such a fill leaves share one fill begun
// after they came, whose answer they take unvouched and unstored (its handler
// ran after they were sent): an outage costs two handler runs per key, not one
// per request; an invalidation made here while that fill runs still refuses it.
// So do the requests a fill leaves as Redis comes back while it runs (its
// version state reset, it cannot be stored): not one handler run each.
import assert from 'node:assert/strict';
import request from 'supertest';
import { adapters, buildApp, type Adapter } from '../middleware/apps.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a request that joins a fill whose store was cut off, after another instance's invalidation", function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'outage-waiter', flush: true });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  for (const adapter of adapters) {
    it(`${adapter.name}: the waiter runs the handler instead of taking the answer it cannot check`, async () => {
      proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 50);
      const a = await ctx.open();
      // The store's wait outlasts the rest of the test: the waiter joins the fill before it settles.
      const b = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 2_000 } });
      b.on('error', () => undefined);
      let version = 1;
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      let started!: () => void;
      const running = new Promise<void>((resolve) => (started = resolve));
      let held = true;
      const app = buildApp(adapter, b, {
        routes: [
          {
            path: '/item/:id',
            mw: { ttl: '1h', tags: () => ['item:1'] },
            handler: async (io) => {
              const read = version;
              if (held) {
                held = false;
                started();
                await gate;
              }
              io.send(`version ${read}`);
            },
          },
        ],
      });
      const filling = request(app.target).get('/item/1').then((r) => r);
      await running;
      open();
      await sleep(20); // the fill's store is on its way to Redis, through the slow link
      proxy.cut('refuse');
      await eventually(() => b.health().l2 === 'down' && !b.store.versions.trusted, 'B reaches Redis on neither connection', 8_000);
      version = 2;
      assert.equal((await a.invalidateTags(['item:1'])).delivered, true);

      const joining = await request(app.target).get('/item/1');
      assert.equal((await filling).text, 'version 1');
      assert.equal(joining.text, 'version 2', `a GET sent after the invalidation got the answer from before it [${joining.headers['cache-status']}]`);
    });
  }
});

describe('requests that wait on a fill while this instance is cut off from Redis', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'outage-waiters-share', flush: true });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  /**
   * B cut off (both connections), an app whose handler reads `version` as it starts (and answers it with the
   * request's x-req) and holds its first two runs until the test opens them, and the first GET's fill held with
   * 19 more GETs of the key waiting on it.
   */
  async function herdWaiting(adapter: Adapter, options: Parameters<typeof ctx.open>[0] = {}) {
    proxy = await startTcpProxy(ctx.redis.port);
    const b = await ctx.open({ redis: proxy.url, ...options });
    b.on('error', () => undefined);
    proxy.cut('refuse');
    await eventually(() => b.health().l2 === 'down' && !b.store.versions.trusted, 'B reaches Redis on neither connection', 8_000);
    const runs = [heldRun(), heldRun()];
    const state = { version: 1, runs: 0, arrived: 0 };
    const app = buildApp(adapter, b, {
      routes: [
        {
          path: '/item/:id',
          mw: {
            ttl: '1h',
            tags: () => ['item:1'],
            // Called as each GET reaches the cache: the test knows when all have come.
            bypass: () => {
              state.arrived++;
              return false;
            },
          },
          handler: async (io) => {
            const read = state.version;
            const run = runs[state.runs++];
            if (run !== undefined) {
              run.started();
              await run.gate;
            }
            io.send(`version ${read} for ${io.header('x-req')}`);
          },
        },
      ],
    });
    const first = request(app.target).get('/item/1').set('x-req', '0').then((r) => r);
    await runs[0]!.running;
    const waiting = Array.from({ length: 19 }, (_, i) => request(app.target).get('/item/1').set('x-req', String(i + 1)).then((r) => r));
    await eventually(() => state.arrived === 20, 'the 19 GETs reached the cache');
    await sleep(50); // each waits on the fill
    assert.equal(state.runs, 1);
    return { b, app, state, runs, first, waiting };
  }

  /**
   * Reads version 2 into the fills still to run and opens the first two runs: the first GET gets version 1, not
   * stored for `detail`; every waiter gets version 2 (made by a run begun after it came). Their answers.
   */
  async function bothRunsAnswer({ state, runs, first, waiting }: Awaited<ReturnType<typeof herdWaiting>>, detail: string) {
    state.version = 2;
    runs[0]!.open();
    runs[1]!.open();
    const first1 = await first;
    assert.equal(first1.text, 'version 1 for 0');
    assert.equal(first1.headers['cache-status'], `tiercache; fwd=miss; detail=${detail}`);
    const answers = await Promise.all(waiting);
    assert.deepEqual(new Set(answers.map((r) => `${r.status} ${r.text.split(' for ')[0]}`)), new Set(['200 version 2']), 'a waiter got an answer from a run begun before it was sent');
    return answers;
  }

  for (const adapter of adapters) {
    it(`${adapter.name}: the requests a fill leaves share one fill begun after they came: two handler runs for 20 GETs, each with the answer of a run begun after it was sent`, async () => {
      const herd = await herdWaiting(adapter);
      const answers = await bothRunsAnswer(herd, 'unreachable');
      assert.equal(herd.state.runs, 2, `the 19 GETs that waited on the fill ran the handler ${herd.state.runs - 1} times`);
      const statuses = answers.map((r) => r.headers['cache-status']).sort();
      assert.deepEqual(statuses, ['tiercache; fwd=miss; detail=unreachable', ...Array(18).fill('tiercache; fwd=miss; collapsed')].sort());
    });

    it(`${adapter.name}: Redis back while the first fill runs: the requests it leaves share one fill begun after they came`, async () => {
      // Redis healthy from here on: the second fill's store must not time out under load.
      const herd = await herdWaiting(adapter, { l2: { commandTimeout: '3s' } });
      const { b } = herd;
      proxy!.heal();
      // The bus back, B's version state is reset: the first fill, stamped before, cannot be stored.
      await eventually(() => b.health().l2 === 'ok' && b.health().bus === 'ok' && b.store.versions.trusted, 'B reaches Redis again on both connections', 15_000);
      const answers = await bothRunsAnswer(herd, 'invalidated');
      const statuses = [...new Set(answers.map((r) => r.headers['cache-status']))].join(' | ');
      assert.equal(herd.state.runs, 2, `the 19 GETs that waited on the fill ran the handler ${herd.state.runs - 1} times as Redis came back [${statuses}]`);
    });

    it(`${adapter.name}: an invalidation made here while the fill they share runs keeps its answer from them`, async () => {
      const { b, state, runs, first, waiting } = await herdWaiting(adapter);
      state.version = 2;
      runs[0]!.open();
      await runs[1]!.running; // the second fill's handler has read version 2
      state.version = 3;
      assert.equal((await b.invalidateTags(['item:1'])).delivered, false);
      runs[1]!.open();
      assert.equal((await first).text, 'version 1 for 0');
      const answers = await Promise.all(waiting);
      // A request may get an answer its own handler made before the invalidation (it ran through it), no other.
      const handed = answers.filter((r, i) => r.text.startsWith('version 2') && r.text !== `version 2 for ${i + 1}`);
      assert.deepEqual(handed.map((r) => `${r.text} [${r.headers['cache-status']}]`), [], 'an answer made before the invalidation was handed to other requests');
      assert.equal(state.runs, 20);
    });
  }
});

/** A handler run held until the test opens it. */
function heldRun() {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  return { gate, open, started, running };
}
