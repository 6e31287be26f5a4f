// A fill's lookup (the entry's look and the fill lock, one script) that Redis
// ran but whose reply came past the command timeout: the fill went on
// unlocked and nothing it sent carried the lock's token, so the lock stayed
// for the whole of l2.lockTimeout and another instance's request for the key
// waited it out. The fill's end now releases it once Redis answers again.
// Instance A reaches a real redis-server through a TCP proxy holding replies;
// B reaches it directly. Express 5 and 4, Koa 3 and 2.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { useRedisCaches } from '../../support/cache-context.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';
import { adapters, buildApp, type RouteSpec } from './apps.js';

describe("middleware: a fill whose lookup's reply came too late", function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'lostlookup' });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  for (const adapter of adapters) {
    it(`${adapter.name}: releases the lock that lookup took once Redis answers again; another instance then fills at once, locked itself`, async () => {
      proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 0, true);
      const a = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 300, breakerCooldown: 100, lockTimeout: '15s' } });
      a.on('error', () => undefined);
      const b = await ctx.open({ l2: { commandTimeout: '3s', lockTimeout: '15s' } });
      const locks = () => ctx.admin.keys(`*${ctx.ns}*:lock`);
      let lockSeenByB: string | null | undefined;
      let lockKey = '';
      const routes = (onB: boolean): RouteSpec[] => [
        {
          path: '/page',
          mw: { ttl: '1m' },
          handler: async (io) => {
            if (onB) lockSeenByB = await ctx.admin.get(lockKey);
            io.send(onB ? 'b' : 'a');
          },
        },
      ];
      const appA = buildApp(adapter, a, { routes: routes(false) });
      const appB = buildApp(adapter, b, { routes: routes(true) });
      proxy.setDelay(600, 'replies');
      const first = await request(appA.target).get('/page');
      assert.equal(first.text, 'a');
      assert.equal(a.store.l2!.state, 'down', 'the lookup did not time out');
      const taken = await locks();
      assert.equal(taken.length, 1, "the lookup did not take the lock in Redis (the test's premise)");
      lockKey = taken[0]!;
      const tokenA = await ctx.admin.get(lockKey);
      proxy.setDelay(0, 'replies');
      let gone = false;
      for (const until = performance.now() + 4_000; !gone && performance.now() < until; await sleep(25)) gone = (await locks()).length === 0;
      assert.ok(gone, `the lock of A's fill stayed once Redis answered A again (PTTL ${await ctx.admin.pttl(taken[0]!)} ms)`);
      const second = await request(appB.target).get('/page');
      assert.equal(second.text, 'b');
      assert.equal(second.headers['cache-status'], 'tiercache; fwd=miss; stored');
      // B's own lookup took the lock, held while its handler ran.
      assert.ok(typeof lockSeenByB === 'string' && lockSeenByB !== tokenA, `B's fill ran without a lock of its own: ${lockSeenByB} (A's ${tokenA})`);
    });
  }
});
