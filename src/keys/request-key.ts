// Request -> cache key. Format:
//   namespace : METHOD-CLASS : raw-path [:a=allow-list] [? canonical-query | :t=digest] [:v=vary-values] [:u=user]
// or, with a custom key, that key in place of path and query ('=' before one that starts with '/').
// The path is the raw request path (two different request targets never share
// an entry); the query is canonicalized (canonical-query.ts) so parameter order
// does not matter where no parser cares. The fragment is dropped first, as the
// frameworks drop it. Keys longer than a bound are hashed. The values of
// credential fields (Authorization, Cookie) enter as a digest, and so does a
// query carrying an access_token (`:t=`): key names are read by whoever can
// SCAN, MONITOR or open the status page.
import * as crypto from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { ACCESS_TOKEN, canonicalQuery, hasAccessToken } from './canonical-query.js';
import { escapeKeyComponent } from './key-escape.js';
import { splitList } from './header-list.js';

export { canonicalQuery };

/** Where the middleware leaves the key it used on a request, for cache.keyFor(). */
export const REQUEST_KEY = Symbol.for('tiercache.key');

/** Keys longer than this are replaced by a hash of their variable part. */
export const MAX_KEY_LENGTH = 1024;

export interface RequestKeyInput {
  /** Cache namespace (validated: no separators). */
  readonly namespace: string;
  /** The request method; HEAD shares GET's entries. */
  readonly method: string;
  /** The raw request target: path and optional query, as in `req.url` (a '#fragment' is ignored). */
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

/**
 * A request header by its lower-case name. An HTTP/2 request names its host
 * in `:authority`: that is its Host here, so a key, a Location and a
 * background refresh (an HTTP/1.1 request with Host) agree. It wins over a
 * Host sent beside it (RFC 9113 §8.3.1), as in Koa's ctx.host: read from Host,
 * `:authority: evil.example` with `Host: shop.example` stored the answer Koa
 * made for evil.example where shop.example's clients get theirs.
 */
export function requestHeader(headers: IncomingHttpHeaders, name: string): string | string[] | undefined {
  if (name === 'host') {
    const authority = headers[':authority'];
    if (authority !== undefined) return authority;
  }
  return headers[name];
}

/** The request's host: Host, else an HTTP/2 request's :authority (see requestHeader). */
export function requestHost(headers: IncomingHttpHeaders): string | undefined {
  const host = requestHeader(headers, 'host');
  return typeof host === 'string' ? host : undefined;
}

/**
 * Request fields defined as lists (RFC 9110 §5.6.1, and structured-field
 * lists), varied on in practice: whitespace around their commas and empty
 * elements carry no meaning (RFC 9111 §4.1 allows such normalisation only
 * where the field's syntax does). In any other field a comma is text
 * (`User-Agent: Foo (X, Y)` is not `(X,Y)`), as it is inside a quoted string.
 */
const LIST_FIELDS = new Set(['accept', 'accept-charset', 'accept-encoding', 'accept-language', 'cache-control', 'forwarded', 'if-match', 'if-none-match', 'pragma', 'prefer', 'sec-ch-ua', 'sec-ch-ua-full-version-list', 'te', 'x-forwarded-for', 'x-forwarded-proto']);

/**
 * A request header's value as it enters a key: repeated values joined; in a
 * list field, whitespace around the commas that separate elements (not those
 * in quoted strings) and empty elements dropped; in others only the ends
 * trimmed. `name` in lower case.
 */
export function normalizedHeaderValue(name: string, value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(', ') : value;
  if (text.indexOf(',') === -1 || !LIST_FIELDS.has(name)) return text.trim();
  return splitList(text).join(',');
}

/** What a request sends in header `name` (lower case), as it enters a key: see normalizedHeaderValue. */
export function varyValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  return normalizedHeaderValue(name, requestHeader(headers, name));
}

/** The method class: HEAD is answered from GET entries, so both map to GET. */
export function methodClass(method: string): string {
  return method === 'GET' || method === 'HEAD' ? 'GET' : method.toUpperCase();
}

