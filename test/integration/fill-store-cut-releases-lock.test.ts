// Why this test exists: a fill whose store step (or, when it stored nothing,
// whose release) a cut took with it left its fill lock in Redis. The client tiercache opens does not send that step
// again (openRedis), and nothing else released the lock, so a request for
// the key on another instance waited the lock's whole lifetime (3 s) before
// running the loader itself, Redis answering again all along (sending again
// had stored the value and released the lock within 0.1 s). Two caches on
// one real redis-server; A goes through a TCP proxy cut as A's step is sent.
// A release sent again must still release only its own fill's lock: with one
// token per instance, it released the lock of a later fill of the key on the
// same instance, and another instance ran its loader beside that fill.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { useRedisCaches } from '../support/cache-context.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

describe('a fill whose last step a connection cut took with it', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'fscut' });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  it("releases its lock once Redis answers again: another instance's caller waits about a command timeout, not the lock's lifetime", async () => {
    proxy = await startTcpProxy(ctx.redis.port);
    const a = await ctx.open({ redis: proxy.url });
    a.on('error', () => undefined);
    const b = await ctx.open();
    const fills = (a.store as unknown as { fills: { store: (...args: unknown[]) => Promise<unknown> } }).fills;
    const store = fills.store.bind(fills);
    fills.store = (...args: unknown[]) => {
      const storing = store(...args);
      proxy!.cut('refuse');
      proxy!.heal();
      return storing;
    };
    let loads = 0;
    const load = async () => {
      loads++;
      await sleep(100);
      return 'loaded';
    };
    const filling = a.getOrSet('k', load);
    // B finds A's lock taken and waits for A's value.
    await sleep(40);
    const started = performance.now();
    assert.equal(await b.getOrSet('k', load), 'loaded');
    const waited = performance.now() - started;
    assert.equal(await filling, 'loaded');
    // The lock lives 3 s; A's store fails a command timeout (200 ms) after it was sent, B polls every 100 ms.
    assert.ok(waited < 1_500, `B waited ${waited.toFixed(0)} ms on the lock of a fill that could not store`);
    assert.ok(loads <= 2);
  });

  it("that stored nothing (its loader threw) releases its lock once Redis answers again, though the release went with the connection", async () => {
    proxy = await startTcpProxy(ctx.redis.port);
    const a = await ctx.open({ redis: proxy.url });
    a.on('error', () => undefined);
    const b = await ctx.open();
    const fills = (a.store as unknown as { fills: { abandon: (...args: unknown[]) => void } }).fills;
    const abandon = fills.abandon.bind(fills);
    fills.abandon = (...args: unknown[]) => {
      abandon(...args);
      proxy!.cut('refuse');
      proxy!.heal();
    };
    const failing = a.getOrSet('k', async () => {
      await sleep(100);
      throw new Error('the database is down');
    });
    // Its rejection is taken up now: it comes while B waits.
    const failed = assert.rejects(failing, /database is down/);
    await sleep(40);
    const started = performance.now();
    assert.equal(await b.getOrSet('k', async () => 'loaded'), 'loaded');
    const waited = performance.now() - started;
    await failed;
    assert.ok(waited < 1_500, `B waited ${waited.toFixed(0)} ms on the lock of a fill that stored nothing`);
  });

  it("whose release is sent again once Redis answers leaves the lock another fill of the key on the same instance took since: another instance waits on that fill, its loader does not run", async () => {
    // A's link turns slow as its first fill's release goes out: Redis runs it (the lock freed) but A hears
    // back past its command timeout, so it sends it again once Redis answers, which the next fill's lookup
    // (sent in between, answered in time) is the first to do; that lookup took the lock, for the second fill.
    const timeout = 2_000;
    const slow = 2_800;
    proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 0, true);
    const a = await ctx.open({ redis: proxy.url, l2: { commandTimeout: timeout, breakerCooldown: '1m', lockTimeout: '10s' } });
    a.on('error', () => undefined);
    const b = await ctx.open({ l2: { commandTimeout: '3s', lockTimeout: '10s' } });
    const lockKey = `{${a.dataKey('k')}}:lock`;
    const l2 = a.store.l2!;
    const waitUp = l2.waitUp.bind(l2);
    let sentAgain = 0;
    l2.waitUp = async (ms: number) => {
      const up = await waitUp(ms);
      if (up) sentAgain++;
      return up;
    };
    await assert.rejects(
      a.getOrSet('k', async () => {
        proxy!.setDelay(slow);
        throw new Error('the database is down');
      }),
      /database is down/,
    );
    // The release alone is held up: what follows (the next fill's lookup, A's periodic checks) waits behind it.
    await sleep(50);
    proxy.setDelay(0);
    // Sent before the release times out (A's L2 still up): it reaches Redis just after the release.
    await sleep(timeout * 0.7);
    let began!: () => void;
    const loading = new Promise<void>((resolve) => (began = resolve));
    let finish!: () => void;
    const second = a.getOrSet('k', async () => {
      began();
      await new Promise<void>((resolve) => (finish = resolve));
      return 'second';
    });
    await loading;
    // The release was sent again as the lookup's answer brought L2 back: a PING behind it answers once it ran.
    await l2.client.ping();
    assert.equal(sentAgain, 1, 'the release was not sent again');
    assert.equal(await ctx.admin.exists(lockKey), 1, 'the release sent again took the lock of the fill begun since');
    let loadsB = 0;
    const there = b.getOrSet('k', async () => {
      loadsB++;
      return 'b';
    });
    await sleep(300);
    finish();
    assert.equal(await second, 'second');
    assert.deepEqual([await there, loadsB], ['second', 0], "another instance ran its loader beside the fill that held the key's lock");
  });
});

