// Pure choices tiercache makes for a Redis Cluster: the hash slot of a key (as
// Redis computes it), a key name for any slot, and the pub/sub the bus picks
// from a server's INFO.
import assert from 'node:assert/strict';
import { groupBySlot, keySlot, slotHashTag, SLOT_COUNT } from '../../../src/store/hash-slot.js';
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

  it('picks sharded pub/sub from Redis 7 (and Valkey), classic before', () => {
    assert.equal(pubSubModeFor('# Server\r\nredis_version:7.0.15\r\nredis_mode:cluster\r\n'), 'sharded');
    assert.equal(pubSubModeFor('# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n'), 'sharded');
    assert.equal(pubSubModeFor('# Server\r\nredis_version:6.2.14\r\n'), 'classic');
    assert.equal(pubSubModeFor(''), 'classic');
  });
});
