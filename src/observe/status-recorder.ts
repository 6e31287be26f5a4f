// What the status page shows beyond stats(): requests per second by result
// over the last five minutes, per-route outcomes with recent fill times, and
// the last invalidations. Fed by the cache's events, in bounded memory: 300
// one-second slots, at most MAX_ROUTES routes (labels are bounded already),
// FILL_SAMPLES fill times per route, INVALIDATIONS_KEPT invalidations.
import type { TierCache } from '../cache/tier-cache.js';
import { coarseNow } from '../store/coarse-clock.js';
import type { BypassEvent, HitEvent, InvalidateEvent, MissEvent, StoreEvent } from './events.js';

export const WINDOW_SECONDS = 300;
const MAX_ROUTES = 500;
const FILL_SAMPLES = 101;
export const INVALIDATIONS_KEPT = 50;
/** Tags of an invalidation the page keeps (the rest counted in moreTags), and characters of each. */
const TAGS_KEPT = 20;
const TAG_CHARS_KEPT = 200;

/** A tag cut to TAG_CHARS_KEPT characters, never between the halves of a surrogate pair (the page would show U+FFFD). */
function shortTag(tag: string): string {
  if (tag.length <= TAG_CHARS_KEPT) return tag;
  const last = tag.charCodeAt(TAG_CHARS_KEPT - 1);
  return tag.slice(0, last >= 0xd800 && last <= 0xdbff ? TAG_CHARS_KEPT - 1 : TAG_CHARS_KEPT) + '…';
}

export const RESULTS = ['hit', 'stale', 'miss', 'collapsed', 'bypass'] as const;
export type Result = (typeof RESULTS)[number];

interface RouteCounts {
  hits: number;
  misses: number;
  stale: number;
  collapsed: number;
  bypasses: Map<string, number>;
  fills: number[];
  fillAt: number;
}

export interface RouteRow {
  readonly route: string;
  readonly hits: number;
  readonly misses: number;
  readonly stale: number;
  readonly collapsed: number;
  readonly bypasses: Record<string, number>;
  /** (hits + stale) / (hits + stale + misses + collapsed); null before any. */
  readonly hitRatio: number | null;
  /** Median of the last fill times; null before any fill. */
  readonly medianFillMs: number | null;
}

export interface InvalidationRow {
  readonly at: number;
  readonly kind: InvalidateEvent['kind'];
  readonly tags: readonly string[];
  /** Tags left out of `tags` (a bulk invalidation). */
  readonly moreTags?: number;
  readonly key?: string;
  readonly namespace?: string;
  readonly remote: boolean;
  readonly delivered: boolean;
}

export interface Series {
  /** The second (since the epoch) of the first slot; one slot a second up to now. */
  readonly start: number;
  readonly counts: Record<Result, number[]>;
}

export class StatusRecorder {
  private readonly slotSecond = new Float64Array(WINDOW_SECONDS).fill(-1);
  private readonly slots: Record<Result, Float64Array>;
  private readonly routes = new Map<string, RouteCounts>();
  private readonly invalidations: InvalidationRow[] = [];
  private readonly listeners: Array<[string, (payload: never) => void]>;

