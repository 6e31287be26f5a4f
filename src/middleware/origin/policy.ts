// Origin mode's decisions for the orchestrator (http-cache.ts): what a
// request asks (planned once per request, only in origin mode), whether a
// stored answer may be served as it is, served stale, or must be
// revalidated, how long an entry is kept, and the per-key limit on
// refreshes that requests force.
import type { IncomingHttpHeaders } from 'node:http';
import type { BypassReason } from '../cache-status.js';
import { queryHasAccessToken, requestBypassReason } from '../storage-rules.js';
import type { PreparedResponse, StaleRules } from '../http-entry.js';
import type { TargetedFields } from './directives.js';
import type { OriginLife } from './freshness.js';
import { fit, Fit, requestNeeds, type RequestNeeds, type ResolvedRequestDirectives } from './request-directives.js';
import { hasValidator } from './revalidation.js';

export interface OriginPlan {
  readonly needs: RequestNeeds | undefined;
  readonly directives: ResolvedRequestDirectives;
  readonly targeted: TargetedFields;
  /** The table's TTL: caps heuristic lifetimes, and how long a stale entry with validators is kept for revalidation. */
  readonly keep: number;
  /**
   * The rate limit's verdict on a refresh this request forces, once asked: asked again (a later look at the
   * same request), it would refuse the refresh it allowed a moment before.
   */
  forcedAllowed: boolean | undefined;
}

export function originPlan(headers: IncomingHttpHeaders, directives: ResolvedRequestDirectives, targeted: TargetedFields, keep: number): OriginPlan {
  return { needs: requestNeeds(headers, directives), directives, targeted, keep, forcedAllowed: undefined };
}

/** What to do with a stored answer. */
export const Use = {
  /** Serve it as a hit. */
  Hit: 0,
  /** Serve it stale (the request accepted it with max-stale). */
  Stale: 1,
  /** Not usable as it is: stale windows, revalidation or a full fetch decide. */
  Refresh: 2,
} as const;
export type Use = (typeof Use)[keyof typeof Use];

interface EntryTimes {
  readonly createdAt: number;
  readonly freshUntil: number;
}

/**
 * How a stored answer serves this request. A refresh the request forces on a
 * fresh entry is allowed once per key per `forcedRefreshInterval`; past that
 * the fresh entry is served. The limit is asked once per request (see
 * OriginPlan.forcedAllowed), on the first look that passes it.
 */
export function useOf(plan: OriginPlan, entry: EntryTimes, response: PreparedResponse, now: number, limiter?: ForcedRefreshes, key?: string): Use {
  const f = fit(plan.needs, entry.createdAt, entry.freshUntil, now, response.staleRules?.noStale === true);
  if (f === Fit.Fresh) return Use.Hit;
  if (f === Fit.StaleAccepted) return Use.Stale;
  // Without a limiter (a look that must not decide: a waiter judging another's answer), a forced refresh stays undecided.
  if (f === Fit.Forced && limiter !== undefined && !(plan.forcedAllowed ??= limiter.allowed(key!, now, plan.directives.forcedRefreshInterval))) return Use.Hit;
  return Use.Refresh;
}

/** Stale windows of an entry: the response's own (RFC 5861) or the route's, none when the response forbids stale. */
export function staleWindow(rules: StaleRules | undefined, routeWindow: number, which: 'staleWhileRevalidate' | 'staleIfError'): number {
  if (rules === undefined) return routeWindow;
  if (rules.noStale) return 0;
  return Math.max(rules[which], routeWindow);
}

/** The stored entry's lifetimes: fresh for its lifetime, kept past it for stale windows and, with a validator, for revalidation. */
export function originLifetimes(life: OriginLife, validator: boolean, keep: number, swr: number, sie: number): { createdAt: number; freshUntil: number; staleUntil: number } {
  const freshUntil = life.createdAt + life.lifetime;
  const stale = life.noStale ? 0 : Math.max(life.staleWhileRevalidate, life.staleIfError, swr, sie);
  return { createdAt: life.createdAt, freshUntil, staleUntil: freshUntil + Math.max(stale, validator ? keep : 0) };
}

export function staleRulesOf(life: OriginLife): StaleRules {
  return { noStale: life.noStale, staleWhileRevalidate: life.staleWhileRevalidate, staleIfError: life.staleIfError };
}

/** Whether a stale entry can be revalidated rather than fetched whole. */
export const revalidatable = hasValidator;

/** Per key, when a request last forced a refresh of a fresh entry; bounded (cleared when full). */
export class ForcedRefreshes {
  private readonly last = new Map<string, number>();

  constructor(private readonly max = 10_000) {}

  /** Whether a forced refresh of `key` may happen now; records it when it may. */
  allowed(key: string, now: number, interval: number): boolean {
    if (interval <= 0) return true;
    const at = this.last.get(key);
    if (at !== undefined && now - at < interval) return false;
    if (this.last.size >= this.max) this.last.clear();
    this.last.set(key, now);
    return true;
  }
}

/**
 * requestBypassReason for origin mode: Authorization does not bypass (§3.5
 * decides on the response whether the answer is stored).
 */
export function originBypassReason(headers: IncomingHttpHeaders, method: string, originalMethod: string | undefined, scoped: boolean, target: string, dataFollows = false): BypassReason | undefined {
  const reason = requestBypassReason(headers, method, originalMethod, scoped, target, dataFollows);
  if (reason === 'authorization') return headers.cookie !== undefined ? 'cookie' : queryHasAccessToken(target) ? 'access-token' : undefined;
  return reason;
}
