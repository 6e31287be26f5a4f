// Revalidation of a stored response (RFC 9111 §4.3): the conditional
// request made from its validators, whether a 304 selects the stored
// response (§4.3.4), and the stored response updated with its header fields (§3.2).
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { PreparedResponse } from '../http-entry.js';
import { opaqueTag } from '../conditional.js';
import { parseHttpDate } from '../http-date.js';
import { storedHeaders } from '../storage-rules.js';

/** Whether a stored response can be revalidated (it has a validator). */
export function hasValidator(response: PreparedResponse): boolean {
  // Not response.lastModified: for origin entries it falls back to Date, which is no validator.
  return response.etag !== undefined || fieldOf(response, 'last-modified') !== undefined;
}

/** Adds the stored response's validators to the request (§4.3.1), replacing the client's own. */
export function addConditions(headers: IncomingHttpHeaders, response: PreparedResponse): void {
  if (response.etag !== undefined) headers['if-none-match'] = response.etag;
  const lm = fieldOf(response, 'last-modified');
  if (lm !== undefined) headers['if-modified-since'] = lm;
}

/**
 * Whether a 304 answering the cache's conditional request selects the stored
 * response for update (§4.3.4). A strong ETag must be the stored one, strongly
 * compared; weak validators (a weak ETag, Last-Modified) must match the stored
 * ones. A 304 with no validator refers to the one stored response the cache
 * asked about (one is stored per key, and RFC 9110 §15.4.5 asks no
 * Last-Modified of a 304). When none is selected, the stored bytes answer nothing.
 */
export function selectsStored(stored: PreparedResponse, notModified: OutgoingHttpHeaders): boolean {
  const etag = singleValue(notModified.etag);
  if (etag !== undefined) {
    const ours = stored.etag?.trim();
    if (ours === undefined) return false;
    if (!etag.startsWith('W/')) return !ours.startsWith('W/') && ours === etag;
    if (opaqueTag(ours) !== opaqueTag(etag)) return false;
  }
  const lm = singleValue(notModified['last-modified']);
  if (lm === undefined) return true;
  const ours = fieldOf(stored, 'last-modified');
  return ours !== undefined && (ours === lm || sameInstant(ours, lm));
}

function singleValue(value: OutgoingHttpHeaders[string]): string | undefined {
  if (value === undefined) return undefined;
  // Repeated (a malformed 304): joined, it matches no stored value.
  return (Array.isArray(value) ? value.join(', ') : String(value)).trim();
}

function sameInstant(a: string, b: string): boolean {
  const t = parseHttpDate(a);
  return !Number.isNaN(t) && t === parseHttpDate(b);
}

function fieldOf(response: PreparedResponse, name: string): string | undefined {
  const fields = response.headers.fields();
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/**
 * Never taken from a 304: what describes the stored body itself (its length,
 * coding, range and digest: §3.2, RFC 9110 §8) and the validator the cache
 * asked with. The 304 answers the one stored response the cache validated, so
 * it refreshes that one when selectsStored says it may (§4.3.4 with a single
 * stored response per key).
 */
const KEPT_FROM_STORE = new Set(['content-length', 'content-encoding', 'content-range', 'content-md5', 'etag']);

/**
 * The stored fields with every field of the 304 in place of the stored ones
 * of that name (§3.2): stored order kept, new names appended.
 */
export function refreshedFields(stored: PreparedResponse, notModified: OutgoingHttpHeaders): Array<[string, string]> {
  const incoming = storedHeaders(notModified).filter(([name]) => !KEPT_FROM_STORE.has(name));
  const replaced = new Set(incoming.map(([name]) => name));
  // The stored characters, not the bytes of a UTF-8 head (see PreparedResponse.utf8Head).
  const fields = stored.headHeaders.fields();
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
