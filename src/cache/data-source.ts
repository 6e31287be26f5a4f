// cache.source(): read-through / write-through over a caller's data source.
// get() loads on a miss (single-flight); set() saves to the source first and
// then replaces the cached value; delete() removes from the source and the
// cache. set() invalidates the key before storing the new value (cache.delete
// bumps the key's own tag), so a load that was still running with the old
// value can never land in the cache after the new one, nor be handed to a
// caller that arrives after set() resolved.
import { types } from 'node:util';
import { TierCacheConfigError } from '../errors.js';
import type { Duration } from '../keys/duration.js';

export interface DataSource<Id, T> {
  /** Reads the value; undefined means "not found" and is not cached. */
  load(id: Id): Promise<T | undefined> | T | undefined;
  /** Writes the value to the source (required for set()). */
  save?(id: Id, value: T): Promise<unknown> | unknown;
  /** Removes the value from the source (optional; delete() still evicts the cache entry). */
  remove?(id: Id): Promise<unknown> | unknown;
}

export interface DataSourceOptions<Id, T> {
  /** Prefix of the cache keys: the key of `id` is `${prefix}${id}`. @default '' */
  prefix?: string | undefined;
  /** Lifetime of cached values. @default the cache's ttl, else 60 s */
  ttl?: Duration | undefined;
  /** Tags for a value, e.g. `(id) => ['user:' + id]`, or a fixed list. */
  tags?: (readonly string[] | ((id: Id) => readonly string[])) | undefined;
}

export interface CachedSource<Id, T> {
  get(id: Id): Promise<T | undefined>;
  set(id: Id, value: T): Promise<void>;
  delete(id: Id): Promise<void>;
}

/** What source() needs from the cache; kept narrow so the helper stays testable. */
export interface SourceHost {
  getOrSet<T>(key: string, load: () => Promise<T | undefined> | T | undefined, options: { ttl?: Duration; tags?: readonly string[] }): Promise<T | undefined>;
  set(key: string, value: unknown, options: { ttl?: Duration; tags?: readonly string[] }): Promise<void>;
  delete(key: string): Promise<unknown>;
}

const SOURCE_OPTIONS = new Set(['prefix', 'ttl', 'tags']);

/**
 * Checks source() options when the source is made (the ttl is parsed by the cache): a typo such as
 * `prefx` would otherwise put the source's keys among the cache's own, where `get(42)` reads key '42'.
 * @throws TierCacheConfigError naming the option.
 */
export function checkSourceOptions(options: unknown): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new TierCacheConfigError('source options', options, 'must be an object');
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!SOURCE_OPTIONS.has(key)) throw new TierCacheConfigError(`source ${key}`, o[key], `is not a known option (known: ${[...SOURCE_OPTIONS].join(', ')})`);
  }
  if (o.prefix !== undefined && typeof o.prefix !== 'string') throw new TierCacheConfigError('source prefix', o.prefix, 'must be a string');
  const tags = o.tags;
  if (tags !== undefined && typeof tags !== 'function' && (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string' || t === ''))) {
    throw new TierCacheConfigError('source tags', tags, 'must be an array of non-empty strings, or a function of the id returning one');
  }
}

/**
 * An id as its key: String(id), refused where other ids share it. Every plain
 * object is '[object Object]' and ['a', 'b,c'] is ['a,b', 'c']: one id would
 * be handed another's value. An object with a toString() of its own (an
 * ObjectId) names itself; a Buffer only when it is UTF-8 text; a Date by its ISO string.
 * @throws TypeError for null, undefined, a Symbol (bare or boxed), a function, an array, an object without a toString() of its own, a Buffer that is not UTF-8 text, or an Invalid Date.
 */
