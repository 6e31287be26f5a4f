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
import { gatedLoader } from '../../support/gated-loader.js';
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

// The data API in the same state, for the same reason: it answered such an entry from L1 (bounded by l1.ttl only),
// so a route handler reading through getOrSet() got the value the middleware had just refused to serve, and a
// loader that ran through another instance's invalidation had its value served afterwards (DESIGN §4(3)).
describe('a data-API value this instance cannot check, cut off from Redis while another instance invalidates', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'unchecked-data', flush: true, defaults: { l2: { commandTimeout: 200 } } });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  const cutB = async () => {
    proxy = await startTcpProxy(ctx.redis.port);
    const a = await ctx.open();
    const b = await ctx.open({ redis: proxy.url });
    b.on('error', () => undefined);
    return { a, b, proxy };
  };

  it('get() and getOrSet() miss an L1 value from before the invalidation: the loader runs', async () => {
    const { a, b, proxy } = await cutB();
    assert.equal(await b.getOrSet('item', () => 'v1', { tags: ['item:1'] }), 'v1');
    assert.equal(await b.get('item'), 'v1');
    proxy.cut('refuse');
    await eventually(() => b.health().l2 === 'down' && !b.store.versions.trusted, 'B reaches Redis on neither connection', 8_000);
    assert.deepEqual(await a.invalidateTags(['item:1']), { delivered: true });
    assert.equal(await b.get('item'), undefined, 'get() answered from L1 the value A invalidated');
    let runs = 0;
    let misses = 0;
    b.on('miss', () => misses++);
    assert.equal(await b.getOrSet('item', () => (runs++, 'v2'), { tags: ['item:1'] }), 'v2', 'getOrSet() answered from L1 the value A invalidated');
    assert.equal(runs, 1);
    assert.equal(misses, 1, "one getOrSet() reported more than one 'miss'");
    proxy.heal();
    await eventually(() => b.health().bus === 'ok', "B's bus is back", 8_000);
    assert.equal(await b.get('item'), undefined, 'B kept serving the invalidated value once its bus was back');
  });

  it('a loader that ran through the invalidation: its caller gets its value, a caller that joined it and every later one do not', async () => {
    const { a, b, proxy } = await cutB();
    const loader = gatedLoader();
    const first = b.getOrSet('item', loader.load, { tags: ['item:1'] });
    await loader.started;
    const joined = b.getOrSet('item', loader.load, { tags: ['item:1'] });
    proxy.cut('refuse');
    await eventually(() => b.health().l2 === 'down' && !b.store.versions.trusted, 'B reaches Redis on neither connection', 8_000);
    loader.version = 2;
    assert.deepEqual(await a.invalidateTags(['item:1']), { delivered: true });
    loader.open();
    assert.equal(await first, 'v1', 'the caller whose loader ran gets what it loaded');
    assert.equal(await joined, 'v2', "a caller that joined the run got its value after A's invalidation");
    assert.equal(await b.get('item'), undefined, "get() answered from L1 the loader's value, overtaken by A's invalidation");
    assert.equal(await b.getOrSet('item', () => 'v2', { tags: ['item:1'] }), 'v2', "getOrSet() answered from L1 the loader's value");
    assert.equal(loader.runs, 2, 'the loader ran once for the caller that joined');
  });

  // Refusing joiners Redis cannot vouch for must not turn an outage into one load per caller on the data
  // source: the callers a run leaves share one run begun after they came (its value needs no vouching).
  for (const warm of [false, true]) {
    it(`concurrent getOrSet() callers of ${warm ? 'a key held in L1' : 'a key not held here'}, B cut off: one run for the callers the first run leaves, not one each`, async () => {
      const { b, proxy } = await cutB();
      if (warm) await b.set('item', 'v0', { tags: ['item:1'] });
      proxy.cut('refuse');
      await eventually(() => b.health().l2 === 'down' && !b.store.versions.trusted, 'B reaches Redis on neither connection', 8_000);
      const loader = gatedLoader();
      const first = b.getOrSet('item', loader.load, { tags: ['item:1'] });
      await loader.started;
      const joined = Array.from({ length: 20 }, () => b.getOrSet('item', loader.load, { tags: ['item:1'] }));
      await sleep(50); // every caller has joined the run
      assert.equal(loader.runs, 1);
      loader.version = 2;
      loader.open();
      assert.equal(await first, 'v1');
      assert.deepEqual(new Set(await Promise.all(joined)), new Set(['v2']), 'a caller that joined the run was handed its value unvouched');
      assert.equal(loader.runs, 2, `the 20 callers that joined the run loaded ${loader.runs - 1} times`);
    });
  }
});
