// The data API's serializer option against a real redis-server: with 'v8',
// Date, Map, Set, BigInt and Buffer values come back as the types they went
// in, from L1 and from L2 (another instance), as a fresh copy on every read;
// an instance reads only entries its own serializer wrote; a custom
// serializer is used both ways.
import assert from 'node:assert/strict';
import { createCache, TierCacheConfigError, type Serializer } from '../../src/index.js';
import { useRedisCaches } from '../support/cache-context.js';

const VALUE = () => ({
  at: new Date(Date.UTC(2024, 0, 2)),
  seen: new Map<string, number>([['a', 1]]),
  tags: new Set(['x', 'y']),
  big: 2n ** 70n,
  bytes: Buffer.from([0, 1, 255]),
  nested: { list: [1, 'two', null] },
});

describe('data API: serializer', () => {
  const ctx = useRedisCaches({ prefix: 'ser', flush: true });

  it("'v8' brings Date, Map, Set, BigInt and Buffer back as themselves, from L1 and from another instance through Redis", async () => {
    const a = await ctx.open({ serializer: 'v8' });
    const b = await ctx.open({ serializer: 'v8' });
    await a.set('v', VALUE());
    for (const [label, got] of [
      ['L1', await a.get<ReturnType<typeof VALUE>>('v')],
      ['L2', await b.get<ReturnType<typeof VALUE>>('v')],
      ['L1 warmed from L2', await b.get<ReturnType<typeof VALUE>>('v')],
    ] as const) {
      assert.ok(got!.at instanceof Date && got!.seen instanceof Map && got!.tags instanceof Set && Buffer.isBuffer(got!.bytes), `${label}: types lost`);
      assert.deepStrictEqual(got, VALUE(), label);
    }
    const loaded = await b.getOrSet('w', () => VALUE());
    assert.ok(loaded.seen instanceof Map && typeof loaded.big === 'bigint');
  });

  it("'v8' hands every read a fresh copy: changing it does not change the cache", async () => {
    const a = await ctx.open({ serializer: 'v8' });
    const given = VALUE();
    const miss = await a.getOrSet('v', () => given);
    assert.notEqual(miss, given, "getOrSet's miss returned the loader's own object");
    miss.seen.set('b', 2);
    const first = await a.get<ReturnType<typeof VALUE>>('v');
    first!.tags.add('z');
    first!.at.setTime(0);
    assert.deepStrictEqual(await a.get('v'), VALUE());
  });

  it('an instance reads an entry another serializer wrote as a miss, and drops it', async () => {
    const json = await ctx.open();
    const v8 = await ctx.open({ serializer: 'v8' });
    await json.set('k', { a: 1 });
    assert.equal(await v8.get('k'), undefined);
    // The delete is not awaited by get().
    for (let i = 0; i < 50 && (await ctx.admin.exists(json.dataKey('k'))) === 1; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await ctx.admin.exists(json.dataKey('k')), 0, 'the foreign entry is still in Redis');
    await v8.set('k', { a: 2 });
    const other = await ctx.open();
    assert.equal(await other.get('k'), undefined, 'a JSON instance read a v8 entry');
  });

  it('getOrSet() on instances that all find a fresh entry another serializer wrote: the loader runs once, under the fill lock', async () => {
    const json = await ctx.open();
    await json.set('hot', { a: 1 });
    const readers = [await ctx.open({ serializer: 'v8' }), await ctx.open({ serializer: 'v8' })];
    const runs: boolean[] = [];
    const load = async () => {
      runs.push((await ctx.admin.exists(`{${json.dataKey('hot')}}:lock`)) === 1);
      await new Promise((r) => setTimeout(r, 200));
      return new Map([['a', 2]]);
    };
    const got = await Promise.all(readers.map((c) => c.getOrSet('hot', load)));
    assert.deepEqual(runs, [true], `the loader ran ${runs.length} times (under the lock: ${runs.join(', ')})`);
    assert.deepEqual(got, [new Map([['a', 2]]), new Map([['a', 2]])]);
  });

  it('refuses what serialize() returns unless it is a Uint8Array or a string (an ArrayBuffer, a DataView, a Uint16Array, a number): set() and getOrSet() reject with its TypeError and store nothing', async () => {
    const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
    const outputs: Array<[string, (value: unknown) => unknown]> = [
      ['ArrayBuffer', (value) => json(value).buffer],
      ['DataView', (value) => new DataView(json(value).buffer)],
      ['Uint16Array', (value) => Uint16Array.from(json(value))],
      ['number', () => 42],
      ['null', () => null],
    ];
    for (const [label, serialize] of outputs) {
      const serializer = { name: 'odd', serialize: serialize as Serializer['serialize'], deserialize: (bytes: Buffer) => JSON.parse(bytes.toString('utf8')) };
      const a = await ctx.open({ serializer });
      const said = (err: unknown) => err instanceof TypeError && err.message.includes(`'odd' serializer (serialize() must return a Uint8Array, such as a Buffer, or a string; it returned: ${label})`);
      await assert.rejects(a.set('k', { hello: 'world' }), said, `set() with ${label}`);
      let runs = 0;
      await assert.rejects(a.getOrSet('g', () => (runs++, { a: 1 })), said, `getOrSet() with ${label}`);
      assert.equal(runs, 1);
      assert.equal(await a.get('k'), undefined, label);
      assert.equal(await ctx.admin.exists(a.dataKey('k'), a.dataKey('g')), 0, `${label}: stored in Redis`);
    }
  });

  it('a deserialize() that returns a Promise is refused: reads reject with a TypeError naming it (no unhandled rejection), the entry stays; one that throws is a miss', async () => {
    const misuse = (err: unknown) => err instanceof TypeError && err.message.includes("the 'later' serializer's deserialize() returned a Promise");
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const later: Serializer = { name: 'later', serialize: (v) => JSON.stringify(v), deserialize: async () => Promise.reject(new Error('no')) };
      const a = await ctx.open({ serializer: later });
      const b = await ctx.open({ serializer: later });
      await a.set('k', { a: 1 });
      await assert.rejects(a.get('k'), misuse, 'get() from L1');
      await assert.rejects(b.get('k'), misuse, 'get() from L2');
      await assert.rejects(a.getOrSet('g', () => ({ b: 2 })), misuse, "getOrSet() returning its own value");
      await assert.rejects(a.getOrSet('k', () => ({ c: 3 })), misuse, 'getOrSet() hit');
      assert.equal(await ctx.admin.exists(a.dataKey('k')), 1, 'the entry was dropped as if corrupt');
      const resolving: Serializer = { name: 'later', serialize: (v) => JSON.stringify(v), deserialize: async (bytes) => JSON.parse(bytes.toString('utf8')) };
      await assert.rejects((await ctx.open({ serializer: resolving })).get('k'), misuse, 'a Promise that resolves');
      const odd: Serializer = {
        name: 'later',
        serialize: (v) => JSON.stringify(v),
        deserialize: () => ({
          then() {
            throw new Error('a thenable whose then() throws');
          },
        }),
      };
      await assert.rejects((await ctx.open({ serializer: odd })).get('k'), misuse, 'a thenable whose then() throws');
      assert.equal(await ctx.admin.exists(a.dataKey('k')), 1, 'the entry was dropped for a thenable whose then() throws');
      const throwing: Serializer = { name: 'later', serialize: (v) => JSON.stringify(v), deserialize: () => { throw new Error('unreadable'); } };
      assert.equal(await (await ctx.open({ serializer: throwing })).get('k'), undefined, 'a deserialize() that throws is a miss');
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it("getOrSet with a deserialize() that throws on what serialize() wrote returns the loader's value to every caller, stores nothing and reports it", async () => {
    const unreadable: Serializer = {
      name: 'write-only',
      serialize: (v) => JSON.stringify(v),
      deserialize: () => {
        throw new Error('cannot read');
      },
    };
    const a = await ctx.open({ serializer: unreadable });
    const errors: string[] = [];
    a.on('error', (e) => errors.push(`${e.where}: ${e.err.message}`));
    let loads = 0;
    const load = async () => (loads++, await new Promise((r) => setTimeout(r, 20)), { id: 7 });
    const [first, joined] = await Promise.all([a.getOrSet('k', load), a.getOrSet('k', load)]);
    assert.deepStrictEqual(first, { id: 7 });
    assert.deepStrictEqual(joined, { id: 7 });
    assert.equal(loads, 1, 'the second caller did not share the run');
    assert.equal(await ctx.admin.exists(a.dataKey('k')), 0, 'an entry nobody can read was stored');
    assert.equal(errors.length, 1, errors.join('; '));
    assert.match(errors[0]!, /^store: .*'write-only' serializer's deserialize\(\) could not read what its serialize\(\) wrote for 'k'/);
    assert.deepStrictEqual(await a.getOrSet('k', () => ({ id: 8 })), { id: 8 }, 'the next call loads again');
  });

  it('stores exactly the bytes a Uint8Array returned by serialize() views, also part of a larger buffer', async () => {
    const slab = Buffer.from('xx{"in":"side"}yy');
    const serializer: Serializer = { name: 'view', serialize: () => slab.subarray(2, slab.length - 2), deserialize: (bytes) => JSON.parse(bytes.toString('utf8')) };
    const a = await ctx.open({ serializer });
    const b = await ctx.open({ serializer, l1: false });
    await a.set('k', 'ignored');
    assert.deepStrictEqual(await b.get('k'), { in: 'side' });
    slab.fill(0x20);
    assert.deepStrictEqual(await a.get('k'), { in: 'side' }, 'the cache kept the caller\'s buffer, not a copy');
  });

  it('uses a custom serializer both ways, and refuses one without serialize and deserialize', async () => {
    const calls: string[] = [];
    const upper: Serializer = {
      name: 'upper',
      serialize: (value) => (calls.push('serialize'), JSON.stringify(value).toUpperCase()),
      deserialize: (bytes) => (calls.push('deserialize'), JSON.parse(bytes.toString('utf8').toLowerCase())),
    };
    const a = await ctx.open({ serializer: upper });
    await a.set('k', { word: 'abc' });
    assert.equal((await ctx.admin.getBuffer(a.dataKey('k')))!.includes(Buffer.from('"WORD":"ABC"')), true);
    assert.deepStrictEqual(await a.get('k'), { word: 'abc' });
    assert.deepStrictEqual(calls, ['serialize', 'deserialize']);
    for (const bad of [{ serialize: () => '' }, 'yaml', { name: '', serialize: String, deserialize: String }]) {
      assert.throws(() => createCache({ redis: false, serializer: bad as never }), TierCacheConfigError);
    }
  });
});
