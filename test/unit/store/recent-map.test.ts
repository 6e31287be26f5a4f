// RecentMap: bounded, keeps what was touched recently.
import assert from 'node:assert/strict';
import { RecentMap, stringBytes } from '../../../src/store/recent-map.js';

describe('store: RecentMap', () => {
  it('never holds more than max keys', () => {
    const map = new RecentMap<number, number>(100);
    for (let i = 0; i < 10_000; i++) {
      map.set(i, i);
      assert.ok(map.size <= 100, `size ${map.size} after ${i + 1} inserts`);
    }
    assert.ok(map.size >= 50);
  });

  it('keeps a key that is read every generation, drops one that is not', () => {
    const map = new RecentMap<string, number>(10);
    map.set('hot', 1);
    map.set('cold', 2);
    for (let i = 0; i < 100; i++) {
      map.set(`filler${i}`, i);
      assert.equal(map.get('hot'), 1, `hot lost after ${i + 1} fillers`);
    }
    assert.equal(map.get('cold'), undefined);
  });

  it('never holds more than maxBytes as sizeOf counts them, whatever the number of keys', () => {
    const map = new RecentMap<string, number>(1_000_000, 10_000, (key) => 40 + 2 * key.length);
    for (let i = 0; i < 10_000; i++) {
      map.set(`key-${i}-${'x'.repeat(i % 200)}`, i);
      assert.ok(map.bytes <= 10_000, `${map.bytes} bytes after ${i + 1} inserts`);
    }
    assert.ok(map.bytes >= 5_000 - 500, `only ${map.bytes} bytes held`);
    assert.ok(map.size < 200, `${map.size} keys held`);
  });

  it('keeps no key whose size alone exceeds half of maxBytes', () => {
    const map = new RecentMap<string, number>(100, 1000, (key) => key.length);
    map.set('small', 1);
    map.set('x'.repeat(501), 2);
    assert.equal(map.get('x'.repeat(501)), undefined);
    assert.equal(map.get('small'), 1);
  });

  it('overwrites, and forgets everything on clear()', () => {
    const map = new RecentMap<string, number>(4);
    map.set('a', 1);
    map.set('a', 2);
    assert.equal(map.get('a'), 2);
    map.clear();
    assert.equal(map.get('a'), undefined);
    assert.equal(map.size, 0);
  });

  it('counts the bytes of a key in the older generation once when it is overwritten, and none once it is deleted', () => {
    // max 4: generations of 2 keys; 'a' ages into the old generation once two more keys arrive.
    const sizeOf = (key: string, value: string) => key.length + value.length;
    const map = new RecentMap<string, string>(4, Infinity, sizeOf);
    map.set('a', 'x'.repeat(100));
    map.set('b', 'y');
    map.set('c', 'z');
    assert.equal(map.bytes, 101 + 2 + 2);
    map.set('a', 'short');
    assert.equal(map.bytes, 6 + 2 + 2, 'the replaced value is still counted');
    assert.equal(map.size, 3);
    map.set('d', 'w'); // 'c' and 'a' age, 'b' is dropped; 'd' is young
    map.delete('a');
    assert.equal(map.get('a'), undefined);
    assert.equal(map.bytes, 2 + 2, 'a deleted key is still counted');
    assert.equal(map.size, 2);
  });

  it('counts bytes once through every move: a read that brings a key back from the old generation, an overwrite and a delete in the young one', () => {
    const sizeOf = (key: string, value: string) => key.length + value.length;
    const map = new RecentMap<string, string>(4, Infinity, sizeOf);
    map.set('a', 'x'.repeat(10)); // 11
    map.set('b', 'y'); // 2
    map.set('c', 'z'); // 2: 'a' and 'b' age
    assert.equal(map.get('a'), 'x'.repeat(10)); // back to young, counted once
    assert.equal(map.bytes, 11 + 2 + 2);
    const roomy = new RecentMap<string, string>(100, Infinity, sizeOf);
    roomy.set('a', 'x'); // 2
    roomy.set('c', 'z'); // 2
    roomy.set('c', 'zzz'); // overwrite in young: 4 instead of 2
    assert.equal(roomy.bytes, 2 + 4);
    roomy.delete('c'); // young
    assert.equal(roomy.bytes, 2);
    assert.equal(roomy.size, 1);
  });

  it('keeps a key of exactly half of maxBytes, and fills a generation to exactly half before it turns over', () => {
    const sizeOf = (_key: string, value: number) => value;
    const map = new RecentMap<string, number>(100, 20, sizeOf);
    map.set('half', 10);
    assert.equal(map.get('half'), 10, 'a key of exactly half of maxBytes was refused');
    const drops: number[] = [];
    const watched = new RecentMap<string, number>(100, 20, sizeOf, (old) => drops.push(old.size));
    watched.set('a', 4);
    watched.set('b', 6); // young holds exactly 10: no turn-over yet
    watched.set('c', 1); // turns over: 'a' and 'b' become the old generation, none dropped
    assert.deepEqual(drops, [], 'onDrop was told of an empty generation (or of one turned over too early)');
    watched.set('d', 9); // 1 + 9 = 10: still young
    watched.set('e', 1); // turns over again: 'a' and 'b' are dropped
    assert.deepEqual(drops, [2]);
    assert.equal(watched.get('a'), undefined);
    assert.equal(watched.get('c'), 1);
  });
});

describe('store: stringBytes', () => {
  it('counts a 16-byte header and two bytes a character', () => {
    assert.deepEqual([stringBytes(0), stringBytes(1), stringBytes(10)], [16, 18, 36]);
  });
});
