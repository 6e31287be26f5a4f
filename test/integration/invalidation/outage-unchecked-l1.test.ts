// Why this test exists: once an instance reaches Redis on neither connection,
// the middleware serves no L1 entry it cannot check (README, "When Redis is
// down"): it cannot tell an outage from being cut off alone while other
// instances go on invalidating (the blackholed-route test). The request that
// fills kept to that, but a HEAD, and a GET that joined a fill under way,
// looked the key up through the store's get(), which serves such an entry in
// an outage (as the data API's get() does): they got the L1 copy as a fresh
// hit, one another instance had invalidated meanwhile, while the filling GET
// beside them got the new answer (found by helper-85 attacking its own fix
// for stale-if-error in an outage). Now they run the handler as it does; the
// copy is at most a stand-in for a 5xx within its stale-if-error window.
// Two caches on one real redis-server; B reaches it through a TCP proxy that
// is cut (connections refused), A invalidates directly.
import assert from 'node:assert/strict';
import request from 'supertest';
import { adapters, buildApp } from '../middleware/apps.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('an L1 entry the middleware cannot check, this instance cut off from Redis while another invalidates', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'unchecked-l1', flush: true, defaults: { l2: { commandTimeout: 200 } } });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  for (const adapter of adapters) {
    it(`${adapter.name}: a HEAD and a GET that joins a fill under way run the handler, not served the copy A invalidated`, async () => {
      proxy = await startTcpProxy(ctx.redis.port);
      const a = await ctx.open();
      const b = await ctx.open({ redis: proxy.url });
      b.on('error', () => undefined);
      const state = { version: 1, gate: undefined as Promise<void> | undefined, started: undefined as (() => void) | undefined };
      const app = buildApp(adapter, b, {
        routes: [
          {
            path: '/item/:id',
            mw: { ttl: '1h', tags: () => ['item:1'] },
            handler: async (io) => {
              state.started?.();
              await state.gate;
              io.set('ETag', `"v${state.version}"`);
              io.send(`version ${state.version}`);
            },
          },
        ],
      });
      assert.equal((await request(app.target).get('/item/1')).text, 'version 1');
      assert.match(String((await request(app.target).get('/item/1')).headers['cache-status']), /hit; detail=L1/);

      proxy.cut('refuse');
      await eventually(() => b.health().l2 === 'down' && !b.store.versions.trusted, 'B reaches Redis on neither connection', 8_000);
      assert.equal((await a.invalidateTags(['item:1'])).delivered, true);
      state.version = 2;

      const head = await request(app.target).head('/item/1');
      assert.equal(head.headers.etag, '"v2"', `a HEAD got the invalidated copy's head [${head.headers['cache-status']}]`);
      assert.doesNotMatch(String(head.headers['cache-status']), /hit/);

      let open!: () => void;
      state.gate = new Promise<void>((resolve) => (open = resolve));
      const running = new Promise<void>((resolve) => (state.started = resolve));
      const filling = request(app.target).get('/item/1').then((r) => r);
      await running;
      state.started = undefined;
      const joining = request(app.target).get('/item/1').then((r) => r);
      await sleep(50); // the second GET has joined the fill
      open();
      const [first, second] = await Promise.all([filling, joining]);
      assert.equal(first.text, 'version 2');
      assert.equal(second.text, 'version 2', `a GET that joined the fill got the invalidated copy [${second.headers['cache-status']}]`);
    });
  }
});
