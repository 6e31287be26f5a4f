// FillLock on its own, against a real redis-server: where its lock lives and
// each way a wait for another instance's fill ends. The HTTP tests in
// fill-lock.test.ts see only the happy path (the holder stores or releases);
// a wait that never ended on the lock's lifetime, on `stop()` or on L2 going
// down would hang requests there only under faults.
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { FillLock } from '../../src/store/fill-lock.js';
import { L2Store } from '../../src/store/l2-store.js';
import { keySlot } from '../../src/store/hash-slot.js';
import { useRedisCaches } from '../support/cache-context.js';

/** Far past any wait these tests start: reaching it means the wait did not end by itself. */
const HUNG_MS = 5_000;

describe('FillLock', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'flw' });
  const opened: Array<{ client: Redis; l2: L2Store }> = [];

  afterEach(() => {
    for (const { client, l2 } of opened.splice(0)) {
      l2.detach();
      client.disconnect();
    }
  });

  async function openL2(): Promise<L2Store> {
    const client = new Redis(ctx.redis.url, { maxRetriesPerRequest: 1 });
    const l2 = new L2Store(client, {
      commandTimeout: 2_000,
      breakerCooldown: 1_000,
      clientBoundsCommands: false,
      onDown: () => undefined,
      onUp: () => undefined,
      onFailure: () => undefined,
    });
    opened.push({ client, l2 });
    assert.equal(await l2.waitReady(5_000), true, 'L2 did not come up');
    return l2;
  }

  /** A lock on `key` held by some other instance for a long time. */
  async function heldElsewhere(lock: FillLock, key: string): Promise<void> {
    assert.equal(await ctx.admin.set(lock.request(key).key, 'another-instance', 'PX', 60_000, 'NX'), 'OK');
  }

  /** The wait's result, or 'hung' if it had not ended after HUNG_MS. */
  function settled<T>(wait: Promise<T>): Promise<T | 'hung'> {
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), HUNG_MS)));
    return Promise.race([wait, hung]).finally(() => clearTimeout(timer));
  }

  it('keeps the lock in the slot of its entry key, so one Cluster script can look up the one and take the other', async () => {
    const lock = new FillLock(await openL2(), 1_000);
    // Store keys escape '{' and '}' (key-escape.ts), so an entry key hashes whole.
    for (const key of [`${ctx.ns}:GET:/api/items/1`, 'k', `${ctx.ns}:u:42:/me`, 'x'.repeat(300)]) {
      const { key: lockKey } = lock.request(key);
      assert.notEqual(lockKey, key);
      assert.equal(keySlot(lockKey), keySlot(key), `lock of ${key}`);
    }
    // Distinct entry keys never share a lock.
    assert.notEqual(lock.request('a').key, lock.request('b').key);
  });

  it('takes a free lock once: a second instance finds it held until it is released', async () => {
    const a = new FillLock(await openL2(), 5_000);
    const l2b = await openL2();
    const b = new FillLock(l2b, 5_000);
    const key = `${ctx.ns}:k`;
    const ours = a.request(key);
    const theirs = b.request(key);
    assert.equal(await a.acquire(ours), true);
    assert.equal(await b.acquire(theirs), false);
    assert.equal(await b.held(key), true);
    // Only the holder's release frees it. release() does not wait; a PING on
    // the same connection answers only once Redis has run the release before it.
    b.release(theirs);
    await l2b.client.ping();
    assert.equal(await a.held(key), true);
    a.release(ours);
    assert.equal(await settled(waitUntil(async () => !(await b.held(key)))), true);
    assert.equal(await b.acquire(theirs), true);
  });

  it("gives each fill a token of its own, even on one instance: a fill's release leaves the lock another fill of the key took since", async () => {
    const l2 = await openL2();
    const lock = new FillLock(l2, 5_000);
    const key = `${ctx.ns}:k`;
    const first = lock.request(key);
    const second = lock.request(key);
    assert.notEqual(first.token, second.token);
    // Shaped as a UUID: a lookup (any version's) takes a lock key holding anything else for no lock, and takes it over.
    for (const { token } of [first, second]) assert.match(token, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.equal(await lock.acquire(second), true);
    // The first fill's release, late or sent again, after the second took the lock.
    lock.release(first);
    await l2.client.ping();
    assert.equal(await ctx.admin.get(second.key), second.token);
    lock.release(second);
    await l2.client.ping();
    assert.equal(await ctx.admin.exists(second.key), 0);
  });

  it("ends a wait after the lock's lifetime when the holder neither stores nor releases", async () => {
    const ttl = 300;
    const lock = new FillLock(await openL2(), ttl);
    const key = `${ctx.ns}:k`;
    await heldElsewhere(lock, key);
    let looks = 0;
    const started = performance.now();
    const result = await settled(lock.waitFor(key, async () => void looks++));
    const elapsed = performance.now() - started;
    assert.equal(result, undefined);
    assert.ok(elapsed >= ttl - 5, `gave up after ${elapsed.toFixed(0)} ms, before the lock's lifetime`);
    // Polled while it waited, not once.
    assert.ok(looks >= 3, `${looks} looks`);
  });

  it('returns what a look finds as soon as it finds it', async () => {
    const lock = new FillLock(await openL2(), 10_000);
    const key = `${ctx.ns}:k`;
    await heldElsewhere(lock, key);
    let looks = 0;
    const result = await settled(lock.waitFor(key, async () => (++looks === 3 ? 'stored' : undefined)));
    assert.equal(result, 'stored');
    assert.equal(looks, 3);
  });

  it('looks once more after finding the lock gone (stored and unlocked in one step), then stops', async () => {
    const lock = new FillLock(await openL2(), 10_000);
    const key = `${ctx.ns}:k`;
    // No lock at all: the holder already stored and unlocked, or stored nothing.
    let looks = 0;
    const result = await settled(lock.waitFor(key, async () => void looks++));
    assert.equal(result, undefined);
    // Five polls, the held() check, and the last look.
    assert.equal(looks, 6);
  });

  it('ends a wait as soon as stop() says so, without looking', async () => {
    const lock = new FillLock(await openL2(), 10_000);
    const key = `${ctx.ns}:k`;
    await heldElsewhere(lock, key);
    let looks = 0;
    assert.equal(await settled(lock.waitFor(key, async () => void looks++, () => true)), undefined);
    assert.equal(looks, 0);
    // And part-way through a wait.
    looks = 0;
    assert.equal(await settled(lock.waitFor(key, async () => void looks++, () => looks >= 2)), undefined);
    assert.equal(looks, 2);
  });

  it('does not wait at all while L2 is down: the holder may not be able to store either', async () => {
    const l2 = await openL2();
    const lock = new FillLock(l2, 10_000);
    const key = `${ctx.ns}:k`;
    await heldElsewhere(lock, key);
    l2.detach();
    assert.equal(l2.state, 'down');
    let looks = 0;
    assert.equal(await settled(lock.waitFor(key, async () => void looks++)), undefined);
    assert.equal(looks, 0);
  });

  it('answers undefined for acquire and false for held when Redis cannot tell', async () => {
    const l2 = await openL2();
    const lock = new FillLock(l2, 1_000);
    l2.detach();
    assert.equal(await lock.acquire(lock.request(`${ctx.ns}:k`)), undefined);
    assert.equal(await lock.held(`${ctx.ns}:k`), false);
  });
});

/** Resolves true once `check` does (polled every 10 ms). */
async function waitUntil(check: () => Promise<boolean>): Promise<boolean> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 10));
  return true;
}
