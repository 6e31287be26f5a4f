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
// invalidates directly.
import assert from 'node:assert/strict';
import request from 'supertest';
import { adapters, buildApp } from '../middleware/apps.js';
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
