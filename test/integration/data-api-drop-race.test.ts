// Why this test exists: a read that finds an entry invalid (a tag it records
// was invalidated) or over deletes it from Redis, without waiting. That DEL
// had no condition: a set() from another instance landing between the read
// and the DEL was deleted unseen (the setter's L1 kept it; every other
// instance missed). Now the drop deletes the value only while it still starts
// with the bytes read (header and key version: every set() moves the latter).
// The same for a value the reader's serializer cannot read (its drop compares
// the entry it decoded) and for a key of another type (dropped only while it
// is still not a string, which a set() makes it). Two caches (and a fresh reader) on one real redis-server; the set() is
// forced in by a hook before the reader's drop is sent.
import assert from 'node:assert/strict';
import { LARGE_ENTRY_BYTES } from '../../src/store/fill-protocol.js';
import type { TierCache } from '../../src/index.js';
import { useRedisCaches } from '../support/cache-context.js';
import { eventually } from '../support/eventually.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

type Method = (...args: unknown[]) => Promise<unknown>;

/**
 * Runs `hook` once, before `cache`'s client sends the drop of `key` (a DEL
 * before this test's fix, a one-key script since); counts those Redis answered.
 */
function beforeDrop(cache: TierCache, key: string, hook: () => Promise<void>): () => number {
  const client = cache.store.l2!.client as unknown as Record<string, Method>;
  let drops = 0;
  let pending: (() => Promise<void>) | undefined = hook;
  const wrap = (name: string, isDrop: (args: unknown[]) => boolean): void => {
    const original = client[name]!.bind(client);
    client[name] = async (...args: unknown[]) => {
      if (!isDrop(args)) return original(...args);
      const h = pending;
      pending = undefined;
      await h?.();
      try {
        return await original(...args);
      } finally {
        drops++;
      }
    };
  };
  wrap('del', (args) => args[0] === key);
  wrap('evalshaBuffer', (args) => args[1] === 1 && (args[2] as unknown[])[0] === key);
  return () => drops;
}

