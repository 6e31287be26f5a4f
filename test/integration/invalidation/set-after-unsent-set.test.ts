// Why this test exists (h136's open item, h144): a set() made while its
// instance knew Redis was down (nothing sent) becomes a delete() of its key,
// queued with a deadline on Redis's clock: a value stored past it is newer and
// is left. That deadline was the end of the wait the set() would have had
// (its call plus one command timeout), though the set() sent nothing and
// returned at once: a set() the caller made right after it on another
// instance, stored within that timeout, was deleted by the replay. Two caches
// and a reader on one real redis-server; A goes through a TCP proxy that is cut.
import assert from 'node:assert/strict';
import type { TierCache } from '../../../src/index.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

const queued = (cache: TierCache) => (cache as unknown as { queue: { length: number } }).queue.length;

describe('a set() Redis could not take, nothing sent', function () {
  this.timeout(30_000);
  const ctx = useRedisCaches({ prefix: 'set-unsent', flush: true });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  async function cutOff(): Promise<{ a: TierCache; b: TierCache; c: TierCache; errors: string[] }> {
    proxy = await startTcpProxy(ctx.redis.port);
    const a = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 1_000 } });
    const errors: string[] = [];
    a.on('error', ({ err }: { err: Error }) => errors.push(err.message));
    const b = await ctx.open({ l2: { commandTimeout: '3s' } });
    const c = await ctx.open({ l1: false, l2: { commandTimeout: '3s' } });
    return { a, b, c, errors };
  }

  for (const mode of ['refuse', 'blackhole'] as const) {
    it(`its replayed delete() leaves a set() the caller then made on another instance within a command timeout (${mode === 'refuse' ? 'connection lost' : 'breaker open after a timeout'})`, async () => {
      const { a, b, c, errors } = await cutOff();
      await b.set('k', 'before', { ttl: '1h' });
      assert.equal(await a.get('k'), 'before');
      proxy!.cut(mode);
      await eventually(() => a.health().l2 !== 'ok', 'A sees Redis down', 10_000);
      const begun = performance.now();
      await a.set('k', 'a-lost', { ttl: '1h' });
      assert.ok(performance.now() - begun < 500, 'the set() waited for a Redis known down (the test proves nothing)');
      // Well within the 1 s wait A's set() would have had, had it been sent.
      await b.set('k', 'b-after', { ttl: '1h' });
      await eventually(() => errors.some((m) => m.includes('set("k") was applied on this instance and queued')), 'the set() is reported unreached', 2_000);
      proxy!.heal();
      await eventually(() => a.health().l2 === 'ok' && queued(a) === 0, 'A reconnected, nothing queued', 10_000);
      assert.equal(await c.get('k'), 'b-after', "A's replayed delete() deleted the set() the caller made after A's");
      assert.equal(await a.get('k'), 'b-after');
    });
  }

  /** 'k' set by B and read by A, then A cut off. */
  async function setThenCut(): Promise<{ a: TierCache; b: TierCache; c: TierCache }> {
    const caches = await cutOff();
    await caches.b.set('k', 'first', { ttl: '1h' });
    assert.equal(await caches.a.get('k'), 'first');
    proxy!.cut('refuse');
    await eventually(() => caches.a.health().l2 !== 'ok', 'A sees Redis down', 5_000);
    return caches;
  }

  it('made after a queued invalidation of its tag (not stored, as that is not replayed yet), its replayed delete() leaves a set() the caller then made on another instance', async () => {
    const { a, b, c } = await setThenCut();
    await a.invalidateTags(['t']);
    await a.set('k', 'a-lost', { ttl: '1h', tags: ['t'] });
    await b.set('k', 'b-after', { ttl: '1h' });
    proxy!.heal();
    await eventually(() => a.health().l2 === 'ok' && queued(a) === 0, 'A reconnected, nothing queued', 10_000);
    assert.equal(await c.get('k'), 'b-after', "A's replayed delete() deleted the set() the caller made after A's");
  });

  it('its replayed delete() still deletes a value stored just before it', async () => {
    const { a, b, c } = await setThenCut();
    await b.set('k', 'b-older', { ttl: '1h' });
    await a.set('k', 'a-lost', { ttl: '1h' });
    proxy!.heal();
    await eventually(() => a.health().l2 === 'ok' && queued(a) === 0, 'A reconnected, nothing queued', 10_000);
    assert.equal(await c.get('k'), undefined, "the value from before A's set() is read after its replayed delete()");
  });

  it("still deletes a value stored just before it when Redis's clock stepped forward while A was cut off", async () => {
    const { a, b, c } = await setThenCut();
    // A's last sample of Redis's clock, as if Redis's clock was 5 s behind then and stepped forward since (NTP):
    // what A takes for "now" on Redis's clock is 5 s early, and a value stored since would look newer than A's set().
    const clock = a.store.l2!.clock!;
    const sent = performance.now();
    clock.learn((Date.now() - 5_000) * 1000, sent, sent + 0.1);
    await b.set('k', 'b-older', { ttl: '1h' });
    await a.set('k', 'a-lost', { ttl: '1h' });
    proxy!.heal();
    await eventually(() => a.health().l2 === 'ok' && queued(a) === 0, 'A reconnected, nothing queued', 10_000);
    assert.equal(await c.get('k'), undefined, "the value from before A's set() survived its replayed delete(): the clock step went unseen");
  });
});
