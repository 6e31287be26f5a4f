// The L2 entry codec: every field survives encode -> decode exactly, and
// anything that is not a complete entry of this format (corrupt, truncated,
// foreign) is rejected with EntryCodecError so the store can treat it as a
// miss and delete it.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EntryKind, type StoredEntry } from '../../../src/store/entry.js';
import { ENTRY_FORMAT, EntryCodecError, decodeEntry, encodeEntry, entryIdentity, identityLength, ownBytes, tagVersionOffset } from '../../../src/store/entry-codec.js';

const RUNS = { numRuns: 200 } as const;

/** Offsets in the layout (see entry-codec.ts). */
const OFFSET = { format: 2, kind: 3, createdAt: 4, freshUntil: 12, staleUntil: 20, epoch: 28, tagCount: 36, firstTag: 38 } as const;

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

function entry(overrides: Partial<StoredEntry> = {}): StoredEntry {
  return {
    kind: EntryKind.Json,
    createdAt: 1_700_000_000_000,
    freshUntil: 1_700_000_060_000,
    staleUntil: 1_700_000_120_000,
    epoch: 1_700_000_000_123_456,
    tags: ['user:42', 'path:/api'],
    versions: [1_700_000_000_000_001, 7],
    head: Buffer.from('status=200'),
    body: Buffer.from('{"a":1}'),
    ...overrides,
  };
}

/** The fields decode must give back, as plain values (Buffers as byte arrays). */
function fields(e: StoredEntry) {
  return {
    kind: e.kind,
    createdAt: e.createdAt,
    freshUntil: e.freshUntil,
    staleUntil: e.staleUntil,
    epoch: e.epoch,
    tags: [...e.tags],
    versions: [...e.versions],
    head: [...e.head],
    body: [...e.body],
  };
}

function roundTrip(e: StoredEntry): StoredEntry {
  return decodeEntry(encodeEntry(e));
}

/** decodeEntry(buf) throws EntryCodecError; with `says`, one whose message names what is wrong (the only clue an operator gets). */
function assertCodecError(buf: Buffer, what: string, says?: string): void {
  assert.throws(
    () => decodeEntry(buf),
    (err: unknown) => {
      assert.ok(err instanceof EntryCodecError, `${what}: expected EntryCodecError, got ${String(err)}`);
      if (says !== undefined) assert.equal(err.message, says, what);
      return true;
    },
    `${what}: decoded without an error`,
  );
}

function withDouble(buf: Buffer, offset: number, value: number): Buffer {
  const copy = Buffer.from(buf);
  copy.writeDoubleBE(value, offset);
  return copy;
}

