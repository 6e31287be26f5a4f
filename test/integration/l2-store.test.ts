// L2Store on its own, against a real redis-server: how it sorts a failed
// connection check (a reply error while connected is reported and L2 goes up;
// a timeout opens the breaker; a lost connection takes L2 down), what
// waitReady() answers in each phase, and that a connection that arrives while
// another is being checked is checked too, never two at once. The client is
// the one tiercache opens for a URL (openRedis); the checks are the
// caller's hook (tiercache's loads scripts and reads the epoch), here made to
// fail in each way on purpose.
import assert from 'node:assert/strict';
import { L2Store, L2UnavailableError, type L2Options } from '../../src/store/l2-store.js';
import { openRedis, type RedisClient } from '../../src/store/redis-client.js';
import { useRedisCaches } from '../support/cache-context.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

const COMMAND_TIMEOUT_MS = 200;
const COOLDOWN_MS = 100;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function eventually(check: () => boolean, timeoutMs = 5_000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() >= deadline) return false;
    await sleep(5);
  }
  return true;
}

interface Opened {
  readonly l2: L2Store;
  readonly client: RedisClient;
  readonly downs: Error[];
  readonly ups: boolean[];
  readonly failures: Error[];
}

describe('L2Store: connection checks, failures and readiness', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'l2store', serverPerTest: true });
  const opened: Opened[] = [];
  const proxies: TcpProxy[] = [];

  afterEach(async () => {
    ctx.redis.thaw();
    for (const { l2, client } of opened.splice(0)) {
      l2.detach();
      client.disconnect();
    }
    for (const proxy of proxies.splice(0)) await proxy.close();
  });

  /** An L2Store on a client opened as tiercache opens one for a URL. */
  function open(url: string, check?: L2Options['check'], cooldown = COOLDOWN_MS): Opened {
    const { client, boundsCommands } = openRedis(url, COMMAND_TIMEOUT_MS);
    client.on('error', () => undefined);
    const downs: Error[] = [];
    const ups: boolean[] = [];
    const failures: Error[] = [];
    const l2 = new L2Store(client, {
      commandTimeout: COMMAND_TIMEOUT_MS,
      breakerCooldown: cooldown,
      clientBoundsCommands: boundsCommands,
      ...(check === undefined ? {} : { check }),
      onDown: (err) => downs.push(err),
      onUp: (recovered) => ups.push(recovered),
      onFailure: (err) => failures.push(err),
    });
    const result = { l2, client, downs, ups, failures };
    opened.push(result);
    return result;
  }

  async function proxy(): Promise<TcpProxy> {
    const p = await startTcpProxy(ctx.redis.port);
    proxies.push(p);
    return p;
  }

  it('a check that Redis answers with an error (an ACL, say) is reported, and L2 goes up: Redis is there', async () => {
    const { l2, downs, ups, failures } = open(ctx.redis.url, (c) => c.call('TIERCACHE-NO-SUCH-COMMAND'));
    assert.equal(await l2.waitReady(5_000), true, 'L2 stayed down after a check Redis answered');
    assert.equal(failures.length, 1);
    assert.equal(failures[0]!.name, 'ReplyError');
    assert.deepEqual([downs.length, ups], [0, [false]]);
    await ctx.admin.set('k', 'v');
    assert.deepEqual(await l2.get('k'), Buffer.from('v'));
  });

  it('a check that times out opens the breaker: L2 is down and fails fast until a probe gets an answer', async () => {
    let checks = 0;
    const { l2, downs, ups, failures } = open(ctx.redis.url, (c) => {
      if (++checks === 1) ctx.redis.freeze();
      return c.ping();
    });
    assert.equal(await eventually(() => downs.length === 1), true, 'L2 was not reported down');
    assert.match(downs[0]!.message, /timed out/i);
    assert.equal(l2.state, 'down');
    assert.equal(l2.breakerIsOpen, true);
    assert.deepEqual([failures, ups], [[], []]);
    const started = performance.now();
    await assert.rejects(l2.get('k'), L2UnavailableError);
    assert.ok(performance.now() - started < COMMAND_TIMEOUT_MS, 'a command waited on a Redis that timed out');
    ctx.redis.thaw();
    assert.equal(await eventually(() => l2.state === 'ok'), true, 'L2 did not come back once Redis answered');
    assert.deepEqual(ups, [true]);
    assert.equal(l2.breakerIsOpen, false);
  });

  it('a check that loses its connection takes L2 down without opening the breaker, and the next connection brings it back', async () => {
    const p = await proxy();
    let checks = 0;
    const { l2, downs, ups, failures } = open(p.url, (c) => {
      if (++checks === 1) p.cut();
      return c.ping();
    });
    assert.equal(await eventually(() => downs.length === 1), true, 'L2 was not reported down');
    assert.doesNotMatch(downs[0]!.message, /timed out/i);
    assert.equal(l2.state, 'down');
    assert.equal(l2.breakerIsOpen, false, 'a lost connection opened the breaker');
    assert.deepEqual([failures, ups], [[], []]);
    await sleep(COOLDOWN_MS * 3);
    assert.equal(l2.state, 'down', 'L2 came up without a connection');
    p.heal();
    assert.equal(await eventually(() => l2.state === 'ok'), true, 'L2 did not come back on a new connection');
    assert.deepEqual(ups, [true]);
  });

  it('a check whose connection is lost after Redis answered it with an error counts as a lost connection, not as Redis being up', async () => {
    const p = await proxy();
    let checks = 0;
    const { l2, client, downs, failures } = open(p.url, async (c) => {
      if (++checks > 1) return c.ping();
      try {
        return await c.call('TIERCACHE-NO-SUCH-COMMAND');
      } catch (err) {
        const closed = new Promise((resolve) => client.once('close', resolve));
        p.cut();
        await closed;
        throw err;
      }
    });
    assert.equal(await eventually(() => downs.length === 1), true, 'L2 was not reported down');
    assert.deepEqual(failures, [], 'reported as a failed command of a Redis that is up');
    assert.equal(l2.state, 'down');
    p.heal();
    assert.equal(await eventually(() => l2.state === 'ok'), true, 'L2 did not come back on a new connection');
  });

  it('after a timeout, urgent commands (invalidations) are still tried while the breaker is open, also after a probe failed', async () => {
    let checks = 0;
    const { l2 } = open(ctx.redis.url, async (c) => {
      await c.ping();
      // The probe gets an answer it cannot use (a script reply of the wrong shape, say).
      if (++checks === 2) throw new Error('unexpected reply from a tiercache version script');
    }, 2_000); // a wide window between the failed probe and the next one
    assert.equal(await l2.waitReady(5_000), true);
    ctx.redis.freeze();
    await assert.rejects(l2.get('k'), /timed out/i);
    ctx.redis.thaw();
    assert.equal(await eventually(() => checks === 2), true, 'no probe ran');
    await sleep(20);
    assert.equal(l2.state, 'down');
    assert.equal(l2.breakerIsOpen, true);
    // Before the next probe: a plain command still fails fast, an urgent one goes through.
    await assert.rejects(l2.get('k'), L2UnavailableError);
    assert.equal(await l2.run((c) => c.ping(), true), 'PONG');
    assert.equal(l2.state, 'ok', 'an urgent command that Redis answered did not close the breaker');
  });

  it('a connection that arrives while the previous one is being checked is checked too, after it, never at the same time', async () => {
    const p = await proxy();
    let checks = 0;
    let running = 0;
    let mostAtOnce = 0;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const { l2, client } = open(p.url, async (c) => {
      checks++;
      mostAtOnce = Math.max(mostAtOnce, ++running);
      try {
        await c.ping();
        if (checks === 1) await held;
      } finally {
        running--;
      }
    });
    assert.equal(await eventually(() => checks === 1), true);
    // The connection under check goes away and a new one is ready while the first check is still out.
    let readies = 0;
    client.on('ready', () => readies++);
    p.cut();
    p.heal();
    assert.equal(await eventually(() => readies === 1), true, 'the client did not reconnect');
    await sleep(50);
    assert.notEqual(l2.state, 'ok', 'L2 went up before the first check ended');
    release();
    assert.equal(await eventually(() => l2.state === 'ok'), true, 'L2 did not come up after both checks');
    assert.deepEqual([checks, mostAtOnce], [2, 1]);
  });

  describe('waitReady()', () => {
    it('answers true at once while L2 is up, every time it is asked', async () => {
      const { l2 } = open(ctx.redis.url);
      assert.equal(await l2.waitReady(5_000), true);
      assert.equal(await l2.waitReady(5_000), true);
    });

    it('answers false at once once L2 is down, without waiting for it to come back', async () => {
      const { l2, downs } = open(ctx.redis.url);
      assert.equal(await l2.waitReady(5_000), true);
      ctx.redis.kill('SIGKILL');
      await ctx.redis.exited();
      assert.equal(await eventually(() => downs.length === 1), true, 'L2 was not reported down');
      const started = performance.now();
      assert.equal(await l2.waitReady(5_000), false);
      assert.ok(performance.now() - started < 1_000, `waitReady() waited ${Math.round(performance.now() - started)} ms on a Redis that is down`);
    });

    it('answers false when the first connection is not up within the time given', async () => {
      ctx.redis.freeze(); // the kernel accepts the connection; Redis never answers
      const { l2 } = open(ctx.redis.url);
      assert.equal(await l2.waitReady(COMMAND_TIMEOUT_MS), false);
      assert.equal(l2.state, 'connecting');
    });
  });
});
