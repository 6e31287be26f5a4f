// What a middleware learns of answers too large to store (h187): per key,
// per variant of a key whose answer varied, for a time, and for a bounded
// number of keys however many a client makes too large.
import assert from 'node:assert/strict';
import { OVERSIZED_KEYS, OversizedAnswers } from '../../../src/middleware/oversized-answers.js';

const KEY = 'ns:GET:/file';

describe('middleware: answers known too large to store, unit', () => {
  it('knows a key learned until its time is up, and then no more', () => {
    const known = new OversizedAnswers();
    assert.equal(known.known(KEY, {}, 0), false);
    known.learn(KEY, [], {}, 1_000);
    assert.equal(known.known(KEY, {}, 999), true);
    assert.equal(known.known('ns:GET:/other', {}, 999), false);
    assert.equal(known.known(KEY, {}, 1_000), false);
    assert.equal(known.size, 0, 'an expired key is dropped as it is asked about');
  });

  it('tells variants apart by the fields the answer varied on', () => {
    const known = new OversizedAnswers();
    known.learn(KEY, ['accept-language'], { 'accept-language': 'en' }, 1_000);
    assert.equal(known.known(KEY, { 'accept-language': 'en' }, 0), true);
    assert.equal(known.known(KEY, { 'accept-language': 'fr' }, 0), false);
    assert.equal(known.known(KEY, {}, 0), false);
    known.learn(KEY, ['accept-language'], { 'accept-language': 'fr' }, 1_000);
    assert.equal(known.known(KEY, { 'accept-language': 'en' }, 0), true, 'learning one variant keeps the other');
    assert.equal(known.known(KEY, { 'accept-language': 'fr' }, 0), true);
  });

  it('learning without fields (the app’s 304) keeps those learned before, and renews its variant', () => {
    const known = new OversizedAnswers();
    known.learn(KEY, ['accept-language'], { 'accept-language': 'en' }, 1_000);
    known.learn(KEY, undefined, { 'accept-language': 'en' }, 5_000);
    assert.equal(known.known(KEY, { 'accept-language': 'en' }, 4_000), true);
    assert.equal(known.known(KEY, { 'accept-language': 'fr' }, 0), false);
  });

  it('forgets the variant of a request whose answer was stored, and only that one', () => {
    const known = new OversizedAnswers();
    known.learn(KEY, ['x-v'], { 'x-v': 'a' }, 1_000);
    known.learn(KEY, ['x-v'], { 'x-v': 'b' }, 1_000);
    known.forget(KEY, { 'x-v': 'a' });
    assert.equal(known.known(KEY, { 'x-v': 'a' }, 0), false);
    assert.equal(known.known(KEY, { 'x-v': 'b' }, 0), true);
    known.forget('ns:GET:/never', {});
  });

  it(`holds ${OVERSIZED_KEYS} keys at most, however many are learned: the least recently learned go first`, () => {
    const known = new OversizedAnswers();
    for (let i = 0; i < 3 * OVERSIZED_KEYS; i++) known.learn(`ns:GET:/f?i=${i}`, [], {}, 1_000);
    assert.equal(known.size, OVERSIZED_KEYS);
    assert.equal(known.known(`ns:GET:/f?i=${2 * OVERSIZED_KEYS - 1}`, {}, 0), false);
    assert.equal(known.known(`ns:GET:/f?i=${2 * OVERSIZED_KEYS}`, {}, 0), true);
    // Learned again, a key is the most recent: the next one learned pushes out another.
    known.learn(`ns:GET:/f?i=${2 * OVERSIZED_KEYS}`, [], {}, 1_000);
    known.learn('ns:GET:/f?i=new', [], {}, 1_000);
    assert.equal(known.known(`ns:GET:/f?i=${2 * OVERSIZED_KEYS}`, {}, 0), true);
    assert.equal(known.known(`ns:GET:/f?i=${2 * OVERSIZED_KEYS + 1}`, {}, 0), false);
  });

  it('holds as many variants of one key at most, and as many keys’ fields', () => {
    const known = new OversizedAnswers();
    for (let i = 0; i < 2 * OVERSIZED_KEYS; i++) known.learn(KEY, ['x-v'], { 'x-v': String(i) }, 1_000);
    for (let i = 0; i < 2 * OVERSIZED_KEYS; i++) known.learn(`ns:GET:/k${i}`, ['x-v'], { 'x-v': '1' }, 1_000);
    assert.equal(known.size, OVERSIZED_KEYS);
    assert.equal((known as unknown as { varyOn: Map<string, unknown> }).varyOn.size, OVERSIZED_KEYS);
  });
});
