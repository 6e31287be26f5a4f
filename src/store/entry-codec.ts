// Binary, versioned encoding of entries for L2. Layout (big-endian):
//   'T' 'C' format(1) kind(1) createdAt(f64) freshUntil(f64) staleUntil(f64) epoch(f64)
//   tagCount(u16) { tagLen(u16) tag(utf8) version(f64) }* headLen(u32) head bodyLen(u32) body
// The lengths must add up to the buffer's length exactly, so a truncated value
// is caught rather than served short.
// Anything that does not parse exactly is corrupt or foreign: decode throws and
// the caller treats it as a miss and deletes it.
import { EntryKind, type StoredEntry } from './entry.js';

const MAGIC_T = 0x54;
const MAGIC_C = 0x43;
/** Bumped whenever the layout changes; entries of another format read as misses. */
export const ENTRY_FORMAT = 1;
const FIXED_HEADER = 4 + 8 * 4 + 2;
/** Where the fixed header's fields are (read in place by packed-entry.ts). */
export const OFFSETS = { kind: 3, createdAt: 4, freshUntil: 12, staleUntil: 20, epoch: 28, tagCount: 36, tags: FIXED_HEADER } as const;
const MAX_U16 = 0xffff;

/**
 * The bytes as a buffer of their own. Small buffers from Buffer.from / concat /
 * a socket read are views into a shared 8 KiB (or larger) slab; an L1 entry
 * holding such a view keeps the whole slab alive, several times its size.
 */
export function ownBytes(buf: Buffer): Buffer {
  if (buf.byteOffset === 0 && buf.buffer.byteLength === buf.length) return buf;
  const own = Buffer.allocUnsafeSlow(buf.length);
  buf.copy(own);
  return own;
}

export class EntryCodecError extends Error {
  override name = 'EntryCodecError';
}

/** Throws for more tags than an entry's u16 count holds. */
function checkTagCount(tags: readonly string[]): void {
  if (tags.length > MAX_U16) throw new EntryCodecError(`too many tags (${tags.length})`);
}

/** A tag's length in bytes; throws past what its u16 length holds. */
function tagLengthOf(tag: string): number {
  const length = Buffer.byteLength(tag, 'utf8');
  if (length > MAX_U16) throw new EntryCodecError('tag longer than 65535 bytes');
  return length;
}

/** What the front of an entry (fixed header and tags) needs: its size, and each tag's length in bytes. */
function frontOf(tags: readonly string[]): { size: number; tagLengths: number[] } {
  checkTagCount(tags);
  let size = FIXED_HEADER;
  const tagLengths = tags.map((tag) => {
    const length = tagLengthOf(tag);
    size += 2 + length + 8;
    return length;
  });
  return { size, tagLengths };
}

/** The fields an entry's front holds. */
type Front = Pick<StoredEntry, 'kind' | 'createdAt' | 'freshUntil' | 'staleUntil' | 'epoch' | 'tags' | 'versions'>;

/** Writes the fixed header (`tagCount` tags) at the start of `out`; returns where the first tag goes. */
function writeHeader(out: Buffer, entry: Front, tagCount: number): number {
  let o = 0;
  out[o++] = MAGIC_T;
  out[o++] = MAGIC_C;
  out[o++] = ENTRY_FORMAT;
  out[o++] = entry.kind;
  o = out.writeDoubleBE(entry.createdAt, o);
  o = out.writeDoubleBE(entry.freshUntil, o);
  o = out.writeDoubleBE(entry.staleUntil, o);
  o = out.writeDoubleBE(entry.epoch, o);
  return out.writeUInt16BE(tagCount, o);
}

/** Writes the fixed header and the tags at the start of `out`; returns where the head's length goes. */
function writeFront(out: Buffer, entry: Front, tagLengths: readonly number[]): number {
  let o = writeHeader(out, entry, tagLengths.length);
  for (let i = 0; i < tagLengths.length; i++) {
    o = out.writeUInt16BE(tagLengths[i]!, o);
    o += out.write(entry.tags[i]!, o, 'utf8');
    o = out.writeDoubleBE(entry.versions[i] ?? 0, o);
  }
  return o;
}

/** Where an encoded entry with these tags records the version of tag `at` (a byte offset). */
export function tagVersionOffset(tags: readonly string[], at: number): number {
  let o = FIXED_HEADER;
  for (let i = 0; i < at; i++) o += 2 + Buffer.byteLength(tags[i]!, 'utf8') + 8;
  return o + 2 + Buffer.byteLength(tags[at]!, 'utf8');
}

export function encodeEntry(entry: StoredEntry): Buffer {
  const { size, tagLengths } = frontOf(entry.tags);
  const out = Buffer.allocUnsafe(size + 8 + entry.head.length + entry.body.length);
  let o = writeFront(out, entry, tagLengths);
  o = out.writeUInt32BE(entry.head.length, o);
  o += entry.head.copy(out, o);
  o = out.writeUInt32BE(entry.body.length, o);
  entry.body.copy(out, o);
  return out;
}

/**
 * Encodes an entry whose head is text (UTF-8) into a buffer of its own, one
 * allocation (never a view into a shared slab, which L1 would keep alive whole):
 * the form in which L1 keeps an HTTP entry and L2 stores it (see packed-entry.ts).
 */
