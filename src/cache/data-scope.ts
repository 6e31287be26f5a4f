// Where data-API keys live: the cache's root, or a namespace() view of it.
// A scope turns a caller's key into its store key, remembered with its L1
// slot so a hit costs no concatenation and no second Map lookup, and carries
// the tags every value stored through it records: a view is invalidated,
// on every instance, by one version bump of its own tag.
import type { L1Slot, SlotMemo } from '../store/l1-store.js';
import { MAP_SLOT_BYTES, RecentMap, stringBytes } from '../store/recent-map.js';
import { dataStoreKey, escapeDataKey, MAX_DATA_KEY_LENGTH } from './data-key.js';

/** What a scope remembers of a key it was asked for: its store key and its L1 slot. */
export class DataKeyHandle implements SlotMemo {
  slot: L1Slot | undefined = undefined;
  constructor(readonly storeKey: string) {}
}

/** A DataKeyHandle object: header and two fields. */
const HANDLE_BYTES = 40;

/** Heap of one remembered key: its Map slot, the handle and both strings. */
function dataKeyBytes(key: string, handle: DataKeyHandle): number {
  return MAP_SLOT_BYTES + HANDLE_BYTES + stringBytes(key.length) + stringBytes(handle.storeKey.length);
}

/** A view remembers fewer keys than the root: there may be many views. */
const VIEW_MAX_KEYS = 1_000;
const VIEW_MAX_BYTES = 64 * 1024;

const SPACE_TAG = 'space:';

/** What every data-API call rejects with for a key that is not a non-empty string. */
export function invalidKey(key: unknown): TypeError {
  return new TypeError(`tiercache: a cache key must be a non-empty string; got ${typeof key === 'string' ? '""' : typeof key}`);
}

export class DataScope {
  private readonly handles: RecentMap<string, DataKeyHandle>;

  constructor(
    private readonly namespace: string,
    /** The escaped names of the view and its parents, each ended by '%:'; '' at the root. */
    private readonly prefix: string,
    /** Tags of every value stored through the scope: each enclosing view's own tag. */
    readonly tags: readonly string[],
    /** The view's names joined by ':' (for events); undefined at the root. */
    readonly name: string | undefined,
    maxKeys: number,
    maxBytes: number,
  ) {
    this.handles = new RecentMap(maxKeys, maxBytes, dataKeyBytes);
  }

  /**
   * The handle of a key, remembered (a long key is digested on every call instead: kept, it would hold its characters twice).
   * @throws TypeError when `key` is not a non-empty string.
   */
  handle(key: string): DataKeyHandle {
    const handle = this.find(key);
    if (handle === undefined) throw invalidKey(key);
    return handle;
  }

  /** handle() without the throw: undefined for a key that is not a non-empty string (get() rejects with invalidKey instead). */
  find(key: string): DataKeyHandle | undefined {
    const known = this.handles.get(key);
    if (known !== undefined) return known;
    if (typeof key !== 'string' || key === '') return undefined;
    const handle = new DataKeyHandle(dataStoreKey(this.namespace, key, this.prefix));
    if (key.length <= MAX_DATA_KEY_LENGTH) this.handles.set(key, handle);
    return handle;
  }

  /** The tag whose bump drops every value of this view (and of the views inside it); undefined at the root. */
  get ownTag(): string | undefined {
    return this.tags[this.tags.length - 1];
  }

  /** The scope of a view inside this one. */
  child(name: string): DataScope {
    if (typeof name !== 'string' || name === '') throw new TypeError(`tiercache: namespace() needs a non-empty string; got ${typeof name === 'string' ? '""' : typeof name}`);
    const prefix = this.prefix + escapeDataKey(name) + '%:';
    return new DataScope(this.namespace, prefix, [...this.tags, SPACE_TAG + prefix], this.name === undefined ? name : `${this.name}:${name}`, VIEW_MAX_KEYS, VIEW_MAX_BYTES);
  }
}
