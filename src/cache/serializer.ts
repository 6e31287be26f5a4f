// Data-API serializers: how a value becomes the bytes L2 holds, and comes back.
// JSON, the default, keeps one deep-frozen parsed copy in L1 that every hit
// shares. Any other serializer (the built-in 'v8' keeps Date, Map, Set,
// BigInt, typed arrays and Buffers) keeps the bytes and gives every caller a
// fresh copy: what it brings back cannot be frozen for real (a frozen Map
// still takes set()). An entry records the serializer's name, and an instance
// reads only what its own serializer wrote: anything else is foreign (a miss).
import { deserialize as v8Deserialize, serialize as v8Serialize } from 'node:v8';
import { TierCacheConfigError } from '../errors.js';
import { isThenable } from './thenable.js';

/** Turns data-API values into bytes and back. */
export interface Serializer {
  /**
   * Stored with every entry; an instance reads only entries written under
   * its own serializer's name, so every instance of a namespace must use the
   * same one. Up to 64 characters. @default 'custom'
   */
  readonly name?: string | undefined;
  serialize(value: unknown): Uint8Array | string;
  /**
   * The value itself, not a Promise of it (reads reject with a TypeError
   * then). Throwing makes the entry a miss, like any bytes that cannot be read.
   */
  deserialize(bytes: Buffer): unknown;
}

/** The serializers tiercache has built in. */
export type SerializerName = 'json' | 'v8';

/** A non-JSON serializer, ready to use: its name as the bytes entries record. */
export interface ResolvedSerializer {
  readonly name: string;
  /** What entries written with it hold in their `head`. */
  readonly head: Buffer;
  serialize(value: unknown): Uint8Array | string;
  deserialize(bytes: Buffer): unknown;
}

const V8: ResolvedSerializer = Object.freeze({
  name: 'v8',
  head: Buffer.from('v8'),
  serialize: (value: unknown) => v8Serialize(value),
  deserialize: (bytes: Buffer) => v8Deserialize(bytes),
});

/**
 * The `serializer` option: undefined for JSON (the default, handled by
 * data-value.ts's frozen path), else the serializer to use.
 * @throws TierCacheConfigError naming `option`.
 */
export function resolveSerializer(option: string, value: unknown): ResolvedSerializer | undefined {
  if (value === undefined || value === 'json') return undefined;
  if (value === 'v8') return V8;
  const s = value as Partial<Serializer> | null;
  if (s === null || typeof s !== 'object' || typeof s.serialize !== 'function' || typeof s.deserialize !== 'function') {
    throw new TierCacheConfigError(option, value, "must be 'json', 'v8' or an object with serialize(value) and deserialize(bytes) functions");
  }
  const name = s.name ?? 'custom';
  if (typeof name !== 'string' || name === '' || name.length > 64 || name === 'json') {
    throw new TierCacheConfigError(`${option}.name`, name, "must be a string of 1-64 characters other than 'json'");
  }
  const { serialize, deserialize } = s as Serializer;
  return Object.freeze({
    name,
    head: Buffer.from(name, 'utf8'),
    serialize: (v: unknown) => serialize.call(s, v),
    deserialize: (bytes: Buffer) => {
      const out = deserialize.call(s, bytes);
      if (isThenable(out)) {
        try {
          out.then(undefined, () => undefined); // refused, not left to reject unhandled
        } catch {
          // a thenable whose then() throws is refused all the same
        }
        throw new SerializerMisuse(`tiercache: the '${name}' serializer's deserialize() returned a Promise; it must return the value itself`);
      }
      return out;
    },
  });
}

/**
 * A serializer that breaks its contract (deserialize() returning a Promise):
 * a programming error, so reads reject with it, where bytes a deserialize()
 * cannot read (it throws) are a miss, like any corrupt entry.
 */
export class SerializerMisuse extends TypeError {}