// Its lookup (which takes the lock with the entry's look, in one script) reached Redis and ran, but its
// reply came past the command timeout: the fill went on unlocked, and nothing it sent carried the lock's
// token, so the lock stayed for the whole of l2.lockTimeout, other instances waiting it out.
describe('a fill whose lookup Redis ran but whose reply came too late', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'fslost' });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  /** A through a proxy whose replies come 600 ms late while `late` is on (past its 300 ms command timeout); B direct. */
  async function twoCaches() {
    proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 0, true);
    const a = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 300, breakerCooldown: 100, lockTimeout: '15s' } });
    a.on('error', () => undefined);
    const b = await ctx.open({ l2: { commandTimeout: '3s', lockTimeout: '15s' } });
    const lockKey = `{${a.dataKey('k')}}:lock`;
    return { a, b, lockKey, late: (on: boolean) => proxy!.setDelay(on ? 600 : 0, 'replies') };
  }

  /** Whether `lockKey` is gone within `ms` (the lock lives 15 s). */
  async function goneWithin(lockKey: string, ms: number): Promise<boolean> {
    for (const until = performance.now() + ms; performance.now() < until; await sleep(25)) {
      if ((await ctx.admin.exists(lockKey)) === 0) return true;
    }
    return false;
  }

  it('releases the lock that lookup took once Redis answers again, its loader having ended while L2 was out: another instance runs its loader at once', async () => {
    const { a, b, lockKey, late } = await twoCaches();
    late(true);
    assert.equal(await a.getOrSet('k', async () => 'a'), 'a');
    assert.equal(a.store.l2!.state, 'down', 'the lookup did not time out');
    assert.equal(await ctx.admin.exists(lockKey), 1, "the lookup did not take the lock in Redis (the test's premise)");
    late(false);
    assert.ok(await goneWithin(lockKey, 4_000), `the lock of A's fill stayed once Redis answered A again (PTTL ${await ctx.admin.pttl(lockKey)} ms)`);
    let loadsB = 0;
    assert.equal(await b.getOrSet('k', async () => (loadsB++, 'b')), 'b');
    assert.equal(loadsB, 1);
  });

  it('that ends once Redis answers again releases that lock with its store, in one step', async () => {
    const { a, lockKey, late } = await twoCaches();
    const fills = (a.store as unknown as { fills: { store: (request: { lock?: { key: string } }) => Promise<unknown> } }).fills;
    const store = fills.store.bind(fills);
    const stores: Array<string | undefined> = [];
    fills.store = (request) => {
      stores.push(request.lock?.key);
      return store(request);
    };
    const state = () => a.store.l2!.state;
    late(true);
    const filling = a.getOrSet('k', async () => {
      // Past the lookup's timeout (L2 out), then Redis answering again before the loader ends.
      while (state() !== 'down') await sleep(10);
      late(false);
      while (state() !== 'ok') await sleep(10);
      return 'a';
    });
    // getOrSet resolves once its store step is answered.
    assert.equal(await filling, 'a');
    assert.deepEqual(stores, [lockKey], 'the store step did not carry the lock');
    assert.equal(await ctx.admin.exists(lockKey), 0, `the lock of A's fill stayed after its store (PTTL ${await ctx.admin.pttl(lockKey)} ms)`);
  });
});
