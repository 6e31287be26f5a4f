// L2Store on its own, against a real redis-server: how it sorts a failed
// connection check (a reply error while connected is reported and L2 goes up;
// a timeout opens the breaker; a lost connection takes L2 down), what
// waitReady() answers in each phase, and that a connection that arrives while
// another is being checked is checked too, never two at once. The client is
// the one tiercache opens for a URL (openRedis); the checks are the
// caller's hook (tiercache's loads scripts and reads the epoch), here made to
// fail in each way on purpose.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { L2Store, L2UnavailableError, withTimeout, type L2Options } from '../../src/store/l2-store.js';
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

  /** An L2Store on a client opened as tiercache opens one for a URL (or on `given`, a caller's client). */
  function open(url: string, check?: L2Options['check'], cooldown = COOLDOWN_MS, given?: RedisClient): Opened {
    const { client, boundsCommands } = given === undefined ? openRedis(url, COMMAND_TIMEOUT_MS) : openRedis(given, COMMAND_TIMEOUT_MS);
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

  for (const refusal of ['CLUSTERDOWN The cluster is down', "READONLY You can't write against a read only replica."]) {
    it(`a check refused with ${refusal.split(' ')[0]} (an answer, but commands would fail) takes L2 down, is no failure, and a probe that passes brings L2 back`, async () => {
      let checks = 0;
      // The refusal as Redis sends it: an error reply, from a script on a real server.
      const { l2, downs, ups, failures } = open(ctx.redis.url, (c) => (++checks === 1 ? c.call('EVAL', `return redis.error_reply("${refusal}")`, '0') : c.ping()));
      assert.equal(await eventually(() => downs.length === 1), true, 'L2 was not reported down');
      assert.deepEqual([failures, ups], [[], []], 'the refusal was taken for Redis up');
      assert.equal(await eventually(() => l2.state === 'ok'), true, 'L2 did not come back once a probe passed');
      assert.deepEqual(ups, [true]);
    });
  }

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
    // Also once the check itself has failed (its connection's 'close' may take L2 down first).
    assert.equal(l2.breakerIsOpen, false, 'the lost check opened the breaker');
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

  it('a connection that arrives while the previous one is being checked is checked too, after it, never at the same time; L2 comes up on its check, not the first', async () => {
    const p = await proxy();
    let checks = 0;
    let running = 0;
    let mostAtOnce = 0;
    const releases: Array<() => void> = [];
    const { l2, client } = open(p.url, async (c) => {
      checks++;
      mostAtOnce = Math.max(mostAtOnce, ++running);
      try {
        await c.ping();
        await new Promise<void>((resolve) => releases.push(resolve));
      } finally {
        running--;
      }
    });
    // Its PING answered: the client tiercache opens sends nothing again after a cut (9c0b001), so one cut while
    // out would only time out and fail the check, not leave it out.
    assert.equal(await eventually(() => checks === 1 && releases.length === 1), true);
    // The connection under check goes away and a new one is ready while the first check is still out.
    let readies = 0;
    client.on('ready', () => readies++);
    p.cut();
    p.heal();
    assert.equal(await eventually(() => readies === 1), true, 'the client did not reconnect');
    await sleep(50);
    assert.notEqual(l2.state, 'ok', 'L2 went up before the first check ended');
    releases[0]!();
    assert.equal(await eventually(() => checks === 2), true, 'the second connection was not checked');
    await sleep(50);
    assert.notEqual(l2.state, 'ok', "L2 went up on the first connection's check");
    releases[1]!();
    assert.equal(await eventually(() => l2.state === 'ok'), true, 'L2 did not come up after both checks');
    assert.deepEqual([checks, mostAtOnce], [2, 1]);
  });

  describe('phases: connecting, up, down, detached', () => {
    it("a caller's client that is already connected is checked and used: L2 comes up without a new connection", async () => {
      const client = openRedis(ctx.redis.url, COMMAND_TIMEOUT_MS).client;
      await new Promise((resolve) => client.once('ready', resolve));
      let checks = 0;
      const { l2, ups } = open('', async (c) => {
        checks++;
        return c.ping();
      }, COOLDOWN_MS, client);
      assert.equal(await l2.waitReady(5_000), true, 'L2 never came up on a client that was already connected');
      assert.deepEqual([checks, ups], [1, [false]]);
    });

    it("a caller's client whose own commandTimeout is longer than commandTimeout: a command on a frozen Redis still ends within commandTimeout", async () => {
      const client = new Redis(ctx.redis.url, { commandTimeout: COMMAND_TIMEOUT_MS * 10, maxRetriesPerRequest: 1 });
      const { l2 } = open('', undefined, COOLDOWN_MS, client);
      assert.equal(await l2.waitReady(5_000), true);
      ctx.redis.freeze();
      const started = performance.now();
      await assert.rejects(l2.get('k'), /timed out/i);
      const took = performance.now() - started;
      // Generous: it only tells commandTimeout from the client's ten times longer one.
      assert.ok(took < COMMAND_TIMEOUT_MS * 3, `a command waited ${Math.round(took)} ms (commandTimeout ${COMMAND_TIMEOUT_MS} ms, the client's ${COMMAND_TIMEOUT_MS * 10} ms)`);
    });

    it('a command sent before the first connection is up waits for it, then runs; the connection is checked once it is ready, never before', async () => {
      await ctx.admin.set('k', 'v');
      let checks = 0;
      const { l2, client, downs, ups } = open(ctx.redis.url, async (c) => {
        checks++;
        return c.ping();
      });
      assert.equal(l2.state, 'connecting');
      assert.notEqual(client.status, 'ready');
      assert.deepEqual(await l2.get('k'), Buffer.from('v'));
      assert.deepEqual({ checks, ups, downs }, { checks: 1, ups: [false], downs: [] });
    });

    it('a command sent before the first connection fails as unavailable ("not connected") once commandTimeout passed without one', async () => {
      ctx.redis.freeze();
      const { l2 } = open(ctx.redis.url);
      const started = performance.now();
      await assert.rejects(l2.get('k'), (err: Error) => err instanceof L2UnavailableError && /not connected/.test(err.message));
      assert.ok(performance.now() - started >= COMMAND_TIMEOUT_MS - 5, 'it failed without waiting for the connection');
    });

    it('a timed-out wait for the first connection leaves nothing behind, whichever of several waits ends first', async () => {
      ctx.redis.freeze();
      const { l2 } = open(ctx.redis.url);
      // Every command while Redis never answers waits like this: a wait left behind is a leak per request.
      const waits = [l2.waitReady(60), l2.waitReady(30), l2.waitReady(45)];
      assert.deepEqual(await Promise.all(waits), [false, false, false]);
      assert.equal((l2 as unknown as { readyWaiters: unknown[] }).readyWaiters.length, 0, 'timed-out waits are still held');
    });

    it('a first connection that fails takes L2 down and ends every wait at once with false', async () => {
      const p = await proxy();
      p.cut(); // refused
      const { l2, downs } = open(p.url);
      const started = performance.now();
      assert.equal(await l2.waitReady(5_000), false);
      assert.ok(performance.now() - started < 4_000, 'the wait ran to its own timeout instead of ending when L2 went down');
      assert.equal(downs.length, 1);
      // The client's own error is the cause reported, not a guess from the closed connection.
      assert.match(downs[0]!.message, /^connect ECONN(RESET|REFUSED)/);
      assert.equal(l2.state, 'down');
    });

    it('a first connection that the far end closes before it is ready (a proxy without a backend) takes L2 down, so commands fail fast', async () => {
      const closer = createServer((socket) => socket.on('data', () => socket.end()));
      await new Promise<void>((resolve) => closer.listen(0, '127.0.0.1', () => resolve()));
      try {
        const { port } = closer.address() as AddressInfo;
        const { l2, downs } = open(`redis://127.0.0.1:${port}`);
        const started = performance.now();
        assert.equal(await l2.waitReady(5_000), false);
        assert.ok(performance.now() - started < 4_000, 'L2 stayed "connecting": every command would wait commandTimeout for it');
        assert.equal(l2.state, 'down');
        assert.equal(downs.length, 1);
        assert.match(downs[0]!.message, /closed the connection before it was ready/);
        await assert.rejects(l2.get('k'), L2UnavailableError);
      } finally {
        for (const { client } of opened) client.disconnect();
        await new Promise((resolve) => closer.close(resolve));
      }
    });

    it('a connection the server closes takes L2 down once ("connection lost"), and the next one brings it back once', async () => {
      const { l2, client, downs, ups } = open(ctx.redis.url);
      assert.equal(await l2.waitReady(5_000), true);
      const id = await client.client('ID');
      await ctx.admin.client('KILL', 'ID', String(id));
      assert.equal(await eventually(() => downs.length === 1), true, 'a closed connection did not take L2 down');
      assert.equal(downs[0]!.message, 'the connection to Redis was lost');
      assert.equal(await eventually(() => l2.state === 'ok'), true, 'L2 did not come back on the new connection');
      await sleep(COOLDOWN_MS);
      assert.deepEqual([downs.length, ups], [1, [false, true]]);
    });

    it("a command whose turn of the event loop ran past commandTimeout (this process's own work), before it was written or while its reply waited in the kernel, is answered, not timed out: no breaker, L2 not reported down", async () => {
      const { l2, downs, failures } = open(ctx.redis.url);
      assert.equal(await l2.waitReady(5_000), true);
      await ctx.admin.set('k', 'v');
      for (const when of ['before it was written', 'while its reply waited']) {
        const pending = l2.get('k');
        // The turn's writes go out at its end (write-batching.ts): one turn later the GET is on its way.
        if (when === 'while its reply waited') await new Promise((resolve) => setImmediate(resolve));
        const until = performance.now() + 3 * COMMAND_TIMEOUT_MS;
        while (performance.now() < until) {
          // blocked: Redis answers meanwhile, this process does not look
        }
        assert.deepEqual(await pending, Buffer.from('v'), when);
      }
      assert.deepEqual([l2.state, l2.breakerIsOpen, downs, failures], ['ok', false, [], []]);
    });

    it('a reply error while Redis is up is reported as a failure: L2 stays up and the breaker closed', async () => {
      const { l2, downs, ups, failures } = open(ctx.redis.url);
      assert.equal(await l2.waitReady(5_000), true);
      await assert.rejects(l2.run((c) => c.call('TIERCACHE-NO-SUCH-COMMAND')), /unknown command/i);
      assert.equal(failures.length, 1);
      assert.deepEqual([l2.state, l2.breakerIsOpen, downs.length, ups], ['ok', false, 0, [false]]);
      assert.deepEqual(await l2.get('missing'), null);
    });

    it('a command lost with its connection takes L2 down, is not reported as a failure, and does not open the breaker', async () => {
      const p = await proxy();
      const { l2, client, downs, failures } = open(p.url);
      assert.equal(await l2.waitReady(5_000), true);
      const lost = l2.run(async (c) => {
        const reply = c.ping();
        const closed = new Promise((resolve) => client.once('close', resolve));
        p.cut();
        await closed;
        await reply.catch(() => undefined);
        throw new Error('Connection is closed.');
      });
      await assert.rejects(lost, /Connection is closed/);
      assert.deepEqual([failures, l2.state, l2.breakerIsOpen, downs.length], [[], 'down', false, 1]);
    });

    it("a command its connection took with it (a caller's client that sends nothing again, with no timeout of its own) times out without opening the breaker once the next connection is up", async () => {
      const p = await proxy();
      // As the README recommends a caller's client: it never answers such a command; tiercache's own timer does.
      const given = new Redis(p.url, { autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
      const { l2, client, downs, ups, failures } = open(p.url, undefined, COOLDOWN_MS, given);
      assert.equal(await l2.waitReady(5_000), true);
      const started = performance.now();
      // Written, then the connection cut at once: the next one is up (about 50 ms) well before the command's timeout.
      const lost = l2.run((c) => {
        const reply = c.get('k');
        p.cut('refuse');
        p.heal();
        return reply;
      });
      await assert.rejects(lost, /timed out/i);
      assert.ok(performance.now() - started < 2 * COMMAND_TIMEOUT_MS, 'the caller waited past the command timeout');
      assert.equal(client.status, 'ready');
      assert.deepEqual([l2.state, l2.breakerIsOpen, downs.length, ups, failures], ['ok', false, 1, [false, true], []]);
      assert.equal(await l2.get('k'), null, 'a command after it failed fast');
    });

    it('after a timeout, a plain del() fails fast like any command; only an urgent one is tried', async () => {
      const { l2 } = open(ctx.redis.url, undefined, 5_000);
      assert.equal(await l2.waitReady(5_000), true);
      ctx.redis.freeze();
      await assert.rejects(l2.get('k'), /timed out/i);
      ctx.redis.thaw();
      await ctx.admin.set('k', 'v');
      await assert.rejects(l2.del('k'), (err: Error) => err instanceof L2UnavailableError && /timed out recently/.test(err.message));
      assert.equal(await ctx.admin.get('k'), 'v', 'a plain del() reached Redis while the breaker was open');
      await l2.del('k', true);
      assert.equal(await ctx.admin.get('k'), null);
    });

    it('timeouts of several commands at once schedule one probe, not one each', async () => {
      let checks = 0;
      const { l2 } = open(ctx.redis.url, async (c) => {
        checks++;
        return c.ping();
      });
      assert.equal(await l2.waitReady(5_000), true);
      ctx.redis.freeze();
      const failed = await Promise.allSettled([l2.get('a'), l2.get('b'), l2.get('c')]);
      assert.deepEqual(failed.map((r) => r.status), ['rejected', 'rejected', 'rejected']);
      ctx.redis.thaw(); // before the probe: the probe gets its answer at once
      assert.equal(await eventually(() => l2.state === 'ok'), true, 'L2 did not come back');
      await sleep(COOLDOWN_MS * 3);
      assert.equal(checks, 2, 'the first connection and one probe');
    });

    it('no probe is sent while there is no connection: it waits for the next connection, whose check brings L2 back', async () => {
      const p = await proxy();
      let checks = 0;
      const { l2 } = open(p.url, async (c) => {
        checks++;
        return c.ping();
      }, 300);
      assert.equal(await l2.waitReady(5_000), true);
      ctx.redis.freeze();
      await assert.rejects(l2.get('k'), /timed out/i);
      p.cut(); // before the probe is due
      ctx.redis.thaw();
      await sleep(1_000);
      assert.equal(checks, 1, 'a probe was sent without a connection');
      p.heal();
      assert.equal(await eventually(() => l2.state === 'ok'), true, 'L2 did not come back on the new connection');
      assert.equal(checks, 2);
    });

    it('a check that passes after its connection went away does not bring L2 up; the next connection does', async () => {
      const p = await proxy();
      let checks = 0;
      const { l2, client, ups } = open(p.url, async (c) => {
        const reply = await c.ping();
        if (++checks === 1) {
          const closed = new Promise((resolve) => client.once('close', resolve));
          p.cut();
          await closed;
        }
        return reply;
      });
      assert.equal(await eventually(() => checks === 1), true);
      await sleep(50);
      assert.notEqual(l2.state, 'ok', 'L2 went up on a check whose connection was gone');
      p.heal();
      assert.equal(await eventually(() => l2.state === 'ok'), true, 'L2 did not come back on the new connection');
      assert.equal(ups.length, 1);
    });

    it('detach() ends waits with false, removes its listeners from the client, and lets no command through afterwards', async () => {
      const given = openRedis(ctx.redis.url, COMMAND_TIMEOUT_MS).client;
      const before = ['ready', 'error', 'close', 'end'].map((event) => given.listenerCount(event));
      ctx.redis.freeze();
      const { l2, downs, ups } = open('', undefined, COOLDOWN_MS, given);
      const waiting = l2.waitReady(5_000);
      l2.detach();
      assert.equal(await waiting, false);
      // open() adds one 'error' listener of its own.
      assert.deepEqual(['ready', 'error', 'close', 'end'].map((event) => given.listenerCount(event)), [before[0], before[1]! + 1, before[2], before[3]]);
      ctx.redis.thaw();
      await new Promise((resolve) => given.once('ready', resolve));
      await assert.rejects(l2.run((c) => c.ping(), true), L2UnavailableError);
      assert.deepEqual([downs, ups, l2.state], [[], [], 'down']);
    });

    it('a command that times out after detach() reports nothing and schedules no probe', async () => {
      let checks = 0;
      const { l2, downs, ups } = open(ctx.redis.url, async (c) => {
        checks++;
        return c.ping();
      });
      assert.equal(await l2.waitReady(5_000), true);
      ctx.redis.freeze();
      const inFlight = l2.get('k');
      l2.detach();
      await assert.rejects(inFlight, /timed out/i);
      ctx.redis.thaw();
      await sleep(COOLDOWN_MS * 3);
      assert.deepEqual([downs, ups, checks, l2.state], [[], [false], 1, 'down']);
    });

    it("after a timeout and a new connection, not even an urgent command goes through before the new connection's check passed", async () => {
      const p = await proxy();
      let checks = 0;
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const { l2, client } = open(p.url, async (c) => {
        await c.ping();
        if (++checks === 2) await held;
      }, 5_000);
      assert.equal(await l2.waitReady(5_000), true);
      ctx.redis.freeze();
      await assert.rejects(l2.get('k'), /timed out/i);
      ctx.redis.thaw();
      assert.equal(l2.breakerIsOpen, true);
      let readies = 0;
      client.on('ready', () => readies++);
      p.cut();
      p.heal();
      assert.equal(await eventually(() => readies === 1 && checks === 2), true, 'the new connection was not checked');
      await assert.rejects(l2.run((c) => c.ping(), true), L2UnavailableError);
      release();
      assert.equal(await eventually(() => l2.state === 'ok'), true);
      assert.equal(await l2.run((c) => c.ping(), true), 'PONG');
    });

    it("an 'error' while the connection is ready (a Cluster's failed slot refresh, say) does not take L2 down: only losing the connection does", async () => {
      const { l2, client, downs } = open(ctx.redis.url);
      assert.equal(await l2.waitReady(5_000), true);
      client.emit('error', new Error('Failed to refresh slots cache.'));
      assert.deepEqual([l2.state, downs], ['ok', []]);
      assert.equal(await l2.run((c) => c.ping()), 'PONG');
    });

    it('withTimeout() leaves no timer behind once the command answered', async () => {
      const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
      const before = timers();
      // Fifty commands in a row: other timers of the process may come and go meanwhile, not fifty of them.
      for (let i = 0; i < 50; i++) assert.equal(await withTimeout(Promise.resolve('PONG'), 60_000), 'PONG');
      assert.ok(timers() - before < 10, `${timers() - before} timers of the full commandTimeout outlive their commands`);
    });
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
