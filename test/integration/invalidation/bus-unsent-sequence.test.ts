// A message the sender could not publish (Redis refused the PUBLISH, or it
// timed out) stays queued and goes out again later. Its sequence number must
// not be used up by the failed try: the other instances would see a gap at the
// sender's next message and flush their whole L1 (and forget every version)
// for a message they in fact get. And a number must never carry two different
// messages: a receiver that heard the first would take the second for a
// resend, and miss it unnoticed if it were lost. Two instances on one real
// redis-server; the sender's user loses PUBLISH by ACL (every other command
// still runs), or Redis holds the PUBLISH past the command timeout (CLIENT
// PAUSE WRITE) and delivers it afterwards. A raw subscriber records every
// message on the channel.
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import type { TierCache } from '../../../src/index.js';
import { MESSAGE_ITEMS, type BusMessage, type PublishProgress } from '../../../src/store/invalidation-bus.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const BOUND_MS = 5000;

interface BusInternals {
  readonly flushes: number;
  readonly gaps: number;
  readonly received: number;
  readonly channel: string;
  readonly instanceId: string;
  publish(message: BusMessage, progress?: PublishProgress): Promise<void>;
  /** A heartbeat (sent by the epoch check on a Cluster): the sender's last number. */
  sendToSelf(): number;
}
const busOf = (cache: TierCache) => cache.bus as unknown as BusInternals;

interface Heard {
  readonly s: number;
  /** The message without its sender and number. */
  readonly body: string;
  readonly heartbeat: boolean;
}

