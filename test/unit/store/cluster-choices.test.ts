// Pure choices tiercache makes for a Redis Cluster: the hash slot of a key (as
// Redis computes it), a key name for any slot, and the pub/sub the bus picks
// from a server's INFO.
import assert from 'node:assert/strict';
import { batchPositions, buildSlotTags, groupBySlot, keySlot, slotHashTag, SLOT_COUNT } from '../../../src/store/hash-slot.js';
import { pubSubModeFor } from '../../../src/store/invalidation-bus.js';

describe('Redis Cluster choices', () => {
  it('computes the slots Redis computes (CLUSTER KEYSLOT), hash tags included', () => {
    // Values from the Redis Cluster specification and CLUSTER KEYSLOT on redis-server 7.0.
    assert.equal(keySlot('123456789'), 0x31c3 & (SLOT_COUNT - 1));
    assert.equal(keySlot('foo'), 12182);
    assert.equal(keySlot('{user1000}.following'), keySlot('user1000'));
    assert.equal(keySlot('foo{{bar}}zap'), keySlot('{bar'));
    assert.equal(keySlot('ns:v:{movie:7}'), keySlot('movie:7'));
  });

  it('takes the hash tag only between the first { and the next } when not empty (the Cluster specification)', () => {
    assert.equal(keySlot('a{b}c'), keySlot('b'), 'a tag after the first character');
    assert.equal(keySlot('{b}'), keySlot('b'));
    // No '{' before the '}': the whole key.
    for (const key of ['a}b', '}ab', 'ab}']) assert.notEqual(keySlot(key), keySlot(key.slice(0, key.indexOf('}'))), key);
    assert.notEqual(keySlot('a}b'), keySlot('a'));
    // An empty tag: the whole key, not the empty string nor the text after it.
    assert.notEqual(keySlot('foo{}{bar}'), keySlot('bar'));
    assert.notEqual(keySlot('foo{}{bar}'), keySlot(''));
    assert.notEqual(keySlot('x{}'), keySlot(''));
    assert.equal(keySlot('x{}'), keySlot('x{}'));
    // A '{' with no '}' after it: the whole key.
    assert.notEqual(keySlot('ab{cd'), keySlot('cd'));
    // UTF-8 bytes, not UTF-16 units, are hashed.
    assert.equal(keySlot('{é}x'), keySlot('é'));
  });

  it('builds, for every slot, the shortest base-36 counter that lands in it', () => {
    const tags = buildSlotTags();
    assert.equal(tags.length, SLOT_COUNT);
    const seen = new Set<string>();
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
      const tag = tags[slot]!;
      assert.equal(typeof tag, 'string', `slot ${slot}`);
      assert.equal(keySlot(tag), slot, `tag ${tag}`);
      seen.add(tag);
    }
    assert.equal(seen.size, SLOT_COUNT);
    // The shortest: no smaller counter lands in the same slot.
    for (const slot of [0, 1, 866, 12182, SLOT_COUNT - 1]) {
      const n = parseInt(tags[slot]!, 36);
      for (let m = 0; m < n; m++) assert.notEqual(keySlot(m.toString(36)), slot, `${m.toString(36)} before ${tags[slot]} for slot ${slot}`);
    }
    assert.equal(slotHashTag(12182), tags[12182]);
  });

  it('names a key in every slot', () => {
    for (let slot = 0; slot < SLOT_COUNT; slot += 7) assert.equal(keySlot(`{${slotHashTag(slot)}}:x`), slot);
    assert.equal(keySlot(`{${slotHashTag(SLOT_COUNT - 1)}}:x`), SLOT_COUNT - 1);
  });

  it('groups keys by slot, keeping their order', () => {
    const keys = ['{a}:1', '{b}:1', '{a}:2', '{c}:1', '{b}:2'];
    assert.deepEqual(
      groupBySlot(keys).map((g) => g.at),
      [[0, 2], [1, 4], [3]],
    );
  });

  it('slices a long key list for one command per slice: runs in order, or on a Cluster whole slots, at most so many', () => {
    assert.deepEqual(batchPositions(['a', 'b', 'c', 'd', 'e'], 2), [[0, 1], [2, 3], [4]]);
    assert.deepEqual(batchPositions([], 2), []);
    const keys = ['{a}:1', '{b}:1', '{a}:2', '{c}:1', '{b}:2', '{d}:1', '{a}:3'];
    // Slots a, b, c, d: keys of a slot together, the first batch starting with position 0.
    assert.deepEqual(batchPositions(keys, 100, 2), [[0, 2, 6, 1, 4], [3, 5]]);
    // A slot whose keys do not fit goes on in the next batch (and counts there).
    assert.deepEqual(batchPositions(keys, 2, 100), [[0, 2], [6, 1], [4, 3], [5]]);
    const many = Array.from({ length: 5_000 }, (_, i) => `k${i}`);
    const batches = batchPositions(many, 1_000, 100);
    assert.deepEqual(batches.flat().sort((x, y) => x - y), many.map((_, i) => i), 'every key once');
    for (const batch of batches) {
      assert.ok(batch.length <= 1_000);
      assert.ok(new Set(batch.map((i) => keySlot(many[i]!))).size <= 100);
    }
  });

  it('picks sharded pub/sub from Redis 7 (and Valkey), classic before', () => {
    assert.equal(pubSubModeFor('# Server\r\nredis_version:7.0.15\r\nredis_mode:cluster\r\n'), 'sharded');
    assert.equal(pubSubModeFor('# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n'), 'sharded');
    assert.equal(pubSubModeFor('# Server\r\nredis_version:6.2.14\r\n'), 'classic');
    assert.equal(pubSubModeFor('# Server\r\nredis_version:10.0.1\r\n'), 'sharded', 'a two-digit major version read as its first digit');
    assert.equal(pubSubModeFor('# Server\r\nserver_name:other\r\nother_redis_version:7.0.0\r\nredis_version:6.0.9\r\n'), 'classic', 'a field that only ends in redis_version read');
    assert.equal(pubSubModeFor(''), 'classic');
  });
});
