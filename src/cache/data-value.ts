// Data-API values: JSON-serializable values or Buffers (or whatever the
// cache's serializer takes, see serializer.ts). L2 holds bytes; for JSON, L1
// holds the parsed value, deep-frozen, so a hit costs no parse and no caller
// can change what the next caller reads; every read, and getOrSet's miss,
// returns a value of the same kind: frozen JSON, or a fresh copy otherwise. What L1 holds is charged against
// maxBytes by what the parsed graph costs on the heap, estimated while it is
// frozen: `[{}, {}, ...]` costs twenty times its JSON, a long string about
// its JSON, and a byte count alone would let L1 hold many times maxBytes.
// JSON that would lose what a value holds (a Map or a Set written as {}) is
// refused; what JSON changes by its own rules (a Date to its ISO string,
// NaN and ±Infinity to null, -0 to 0) is stored as JSON writes it.
import { isAnyArrayBuffer, isDataView, isMap, isNativeError, isPromise, isRegExp, isSet, isTypedArray, isUint8Array, isWeakMap, isWeakSet } from 'node:util/types';
import { EntryKind, type FillStamp, type StoredEntry } from '../store/entry.js';
import { MAP_SLOT_BYTES, RecentMap, stringBytes } from '../store/recent-map.js';
import { SerializerMisuse, type ResolvedSerializer } from './serializer.js';

const EMPTY = Buffer.alloc(0);

// Heap sizes on 64-bit V8 without pointer compression (Node's default),
// measured with JSON.parse + Object.freeze on Node 20; the estimate errs high.
const SLOT = 8;
/** An object's map, properties and elements words. */
const OBJECT_BYTES = 24;
/** JSON.parse gives every fast object at least this many in-object slots (`{}` is 56 bytes). */
const MIN_OBJECT_SLOTS = 4;
/** More properties than this and JSON.parse builds a dictionary: about 64 bytes a property. */
const MAX_FAST_PROPERTIES = 128;
const DICTIONARY_PROPERTY_BYTES = 64;
/** A key sequence V8 has no hidden classes for yet: maps, descriptors and key strings (measured ~150 a key). */
const NEW_SHAPE_KEY_BYTES = 160;
/** JSArray: map, properties, elements, length. */
const ARRAY_BYTES = 32;
const ELEMENTS_HEADER_BYTES = 16;
/** A number outside the small-integer range is boxed. */
const HEAP_NUMBER_BYTES = 16;
/** The DecodedValue itself and its resolved promise. */
const DECODED_BYTES = 96;
const TWO_BYTE = /[^\u0000-\u00ff]/;

/**
 * Key sequences of objects frozen recently, process-wide like V8's hidden
 * classes: a record shape is paid for by the first value that has it, not
 * by every one of 10,000 cached records. Bounded; a forgotten shape is paid again.
 */
const shapes = new RecentMap<string, true>(2048, 128 * 1024, (signature) => MAP_SLOT_BYTES + stringBytes(signature.length));

function stringHeapBytes(s: string): number {
  const chars = TWO_BYTE.test(s) ? 2 * s.length : s.length;
  return (16 + chars + 7) & ~7;
}

function isSmallInteger(n: number): boolean {
  return (n | 0) === n && !Object.is(n, -0);
}

