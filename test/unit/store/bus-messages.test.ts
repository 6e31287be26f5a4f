// What the invalidation bus publishes for one invalidation: one message, or,
// for a bulk one, several bounded ones that together carry all of it.
import assert from 'node:assert/strict';
import { MESSAGE_ITEMS, splitMessage, type BusMessage } from '../../../src/store/invalidation-bus.js';

describe('the invalidation bus: what one invalidation publishes', () => {
  it('publishes a small invalidation as it is, in one message', () => {
    const message: BusMessage = { tags: [['key:a', 7]], keys: ['a'] };
    assert.deepEqual(splitMessage(message), [message]);
    assert.deepEqual(splitMessage({ epoch: 9 }), [{ epoch: 9 }]);
  });

  it('publishes a bulk invalidation as several messages of at most MESSAGE_ITEMS tags and keys that carry every one, in order', () => {
    const tags = Array.from({ length: 2 * MESSAGE_ITEMS + 3 }, (_, i) => [`key:k${i}`, i + 1] as const);
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    const parts = splitMessage({ tags, keys, epoch: 5 });
    assert.equal(parts.length, 3);
    for (const part of parts) assert.ok((part.tags?.length ?? 0) + (part.keys?.length ?? 0) <= MESSAGE_ITEMS);
    assert.deepEqual(parts.flatMap((p) => p.tags ?? []), tags);
    assert.deepEqual(parts.flatMap((p) => p.keys ?? []), keys);
    assert.deepEqual(parts.map((p) => p.epoch), [5, undefined, undefined], 'the epoch rides in the first');
  });

  it('splits long tags by size too: no message carries much more than 512 KiB of them', () => {
    const long = 'x'.repeat(64 * 1024);
    const tags = Array.from({ length: 20 }, (_, i) => [`${long}${i}`, i] as const);
    const parts = splitMessage({ tags });
    assert.ok(parts.length >= 3, `${parts.length} messages`);
    for (const part of parts) assert.ok(JSON.stringify(part).length < 600 * 1024);
    assert.deepEqual(parts.flatMap((p) => p.tags ?? []), tags);
  });
});