describe('store: entry codec', () => {
  describe('round trip', () => {
    for (const [name, kind] of Object.entries(EntryKind)) {
      it(`gives back every field of a ${name} entry`, () => {
        const e = entry({ kind });
        assert.deepStrictEqual(fields(roundTrip(e)), fields(e));
      });
    }

    it('writes the magic bytes and the current format byte first', () => {
      const buf = encodeEntry(entry());
      assert.equal(buf[0], 0x54);
      assert.equal(buf[1], 0x43);
      assert.equal(buf[OFFSET.format], ENTRY_FORMAT);
      assert.equal(buf[OFFSET.kind], EntryKind.Json);
    });

    it('keeps unicode tags exactly (accents, CJK, emoji, combining marks, NUL, separators)', () => {
      const tags = ['é', '日本語', '😀👍🏽', 'e\u0301', 'a\u0000b', 'user:{42}:x', '', 'path:/ä/ö'];
      const e = entry({ tags, versions: tags.map((_, i) => i + 1) });
      const back = roundTrip(e);
      assert.deepStrictEqual([...back.tags], tags);
      assert.deepStrictEqual([...back.versions], tags.map((_, i) => i + 1));
    });

    it('keeps tag versions and the epoch exact near 2^52 and up to 2^53 - 1', () => {
      const versions = [2 ** 52 - 1, 2 ** 52, 2 ** 52 + 1, Number.MAX_SAFE_INTEGER, 0, 1];
      const e = entry({ tags: versions.map((_, i) => `t${i}`), versions, epoch: 2 ** 52 + 3 });
      const back = roundTrip(e);
      assert.deepStrictEqual([...back.versions], versions);
      assert.equal(back.epoch, 2 ** 52 + 3);
    });

    it('keeps an entry with no tags, an empty head and an empty body', () => {
      const e = entry({ tags: [], versions: [], head: Buffer.alloc(0), body: Buffer.alloc(0) });
      const back = roundTrip(e);
      assert.deepStrictEqual(fields(back), fields(e));
      assert.equal(back.head.length, 0);
      assert.equal(back.body.length, 0);
    });

    it('keeps a binary body with all 256 byte values, and a binary head', () => {
      const body = Buffer.concat([ALL_BYTES, Buffer.from(ALL_BYTES).reverse(), ALL_BYTES]);
      const e = entry({ kind: EntryKind.Bytes, head: ALL_BYTES, body });
      const back = roundTrip(e);
      assert.ok(back.body.equals(body));
      assert.ok(back.head.equals(ALL_BYTES));
    });

    it('keeps a head and body that look like the header of another entry', () => {
      const inner = encodeEntry(entry());
      const e = entry({ head: inner, body: inner });
      assert.deepStrictEqual(fields(roundTrip(e)), fields(e));
    });

    it('round-trips any entry (property)', () => {
      const time = fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e15, max: 1e15 });
      const tag = fc.oneof(fc.string({ unit: 'binary', maxLength: 20 }), fc.string({ unit: 'grapheme', maxLength: 10 }));
      const version = fc.oneof(fc.maxSafeNat(), fc.integer({ min: 2 ** 52 - 1000, max: 2 ** 52 + 1000 }), fc.double({ noNaN: true, noDefaultInfinity: true }));
      const arb = fc
        .record({
          kind: fc.constantFrom(EntryKind.Json, EntryKind.Bytes, EntryKind.Http),
          createdAt: time,
          bounds: fc.tuple(time, time).map(([a, b]) => (a <= b ? [a, b] : [b, a])),
          epoch: fc.oneof(fc.maxSafeNat(), fc.double({ noNaN: true, noDefaultInfinity: true })),
          tagged: fc.array(fc.tuple(tag, version), { maxLength: 8 }),
          head: fc.uint8Array({ maxLength: 64 }),
          body: fc.uint8Array({ maxLength: 512 }),
        })
        .map(
          (r): StoredEntry => ({
            kind: r.kind,
            createdAt: r.createdAt,
            freshUntil: r.bounds[0]!,
            staleUntil: r.bounds[1]!,
            epoch: r.epoch,
            tags: r.tagged.map(([t]) => t),
            versions: r.tagged.map(([, v]) => v),
            head: Buffer.from(r.head),
            body: Buffer.from(r.body),
          }),
        );
      fc.assert(
        fc.property(arb, (e) => {
          assert.deepStrictEqual(fields(roundTrip(e)), fields(e));
        }),
        RUNS,
      );
    });
  });

  describe('corrupt or foreign input', () => {
    const valid = encodeEntry(entry({ body: Buffer.from('{"payload":"some bytes of body"}') }));

    it('rejects an empty buffer', () => {
      assertCodecError(Buffer.alloc(0), 'empty', 'truncated entry');
    });

    it('rejects wrong magic bytes', () => {
      for (const [i, b] of [[0, 0x00], [0, 0x74], [1, 0x00], [1, 0x63], [0, 0xff]] as const) {
        const bad = Buffer.from(valid);
        bad[i] = b;
        assertCodecError(bad, `byte ${i} = ${b}`, 'not a tiercache entry');
      }
    });

    it('rejects another format byte (an entry written by another version)', () => {
      for (const format of [0, ENTRY_FORMAT + 1, 0x7f, 0xff]) {
        const bad = Buffer.from(valid);
        bad[OFFSET.format] = format;
        assertCodecError(bad, `format ${format}`, `entry format ${format} is not ${ENTRY_FORMAT}`);
      }
    });

    it('rejects an unknown kind', () => {
      const known = new Set<number>(Object.values(EntryKind));
      for (let kind = 0; kind < 256; kind++) {
        if (known.has(kind)) continue;
        const bad = Buffer.from(valid);
        bad[OFFSET.kind] = kind;
        assertCodecError(bad, `kind ${kind}`, `unknown entry kind ${kind}`);
      }
    });

    it('rejects a prefix cut anywhere before the body (header, tags, head)', () => {
      const e = entry({ head: Buffer.from('some head bytes'), body: Buffer.alloc(0) });
      const buf = encodeEntry(e);
      for (let length = 0; length < buf.length; length++) {
        assertCodecError(buf.subarray(0, length), `cut at ${length} of ${buf.length}`, 'truncated entry');
      }
      assert.deepStrictEqual(fields(decodeEntry(buf)), fields(e));
    });

    it('rejects a prefix cut at every offset of a valid encoding, inside the body too', () => {
      const buf = valid;
      const failures: number[] = [];
      for (let length = 0; length < buf.length; length++) {
        try {
          decodeEntry(buf.subarray(0, length));
          failures.push(length);
        } catch (err) {
          assert.ok(err instanceof EntryCodecError, `cut at ${length}: ${String(err)}`);
        }
      }
      assert.equal(
        failures.length,
        0,
        `${failures.length} prefixes of a ${buf.length}-byte entry decoded without an error (lengths ${failures[0]}..${failures.at(-1)}); ` +
          `e.g. the ${failures[0]}-byte prefix decoded to a body of ${failures[0] === undefined ? 0 : decodeEntry(buf.subarray(0, failures[0])).body.length} bytes instead of an error`,
      );
    });

    it('rejects bytes after the body, and a body shorter than its length says, naming which', () => {
      assertCodecError(Buffer.concat([valid, Buffer.from('x')]), 'one byte more', 'trailing bytes after entry');
      assertCodecError(valid.subarray(0, valid.length - 1), 'one byte of the body less', 'truncated entry');
      const longer = Buffer.from(valid);
      const bodyLenOffset = valid.length - Buffer.byteLength('{"payload":"some bytes of body"}') - 4;
      longer.writeUInt32BE(longer.readUInt32BE(bodyLenOffset) - 1, bodyLenOffset);
      assertCodecError(longer, 'body length one less than the bytes', 'trailing bytes after entry');
    });

    it('rejects staleUntil before freshUntil', () => {
      const buf = encodeEntry(entry({ freshUntil: 2000, staleUntil: 1999 }));
      assertCodecError(buf, 'staleUntil < freshUntil', 'staleUntil before freshUntil');
      assertCodecError(withDouble(valid, OFFSET.staleUntil, valid.readDoubleBE(OFFSET.freshUntil) - 1), 'patched staleUntil', 'staleUntil before freshUntil');
    });

    it('rejects NaN and infinite numbers in every numeric field', () => {
      const tagVersionOffset = OFFSET.firstTag + 2 + Buffer.byteLength('user:42');
      assert.equal(valid.readDoubleBE(tagVersionOffset), 1_700_000_000_000_001, 'offset of the first tag version');
      const slots = { createdAt: OFFSET.createdAt, freshUntil: OFFSET.freshUntil, staleUntil: OFFSET.staleUntil, epoch: OFFSET.epoch, 'tag version': tagVersionOffset };
      for (const [name, offset] of Object.entries(slots)) {
        for (const value of [NaN, Infinity, -Infinity]) {
          assertCodecError(withDouble(valid, offset, value), `${name} = ${value}`, `${name} is not a finite number`);
        }
      }
      assertCodecError(encodeEntry(entry({ createdAt: NaN })), 'encoded NaN createdAt');
      assertCodecError(encodeEntry(entry({ versions: [NaN, 1] })), 'encoded NaN version');
    });

    it('rejects a tag count or tag length that runs past the end', () => {
      const manyTags = Buffer.from(valid);
      manyTags.writeUInt16BE(0xffff, OFFSET.tagCount);
      assertCodecError(manyTags, 'tag count 65535', 'truncated entry');
      const longTag = Buffer.from(valid);
      longTag.writeUInt16BE(0xffff, OFFSET.firstTag);
      assertCodecError(longTag, 'tag length 65535', 'truncated entry');
    });

    it('rejects a head length that runs past the end', () => {
      const e = entry({ tags: [], versions: [], head: Buffer.from('h'), body: Buffer.from('b') });
      const buf = encodeEntry(e);
      const headLenOffset = OFFSET.firstTag;
      assert.equal(buf.readUInt32BE(headLenOffset), 1);
      const bad = Buffer.from(buf);
      bad.writeUInt32BE(3, headLenOffset);
      assertCodecError(bad, 'head length 3 with 2 bytes left', 'truncated entry');
      bad.writeUInt32BE(0xffffffff, headLenOffset);
      assertCodecError(bad, 'head length 2^32 - 1', 'truncated entry');
    });

    it('refuses to encode more tags, or a longer tag, than the u16 lengths can say (and encodes the most they can)', () => {
      const most = Array.from({ length: 0xffff }, (_, i) => `t${i}`);
      assert.equal(roundTrip(entry({ tags: most, versions: most.map(() => 1) })).tags.length, 0xffff);
      const longest = 'x'.repeat(0xffff);
      assert.deepEqual(roundTrip(entry({ tags: [longest], versions: [3] })).tags, [longest]);
      assert.throws(
        () => encodeEntry(entry({ tags: [...most, 'one more'], versions: [...most.map(() => 1), 1] })),
        (err: unknown) => err instanceof EntryCodecError && err.name === 'EntryCodecError' && /too many tags \(65536\)/.test(err.message),
      );
      // Counted in bytes: 0x8000 two-byte characters are 65,536 bytes.
      for (const tag of [longest + 'x', '\u00e9'.repeat(0x8000)]) {
        assert.throws(
          () => encodeEntry(entry({ tags: [tag], versions: [1] })),
          (err: unknown) => err instanceof EntryCodecError && /tag longer than 65535 bytes/.test(err.message),
        );
      }
    });

    it('rejects foreign values: JSON text, plain strings, another serializer', () => {
      const foreign = [
        '{"kind":1,"body":"x"}',
        'hello',
        'TC',
        'TC\u0001',
        JSON.stringify({ type: 'Buffer', data: [...valid] }),
        '\u0000'.repeat(100),
      ];
      for (const text of foreign) assertCodecError(Buffer.from(text, 'utf8'), JSON.stringify(text).slice(0, 40));
      assertCodecError(Buffer.from(valid.toString('base64')), 'base64 of a valid entry');
    });

    it('throws only EntryCodecError for arbitrary bytes, with or without a valid-looking start', () => {
      const start = valid.subarray(0, 4);
      fc.assert(
        fc.property(fc.boolean(), fc.uint8Array({ maxLength: 120 }), (withMagic, bytes) => {
          const buf = withMagic ? Buffer.concat([start, Buffer.from(bytes)]) : Buffer.from(bytes);
          try {
            const e = decodeEntry(buf);
            assert.ok(e.staleUntil >= e.freshUntil);
            assert.ok([e.createdAt, e.freshUntil, e.staleUntil, e.epoch, ...e.versions].every(Number.isFinite));
          } catch (err) {
            assert.ok(err instanceof EntryCodecError, `threw ${String(err)}`);
          }
        }),
        RUNS,
      );
    });
  });
});

