// Revalidation of a stored response (RFC 9111 §4.3): the conditional
// request made from its validators, and the stored response updated with
// the header fields of a 304 (§3.2, §4.3.4).
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { PreparedResponse } from '../http-entry.js';
import { storedHeaders } from '../storage-rules.js';
import { noneMatchHits } from '../conditional.js';

/** Whether a stored response can be revalidated (it has a validator). */
export function hasValidator(response: PreparedResponse): boolean {
  return response.etag !== undefined || response.lastModified !== undefined;
}

/** Adds the stored response's validators to the request (§4.3.1), replacing the client's own. */
export function addConditions(headers: IncomingHttpHeaders, response: PreparedResponse): void {
  if (response.etag !== undefined) headers['if-none-match'] = response.etag;
  const lm = fieldOf(response, 'last-modified');
  if (lm !== undefined) headers['if-modified-since'] = lm;
}

function fieldOf(response: PreparedResponse, name: string): string | undefined {
  const fields = response.headers.fields();
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/**
 * §4.3.4: whether a 304 with these headers refreshes this stored response. A
 * strong ETag in the 304 must match the stored one; without one, a stored
 * response validated by Last-Modified (or with no validator to contradict) is updated.
 */
export function notModifiedMatches(stored: PreparedResponse, headers: OutgoingHttpHeaders): boolean {
  const etag = headers.etag;
  if (etag === undefined) return true;
  return stored.etag !== undefined && noneMatchHits(String(etag), stored.etag);
}

/** Never taken from a 304: the stored body's own length (§3.2). */
const KEPT_FROM_STORE = new Set(['content-length']);

/**
 * The stored fields with every field of the 304 in place of the stored ones
 * of that name (§3.2): stored order kept, new names appended.
 */
export function refreshedFields(stored: PreparedResponse, notModified: OutgoingHttpHeaders): Array<[string, string]> {
  const incoming = storedHeaders(notModified).filter(([name]) => !KEPT_FROM_STORE.has(name));
  const replaced = new Set(incoming.map(([name]) => name));
  const fields = stored.headers.fields();
  const out: Array<[string, string]> = [];
  const placed = new Set<string>();
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    if (!replaced.has(name)) out.push([name, fields[i + 1]!]);
    else if (!placed.has(name)) {
      placed.add(name);
      for (const pair of incoming) if (pair[0] === name) out.push(pair);
    }
  }
  for (const pair of incoming) if (!placed.has(pair[0])) out.push(pair);
  return out;
}

/** The stored fields as node's outgoing headers (for the freshness of the refreshed response). */
export function asOutgoing(fields: ReadonlyArray<readonly [string, string]>): OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of fields) {
    const had = out[name];
    out[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
  }
  return out;
}