  constructor(
    private readonly cache: TierCache,
    private readonly now: () => number = coarseNow,
  ) {
    this.slots = Object.fromEntries(RESULTS.map((r) => [r, new Float64Array(WINDOW_SECONDS)])) as Record<Result, Float64Array>;
    const onHit = (e: HitEvent) => {
      const r = this.route(e.route);
      if (e.stale) r.stale++;
      else r.hits++;
      this.count(e.stale ? 'stale' : 'hit');
    };
    const onMiss = (e: MissEvent) => {
      const r = this.route(e.route);
      if (e.collapsed === true) r.collapsed++;
      else r.misses++;
      this.count(e.collapsed === true ? 'collapsed' : 'miss');
    };
    const onBypass = (e: BypassEvent) => {
      const r = this.route(e.route);
      r.bypasses.set(e.reason, (r.bypasses.get(e.reason) ?? 0) + 1);
      this.count('bypass');
    };
    const onStore = (e: StoreEvent) => {
      const r = this.route(e.route);
      if (r.fills.length < FILL_SAMPLES) r.fills.push(e.fillMs);
      else r.fills[r.fillAt] = e.fillMs;
      r.fillAt = (r.fillAt + 1) % FILL_SAMPLES;
    };
    const onInvalidate = (e: InvalidateEvent) => {
      // A bulk invalidation's tags (45,000 are fine) would be kept whole, and sent in every poll of the page.
      const tags = e.tags.length > TAGS_KEPT || e.tags.some((t) => t.length > TAG_CHARS_KEPT) ? e.tags.slice(0, TAGS_KEPT).map(shortTag) : e.tags;
      const row: InvalidationRow = { at: this.now(), kind: e.kind, tags, ...(tags.length < e.tags.length ? { moreTags: e.tags.length - tags.length } : {}), remote: e.remote, delivered: e.delivered, ...(e.key === undefined ? {} : { key: e.key }), ...(e.namespace === undefined ? {} : { namespace: e.namespace }) };
      this.invalidations.push(row);
      if (this.invalidations.length > INVALIDATIONS_KEPT) this.invalidations.shift();
    };
    this.listeners = [
      ['hit', onHit],
      ['miss', onMiss],
      ['bypass', onBypass],
      ['store', onStore],
      ['invalidate', onInvalidate],
    ] as Array<[string, (payload: never) => void]>;
    const on = cache.on.bind(cache) as (event: string, listener: (payload: never) => void) => unknown;
    for (const [name, fn] of this.listeners) on(name, fn);
  }

  /** Stops listening to the cache. */
  stop(): void {
    const off = this.cache.off.bind(this.cache) as (event: string, listener: (payload: never) => void) => unknown;
    for (const [name, fn] of this.listeners) off(name, fn);
  }

  private count(result: Result): void {
    const second = Math.floor(this.now() / 1000);
    const slot = second % WINDOW_SECONDS;
    if (this.slotSecond[slot] !== second) {
      this.slotSecond[slot] = second;
      for (const r of RESULTS) this.slots[r][slot] = 0;
    }
    this.slots[result][slot]!++;
  }

  private route(name: string): RouteCounts {
    let r = this.routes.get(name);
    if (r === undefined) {
      // Labels are bounded by the table and the app's routes; this only guards memory.
      if (this.routes.size >= MAX_ROUTES) return this.route('other');
      r = { hits: 0, misses: 0, stale: 0, collapsed: 0, bypasses: new Map(), fills: [], fillAt: 0 };
      this.routes.set(name, r);
    }
    return r;
  }

  /** Counts per second for the last WINDOW_SECONDS seconds, the current one last. */
  series(): Series {
    const now = Math.floor(this.now() / 1000);
    const start = now - WINDOW_SECONDS + 1;
    const counts = Object.fromEntries(RESULTS.map((r) => [r, [] as number[]])) as Record<Result, number[]>;
    for (let second = start; second <= now; second++) {
      const slot = second % WINDOW_SECONDS;
      const live = this.slotSecond[slot] === second;
      for (const r of RESULTS) counts[r].push(live ? this.slots[r][slot]! : 0);
    }
    return { start, counts };
  }

  routeRows(): RouteRow[] {
    const rows: RouteRow[] = [];
    for (const [route, r] of this.routes) {
      const served = r.hits + r.stale;
      const looked = served + r.misses + r.collapsed;
      rows.push({
        route,
        hits: r.hits,
        misses: r.misses,
        stale: r.stale,
        collapsed: r.collapsed,
        bypasses: Object.fromEntries(r.bypasses),
        hitRatio: looked === 0 ? null : served / looked,
        medianFillMs: median(r.fills),
      });
    }
    return rows.sort((a, b) => (a.route < b.route ? -1 : a.route > b.route ? 1 : 0));
  }

  /** The last INVALIDATIONS_KEPT invalidations, newest first. */
  recentInvalidations(): InvalidationRow[] {
    return [...this.invalidations].reverse();
  }
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
