// Conditional requests answered by the cache: If-None-Match with weak
// comparison and lists (RFC 9110 §13.1.2), else If-Modified-Since. Entity
// tags may hold commas (`"v1,gz"`), so the list is split as RFC 9110 §5.6 says.
import type { IncomingHttpHeaders } from 'node:http';
import { splitList } from '../keys/header-list.js';
import { parseHttpDate } from './http-date.js';

/** An entity tag without its weakness mark (for weak comparison, RFC 9110 §8.8.3.2). */
export function opaqueTag(tag: string): string {
  const t = tag.trim();
  return t.startsWith('W/') ? t.slice(2) : t;
}

/** Whether `If-None-Match` names `etag` (weak comparison) or is '*'. */
export function noneMatchHits(ifNoneMatch: string, etag: string): boolean {
  const ours = opaqueTag(etag);
  // Entity tags have no escapes: a backslash in one is a plain character (RFC 9110 §8.8.3).
  for (const candidate of splitList(ifNoneMatch, false)) {
    if (candidate === '*' || opaqueTag(candidate) === ours) return true;
  }
  return false;
}

/** The conditional headers of a request, kept aside while a fill runs without them. */
export interface Conditions {
  readonly ifNoneMatch: string | undefined;
  readonly ifModifiedSince: string | undefined;
}

export function conditionsOf(headers: IncomingHttpHeaders): Conditions | undefined {
  const ifNoneMatch = headers['if-none-match'];
  const ifModifiedSince = headers['if-modified-since'];
  return ifNoneMatch === undefined && ifModifiedSince === undefined ? undefined : { ifNoneMatch, ifModifiedSince };
}

/** Whether a 200 with this ETag / Last-Modified answers the conditions with 304. */
export function isNotModified(conditions: Conditions, etag: string | undefined, lastModified: number | undefined): boolean {
  if (conditions.ifNoneMatch !== undefined) return etag !== undefined && noneMatchHits(conditions.ifNoneMatch, etag);
  if (conditions.ifModifiedSince !== undefined && lastModified !== undefined) {
    const since = parseHttpDate(conditions.ifModifiedSince);
    return !Number.isNaN(since) && lastModified <= since;
  }
  return false;
}
