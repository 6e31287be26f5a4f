// Request -> cache key. Format:
//   namespace : METHOD-CLASS : raw-path [? canonical-query] [:v=vary-values] [:u=user]
// The path is the raw request path (two different request targets never share
// an entry); the query is parsed and canonicalized so parameter order does not
// matter, duplicates kept in order. Keys longer than a bound are hashed.
import { createHash } from 'node:crypto';
import stableStringify from 'fast-json-stable-stringify';
import { escapeKeyComponent } from './key-escape.js';

/** Where the middleware leaves the key it used on a request, for cache.keyFor(). */
export const REQUEST_KEY = Symbol.for('tiercache.key');

/** Keys longer than this are replaced by a hash of their variable part. */
export const MAX_KEY_LENGTH = 1024;

export interface RequestKeyInput {
  /** Cache namespace (validated: no separators). */
  readonly namespace: string;
  /** The request method; HEAD shares GET's entries. */
  readonly method: string;
  /** The raw request target: path and optional query, as in `req.url`. */
  readonly url: string;
  /** Replaces the path-and-query part (the `key` middleware option). */
  readonly customKey?: string;
  /** Query parameters allowed into the key; when set, others are dropped. */
  readonly queryAllow?: ReadonlySet<string>;
  /** `[headerName, value]` pairs, in the route's order; undefined value = header absent. */
  readonly vary?: ReadonlyArray<readonly [string, string | undefined]>;
  /** User scope: entries are private to this user id. */
  readonly user?: string;
}

/** A request header's value as it enters a key: repeated values joined, whitespace around commas trimmed. */
export function normalizedHeaderValue(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(', ') : value;
  return text.indexOf(',') === -1 ? text.trim() : text.split(',').map((s) => s.trim()).join(',');
}

/** The method class: HEAD is answered from GET entries, so both map to GET. */
export function methodClass(method: string): string {
  return method === 'GET' || method === 'HEAD' ? 'GET' : method.toUpperCase();
}

/**
 * Canonical query: parameters sorted by name, repeated parameters kept as an
 * array in request order, values decoded (`+` is a space). '' when empty.
 */
export function canonicalQuery(query: string, allow?: ReadonlySet<string>): string {
  if (query === '') return '';
  const params: Record<string, QueryValue | QueryValue[]> = Object.create(null);
  let count = 0;
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = decodeName(eq === -1 ? pair : pair.slice(0, eq));
    if (allow !== undefined && !allow.has(name)) continue;
    const value = decodeValue(eq === -1 ? '' : pair.slice(eq + 1));
    const seen = params[name];
    if (seen === undefined) params[name] = value;
    else if (Array.isArray(seen)) seen.push(value);
    else params[name] = [seen, value];
    count++;
  }
  return count === 0 ? '' : stableStringify(params);
}

/** A decoded value, or `{ raw }` when its escapes are not valid UTF-8 (never equal to any decoded string). */
type QueryValue = string | { raw: string };

function decodeComponent(text: string): string | undefined {
  const plain = text.indexOf('+') === -1 ? text : text.replace(/\+/g, ' ');
  if (plain.indexOf('%') === -1) return plain;
  try {
    return decodeURIComponent(plain);
  } catch {
    return undefined; // not valid UTF-8: decoding would turn different bytes into the same U+FFFD
  }
}

function decodeValue(text: string): QueryValue {
  return decodeComponent(text) ?? { raw: text };
}

/** Names are object keys: undecodable ones get a NUL prefix (a raw URL never holds NUL), decoded ones starting with NUL get another. */
function decodeName(text: string): string {
  const decoded = decodeComponent(text);
  if (decoded === undefined) return '\u0000' + text;
  return decoded.charCodeAt(0) === 0 ? '\u0000' + decoded : decoded;
}

/** Builds the cache key of a request (see the format above). */
export function buildRequestKey(input: RequestKeyInput): string {
  const head = input.namespace + ':' + methodClass(input.method) + ':';
  let rest: string;
  if (input.customKey !== undefined) {
    rest = escapeKeyComponent(input.customKey);
  } else {
    const url = input.url;
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    rest = escapeKeyComponent(path);
    if (q !== -1) {
      const query = canonicalQuery(url.slice(q + 1), input.queryAllow);
      if (query !== '') rest += '?' + escapeKeyComponent(query);
    }
  }
  const vary = input.vary;
  if (vary !== undefined && vary.length > 0) rest = appendPairs(rest + ':v=', vary);
  if (input.user !== undefined) rest += ':u=' + escapeKeyComponent(input.user);
  return bounded(head, rest);
}

/** `head + rest`, with `rest` replaced by its hash when the key would be too long. */
function bounded(head: string, rest: string): string {
  if (head.length + rest.length <= MAX_KEY_LENGTH) return head + rest;
  // '#' is escaped inside components, so a hashed key never equals a plain one.
  return head + '#' + createHash('sha256').update(rest).digest('base64url');
}

/**
 * The key of one variant of a response that varied on request headers
 * (response `Vary`): the base key plus the normalized values of those headers.
 */
export function variantKey(baseKey: string, pairs: ReadonlyArray<readonly [string, string | undefined]>): string {
  // The head (namespace and method class) ends at the second ':'; both parts are escape-free.
  const cut = baseKey.indexOf(':', baseKey.indexOf(':') + 1) + 1;
  return bounded(baseKey.slice(0, cut), appendPairs(baseKey.slice(cut) + ':r=', pairs));
}

/** Appends `name=value` pairs joined by ','; a missing value (header absent) is just `name`. */
function appendPairs(rest: string, pairs: ReadonlyArray<readonly [string, string | undefined]>): string {
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i]!;
    if (i > 0) rest += ',';
    rest += escapeKeyComponent(pair[0]);
    if (pair[1] !== undefined) rest += '=' + escapeKeyComponent(pair[1]);
  }
  return rest;
}