/** Builds the cache key of a request (see the format above). */
export function buildRequestKey(input: RequestKeyInput): string {
  const head = input.namespace + ':' + methodClass(input.method) + ':';
  let rest: string;
  if (input.customKey !== undefined) {
    rest = escapeKeyComponent(input.customKey);
    // Every built key starts with '/': a custom key written as a path (`/api/dashboard/${tenant}`) would be
    // the key of a request for that path, served to anyone by a plain middleware. '=' is escaped in components.
    if (rest.charCodeAt(0) === 47 /* / */) rest = '=' + rest;
  } else {
    let url = input.url;
    // Clients never send a fragment, but a raw '#' may arrive: the frameworks' parsers drop it with what follows.
    const hash = url.indexOf('#');
    if (hash !== -1) url = url.slice(0, hash);
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    rest = escapeKeyComponent(path);
    if (input.queryAllow !== undefined) rest += allowMark(input.queryAllow);
    if (q !== -1) {
      const raw = url.slice(q + 1);
      const query = canonicalQuery(raw, input.queryAllow);
      // A bearer token (RFC 6750 §2.3) is a credential like Authorization: the whole canonical query enters as
      // its digest (':' never occurs in a canonical query, so ':t=' is no query). Decoded names show up as they
      // are; a part kept as sent ('#') may spell the name escaped.
      if (query.indexOf(ACCESS_TOKEN) !== -1 || (query.indexOf('#') !== -1 && hasAccessToken(raw))) rest += ':t=' + credentialDigest(input.namespace, query);
      else if (query !== '') rest += '?' + query; // key-safe as it comes (canonical-query.ts)
    }
  }
  const vary = input.vary;
  if (vary !== undefined && vary.length > 0) rest = appendPairs(rest + ':v=', vary, input.namespace);
  if (input.user !== undefined) rest += ':u=' + escapeKeyComponent(input.user);
  return bounded(head, rest);
}

const allowMarks = new WeakMap<ReadonlySet<string>, string>();

/**
 * What an allow-list adds after the path: `:a=` and its names, sorted. Dropping parameters
 * maps many requests onto one key, which a key built without the list (or with another)
 * gives to one of them alone: an app-wide middleware with `query: ['page']` served
 * `/search?page=1&q=dogs` the answer a per-route middleware (every parameter keyed) had
 * stored for `/search?page=1`. Built once per list.
 */
function allowMark(allow: ReadonlySet<string>): string {
  let mark = allowMarks.get(allow);
  if (mark === undefined) {
    mark = ':a=' + [...allow].sort().map(escapeKeyComponent).join(',');
    allowMarks.set(allow, mark);
  }
  return mark;
}

/** `head + rest`, with `rest` replaced by its hash when the key would be too long. */
function bounded(head: string, rest: string): string {
  if (head.length + rest.length <= MAX_KEY_LENGTH) return head + rest;
  // '#' is escaped inside components, so a hashed key never equals a plain one.
  return head + '#' + crypto.createHash('sha256').update(rest).digest('base64url');
}

/**
 * The key of one variant of a response that varied on request headers
 * (response `Vary`): the base key plus the normalized values of those headers.
 */
export function variantKey(baseKey: string, pairs: ReadonlyArray<readonly [string, string | undefined]>): string {
  // The head (namespace and method class) ends at the second ':'; both parts are escape-free.
  const first = baseKey.indexOf(':');
  const cut = baseKey.indexOf(':', first + 1) + 1;
  return bounded(baseKey.slice(0, cut), appendPairs(baseKey.slice(cut) + ':r=', pairs, baseKey.slice(0, first)));
}

/**
 * Request fields whose values are credentials: a bearer token or a session id in a
 * key name is one to anyone who can list keys, MONITOR Redis, read a slowlog or a
 * status page with showKeys. Their values enter keys as a digest (see credentialDigest).
 */
const CREDENTIAL_FIELDS = new Set(['authorization', 'proxy-authorization', 'cookie']);

/**
 * Appends `name=value` pairs joined by ','; a missing value (header absent) is just `name`;
 * a credential field's value is `#` and its digest ('#' is escaped in a value, so no value
 * sent reads as a digest).
 */
function appendPairs(rest: string, pairs: ReadonlyArray<readonly [string, string | undefined]>, namespace: string): string {
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i]!;
    if (i > 0) rest += ',';
    rest += escapeKeyComponent(pair[0]);
    const value = pair[1];
    if (value !== undefined) rest += CREDENTIAL_FIELDS.has(pair[0]) ? '=#' + credentialDigest(namespace, value) : '=' + escapeKeyComponent(value);
  }
  return rest;
}

/** node's one-shot hash (20.12 and later): a third of what an HMAC costs; undefined on older 20.x. */
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: 'base64url') => string }).hash;

/**
 * SHA-256 of a credential salted with the namespace: every instance of a namespace
 * computes the same key for the same value (variants are shared through L2), two values
 * never share one (256 bits, unreduced). The salt is no secret (an HMAC keyed by it would
 * be no stronger, at three times the cost on every hit of such a route): it hides a token
 * from whoever reads key names and spoils tables precomputed for another namespace, but
 * a guessable credential (Basic with a weak password) could still be guessed offline.
 */
function credentialDigest(namespace: string, value: string): string {
  const input = 'tiercache-credential:' + namespace + '\0' + value;
  return oneShotHash !== undefined ? oneShotHash('sha256', input, 'base64url') : crypto.createHash('sha256').update(input).digest('base64url');
}
