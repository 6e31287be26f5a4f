// Entries one middleware leaves to another. A middleware with `user` and one in
// origin mode store entries that only a middleware of their kind may serve
// (http-cache.ts, notOurs): one not of their kind passes them over, for the
// middleware of their kind further in (per route) to decide. When no such
// middleware sees the request, none is left to serve the entry: the route was
// moved out of that kind (a config change, a rolling deploy), and the entry,
// in L2 for as long as it lives (an origin's max-age: a year), would keep the
// route uncached. A watch set by the layer that passes an entry over tells the
// two apart once the answer is out; an orphan is removed, and the route fills.
import type { TierCache } from '../cache/tier-cache.js';
import type { StoredEntry } from '../store/entry.js';
import type { PreparedResponse } from './http-entry.js';

/** Kinds of middleware (and of the entries they store), as bits: a middleware with `user`. */
export const SCOPED_KIND = 1;
/** A middleware in origin mode (its entries carry stale rules). */
export const ORIGIN_KIND = 2;
/**
 * A middleware mounted on the entry's route (`app.get(path, expressCache(...), h)`): DESIGN §3, the innermost
 * decides, so its own bypass, stale windows and request directives are not overruled by an app-wide one that
 * finds its entry first.
 */
export const PER_ROUTE_KIND = 4;

/** The kinds of middleware that may serve `response` (a middleware serves an entry whose kinds it has all). */
export function kindsOf(response: PreparedResponse): number {
  return (response.scoped ? SCOPED_KIND : 0) | (response.staleRules !== undefined ? ORIGIN_KIND : 0) | (response.perRoute ? PER_ROUTE_KIND : 0);
}

/**
 * Middleware built in this process so far, as a generation: an owner seen
 * before the last one was built may be gone (an app rebuilt in place, a hot
 * reload, with the route out of its kind), so its mark is taken as none and
 * the next pass-over is watched again. Apps build their middleware once, at
 * start: marks hold from then on. Wraps below 2^28, so that the mark, shifted
 * by two (above the scoped and per-route marks), stays a small integer.
 */
let generation = 1;

/** A middleware was built (HttpCache's constructor). */
export function middlewareBuilt(): void {
  generation = generation >= 0x0fff_ffff ? 1 : generation + 1;
}

/** Whether a middleware of `response`'s kind was seen serving it since the last middleware was built. */
export function ownerSeen(response: PreparedResponse): boolean {
  return response.ownerSeenIn(generation);
}

/**
 * The watches of a request, latest first (see PassedOver.prev). Read by a
 * layer further in only when a layer further out is active (ACTIVE_FILL):
 * a request no layer passed anything over pays nothing.
 */
export const PASSED_OVER = Symbol('tiercache.passedOver');

/** What removes an orphaned entry (HttpCache). */
export interface OrphanRemover {
  readonly cache: TierCache;
  /** `entry`, found under `key`, is served by no middleware this request met: remove it everywhere. */
  removeOrphan(key: string, entry: StoredEntry): void;
}

/**
 * One entry a layer passed over for this request. Told by every tiercache
 * layer further in (seenBy); decided as the answer is out (decide): seen by a
 * middleware of its kind, it is marked so (PreparedResponse.ownerSeenIn: later
 * requests here pass it over without a watch), else removed. Also the
 * request's ACTIVE_FILL, so that the layers further in look for it; standing
 * it down does nothing (it fills nothing).
 */
export class PassedOver {
  /** A middleware of the entry's kind (of this namespace) saw the request. */
  private owned = false;

  constructor(
    private readonly remover: OrphanRemover,
    private readonly key: string,
    private readonly entry: StoredEntry,
    private readonly response: PreparedResponse,
    private readonly kinds: number,
    /** A watch a layer further out set for the same request (another entry, or another cache's). */
    private readonly prev: PassedOver | undefined,
  ) {}

  standDown(): void {}

  /**
   * A middleware of `cache`, of `kinds`, sees the request: it serves what it
   * finds of those kinds. Told apart by namespace, not by cache object: two
   * caches on one namespace (an app's and a module's) build the same keys.
   */
  seenBy(cache: TierCache, kinds: number): void {
    for (let w: PassedOver | undefined = this; w !== undefined; w = w.prev) {
      if (w.remover.cache.prefix === cache.prefix && (w.kinds & ~kinds) === 0) w.owned = true;
    }
  }

  /**
   * The answer is out, with `status`: every layer that would see the request
   * has. (Not on 'close' alone: a client gone early may leave layers further
   * in unrun.) Only the answer the entry holds (its status, or a 304 to a
   * client's conditional request) tells an orphan: any other may come from a
   * guard mounted before the route's own middleware (a 401 or 429 a client
   * causes at will, a redirect by a header the key does not hold), which says
   * nothing of whether that middleware is there. A route that now answers
   * otherwise keeps its orphan until it expires or is invalidated.
   */
  decide(status: number): void {
    if (this.owned) this.response.markOwnerSeen(generation);
    else if (status === this.response.status || status === 304) this.remover.removeOrphan(this.key, this.entry);
  }
}