export function encodeOwn(front: Front, head: string, body: Buffer): Buffer {
  const { size, tagLengths } = frontOf(front.tags);
  const headLength = Buffer.byteLength(head, 'utf8');
  const out = Buffer.allocUnsafeSlow(size + 8 + headLength + body.length);
  let o = writeFront(out, front, tagLengths);
  o = out.writeUInt32BE(headLength, o);
  o += out.write(head, o, 'utf8');
  o = out.writeUInt32BE(body.length, o);
  body.copy(out, o);
  return out;
}

function need(buf: Buffer, offset: number, bytes: number): void {
  if (offset + bytes > buf.length) throw new EntryCodecError('truncated entry');
}

function finite(n: number, what: string): number {
  if (!Number.isFinite(n)) throw new EntryCodecError(`${what} is not a finite number`);
  return n;
}

/**
 * The freshUntil the first bytes of an L2 value record, read as the lookup
 * script reads it (the magic checked, nothing else); undefined for bytes that
 * are not a tiercache entry's.
 */
export function headerFreshUntil(buf: Buffer): number | undefined {
  return buf.length >= OFFSETS.freshUntil + 8 && buf[0] === MAGIC_T && buf[1] === MAGIC_C ? buf.readDoubleBE(OFFSETS.freshUntil) : undefined;
}

/**
 * How many of an L2 value's first bytes tell it from a value stored over it
 * since: the fixed header and the first tag with its version (a data-API
 * entry's first tag is its key's, whose version every set() moves on); the
 * first 64 bytes of anything that is not an entry. Never more than it holds.
 */
export function identityLength(buf: Buffer): number {
  const tags = OFFSETS.tags;
  if (buf.length < tags + 2 || buf[0] !== MAGIC_T || buf[1] !== MAGIC_C) return Math.min(buf.length, 64);
  const length = buf.readUInt16BE(OFFSETS.tagCount) === 0 ? tags : tags + 2 + buf.readUInt16BE(tags) + 8;
  return Math.min(buf.length, length);
}

/**
 * The first bytes (identityLength's) that `entry` encodes to, built from its
 * fields: what a reader that kept only the decoded entry (L1's copy, a parsed
 * value) compares L2's value with before dropping it. Throws for an entry
 * the format cannot hold (then L2 never held it either).
 */
export function entryIdentity(entry: Front): Buffer {
  const first = entry.tags[0];
  checkTagCount(entry.tags);
  const tagLength = first === undefined ? 0 : tagLengthOf(first);
  const out = Buffer.allocUnsafe(first === undefined ? FIXED_HEADER : FIXED_HEADER + 2 + tagLength + 8);
  const o = writeHeader(out, entry, entry.tags.length);
  if (first !== undefined) {
    const at = out.writeUInt16BE(tagLength, o);
    out.writeDoubleBE(entry.versions[0] ?? 0, at + out.write(first, at, 'utf8'));
  }
  return out;
}

/** Decodes an L2 value. `head` and `body` are views into `buf` (no copy). */
export function decodeEntry(buf: Buffer): StoredEntry {
  need(buf, 0, FIXED_HEADER);
  if (buf[0] !== MAGIC_T || buf[1] !== MAGIC_C) throw new EntryCodecError('not a tiercache entry');
  if (buf[2] !== ENTRY_FORMAT) throw new EntryCodecError(`entry format ${buf[2]} is not ${ENTRY_FORMAT}`);
  const kind = buf[3]!;
  if (kind !== EntryKind.Json && kind !== EntryKind.Bytes && kind !== EntryKind.Http) throw new EntryCodecError(`unknown entry kind ${kind}`);
  let o = 4;
  const createdAt = finite(buf.readDoubleBE(o), 'createdAt');
  const freshUntil = finite(buf.readDoubleBE(o + 8), 'freshUntil');
  const staleUntil = finite(buf.readDoubleBE(o + 16), 'staleUntil');
  const epoch = finite(buf.readDoubleBE(o + 24), 'epoch');
  o += 32;
  if (staleUntil < freshUntil) throw new EntryCodecError('staleUntil before freshUntil');
  const tagCount = buf.readUInt16BE(o);
  o += 2;
  // Stryker disable next-line ArrayDeclaration: preallocated for speed; the loop assigns every index
  const tags: string[] = new Array(tagCount);
  // Stryker disable next-line ArrayDeclaration: as above
  const versions: number[] = new Array(tagCount);
  for (let i = 0; i < tagCount; i++) {
    need(buf, o, 2);
    const len = buf.readUInt16BE(o);
    o += 2;
    need(buf, o, len + 8);
    tags[i] = buf.toString('utf8', o, o + len);
    o += len;
    versions[i] = finite(buf.readDoubleBE(o), 'tag version');
    o += 8;
  }
  need(buf, o, 4);
  const headLen = buf.readUInt32BE(o);
  o += 4;
  need(buf, o, headLen + 4);
  const head = buf.subarray(o, o + headLen);
  o += headLen;
  const bodyLen = buf.readUInt32BE(o);
  o += 4;
  if (o + bodyLen !== buf.length) throw new EntryCodecError(o + bodyLen > buf.length ? 'truncated entry' : 'trailing bytes after entry');
  const body = buf.subarray(o);
  return { kind: kind as EntryKind, createdAt, freshUntil, staleUntil, epoch, tags, versions, head, body };
}
