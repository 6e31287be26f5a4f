// Data-API values: JSON-serializable values or Buffers. L2 holds bytes; L1
// holds the parsed value, deep-frozen, so a hit costs no parse and no caller
// can change what the next caller reads.
import { EntryKind, type FillStamp, type StoredEntry } from '../store/entry.js';

const EMPTY = Buffer.alloc(0);

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

export interface EncodedValue {
  /** What L2 stores. */
  readonly entry: StoredEntry;
  /** What L1 stores: the same facts, the value already decoded. */
  readonly l1Entry: StoredEntry;
}

/** @throws TypeError when the value is neither a Buffer nor JSON-serializable. */
export function encodeValue(key: string, value: unknown, stamp: FillStamp, createdAt: number, ttl: number): EncodedValue {
  const base = { createdAt, freshUntil: createdAt + ttl, staleUntil: createdAt + ttl, epoch: stamp.epoch, tags: stamp.tags, versions: stamp.versions, head: EMPTY };
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    // A copy of its own: later changes by the caller do not reach the cache, and no shared slab is kept alive.
    const body = Buffer.allocUnsafeSlow(value.byteLength);
    body.set(value);
    const entry: StoredEntry = { ...base, kind: EntryKind.Bytes, body };
    return { entry, l1Entry: entry };
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw new TypeError(`tiercache: the value for '${key}' is not JSON-serializable (${(err as Error).message})`);
  }
  if (json === undefined) throw new TypeError(`tiercache: the value for '${key}' must be JSON-serializable or a Buffer; got ${typeof value}`);
  const body = Buffer.from(json, 'utf8');
  const entry: StoredEntry = { ...base, kind: EntryKind.Json, body };
  // L1 keeps the parsed copy (same JSON semantics as an L2 round trip) and no bytes.
  const l1Entry: StoredEntry = { ...base, kind: EntryKind.Json, body: EMPTY, decoded: deepFreeze(JSON.parse(json)) };
  return { entry, l1Entry };
}

/** The value of an entry; parses (once, then kept on the entry) JSON read from L2. */
export function decodeValue<T>(entry: StoredEntry): T | undefined {
  switch (entry.kind) {
    case EntryKind.Json:
      if (entry.decoded === undefined) {
        try {
          entry.decoded = deepFreeze(JSON.parse(entry.body.toString('utf8')));
        } catch {
          return undefined;
        }
      }
      return entry.decoded as T;
    case EntryKind.Bytes:
      return Buffer.from(entry.body) as T;
    default:
      return undefined;
  }
}
