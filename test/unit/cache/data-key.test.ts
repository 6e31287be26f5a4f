// Store keys of the data API: ordinary keys kept as they are, lone
// surrogates and '%' escaped, long keys digested; two different keys never
// give the same key as Redis reads it (UTF-8).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { dataStoreKey, MAX_DATA_KEY_LENGTH } from '../../../src/cache/data-key.js';
import { keySlot } from '../../../src/store/hash-slot.js';

const key = (k: string) => dataStoreKey('shop', k);
/** The key as Redis receives it: UTF-8, where every lone surrogate becomes U+FFFD. */
const asRedisReadsIt = (k: string) => Buffer.from(key(k), 'utf8').toString('hex');

/** Any UTF-16 code unit, lone surrogates included, with separators and escapes made likely. */
const codeUnit = fc.oneof(
  fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  fc.constantFrom('%', '%25', '%u', 'D800', '#', ':', '{', '}', '%7B', '%7D', '\uD800', '\uDBFF', '\uDC00', '\uDFFF', '\uD83D\uDE00', '\uFFFD'),
);

describe('cache: data keys', () => {
  it('keeps an ordinary key as it is, valid surrogate pairs included', () => {
    assert.equal(key('user:42'), 'shop:d:user:42');
    assert.equal(key('emoji:😀 日本語'), 'shop:d:emoji:😀 日本語');
  });

  it('escapes lone surrogates and the escape character', () => {
    assert.equal(key('user:\uD800'), 'shop:d:user:%uD800');
    assert.equal(key('user:\uDFFF'), 'shop:d:user:%uDFFF');
    assert.equal(key('50%'), 'shop:d:50%25');
    assert.notEqual(key('user:%uD800'), key('user:\uD800'));
  });

  it("escapes '{' and '}', so the fill lock and the key's counter (`{storeKey}:lock`, `{storeKey}:v`) share the entry's Cluster slot", () => {
    assert.equal(key('user:{42}'), 'shop:d:user:%7B42%7D');
    assert.equal(key('a}b'), 'shop:d:a%7Db');
    assert.notEqual(key('%7B'), key('{'));
    for (const k of ['user:{42}', 'q:{"id":1}', 'a}b', '{', '}{', '{}', 'x{y}z{']) {
      const storeKey = key(k);
      assert.equal(keySlot(`{${storeKey}}:lock`), keySlot(storeKey), k);
      assert.equal(keySlot(`{${storeKey}}:v`), keySlot(storeKey), k);
    }
  });

  it('gives keys that differ only in lone surrogates different keys as Redis reads them', () => {
    const keys = ['user:\uD800', 'user:\uDC00', 'user:\uDBFF', 'user:\uDFFF', 'user:\uFFFD'];
    assert.equal(new Set(keys.map(asRedisReadsIt)).size, keys.length);
  });

  it('replaces a key longer than the bound by a fixed-length digest that no short key gives', () => {
    const long = 'k'.repeat(10_000);
    assert.equal(key(long).length, key('k'.repeat(20_000)).length);
    assert.ok(key(long).length < 64, key(long));
    assert.notEqual(key(long), key(long + 'x'));
    assert.notEqual(key(long + '\uD800'), key(long + '\uDC00'));
    assert.ok(key('k'.repeat(MAX_DATA_KEY_LENGTH)).endsWith('k'.repeat(MAX_DATA_KEY_LENGTH)));
    const digestPart = key(long).slice('shop:d:'.length);
    assert.notEqual(key(digestPart), key(long));
  });

  it('never gives two different keys the same key as Redis reads it (property)', () => {
    const text = (max: number) => fc.string({ unit: codeUnit, maxLength: max });
    // Keys that differ in one place, by pieces UTF-8 or the escaping could confuse.
    const confusable = fc.constantFrom('\uD800', '\uDBFF', '\uDC00', '\uDFFF', '\uFFFD', '%', '%25', '%uD800', '%#', '{', '}', '%7B', '%7D', '');
    const nearPair = fc
      .tuple(fc.oneof(text(12), text(300)), confusable, confusable, text(12))
      .filter(([, x, y]) => x !== y)
      .map(([prefix, x, y, suffix]) => [prefix + x + suffix, prefix + y + suffix] as const);
    const anyPair = fc.tuple(text(12), text(12));
    fc.assert(
      fc.property(fc.oneof(nearPair, anyPair), ([a, b]) => {
        fc.pre(a !== b && a !== '' && b !== '');
        assert.notEqual(asRedisReadsIt(a), asRedisReadsIt(b), `${JSON.stringify(a)} and ${JSON.stringify(b)}`);
      }),
      { numRuns: 2000 },
    );
  });
});
