// Why this test exists: ioredis sends a command whose reply a connection cut
// lost again once it reconnects (the client tiercache opens keeps
// autoResendUnfulfilledCommands, and maxRetriesPerRequest: 1 lets a command
// live through one reconnect). A set()'s store script that Redis ran before
// the cut ran again after it, over a set() another instance made in between:
// readers saw the first value, the second, then the first again, and the
// second was lost. Now a set() leaves a token its script finds when run again.
// Two caches (and a reader) on one real redis-server; A goes through a TCP
// proxy that holds every chunk 50 ms, so the cut comes after the script
// reached Redis and before its reply reached A.
import assert from 'node:assert/strict';
import { useRedisCaches } from '../support/cache-context.js';
import { eventually } from '../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

describe('data API: a set() whose reply a connection cut lost', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'set-resend' });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  for (const size of [10, 20_000]) {
    it(`(${size} bytes) is not applied again after another instance's set() made in between`, async () => {
      // Every chunk held 50 ms each way: the script runs in Redis, and its reply is in the proxy when the cut comes.
      proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 50);
      const a = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 1500 } });
      a.on('error', () => undefined);
      const b = await ctx.open();
      const c = await ctx.open();
      const first = 'first'.padEnd(size, '.');
      const second = 'second'.padEnd(size, '.');
      let stored = 0;
      a.on('store', () => void stored++);
      const setting = a.set('k', first);
      await eventually(async () => (await c.get('k')) === first, 'the first set() reaches Redis');
      c.store.l1?.clear();
      proxy.cut('refuse');
      await b.set('k', second);
      const raw = await ctx.admin.getBuffer(a.dataKey('k'));
      assert.ok(raw?.includes(second), 'the second set() is stored');
      proxy.heal();
      // Answered by the script sent again on the new connection.
      await setting;
      assert.equal(stored, 1, "A's set() was not answered after the reconnect: its script was not sent again");
      c.store.l1?.clear();
      assert.ok((await c.get('k')) === second, 'the first set() was applied again, over the second');
    });
  }
});