/** Freezes a value parsed from JSON, and everything in it; returns its heap size (estimated). */
function freezeParsed(value: unknown): number {
  switch (typeof value) {
    case 'string':
      return stringHeapBytes(value);
    case 'number':
      return isSmallInteger(value) ? 0 : HEAP_NUMBER_BYTES;
    case 'object':
      break;
    default:
      return 0;
  }
  if (value === null) return 0;
  Object.freeze(value);
  if (Array.isArray(value)) {
    let size = ARRAY_BYTES + (value.length === 0 ? 0 : ELEMENTS_HEADER_BYTES + SLOT * value.length);
    for (let i = 0; i < value.length; i++) size += freezeParsed(value[i]);
    return size;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  let size: number;
  if (keys.length > MAX_FAST_PROPERTIES) {
    size = OBJECT_BYTES + keys.length * DICTIONARY_PROPERTY_BYTES;
    for (const key of keys) size += stringHeapBytes(key);
  } else {
    size = OBJECT_BYTES + SLOT * Math.max(MIN_OBJECT_SLOTS, keys.length);
    if (keys.length > 0) {
      const signature = keys.join('\u0000');
      if (shapes.get(signature) === undefined) {
        shapes.set(signature, true);
        size += NEW_SHAPE_KEY_BYTES * keys.length;
      }
    }
  }
  for (const key of keys) size += freezeParsed(record[key]);
  return size;
}

/**
 * What an L1 entry of a JSON value keeps: the frozen value, one frozen
 * promise of it that every hit returns (a hit allocates nothing, and the
 * promise cannot be changed either), and what they cost.
 */
export class DecodedValue {
  readonly value: unknown;
  readonly promise: Promise<unknown>;
  /** Heap held by the value and this object, charged against L1's maxBytes. */
  readonly heapBytes: number;

  /** @throws SyntaxError when `json` does not parse. */
  constructor(json: string) {
    const value: unknown = JSON.parse(json);
    this.heapBytes = DECODED_BYTES + freezeParsed(value);
    this.value = value;
    this.promise = Object.freeze(Promise.resolve(value));
  }
}

export interface EncodedValue {
  /** What L2 stores. */
  readonly entry: StoredEntry;
  /** What L1 stores: the same facts, the value already decoded. */
  readonly l1Entry: StoredEntry;
}

/**
 * A copy of its own: later changes by the caller do not reach the cache, and
 * no shared slab is kept alive. Sized by the array itself, never by a
 * `byteLength` it may report: no byte of the copy is left unwritten.
 */
function ownCopy(bytes: Uint8Array): Buffer {
  const copy = new Uint8Array(bytes);
  return Buffer.from(copy.buffer, 0, copy.length);
}

/** What a serializer's serialize() returned, when it is not the Uint8Array or string its type declares. */
function notBytes(out: unknown): string | undefined {
  if (typeof out === 'string' || isUint8Array(out)) return undefined;
  if (out === null) return 'null';
  if (typeof out !== 'object') return typeof out;
  return (out as object).constructor?.name ?? 'object';
}

/** What JSON writes without its contents (as {}, or only its own enumerable properties), by name; undefined for anything else. */
function contentsLost(value: object): string | undefined {
  if (isMap(value)) return 'a Map';
  if (isSet(value)) return 'a Set';
  if (isPromise(value)) return 'a Promise (a value not awaited?)';
  if (isNativeError(value)) return 'an Error';
  if (isRegExp(value)) return 'a RegExp';
  if (isWeakMap(value)) return 'a WeakMap';
  if (isWeakSet(value)) return 'a WeakSet';
  // Their bytes are not properties: JSON writes {}. A Buffer (its toJSON) and a Uint8Array given whole are stored
  // as bytes; any other typed array, or a Uint8Array inside a value, JSON writes as an object of its indices
  // ({"0":1.5,"1":2}), which comes back as that object.
  if (isAnyArrayBuffer(value)) return 'an ArrayBuffer (store a Buffer: Buffer.from(arrayBuffer))';
  if (isDataView(value)) return 'a DataView (store a Buffer of its bytes)';
  if (isTypedArray(value)) return `a ${(value as object).constructor?.name ?? 'typed array'} (JSON writes it as an object of its indices: store Array.from(it), or a Buffer of its bytes)`;
  return undefined;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/**
 * Where in `value` (which JSON.stringify took) JSON loses what the value
 * holds: what is there and its path (`a Map at value.users[2]`), or
 * undefined. Not checked past the depth this walk's stack reaches
 * (JSON.stringify's own goes further).
 */
function lostInJson(value: unknown): string | undefined {
  try {
    const found = findLost(value);
    return found === undefined ? undefined : `${found.what} at value${found.path}`;
  } catch (err) {
    if (err instanceof RangeError) return undefined;
    throw err;
  }
}

/** As JSON.stringify walks: an object with toJSON() is written as what that returns, and is not looked into. The path is built only for what is found. */
function findLost(value: unknown): { what: string; path: string } | undefined {
  if (value === null || typeof value !== 'object' || typeof (value as { toJSON?: unknown }).toJSON === 'function') return undefined;
  const proto: unknown = Object.getPrototypeOf(value);
  // Plain objects and arrays (nearly everything) skip the checks of what they are.
  if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) {
    const what = contentsLost(value);
    if (what !== undefined) return { what, path: '' };
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findLost(value[i]);
      if (found !== undefined) return { what: found.what, path: `[${i}]${found.path}` };
    }
    return undefined;
  }
  for (const k of Object.keys(value)) {
    const found = findLost((value as Record<string, unknown>)[k]);
    if (found !== undefined) return { what: found.what, path: `${IDENTIFIER.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`}${found.path}` };
  }
  return undefined;
}

/**
 * The entries that store `value`: with `serializer`, its bytes (and the
 * serializer's name in `head`); else a Buffer's bytes, or JSON.
 * @throws TypeError when the value cannot be stored (not JSON-serializable, undefined, refused by the serializer).
 */
export function encodeValue(key: string, value: unknown, stamp: FillStamp, createdAt: number, ttl: number, serializer?: ResolvedSerializer): EncodedValue {
  const { epoch, tags, versions } = stamp;
  const freshUntil = createdAt + ttl;
  if (serializer !== undefined) {
    if (value === undefined) throw new TypeError(`tiercache: the value for '${key}' is undefined, which is never stored (getOrSet stores nothing for it)`);
    let out: Uint8Array | string;
    try {
      out = serializer.serialize(value);
    } catch (err) {
      throw new TypeError(`tiercache: the value for '${key}' could not be serialized by the '${serializer.name}' serializer (${(err as Error).message})`);
    }
    // An ArrayBuffer, a DataView or a wider typed array would be read as other bytes than it holds.
    const got = notBytes(out);
    if (got !== undefined) throw new TypeError(`tiercache: the value for '${key}' could not be serialized by the '${serializer.name}' serializer (serialize() must return a Uint8Array, such as a Buffer, or a string; it returned: ${got})`);
    const body = typeof out === 'string' ? Buffer.from(out, 'utf8') : ownCopy(out);
    const entry: StoredEntry = { kind: EntryKind.Bytes, createdAt, freshUntil, staleUntil: freshUntil, epoch, tags, versions, head: serializer.head, body, decoded: undefined };
    return { entry, l1Entry: entry };
  }
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    const entry: StoredEntry = { kind: EntryKind.Bytes, createdAt, freshUntil, staleUntil: freshUntil, epoch, tags, versions, head: EMPTY, body: ownCopy(value), decoded: undefined };
    return { entry, l1Entry: entry };
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw new TypeError(`tiercache: the value for '${key}' is not JSON-serializable (${(err as Error).message})`);
  }
  if (json === undefined) throw new TypeError(`tiercache: the value for '${key}' must be JSON-serializable or a Buffer; got ${typeof value}`);
  // JSON writes a Map, a Set (and a few more) as {}, and a typed array as {"0":...}, losing what they hold; one
  // carrying enumerable properties of its own as those alone (a system Error as {"code":"ENOENT","errno":-2}, its
  // message gone): wherever JSON wrote an object the value is walked (about a tenth more on set() and fills,
  // nothing on a read).
  if (json.includes('{')) {
    const lost = lostInJson(value);
    if (lost !== undefined) {
      throw new TypeError(`tiercache: the value for '${key}' is not JSON-serializable (${lost}: JSON loses what it holds); store plain data instead (Object.fromEntries(map), [...set]) or use the 'v8' serializer`);
    }
  }
  const body = Buffer.from(json, 'utf8');
  const entry: StoredEntry = { kind: EntryKind.Json, createdAt, freshUntil, staleUntil: freshUntil, epoch, tags, versions, head: EMPTY, body, decoded: undefined };
  // L1 keeps the parsed copy (same JSON semantics as an L2 round trip) and no bytes.
  const l1Entry: StoredEntry = { kind: EntryKind.Json, createdAt, freshUntil, staleUntil: freshUntil, epoch, tags, versions, head: EMPTY, body: EMPTY, decoded: new DecodedValue(json) };
  return { entry, l1Entry };
}

/**
 * `encoded` under another stamp, from `createdAt` on: a set() stamped again
 * after Redis refused its first stamp. The value is not serialized again.
 */
export function restampValue(encoded: EncodedValue, stamp: FillStamp, createdAt: number, ttl: number): EncodedValue {
  const freshUntil = createdAt + ttl;
  const facts = { createdAt, freshUntil, staleUntil: freshUntil, epoch: stamp.epoch, tags: stamp.tags, versions: stamp.versions };
  const entry: StoredEntry = { ...encoded.entry, ...facts };
  return { entry, l1Entry: encoded.l1Entry === encoded.entry ? entry : { ...encoded.l1Entry, ...facts } };
}

/** The decoded form of a JSON entry; parses (once, then kept on the entry) JSON read from L2. undefined if it does not parse. */
function decodedJson(entry: StoredEntry): DecodedValue | undefined {
  if (entry.decoded instanceof DecodedValue) return entry.decoded;
  let decoded: DecodedValue;
  try {
    decoded = new DecodedValue(entry.body.toString('utf8'));
  } catch {
    return undefined;
  }
  entry.decoded = decoded;
  return decoded;
}

/**
 * The value of an entry as every read returns it: the frozen shared value of
 * JSON, a copy of bytes, a fresh copy from the serializer. undefined when
 * this instance cannot read it: corrupt, or written under another serializer.
 * @throws SerializerMisuse when the serializer breaks its contract.
 */
export function decodeValue<T>(entry: StoredEntry, serializer: ResolvedSerializer | undefined): T | undefined {
  switch (entry.kind) {
    case EntryKind.Json:
      return serializer === undefined ? (decodedJson(entry)?.value as T | undefined) : undefined;
    case EntryKind.Bytes:
      if (serializer === undefined) return entry.head.length === 0 ? (Buffer.from(entry.body) as T) : undefined;
      if (!entry.head.equals(serializer.head)) return undefined;
      try {
        return serializer.deserialize(entry.body) as T | undefined;
      } catch (err) {
        if (err instanceof SerializerMisuse) throw err;
        return undefined;
      }
    default:
      return undefined;
  }
}

/**
 * decodeValue as a promise: for JSON the same frozen promise on every call.
 * undefined (no promise) when the entry cannot be read here.
 */
export function resolvedValue<T>(entry: StoredEntry, serializer: ResolvedSerializer | undefined): Promise<T> | undefined {
  const decoded = entry.decoded;
  // A JSON entry's decoded form is always a DecodedValue (and the kind is cheaper to test than its class).
  if (entry.kind === EntryKind.Json && decoded !== undefined && serializer === undefined) return (decoded as DecodedValue).promise as Promise<T>;
  let value: T | undefined;
  try {
    value = decodeValue<T>(entry, serializer);
  } catch (err) {
    return Promise.reject(err as Error); // a SerializerMisuse, from a caller that returns promises
  }
  return value === undefined ? undefined : Promise.resolve(value);
}