function idText(id: unknown): string {
  // String() of a Symbol is its description and of a function its source text: two symbols described alike, or two
  // closures of one source over different variables, would share a key.
  if (typeof id === 'symbol' || typeof id === 'function') {
    throw new TypeError(`tiercache: a source() id must be a string, a number or an object with a toString() of its own; got a ${typeof id}, whose String() other ids share: build a string id (\`\${tenant}:\${id}\`)`);
  }
  // A missing id (a route parameter that is not there) would be keyed 'undefined', the key of the string
  // 'undefined', and cache what the source loads for nothing as if it were that id's.
  if (id === null || id === undefined) {
    throw new TypeError(`tiercache: a source() id must be a string, a number or an object with a toString() of its own; got ${String(id)}, keyed as the string '${String(id)}' would be`);
  }
  if (typeof id !== 'object') return String(id);
  // String() of a Date drops its milliseconds and follows the process's time zone: two ids a second apart
  // would share a key, and an instance in another zone would key the same id apart (its set() reaching nobody's copy).
  // Told by its internal slot, not instanceof: a Date made in another realm (a vm context) is no instance of this one's.
  if (types.isDate(id)) {
    if (Number.isNaN(Date.prototype.getTime.call(id))) throw new TypeError('tiercache: a source() id that is a Date must be a valid one; got an Invalid Date');
    return Date.prototype.toISOString.call(id);
  }
  // A Buffer names itself only when it is UTF-8 text: every byte sequence that is not decodes to U+FFFD,
  // so two binary ids (a BINARY(16) uuid as a driver returns it) differing there would share a key.
  if (Buffer.isBuffer(id)) {
    const text = id.toString();
    if (!Buffer.from(text).equals(id)) throw new TypeError("tiercache: a source() id that is a Buffer must be UTF-8 text: other Buffers share the String() of this one; build a string id (`id.toString('hex')`)");
    return text;
  }
  // A boxed Symbol (Object(sym)) names itself by Symbol.prototype.toString: its description, as a bare one does.
  // An object without a toString() of its own names itself '[object Object]' (or its tag): what Object.prototype.toString
  // gives, compared by its result, not by the function, which is another in every realm (a vm context's objects).
  const text = Array.isArray(id) || types.isSymbolObject(id) ? undefined : String(id);
  if (text === undefined || text === Object.prototype.toString.call(id)) {
    const what = Array.isArray(id) ? 'an array' : text === undefined ? 'a boxed Symbol' : 'a plain object';
    throw new TypeError(`tiercache: a source() id must be a string, a number or an object with a toString() of its own; got ${what}, whose String() other ids share: build a string id (\`\${tenant}:\${id}\`)`);
  }
  return text;
}

export function createCachedSource<Id, T>(host: SourceHost, source: DataSource<Id, T>, options: DataSourceOptions<Id, T> = {}): CachedSource<Id, T> {
  if (source === null || typeof source !== 'object' || typeof source.load !== 'function') {
    throw new TypeError('tiercache: source() needs an object with a load(id) function');
  }
  const prefix = options.prefix ?? '';
  const ttl = options.ttl;
  const tagsOption = options.tags;
  const keyOf = (id: Id) => prefix + idText(id);
  const tagsOf = (id: Id): readonly string[] | undefined => (typeof tagsOption === 'function' ? tagsOption(id) : tagsOption);
  const invalidate = async (key: string) => {
    try {
      await host.delete(key);
    } catch {
      // Applied locally already; other instances' copies expire by TTL.
    }
  };

  return {
    async get(id) {
      const key = keyOf(id);
      return host.getOrSet<T>(key, () => source.load(id), { ttl, tags: tagsOf(id) });
    },
    async set(id, value) {
      if (typeof source.save !== 'function') throw new TypeError('tiercache: this source has no save(id, value); set() needs one');
      // An id refused is refused before the source is written: the TypeError must mean nothing was.
      const key = keyOf(id);
      await source.save(id, value);
      await invalidate(key);
      await host.set(key, value, { ttl, tags: tagsOf(id) });
    },
    async delete(id) {
      const key = keyOf(id);
      if (typeof source.remove === 'function') await source.remove(id);
      await host.delete(key);
    },
  };
}
