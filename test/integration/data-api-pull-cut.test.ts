// Why this test exists: pull() deleted the entry in the script that read it.
// A pull whose caller gave up (the connection cut as it was sent, or its
// answer lost on the way back) still ran in Redis, at once or when ioredis
// resent it after the reconnect: the value was deleted and nobody got it.
// Now the read only claims the entry, for one command timeout, and a second
// step deletes it while the claim is still the caller's. Two caches on one
// real redis-server; A goes through a TCP proxy that is cut.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { useRedisCaches } from '../support/cache-context.js';
import { eventually } from '../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

describe('data API: pull() on an instance whose Redis connection is cut', function () {
  this.timeout(30_000);
  const ctx = useRedisCaches({ prefix: 'pull-cut', flush: true });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  for (const mode of ['refuse', 'blackhole'] as const) {
    it(`as it pulls (${mode}): nothing is pulled, the value stays, and once Redis is back one pull gets it`, async () => {
      proxy = await startTcpProxy(ctx.redis.port);
      const a = await ctx.open({ redis: proxy.url });
      a.on('error', () => undefined);
      const b = await ctx.open();
      await b.set('token', 'once');
      assert.equal(await a.get('token'), 'once', 'A holds a copy in L1');
      proxy.cut(mode);
      assert.equal(await a.pull('token'), undefined, 'pulled from an L1 copy, unchecked');
      proxy.heal();
      await eventually(() => a.health().l2 === 'ok', 'A reaches Redis again', 10_000);
      let got: unknown;
      await eventually(async () => (got = await a.pull('token')) !== undefined, 'a pull once Redis is back gets the value', 5_000);
      assert.equal(got, 'once');
      assert.equal(await b.pull('token'), undefined);
    });
  }

  it('cut between its two steps: the pull gets nothing, the value stays, and one later pull gets it', async () => {
    proxy = await startTcpProxy(ctx.redis.port);
    const a = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 300 } });
    a.on('error', () => undefined);
    const b = await ctx.open();
    await b.set('token', 'once');
    // The connection cut once the entry is claimed, before the step that takes it is sent.
    const fills = (a.store as unknown as { fills: { settleClaim: (...args: unknown[]) => Promise<boolean> } }).fills;
    const settle = fills.settleClaim.bind(fills);
    fills.settleClaim = (...args: unknown[]) => {
      proxy!.cut('refuse');
      return settle(...args);
    };
    assert.equal(await a.pull('token'), undefined, 'a value was handed over that was never taken');
    assert.equal(await ctx.admin.exists(a.dataKey('token')), 1);
    let got: unknown;
    await eventually(async () => (got = await b.pull('token')) !== undefined, 'another instance pulls the value', 5_000);
    assert.equal(got, 'once');
  });

  it('cut once the value is taken, before the other instances are told: the pull still gets it, without an error', async () => {
    proxy = await startTcpProxy(ctx.redis.port);
    const a = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 300 } });
    const errors: string[] = [];
    a.on('error', ({ err }: { err: Error }) => void errors.push(err.message));
    const b = await ctx.open();
    await b.set('token', 'once');
    const fills = (a.store as unknown as { fills: { settleClaim: (...args: unknown[]) => Promise<boolean> } }).fills;
    const settle = fills.settleClaim.bind(fills);
    fills.settleClaim = async (...args: unknown[]) => {
      const taken = await settle(...args);
      proxy!.cut('refuse');
      return taken;
    };
    assert.equal(await a.pull('token'), 'once');
    assert.equal(await b.pull('token'), undefined);
    // What could not be told is reported, naming the pull.
    assert.ok(errors.some((m) => m.includes('pull("token")')), errors.join(' | '));
  });

  it('mid-call (its answer lost on the way back): the value stays for a later pull', async () => {
    // Every chunk held 50 ms each way: the pull runs in Redis, and its answer is in the proxy when the cut comes.
    proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 50);
    const a = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 1000 } });
    a.on('error', () => undefined);
    const b = await ctx.open();
    await b.set('token', 'once');
    const pulling = a.pull('token');
    await sleep(75);
    proxy.cut('refuse');
    assert.equal(await pulling, undefined);
    assert.equal(await ctx.admin.exists(a.dataKey('token')), 1, 'the value was deleted, and nobody got it');
    // Its claim runs out by itself (gone, or a TTL left): without one it would stay in Redis until another pull of the key.
    assert.notEqual(await ctx.admin.pttl(`{${a.dataKey('token')}}:pull`), -1, 'the lost pull left a claim without a TTL');
    let got: unknown;
    await eventually(async () => (got = await b.pull('token')) !== undefined, 'another instance pulls the value', 5_000);
    assert.equal(got, 'once');
  });

  it("whose take ran but whose answer was lost: the other instances' L1 copies of the value are dropped too", async () => {
    // Every chunk held 50 ms each way: the take runs in Redis at 50 ms, its answer is in the proxy when the cut comes.
    proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 50);
    const a = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 1000 } });
    a.on('error', () => undefined);
    const b = await ctx.open();
    await b.set('token', 'once');
    assert.equal(await b.get('token'), 'once', 'B holds a copy in L1');
    const fills = (a.store as unknown as { fills: { settleClaim: (...args: unknown[]) => Promise<unknown> } }).fills;
    const settle = fills.settleClaim.bind(fills);
    fills.settleClaim = (...args: unknown[]) => {
      setTimeout(() => proxy!.cut('refuse'), 75);
      return settle(...args);
    };
    const misses = a.stats().l2.misses;
    let missEvents = 0;
    a.on('miss', () => void missEvents++);
    assert.equal(await a.pull('token'), undefined, 'the pull was answered though its take was cut');
    assert.equal(await ctx.admin.exists(a.dataKey('token')), 0, 'the premise: the take ran in Redis');
    // Answered as a miss, and counted as one.
    assert.equal(a.stats().l2.misses, misses + 1, 'L2 misses');
    assert.equal(missEvents, 1, "'miss' events");
    proxy.heal();
    await eventually(async () => (await b.get('token')) === undefined, "B still serves the value taken from Redis from its L1 copy", 3_000);
  });

  it("whose take never reached Redis (cut on its way) and got no answer: the value stays in Redis, and a later pull gets it", async () => {
    // Every chunk held 50 ms each way: the cut at 20 ms comes while the take is still in the proxy.
    proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 50);
    const a = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 1000 } });
    a.on('error', () => undefined);
    const b = await ctx.open();
    await b.set('token', 'once');
    const fills = (a.store as unknown as { fills: { settleClaim: (...args: unknown[]) => Promise<unknown> } }).fills;
    const settle = fills.settleClaim.bind(fills);
    fills.settleClaim = (...args: unknown[]) => {
      setTimeout(() => proxy!.cut('refuse'), 20);
      return settle(...args);
    };
    assert.equal(await a.pull('token'), undefined, 'the pull was answered though its take was cut');
    assert.equal(await ctx.admin.exists(a.dataKey('token')), 1, 'the premise: the take never ran in Redis');
    proxy.heal();
    await eventually(() => a.health().l2 === 'ok' && (a as unknown as { queue: { length: number } }).queue.length === 0, 'A reconnected, nothing queued', 5_000);
    // The claim of A's pull holds off other pulls until it expires (A's wait for a step).
    await eventually(async () => (await ctx.admin.exists(`{${a.dataKey('token')}}:pull`)) === 0, "A's claim expires", 3_000);
    assert.equal(await b.pull('token'), 'once', 'the value the take never took is gone');
  });
});
