// Freshness lifetime and age of an origin response (RFC 9111 §4.2), and
// whether it may be stored at all (§3, §3.5): what `freshness: 'origin'`
// stores instead of the table's TTL. Times are ms since the epoch.
import type { OutgoingHttpHeaders } from 'node:http';
import type { MissReason } from '../cache-status.js';
import { varyOf } from '../storage-rules.js';
import { parseHttpDate } from '../http-date.js';
import { DELTA_SECONDS_MAX, deltaSeconds, fieldNamesOf, responseDirectives, type Directives, type TargetedFields } from './directives.js';

/** Statuses a cache may give a heuristic lifetime (RFC 9110 §15.1). */
const HEURISTIC_STATUS = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]);
/** Statuses this cache understands, for must-understand (§5.2.2.3): RFC 9110's final statuses. */
const UNDERSTOOD_STATUS = new Set([200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303, 304, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 500, 501, 502, 503, 504, 505]);
/** §4.2.2: a typical heuristic is this share of the time since Last-Modified. */
const HEURISTIC_SHARE = 0.1;

export interface OriginLife {
  /** When the response's age was zero (response time minus its corrected initial age): Age counts from here. */
  readonly createdAt: number;
  /** Freshness lifetime in ms; 0 = stale at once. */
  readonly lifetime: number;
  /** No stale answers (must-revalidate, proxy-revalidate, s-maxage): revalidate or fail. */
  readonly noStale: boolean;
  /** Stale-while-revalidate / stale-if-error windows the response grants (RFC 5861), ms. */
  readonly staleWhileRevalidate: number;
  readonly staleIfError: number;
  /** Fields the cache must not store (no-cache="f", private="f"), lower case. */
  readonly withoutFields: readonly string[];
}

export interface LifeInput {
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
  /** When the request went upstream (the fill began). */
  readonly requestTime: number;
  /** When the response head arrived. */
  readonly responseTime: number;
  /** Heuristic lifetimes never exceed this (the table's TTL). */
  readonly heuristicCap: number;
  /** Which targeted fields are read (RFC 9213, Surrogate-Control). */
  readonly targeted: TargetedFields;
  /** The request carried Authorization (§3.5). */
  readonly authorized: boolean;
  /** The route is user-scoped: `private` may be stored (per-user entries). */
  readonly userScoped: boolean;
}

function single(value: string | number | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? (value.length === 1 ? value[0] : undefined) : String(value);
}

/** An HTTP-date as ms, NaN when invalid (or repeated: §4.2.1 lets a cache treat that as stale). */
function httpDate(value: string | number | string[] | undefined): number {
  const text = single(value);
  return text === undefined ? Number.NaN : parseHttpDate(text);
}

function seconds(d: Directives, name: string): number | undefined {
  const s = deltaSeconds(d, name);
  // A lifetime directive repeated with another value: §4.2.1 allows the first or stale; stale is the safer.
  if (d.repeated.has(name)) return Number.NaN;
  return s;
}

/** Whether the response (to this request) may be stored, and for how long: a reason when it may not. */
export function originLife(input: LifeInput): OriginLife | MissReason {
  const { status, headers } = input;
  const cc = responseDirectives(headers, input.targeted);
  const v = cc.values;
  // must-understand: stored only with a status this cache understands, and then in spite of no-store (§5.2.2.3).
  if (v.has('must-understand')) {
    if (!UNDERSTOOD_STATUS.has(status)) return 'status';
  } else if (v.has('no-store')) return 'no-store';
  const privateFields = fieldNamesOf(cc, 'private');
  if (v.has('private') && privateFields === undefined && !input.userScoped) return 'private';
  if (headers['set-cookie'] !== undefined) return 'set-cookie';
  if (varyOf(headers) === '*') return 'vary-star';
  // §3.5: a shared cache stores an answer to an authorized request only when the answer allows it.
  if (input.authorized && !v.has('public') && !v.has('s-maxage') && !v.has('must-revalidate')) return 'authorization';
  if (status === 206 || status === 304 || status < 200 || status > 599) return 'status';

  let lifetime: number | undefined;
  const sMaxage = seconds(cc, 's-maxage');
  const maxAge = seconds(cc, 'max-age');
  const expires = headers.expires;
  if (sMaxage !== undefined) lifetime = sMaxage * 1000;
  else if (maxAge !== undefined) lifetime = maxAge * 1000;
  else if (expires !== undefined) {
    const date = httpDate(headers.date);
    lifetime = httpDate(expires) - (Number.isNaN(date) ? input.responseTime : date);
  }
  if (lifetime === undefined) {
    // §4.2.2: heuristics only for heuristically cacheable statuses (or `public`), never over the cap.
    if (!HEURISTIC_STATUS.has(status) && !v.has('public')) return 'status';
    const lastModified = httpDate(headers['last-modified']);
    const date = httpDate(headers.date);
    const since = (Number.isNaN(date) ? input.responseTime : date) - lastModified;
    lifetime = since > 0 ? Math.min(Math.floor(since * HEURISTIC_SHARE), input.heuristicCap) : 0;
  }
  if (Number.isNaN(lifetime) || lifetime < 0) lifetime = 0;
  // A no-cache response is stored but never fresh: every use is revalidated (§5.2.2.4).
  const noCacheFields = fieldNamesOf(cc, 'no-cache');
  if (v.has('no-cache') && noCacheFields === undefined) lifetime = 0;

  return {
    createdAt: input.responseTime - correctedInitialAge(headers, input.requestTime, input.responseTime),
    lifetime,
    // A no-cache response (without field names) is never used unvalidated, stale or not (§4.2.4, §5.2.2.4).
    noStale: v.has('must-revalidate') || v.has('proxy-revalidate') || sMaxage !== undefined || (v.has('no-cache') && noCacheFields === undefined),
    staleWhileRevalidate: (validSeconds(cc, 'stale-while-revalidate') ?? 0) * 1000,
    staleIfError: (validSeconds(cc, 'stale-if-error') ?? 0) * 1000,
    withoutFields: [...(noCacheFields ?? []), ...(privateFields ?? [])],
  };
}

function validSeconds(d: Directives, name: string): number | undefined {
  const s = deltaSeconds(d, name);
  return s === undefined || Number.isNaN(s) ? undefined : s;
}

/** §4.2.3: the age the response already had when it arrived, from upstream Age, Date and the response delay. */
export function correctedInitialAge(headers: OutgoingHttpHeaders, requestTime: number, responseTime: number): number {
  const date = httpDate(headers.date);
  const apparentAge = Number.isNaN(date) ? 0 : Math.max(0, responseTime - date);
  const ageValue = (ageSeconds(headers.age) ?? 0) * 1000;
  const correctedAgeValue = ageValue + Math.max(0, responseTime - requestTime);
  return Math.max(apparentAge, correctedAgeValue);
}

/**
 * An Age field value in seconds (RFC 9111 §5.1): of a list (a repeated field
 * included) the first member counts; a value that is not delta-seconds is
 * ignored (undefined).
 */
function ageSeconds(value: string | number | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  const first = String(Array.isArray(value) ? value[0] : value);
  const comma = first.indexOf(',');
  const text = (comma === -1 ? first : first.slice(0, comma)).trim();
  return /^[0-9]+$/.test(text) ? Math.min(Number(text), DELTA_SECONDS_MAX) : undefined;
}