describe("data API: a set() landing while another instance drops the key's invalid entry", function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'drop-race' });

  for (const [name, size] of [['small', 0], [`large (>= ${LARGE_ENTRY_BYTES} bytes)`, LARGE_ENTRY_BYTES]] as const) {
    it(`${name}: the newer value stays, and the invalid one is still dropped when nothing replaced it`, async () => {
      const b = await ctx.open();
      const older = 'older'.padEnd(size, '.');
      const newer = 'newer'.padEnd(size, '.');
      await b.set('k', older, { tags: ['t'] });
      await b.set('j', older, { tags: ['t'] });
      await b.invalidateTags(['t']);
      const c = await ctx.open();
      const drops = beforeDrop(c, c.dataKey('k'), () => b.set('k', newer));
      assert.equal(await c.get('k'), undefined);
      await eventually(() => drops() === 1, 'the drop was not made');
      assert.equal(await ctx.admin.exists(c.dataKey('k')), 1, 'the newer value was deleted by the drop of the invalid one');
      assert.ok((await c.get('k')) === newer, 'the newer value does not read back on another instance');
      // 'j' had nothing stored over it: dropped by the read that finds it invalid.
      assert.equal(await c.get('j'), undefined);
      await eventually(async () => (await ctx.admin.exists(c.dataKey('j'))) === 0, 'the invalid entry nothing replaced was not dropped');
    });

    // A key of another type (a list: foreign data) is deleted by the read that meets it: only while it is not a
    // string, which a set() since (SET, RENAME) would have made it.
    it(`${name}: a key of another type, read by get(): a set() landing before its drop stays; one nothing replaced is dropped`, async () => {
      const b = await ctx.open();
      const newer = 'newer'.padEnd(size, '.');
      const c = await ctx.open();
      await ctx.admin.rpush(c.dataKey('k'), 'foreign');
      await ctx.admin.rpush(c.dataKey('j'), 'foreign');
      const drops = beforeDrop(c, c.dataKey('k'), () => b.set('k', newer));
      assert.equal(await c.get('k'), undefined);
      await eventually(() => drops() === 1, 'the drop was not made');
      assert.equal(await ctx.admin.type(c.dataKey('k')), 'string', 'the newer value was deleted by the drop of the foreign key');
      const other = await ctx.open();
      assert.ok((await other.get('k')) === newer, 'the newer value does not read back on another instance');
      assert.equal(await c.get('j'), undefined);
      await eventually(async () => (await ctx.admin.exists(c.dataKey('j'))) === 0, 'the foreign key nothing replaced was not dropped');
    });

    // A value the reader's serializer cannot read (another serializer's, as in a rolling change of it; corrupt) is
    // dropped as foreign: only while it is still the value read, as an invalid one.
    for (const via of ['get', 'getOrSet'] as const) {
      it(`${name}: a value another serializer wrote, read by ${via}(): a set() landing before its drop stays; one nothing replaced is dropped`, async () => {
        const json = await ctx.open();
        const v8 = await ctx.open({ serializer: 'v8' });
        const newer = new Map([['newer', 'x'.padEnd(size, '.')]]);
        await json.set('k', 'older'.padEnd(size, '.'));
        await json.set('j', 'older'.padEnd(size, '.'));
        const c = await ctx.open({ serializer: 'v8' });
        const drops = beforeDrop(c, c.dataKey('k'), () => v8.set('k', newer));
        const read = (key: string) => (via === 'get' ? c.get(key) : c.getOrSet(key, () => undefined));
        assert.equal(await read('k'), undefined);
        await eventually(() => drops() === 1, 'the drop was not made');
        assert.equal(await ctx.admin.exists(c.dataKey('k')), 1, 'the newer value was deleted by the drop of the unreadable one');
        const other = await ctx.open({ serializer: 'v8' });
        assert.deepEqual(await other.get('k'), newer, 'the newer value does not read back on another instance');
        assert.equal(await read('j'), undefined);
        await eventually(async () => (await ctx.admin.exists(c.dataKey('j'))) === 0, 'the unreadable value nothing replaced was not dropped');
      });
    }
  }

  it("an instance that knows the key's counter (a plain GET, no script): the newer value stays", async () => {
    const b = await ctx.open();
    const c = await ctx.open();
    await b.set('k', 'older', { tags: ['t'] });
    // C reads it once: it knows the key's version, so its next read is a plain GET judged by what it knows.
    assert.equal(await c.get('k'), 'older');
    const heard = c.stats().bus.received;
    await b.invalidateTags(['t']);
    await eventually(() => c.stats().bus.received > heard, 'C hears of the invalidation');
    const gets = c.stats().l2;
    const drops = beforeDrop(c, c.dataKey('k'), () => b.set('k', 'newer'));
    assert.equal(await c.get('k'), undefined);
    await eventually(() => drops() === 1, 'the drop was not made');
    assert.equal(c.stats().l2.misses - gets.misses, 1);
    assert.equal(await ctx.admin.exists(c.dataKey('k')), 1, 'the newer value was deleted by the drop of the invalid one');
    assert.equal(await c.get('k'), 'newer');
  });

  it('bytes that are no entry (damaged, foreign): a set() landing before their drop stays', async () => {
    const b = await ctx.open();
    const c = await ctx.open();
    await ctx.admin.set(c.dataKey('k'), 'not an entry of any tiercache');
    const drops = beforeDrop(c, c.dataKey('k'), () => b.set('k', 'newer'));
    assert.equal(await c.get('k'), undefined);
    await eventually(() => drops() === 1, 'the drop was not made');
    assert.equal(await ctx.admin.exists(c.dataKey('k')), 1, 'the newer value was deleted by the drop of the damaged bytes');
    assert.equal(await c.get('k'), 'newer');
    // Nothing stored over them: dropped.
    await ctx.admin.set(c.dataKey('j'), 'not an entry of any tiercache');
    assert.equal(await c.get('j'), undefined);
    await eventually(async () => (await ctx.admin.exists(c.dataKey('j'))) === 0, 'the damaged bytes nothing replaced were not dropped');
  });

  // A delete() of one key (and a set() Redis could not take, which becomes one, queued and replayed) bumped the key's
  // counter, then deleted the entry. A set() from another instance landing between the two (after the delete, so it
  // must stay) was deleted unseen. The entry is now deleted before the bump, as deleteMany() does.
  describe('data API: a set() landing while another instance deletes the key', function () {
    let proxy: TcpProxy | undefined;
    afterEach(async () => {
      await proxy?.close();
      proxy = undefined;
    });

    /** Runs `hook` once, right after `cache` moved the counter of `key` (the bump of a one-key delete()). */
    function afterBump(cache: TierCache, key: string, hook: () => Promise<void>): () => boolean {
      const counter = `{${key}}:v`;
      const client = cache.store.l2!.client as unknown as Record<string, Method>;
      const evalsha = client.evalshaBuffer!.bind(client);
      let ran = false;
      client.evalshaBuffer = async (...args: unknown[]) => {
        const reply = await evalsha(...args);
        if (!ran && args[1] === 1 && (args[2] as unknown[])[0] === counter) {
          await hook();
          ran = true;
        }
        return reply;
      };
      return () => ran;
    }

    it("a delete(): another instance's set() landing right after its bump stays", async () => {
      const a = await ctx.open();
      const b = await ctx.open();
      await b.set('k', 'older');
      afterBump(a, a.dataKey('k'), () => b.set('k', 'newer'));
      await a.delete('k');
      assert.equal(await ctx.admin.exists(a.dataKey('k')), 1, 'the newer value was deleted by the delete() before it');
      const c = await ctx.open();
      assert.equal(await c.get('k'), 'newer');
    });

    it("a set() turned delete(): another instance's set() landing right after the replay's bump stays", async () => {
      proxy = await startTcpProxy(ctx.redis.port);
      const a = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 300 } });
      a.on('error', () => undefined);
      const b = await ctx.open();
      await b.set('k', 'older');
      // A's set() cannot reach Redis: it becomes a delete() of 'k', queued.
      proxy.cut('refuse');
      await a.set('k', 'lost');
      const key = a.dataKey('k');
      // B's set() lands right after the replayed delete() moved the key's counter: after the delete(), so it stays.
      const landed = afterBump(a, key, () => b.set('k', 'newer'));
      proxy.heal();
      await eventually(() => landed(), "the delete() A's set() became was not replayed");
      await eventually(() => a.stats().queuedInvalidations === 0, 'the replay did not finish');
      assert.equal(await ctx.admin.exists(key), 1, "the newer value was deleted by the replay of the delete() before it");
      const c = await ctx.open();
      assert.equal(await c.get('k'), 'newer');
    });
  });
});