describe('the invalidation bus when a PUBLISH fails (standalone Redis)', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'bus', flush: true });
  let observer: Redis | undefined;

  afterEach(() => {
    observer?.disconnect();
    observer = undefined;
  });

  /** Every message `sender` puts on `channel` from now on, in order. */
  async function listen(channel: string, sender: () => string): Promise<Heard[]> {
    const heard: Heard[] = [];
    observer = new Redis(ctx.redis.url);
    observer.on('error', () => undefined);
    observer.on('message', (_channel: string, payload: string) => {
      const { i, s, h, ...rest } = JSON.parse(payload) as { i: string; s: number; h?: number };
      if (i === sender()) heard.push({ s, body: JSON.stringify(rest), heartbeat: h !== undefined });
    });
    await observer.subscribe(channel);
    return heard;
  }

  /** No number skipped, none going back, and each number carrying one message only. */
  function assertWellNumbered(heard: Heard[]): void {
    const bodies = new Map<number, string>();
    let last: number | undefined;
    for (const { s, body, heartbeat } of heard) {
      if (heartbeat) continue;
      if (last !== undefined) assert.ok(s === last || s === last + 1, `the sender's numbers went ${last} then ${s}: ${JSON.stringify(heard)}`);
      const before = bodies.get(s);
      assert.ok(before === undefined || before === body, `number ${s} carried two different messages: ${before} and ${body}`);
      bodies.set(s, body);
      last = s;
    }
  }

  it('a PUBLISH Redis refuses (the sender may not publish for a while) is delivered later under the number it had: the other instance sees no gap, keeps its unrelated L1 entries, and drops the invalidated one', async () => {
    const user = `nopub-${ctx.ns}`;
    await ctx.admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all');
    const a = await ctx.open({ redis: `redis://${user}:pw@127.0.0.1:${ctx.redis.port}` });
    a.on('error', () => undefined);
    const b = await ctx.open();
    const [busA, busB] = [busOf(a), busOf(b)];
    const heard = await listen(busA.channel, () => busA.instanceId);

    // B knows A's numbers: it heard one message of A's.
    assert.deepEqual(await a.invalidateTags(['warm-up']), { delivered: true });
    await eventually(() => busB.received === 1, 'B hears the first message', BOUND_MS);
    for (let n = 0; n < 5; n++) await b.set(`other-${n}`, `v${n}`, { tags: [`u${n}`] });
    await b.set('k', 'old', { tags: ['t'] });
    assert.equal(await b.get('k'), 'old');
    const [flushes, gaps] = [busB.flushes, busB.gaps];

    await ctx.admin.call('ACL', 'SETUSER', user, '-publish');
    // The bump goes through; the PUBLISH is refused: queued, tried again every second.
    assert.deepEqual(await a.invalidateTags(['t']), { delivered: false });
    await sleep(2_500);
    assert.ok(a.stats().queuedInvalidations >= 1, 'the invalidation is not queued');
    await ctx.admin.call('ACL', 'SETUSER', user, '+publish');
    // A heartbeat before the queue's next try (up to a second away) does not count the number kept for it as missed.
    busA.sendToSelf();
    await eventually(async () => (await b.get('k')) === undefined, 'B drops the invalidated entry once the PUBLISH goes through', BOUND_MS);
    await eventually(() => a.stats().queuedInvalidations === 0, 'the queue empties', BOUND_MS);

    assert.equal(busB.gaps, gaps, `B saw a gap in A's numbers (${JSON.stringify(heard)})`);
    assert.equal(busB.flushes, flushes, 'B flushed its L1 and forgot its versions');
    const hits = b.stats().l1.hits;
    for (let n = 0; n < 5; n++) assert.equal(await b.get(`other-${n}`), `v${n}`);
    assert.equal(b.stats().l1.hits, hits + 5, 'entries the invalidation did not touch left B\'s L1');
    assertWellNumbered(heard);
  });

  it("a PUBLISH that timed out but that Redis ran afterwards, sent again: heard twice under one number, applied, no gap; the sender's next message takes the next number", async () => {
    const a = await ctx.open({ l2: { commandTimeout: 200 } });
    a.on('error', () => undefined);
    const b = await ctx.open();
    const [busA, busB] = [busOf(a), busOf(b)];
    const heard = await listen(busA.channel, () => busA.instanceId);
    await busA.publish({ keys: ['first'] });
    await eventually(() => busB.received === 1, 'B hears the first message', BOUND_MS);
    const [flushes, gaps] = [busB.flushes, busB.gaps];
    await b.set('k', 'v', { tags: ['t'] });
    await b.set('other', 'kept', { tags: ['u'] });
    /** Whether B's next get of `key` is an L1 miss (a message dropped it there). */
    const missesL1 = async (key: string) => {
      const misses = b.stats().l1.misses;
      await b.get(key);
      return b.stats().l1.misses === misses + 1;
    };
    assert.equal(await missesL1('k'), false);

    // Redis holds every write, PUBLISH included, past A's command timeout, then runs it.
    await ctx.admin.call('CLIENT', 'PAUSE', '600', 'WRITE');
    const message: BusMessage = { keys: [b.dataKey('k')] };
    // As the queue does: the same message and progress object again after a failure.
    const progress = { parts: 0 };
    await assert.rejects(busA.publish(message, progress));
    await eventually(() => busB.received === 2, 'Redis delivers the PUBLISH that timed out', BOUND_MS);
    assert.equal(await missesL1('k'), true, 'the delivered message did not drop the entry from L1');
    assert.equal(await missesL1('k'), false, 'the entry did not come back to L1');
    // The queue sends it again, as it does after any failure.
    await busA.publish(message, progress);
    await eventually(() => busB.received === 3, 'B hears the resend', BOUND_MS);
    assert.equal(await missesL1('k'), true, 'the resend was not applied');
    await busA.publish({ keys: ['last'] });
    await eventually(() => busB.received === 4, 'B hears the next message', BOUND_MS);
    assert.equal(busB.gaps, gaps, `B saw a gap (${JSON.stringify(heard)})`);
    assert.equal(busB.flushes, flushes, 'B flushed its L1');
    assert.equal(await missesL1('other'), false, 'B dropped an entry no message named');
    const numbers = heard.map((m) => m.s);
    assert.deepEqual(numbers.slice(1), [numbers[0]! + 1, numbers[0]! + 1, numbers[0]! + 2], `A's numbers: ${numbers.join(', ')}`);
    assertWellNumbered(heard);
  });

  it('a number whose PUBLISH failed is given to no other message, nor kept when its caller will not send it again', async () => {
    const a = await ctx.open({ l2: { commandTimeout: 200 } });
    a.on('error', () => undefined);
    const b = await ctx.open();
    const [busA, busB] = [busOf(a), busOf(b)];
    const heard = await listen(busA.channel, () => busA.instanceId);
    await busA.publish({ keys: ['first'] });
    await eventually(() => busB.received === 1, 'B hears the first message', BOUND_MS);
    const gaps = busB.gaps;

    await ctx.admin.call('CLIENT', 'PAUSE', '600', 'WRITE');
    const x: BusMessage = { keys: ['x'] };
    const progress = { parts: 0 };
    await assert.rejects(busA.publish(x, progress));
    await eventually(() => busB.received === 2, 'Redis delivers the PUBLISH that timed out', BOUND_MS);
    // Another message before the failed one is sent again: it takes a number of its own, and so does the resend.
    await busA.publish({ keys: ['y'] }, { parts: 0 });
    await busA.publish(x, progress);
    // A caller that will not send again (the epoch check's message) leaves its number used.
    await ctx.admin.call('CLIENT', 'PAUSE', '600', 'WRITE');
    await assert.rejects(busA.publish({ keys: ['z'] }));
    await eventually(() => busB.received === 5, 'B hears them all', BOUND_MS);
    await busA.publish({ keys: ['w'] }, { parts: 0 });
    await eventually(() => busB.received === 6, 'B hears the last', BOUND_MS);
    assertWellNumbered(heard);
    const numbers = heard.map((m) => m.s);
    assert.deepEqual(
      numbers.slice(1),
      [1, 2, 3, 4, 5].map((n) => numbers[0]! + n),
      `A's numbers: ${numbers.join(', ')}`,
    );
    assert.equal(busB.gaps, gaps);
  });

  it('a message sent in parts goes on from the part that failed, under the number that part had: the parts that went out are not sent again', async () => {
    const user = `nopub-${ctx.ns}`;
    await ctx.admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all');
    const a = await ctx.open({ redis: `redis://${user}:pw@127.0.0.1:${ctx.redis.port}` });
    a.on('error', () => undefined);
    const busA = busOf(a);
    const heard = await listen(busA.channel, () => busA.instanceId);
    await busA.publish({ keys: ['first'] });
    const keys = Array.from({ length: MESSAGE_ITEMS + 10 }, (_, i) => `k${i}`);
    const big: BusMessage = { keys };
    // The first part went out earlier; the second is refused, then sent again.
    await ctx.admin.call('ACL', 'SETUSER', user, '-publish');
    const resumed = { parts: 1 };
    await assert.rejects(busA.publish(big, resumed));
    await ctx.admin.call('ACL', 'SETUSER', user, '+publish');
    await busA.publish(big, resumed);
    assert.equal(resumed.parts, 2);
    await eventually(() => heard.length === 2, 'the resent second part is heard', BOUND_MS);
    assert.equal(heard[1]!.s, heard[0]!.s + 1, 'the second part, refused once, did not go out under the number it had');
    assert.deepEqual((JSON.parse(heard[1]!.body) as { k: string[] }).k, keys.slice(MESSAGE_ITEMS), 'not the second part alone');
    await sleep(100);
    assert.equal(heard.length, 2, 'a part was sent twice');
    assertWellNumbered(heard);
  });
});
