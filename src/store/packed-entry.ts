// An entry kept as its encoded bytes (entry-codec.ts), one buffer of its own:
// what L1 holds for an HTTP response. Most entries a scan stores are never
// read again, and each object an entry keeps is heap that V8 sizes its old
// space by, several times over in RSS (bench/l1-memory.ts). So an entry is
// this object and its buffer: the times are read from the bytes when asked,
// the tags and versions decoded on the first read and kept, the head and body
// views made when asked. L2 is sent the same bytes, with no encoding.
// Once L1 has stored it, an entry lets go of its Buffer view (parkView) and
// keeps the ArrayBuffer alone: a view is ~100 bytes of heap, a quarter of an
// entry's, and an entry never read needs none. The first read makes one again
// and keeps it, so a hit after the first allocates nothing.
// L1 keeps a packed entry as its own slot (l1-slot.ts): one object per entry.
import { OFFSETS } from './entry-codec.js';
import type { EntryKind, StoredEntry } from './entry.js';
import { L1Slot, REMOVED } from './l1-slot.js';

/**
 * A Buffer view's own heap (a Uint8Array's words; its bytes are another's): 96 bytes on node 20 and 22,
 * 104 on node 24, whose V8 (13.6) gave typed arrays a word more. The larger is charged everywhere: too
 * many bytes rather than too few, 8 of ~450 in the smallest decoded entry.
 */
export const VIEW_BYTES = 104;

export class PackedEntry extends L1Slot implements StoredEntry {
  decoded: unknown = undefined;
  private decodedTags: readonly string[] | undefined;
  private decodedVersions: readonly number[] | undefined;
  /** The bytes' own allocation, whole (own: see parkView). */
  private readonly store: ArrayBuffer;
  /** A view of `store`, while someone reads it; undefined once parked. */
  private view: Buffer | undefined;

  constructor(
    /** The entry as entry-codec.ts encodes it; trusted (this process wrote it). */
    bytes: Buffer,
    /** What the decoded form will hold, when known (entry.ts); an entry read from L2 is charged again once decoded. */
    readonly decodedBytes: number | undefined,
    /** The tags and versions the bytes hold, when the caller has them at hand: they are not decoded again. */
    tags?: readonly string[],
    versions?: readonly number[],
  ) {
    super('', undefined, REMOVED, 0);
    this.decodedTags = tags;
    this.decodedVersions = versions;
    this.store = bytes.buffer as ArrayBuffer;
    this.view = bytes;
  }

  /** Makes this entry L1's slot for `key` (it is not one in any L1: `until` is REMOVED). */
  holdAs(key: string, until: number, size: number): this {
    this.key = key;
    this.entry = this;
    this.until = until;
    this.size = size;
    return this;
  }

  /** The entry as entry-codec.ts encodes it. */
  get bytes(): Buffer {
    return this.view ?? this.viewAgain();
  }

  /**
   * Drops the view until the next read, when the bytes are the whole of their
   * allocation (a view of part of a larger one is kept: it could not be made again from the ArrayBuffer alone).
   */
  parkView(): void {
    const view = this.view;
    if (view !== undefined && view.byteOffset === 0 && view.length === this.store.byteLength) this.view = undefined;
  }

  private viewAgain(): Buffer {
    return (this.view = Buffer.from(this.store));
  }

  get kind(): EntryKind {
    return this.bytes[OFFSETS.kind] as EntryKind;
  }

  get createdAt(): number {
    return this.bytes.readDoubleBE(OFFSETS.createdAt);
  }

  get freshUntil(): number {
    return this.bytes.readDoubleBE(OFFSETS.freshUntil);
  }

  get staleUntil(): number {
    return this.bytes.readDoubleBE(OFFSETS.staleUntil);
  }

  get epoch(): number {
    return this.bytes.readDoubleBE(OFFSETS.epoch);
  }

  get tags(): readonly string[] {
    return this.decodedTags ?? this.decodeTags();
  }

  get versions(): readonly number[] {
    if (this.decodedVersions === undefined) this.decodeTags();
    return this.decodedVersions!;
  }

  /** How many tags the entry has. */
  get tagCount(): number {
    return this.bytes.readUInt16BE(OFFSETS.tagCount);
  }

  /** The tags' length in UTF-8 bytes, all together (read without decoding them). */
  tagBytes(): number {
    return this.headAt() - OFFSETS.tags - 4 - 10 * this.tagCount;
  }

  get head(): Buffer {
    const at = this.headAt();
    return this.bytes.subarray(at, at + this.bytes.readUInt32BE(at - 4));
  }

  get body(): Buffer {
    const at = this.headAt();
    return this.bytes.subarray(at + this.bytes.readUInt32BE(at - 4) + 4);
  }

  /** Where the head's bytes begin: past the tags and the head's length. */
  private headAt(): number {
    const bytes = this.bytes;
    let o = OFFSETS.tags;
    for (let i = bytes.readUInt16BE(OFFSETS.tagCount); i > 0; i--) o += 2 + bytes.readUInt16BE(o) + 8;
    return o + 4;
  }

  private decodeTags(): readonly string[] {
    const bytes = this.bytes;
    const count = bytes.readUInt16BE(OFFSETS.tagCount);
    // Stryker disable next-line ArrayDeclaration: preallocated for speed; the loop assigns every index
    const tags: string[] = new Array(count);
    // Stryker disable next-line ArrayDeclaration: as above
    const versions: number[] = new Array(count);
    let o = OFFSETS.tags;
    for (let i = 0; i < count; i++) {
      const length = bytes.readUInt16BE(o);
      o += 2;
      tags[i] = bytes.toString('utf8', o, o + length);
      o += length;
      versions[i] = bytes.readDoubleBE(o);
      o += 8;
    }
    this.decodedTags = tags;
    this.decodedVersions = versions;
    return tags;
  }
}
