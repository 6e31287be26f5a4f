// Why this test exists: a set() whose script is held on a slow link (not a
// cut, not a frozen Redis: its bytes are in transit) is answered by its
// command timeout as unreached, and its caller goes on; another instance then
// sets the key. The held script reached Redis after that and stored the older
// value over the newer one: other instances read it (h123 measured ~0.2 s, up
// to ~1.2 s when the queued delete waited for the breaker). Now a set()
// carries a deadline on Redis's own clock (learned at every connection check
// and epoch check) and the store script refuses to run past it. Two caches and
// a reader on one real redis-server; A goes through a TCP proxy slowed once
// its connection is up.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { createCache } from '../../src/index.js';
import { useRedisCaches } from '../support/cache-context.js';
import { eventually } from '../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

describe('data API: a set() held on a slow link past its caller', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'set-late' });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  for (const size of [10, 20_000]) {
    it(`(${size} bytes) never lands over a set() made after its caller was answered`, async () => {
      proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 0, true);
      // Its breaker probes again soon once the link is fast again (the test waits for its queue to drain).
      const a = await ctx.open({ redis: proxy.url, l2: { breakerCooldown: 100 } });
      a.on('error', () => undefined);
      const b = await ctx.open();
      const c = await ctx.open({ l1: false });
      const older = 'older'.padEnd(size, '.');
      const newer = 'newer'.padEnd(size, '.');
      await c.set('k', 'before');
      // A knows the key's version: its set() sends its store script at once, with no stamp read before it.
      assert.equal(await a.get('k'), 'before');
      proxy.setDelay(500);
      // Answered by its command timeout (200 ms), its script still on its way.
      await a.set('k', older);
      await b.set('k', newer);
      assert.equal(await c.get('k'), newer);
      const seen = new Set<unknown>();
      // Past the held script (it reaches Redis 500 ms after it was sent) and the delete() that follows it.
      const until = performance.now() + 1_000;
      while (performance.now() < until) {
        seen.add(await c.get('k'));
        await sleep(5);
      }
      // Nothing left behind by the refused script, which ran half a second ago: its staged payload went with it (not
      // at the end of its staging TTL, 2 s).
      assert.deepEqual(await ctx.admin.keys('*:tiercache:stage:*'), [], 'a staging key was left');
      proxy.setDelay(0);
      assert.ok(!seen.has(older), "another instance read the older set()'s value after the newer one");
      await eventually(() => a.health().l2 === 'ok', 'A reaches Redis again', 5_000);
      await eventually(() => (a as unknown as { queue: { length: number } }).queue.length === 0, "A's queued delete() is delivered", 5_000);
      // That delete() stood for the refused set(): the newer set() stays.
      assert.equal(await c.get('k'), newer);
    });
  }

  for (const [own, ours] of [[150, 1_000], [2_000, 150]] as const) {
    it(`with a caller's client whose command timeout is ${own < ours ? 'shorter' : 'longer'} than tiercache's, is refused past the ${own < ours ? "client's" : "one tiercache sets"}`, async () => {
      proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 0, true);
      // A's caller waits 150 ms: the shorter of the two timeouts.
      const given = new Redis(proxy.url, { commandTimeout: own });
      given.on('error', () => undefined);
      try {
        const a = await ctx.open({ redis: given, l2: { commandTimeout: ours } });
        a.on('error', () => undefined);
        const b = await ctx.open();
        const c = await ctx.open({ l1: false });
        await c.set('k', 'before');
        assert.equal(await a.get('k'), 'before');
        assert.equal(await b.get('k'), 'before');
        // Held 260 ms on its way: past the caller's wait (150 ms), well within the longer timeout (and within twice the shorter).
        proxy.setDelay(260);
        await a.set('k', 'older');
        await b.set('k', 'newer');
        const seen = new Set<unknown>();
        const until = performance.now() + 600;
        while (performance.now() < until) {
          seen.add(await c.get('k'));
          await sleep(5);
        }
        proxy.setDelay(0);
        assert.ok(!seen.has('older'), "another instance read the older set()'s value after the newer one");
        await eventually(() => (a as unknown as { queue: { length: number } }).queue.length === 0, "A's queued delete() is delivered", 5_000);
        assert.equal(await c.get('k'), 'newer');
      } finally {
        given.disconnect();
      }
    });
  }

  it("refused past its deadline while its caller still waits: not stored, not kept in this instance's L1, no 'store' event, an 'error', a delete() instead", async () => {
    const a = await ctx.open();
    const errors: string[] = [];
    a.on('error', ({ err }: { err: Error }) => void errors.push(err.message));
    let stored = 0;
    a.on('store', () => void stored++);
    const c = await ctx.open({ l1: false });
    await c.set('k', 'before');
    assert.equal(await a.get('k'), 'before');
    // A deadline already past on Redis's clock: as if the script had been held until then, its answer still in time.
    const clock = a.store.l2!.clock!;
    clock.deadline = () => 1;
    await a.set('k', 'refused');
    assert.equal(stored, 0, "a 'store' event for a set() Redis refused");
    assert.notEqual(await a.get('k'), 'refused', 'A serves from L1 a value Redis refused');
    assert.notEqual(await c.get('k'), 'refused', 'Redis stored it');
    await eventually(async () => (await c.get('k')) === undefined, 'the value from before the set() is deleted');
    assert.ok(errors.some((m) => m.includes('past its deadline')), errors.join(' | '));
  });

  it("is stored on a healthy Redis when the first clock sample's reply was handled late (the event loop busy), and its own trip took half its wait", async () => {
    // A 400 ms command timeout: the test's blocks keep 150 ms or more from every timeout on a loaded machine.
    const a = ctx.track(createCache({ namespace: ctx.ns, redis: ctx.redis.url, l2: { commandTimeout: 400 } }));
    const errors: string[] = [];
    a.on('error', ({ err }: { err: Error }) => void errors.push(err.message));
    // The process busy for 250 ms just after the connection check's epoch script went out (a GC pause, startup
    // work): its reply, with Redis's TIME, is handled 250 ms late, within the check's timeout.
    const client = a.store.l2!.client as unknown as { sendCommand(command: { name: string; args: unknown[] }, stream?: unknown): unknown };
    const send = client.sendCommand;
    let held = false;
    client.sendCommand = function (command, stream) {
      const sent = send.call(this, command, stream);
      if (!held && command.name.startsWith('eval') && command.args.some((arg) => String(arg).endsWith('}:epoch'))) {
        held = true;
        setImmediate(() => busy(250));
      }
      return sent;
    };
    await a.ready();
    assert.ok(held, "the check's script was not seen");
    let stored = 0;
    a.on('store', () => void stored++);
    // A knows the key's version: its next set() sends its store script at once, with no stamp read before it.
    await a.set('k', 'first');
    // This set()'s script leaves 220 ms late (the process busy again): about half its wait, answered in time.
    const setting = a.set('k', 'value');
    setImmediate(() => busy(220));
    await setting;
    assert.deepEqual(errors, []);
    assert.equal(stored, 2, 'a set() Redis answered in time was not stored');
    const c = await ctx.open({ l1: false });
    assert.equal(await c.get('k'), 'value');
    // The epoch check that follows every second (Redis's epoch unchanged) brings TIME back too: set()s get a deadline again.
    const clock = a.store.l2!.clock!;
    await eventually(() => clock.deadline(performance.now() + 400) !== undefined, 'no deadline after the next epoch checks', 3_000);
  });
});

/** Keeps this process busy for `ms` (a GC pause, a synchronous task). */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}
