// What the HTTP middleware reports: events (built only when someone listens)
// and the outcome counters stats() reads. Kept out of the middleware's core so
// that its hit path stays a listener check and nothing more.
import type { TierCache } from '../cache/tier-cache.js';
import { reportedTarget } from '../keys/canonical-query.js';
import { normalizeRoutePath, pathOf } from '../keys/path-normalize.js';
import { coarseNow } from '../store/coarse-clock.js';
import type { CacheTier } from './events.js';
import { routeLabel, type RoutePatternOf } from './route-label.js';

/** What a plan carries for reporting; `route` is filled in on first use so every event of a request agrees. */
export interface ReportedPlan {
  readonly key: string;
  readonly routePath: string;
  readonly arg: unknown;
  route?: string | undefined;
}

export class HttpEvents<R> {
  constructor(
    private readonly cache: TierCache,
    private readonly patternOf: RoutePatternOf<R> | undefined,
  ) {}

  routeOf(plan: ReportedPlan): string {
    return (plan.route ??= routeLabel(this.cache.options.routes, plan.routePath, this.patternOf?.(plan.arg as R)));
  }

  /**
   * The route label a stored public entry keeps for the front door (see
   * StoredHead.l): the framework's route pattern, when no table prefix
   * matches (the front door finds a prefix itself, and has no pattern).
   */
  patternRouteOf(plan: ReportedPlan): string | undefined {
    if (this.patternOf === undefined || this.cache.options.routes.matchNormalized(plan.routePath) !== undefined) return undefined;
    return this.patternOf(plan.arg as R);
  }

  /** A fresh hit; the caller checks cache.hitListened first. */
  hit(plan: ReportedPlan, tier: CacheTier): void {
    this.cache.emit('hit', { key: plan.key, tier, route: this.routeOf(plan), stale: false });
  }

  /** A stale answer (stale-while-revalidate, stale-if-error): counted, and reported to listeners. */
  stale(plan: ReportedPlan, tier: CacheTier): void {
    this.cache.outcomes.stale++;
    if (this.cache.hitListened) this.cache.emit('hit', { key: plan.key, tier, route: this.routeOf(plan), stale: true });
  }

  /** An answer from a stored entry: hit() (the caller checks cache.hitListened first for a fresh one) or stale(). */
  served(plan: ReportedPlan, tier: CacheTier, stale: boolean): void {
    if (stale) this.stale(plan, tier);
    else this.hit(plan, tier);
  }

  miss(plan: ReportedPlan, collapsed: boolean): void {
    if (this.cache.listenerCount('miss') === 0) return;
    const route = this.routeOf(plan);
    this.cache.emit('miss', collapsed ? { key: plan.key, route, collapsed } : { key: plan.key, route });
  }

  /** A request passed through untouched, for a reason Cache-Status says: counted, and reported to listeners. */
  bypass(url: string, arg: R, reason: string): void {
    this.cache.outcomes.bypassed(reason);
    if (this.cache.listenerCount('bypass') === 0) return;
    const route = routeLabel(this.cache.options.routes, normalizeRoutePath(pathOf(url)), this.patternOf?.(arg));
    this.cache.emit('bypass', { route, reason, url: reportedTarget(url) });
  }

  /** A fill stored (its answer under `key`: the variant's, when it varies; in L1 alone when `l1Only`): counted, and reported to listeners. */
  stored(plan: ReportedPlan, key: string, bytes: number, startedAt: number, l1Only: boolean): void {
    this.cache.fills++;
    if (this.cache.listenerCount('store') === 0) return;
    this.cache.emit('store', { key: plan.key, route: this.routeOf(plan), tiers: this.cache.storedTiers(key, l1Only), bytes, fillMs: Math.max(0, coarseNow() - startedAt) });
  }
}
