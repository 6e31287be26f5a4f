// Why this test exists: ioredis sends a command whose reply a connection cut
// lost again once it reconnects (autoResendUnfulfilledCommands, its default).
// A set()'s store script that Redis ran before the cut ran again after it,
// over a set() another instance made in between: readers saw the first
// value, the second, then the first again, and the second was lost. Now a
// set() leaves a token its script finds when run again. Two caches (and a
// reader) on one real redis-server; A goes through a TCP proxy that holds
// every chunk 50 ms, so the cut comes after the script reached Redis and
// before its reply reached A (through a client of the app's own, which sends
// again).
// A token lives only so long (max(2 s, 4 command timeouts)), and ioredis
// sends what a cut left unanswered at its next ready, however late: after a
// longer outage the script landed over the newer value (seen for ~200 ms,
// until A's replayed invalidation deleted it). The client tiercache opens
// from a URL no longer sends anything again (its caller was answered by the
// command timeout long before).
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { useRedisCaches } from '../support/cache-context.js';
import { eventually } from '../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

describe('data API: a set() whose reply a connection cut lost', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'set-resend' });
  let proxy: TcpProxy | undefined;
  let given: Redis | undefined;
  afterEach(async () => {
    given?.disconnect();
    given = undefined;
    await proxy?.close();
    proxy = undefined;
  });

  for (const size of [10, 20_000]) {
    it(`(${size} bytes) is not applied again after another instance's set() made in between`, async () => {
      // Every chunk held 50 ms each way: the script runs in Redis, and its reply is in the proxy when the cut comes.
      proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 50);
      // The app's own client, with ioredis's default autoResendUnfulfilledCommands (the one tiercache opens does not send again).
      given = new Redis(proxy.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
      given.on('error', () => undefined);
      const a = await ctx.open({ redis: given, l2: { commandTimeout: 1500 } });
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
      // The script run again replies the version its first run moved the key to, which the second set() has passed:
      // A's own copy of the first value is outdated, not served over the second.
      await eventually(() => a.stats().l2.state === 'ok', "A's Redis is ready again");
      assert.ok((await a.get('k')) === second, "A serves its own first value, stamped as if it were the newest");
      // A staged payload sent again is deleted at once, not left to expire.
      assert.deepEqual(await ctx.admin.keys('*:tiercache:stage:*'), [], 'a staging key was left');
    });
  }

  it("leaves its token beside the key's counter for max(2 s, 4 command timeouts), no longer", async () => {
    const a = await ctx.open({ l2: { commandTimeout: 800 } });
    await a.set('k', 'v');
    const tokens = await ctx.admin.keys(`${a.store.versions.counterKeyOf(`key:${a.dataKey('k')}`)}:set:*`);
    assert.equal(tokens.length, 1, 'no token, or more than one');
    const ttl = await ctx.admin.pttl(tokens[0]!);
    assert.ok(ttl > 2_000 && ttl <= 3_200, `the token lives ${ttl} ms`);
  });

  it('is not sent again when the connection comes back after its token is gone', async () => {
    proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 50);
    // Its token lives max(2 s, 4 x 300 ms).
    const a = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 300 } });
    a.on('error', () => undefined);
    const b = await ctx.open();
    const c = await ctx.open();
    const first = 'first-value';
    const setting = a.set('k', first);
    await eventually(async () => (await c.get('k')) === first, 'the first set() reaches Redis');
    c.store.l1?.clear();
    proxy.cut('refuse');
    await setting;
    await sleep(2_500);
    await b.set('k', 'second-value');
    const sent: string[] = [];
    const monitor = await ctx.admin.monitor();
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args.some((arg) => String(arg).includes(first))) sent.push(String(args[0]));
    });
    try {
      const attempts = proxy.attempts;
      proxy.heal();
      await eventually(() => proxy!.connections > 0 && proxy!.attempts > attempts, 'A connects again');
      // ioredis sends what it keeps at ready, just after its ready check's INFO.
      await sleep(500);
      await ctx.admin.ping();
    } finally {
      monitor.disconnect();
    }
    assert.deepEqual(sent, [], "the first set()'s script, sent again after the reconnect");
    c.store.l1?.clear();
    assert.notEqual(await c.get('k'), first, 'the first set() came back over the second');
  });
});