describe('store: tagVersionOffset', () => {
  it("gives where an encoded entry records each tag's version (tags of any length, UTF-8 ones included)", () => {
    const tags = ['key:a', 'ключ:é', 'x'.repeat(300), '{braced}'];
    const versions = [11, 22, 33, 44];
    const now = Date.now();
    const bytes = encodeEntry({ kind: EntryKind.Json, createdAt: now, freshUntil: now + 1, staleUntil: now + 1, epoch: 7, tags, versions, head: Buffer.alloc(0), body: Buffer.from('{}') });
    for (let at = 0; at < tags.length; at++) assert.equal(bytes.readDoubleBE(tagVersionOffset(tags, at)), versions[at], `tag ${at}`);
  });
});

describe('store: ownBytes', () => {
  it('copies a view into a larger buffer (so a cached body does not keep its whole slab alive), and keeps a buffer that owns its memory', () => {
    const slab = Buffer.alloc(8192, 7);
    const view = slab.subarray(100, 110);
    const own = ownBytes(view);
    assert.notEqual(own.buffer, slab.buffer);
    assert.equal(own.buffer.byteLength, 10);
    assert.deepEqual(own, view);
    const whole = Buffer.from(new ArrayBuffer(10));
    assert.equal(ownBytes(whole), whole);
    // A view at the start of a slab, and one that runs to its end, keep the slab alive just the same.
    for (const [what, part] of [['at the start', slab.subarray(0, 10)], ['at the end', slab.subarray(8182)]] as const) {
      const copied = ownBytes(part);
      assert.equal(copied.buffer.byteLength, 10, what);
      assert.deepEqual(copied, part, what);
    }
  });
});

