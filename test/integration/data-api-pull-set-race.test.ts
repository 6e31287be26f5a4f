// Why this test exists: pull() reads the entry in one step and takes it in a
// second, then invalidated the key as delete() does (its counter bumped, the
// L2 entry deleted). A set() from another instance landing between the two
// was deleted unseen: the newer value was lost though nobody got it. Now the
// second step takes the entry, and moves the key's counter, only while the
// counter still holds the version the pulled entry records (each set() moves
// it); otherwise the newer value stays, and the other instances are told the
// version it records, so their L1 copies of the pulled value stop matching.
// Three caches on one real redis-server; the interleaving is forced by a hook
// before the pull's second step (and, for a large value, before its GET).
import assert from 'node:assert/strict';
import { LARGE_ENTRY_BYTES } from '../../src/store/fill-protocol.js';
import type { TierCache } from '../../src/index.js';
import { useRedisCaches } from '../support/cache-context.js';
import { eventually } from '../support/eventually.js';
import { watch } from '../support/script-watch.js';

type Settle = (...args: unknown[]) => Promise<unknown>;

/** Runs `hook` once, before `cache`'s next pull sends its second step. */
function beforeSettle(cache: TierCache, hook: () => Promise<void>): void {
  const fills = (cache.store as unknown as { fills: { settleClaim: Settle } }).fills;
  const settle = fills.settleClaim.bind(fills);
  fills.settleClaim = async (...args: unknown[]) => {
    fills.settleClaim = settle;
    await hook();
    return settle(...args);
  };
}

describe('data API: a set() landing while another instance pulls the key', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'pull-set' });

  const sizes = [
    { name: 'small', value: (tag: string) => tag },
    { name: `large (>= ${LARGE_ENTRY_BYTES} bytes)`, value: (tag: string) => tag + 'x'.repeat(LARGE_ENTRY_BYTES) },
  ];

  for (const { name, value } of sizes) {
    it(`${name}: between the pull's read and its take, the pull gets the older value and the newer one stays, for every instance`, async () => {
      const a = await ctx.open();
      const b = await ctx.open();
      const c = await ctx.open();
      const older = value('older');
      const newer = value('newer');
      await b.set('k', older);
      assert.equal(await c.get('k'), older, 'C holds a copy of the older value in L1');
      beforeSettle(a, () => b.set('k', newer));
      assert.equal(await a.pull('k'), older, 'the pull got the value it read');
      assert.equal(await ctx.admin.exists(a.dataKey('k')), 1, 'the newer value was deleted by the pull of the older one');
      assert.equal(await a.get('k'), newer, 'the newer value does not read back on the pulling instance');
      assert.equal(await b.get('k'), newer, 'the newer value does not read back on the instance that set it');
      // C hears of the pull on the bus: its copy of the older value stops matching.
      await eventually(async () => (await c.get('k')) === newer, "C still serves its L1 copy of the pulled value (or not the newer one)", 5_000);
      // The newer value is there to be pulled, once.
      assert.equal(await c.pull('k'), newer);
      assert.equal(await b.pull('k'), undefined);
      assert.equal(await a.get('k'), undefined);
    });
  }

  it('large: a set() between the lookup and the GET of the bytes: the pull gets the newer value, and it is gone everywhere', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    const older = 'older' + 'x'.repeat(LARGE_ENTRY_BYTES);
    const newer = 'newer' + 'x'.repeat(LARGE_ENTRY_BYTES);
    await b.set('k', older);
    const watched = watch(a);
    watched.beforeGet(async () => void (await b.set('k', newer)));
    assert.equal(await a.pull('k'), newer, 'the pull did not get the bytes it read');
    assert.equal(watched.hooked(), 1, 'the set() was not made between the lookup and the GET');
    assert.equal(await ctx.admin.exists(a.dataKey('k')), 0, 'the value the pull got is still in Redis');
    assert.equal(await b.pull('k'), undefined, 'a value was taken twice');
    assert.equal(await b.get('k'), undefined, 'the value the pull got still reads on the instance that set it');
  });

  it('no set() in between: the pull takes the value, and an L1 copy on another instance is dropped', async () => {
    const a = await ctx.open();
    const b = await ctx.open();
    await b.set('k', 'v');
    assert.equal(await b.get('k'), 'v');
    assert.equal(await a.pull('k'), 'v');
    assert.equal(await ctx.admin.exists(a.dataKey('k')), 0);
    await eventually(async () => (await b.get('k')) === undefined, "B still serves its L1 copy of the pulled value", 5_000);
    assert.equal(await b.pull('k'), undefined);
  });
});