describe('store: identityLength', () => {
  it("covers an entry's header and its first tag with that tag's version; the first 64 bytes of anything else; never more than there is", () => {
    const bytes = encodeEntry(entry());
    assert.equal(identityLength(bytes), tagVersionOffset(['user:42'], 0) + 8);
    // Two set()s of one key differ there: the key tag comes first and records the version each moved it to.
    const other = encodeEntry(entry({ versions: [1_700_000_000_000_002, 7] }));
    assert.notDeepEqual(other.subarray(0, identityLength(other)), bytes.subarray(0, identityLength(bytes)));
    assert.equal(identityLength(encodeEntry(entry({ tags: [], versions: [] }))), OFFSET.firstTag);
    assert.equal(identityLength(Buffer.alloc(100, 7)), 64);
    // Either magic byte alone is no entry's.
    assert.equal(identityLength(Buffer.concat([Buffer.from('TX'), Buffer.alloc(98)])), 64);
    assert.equal(identityLength(Buffer.concat([Buffer.from('XC'), Buffer.alloc(98)])), 64);
    assert.equal(identityLength(Buffer.from('TC')), 2);
    assert.equal(identityLength(bytes.subarray(0, OFFSET.firstTag + 5)), OFFSET.firstTag + 5);
    // Cut inside the first tag's length: never read past the end (a RangeError out of a read).
    assert.equal(identityLength(bytes.subarray(0, OFFSET.firstTag + 1)), OFFSET.firstTag + 1);
  });
});

describe('store: entryIdentity', () => {
  it('builds from a decoded entry the very bytes identityLength takes from its encoding (a reader that kept no bytes drops only that value)', () => {
    for (const e of [entry(), entry({ tags: [], versions: [] }), entry({ tags: ['key:ü', 'b'], versions: [3, 4] })]) {
      const bytes = encodeEntry(e);
      assert.deepEqual(entryIdentity(e), bytes.subarray(0, identityLength(bytes)));
      assert.deepEqual(entryIdentity(decodeEntry(bytes)), bytes.subarray(0, identityLength(bytes)));
    }
    assert.throws(() => entryIdentity(entry({ tags: ['x'.repeat(70_000)], versions: [1] })), EntryCodecError);
  });
});
