// The query part of a cache key. Two queries may share it only when every
// parser an app may use reads them the same: qs (Express 4's default, Express
// 5's 'extended'), node:querystring (Express 5's 'simple', Koa 2) and
// URLSearchParams (Koa 3). All of them decode names and values alike ('+' and
// valid escapes) and none cares about the order of unrelated names, but qs
// merges `a`, `a[]`, `a[0]` and `a[b]` into one `a` in request order: so
// parameters are sorted by root name only (the part before the first '['),
// and a query the parsers would split or decode differently keeps its order.
// Properties in test/unit/keys/canonical-query.test.ts run the frameworks' own parsers.
import { escapeKeyComponent } from './key-escape.js';

/** qs and node:querystring read at most this many '&'-separated parts; past it, which ones are read depends on their order. */
export const MAX_QUERY_PARTS = 1000;

/** The OAuth 2.0 bearer token parameter (RFC 6750 §2.3): a credential, like Authorization. */
export const ACCESS_TOKEN = 'access_token';

/**
 * Characters every browser percent-encodes in a query (WHATWG URL: the special-query percent-encode
 * set, less what cannot reach node raw), which node lets through raw. The apps decode `%3C` and `<`
 * alike, but reflect the target as sent (a canonical link from req.originalUrl, Koa's ctx.url): a part
 * holding one raw keeps its own spelling in the key, or one raw `?q=<script>` from a socket would be
 * what every browser asking `?q=%3Cscript%3E` is served.
 */
const BROWSER_ENCODED = /["'<>]/;

/** `+` is a space and escapes are decoded; undefined when the escapes are not valid UTF-8 (the parsers disagree on those). */
function decodeComponent(text: string): string | undefined {
  const plain = text.indexOf('+') === -1 ? text : text.replace(/\+/g, ' ');
  if (plain.indexOf('%') === -1) return plain;
  try {
    return decodeURIComponent(plain);
  } catch {
    return undefined;
  }
}

/** The name qs merges a parameter into: everything before the first '['. */
function rootOf(name: string): string {
  const bracket = name.indexOf('[');
  return bracket === -1 ? name : name.slice(0, bracket);
}

/**
 * Whether qs splits the part into name and value where the others do (at the
 * first '='). qs turns %5B / %5D into brackets first and then splits at the
 * first ']=' when there is one: `a=b[c]=d` is `a` for the others, `a=b[c]` for qs.
 */
function splitsAlike(part: string, eq: number): boolean {
  if (eq === -1) return true;
  const text = part.indexOf('%') === -1 ? part : part.replace(/%5B/gi, '[').replace(/%5D/gi, ']');
  const close = text.indexOf(']=');
  return close === -1 || close + 1 === text.indexOf('=');
}

const allowedRootsCache = new WeakMap<ReadonlySet<string>, ReadonlySet<string>>();

/** The root names of an allow-list: dropping one parameter of a root qs merges would change the others' value. */
function allowedRoots(allow: ReadonlySet<string>): ReadonlySet<string> {
  let roots = allowedRootsCache.get(allow);
  if (roots === undefined) {
    roots = new Set([...allow].map(rootOf));
    allowedRootsCache.set(allow, roots);
  }
  return roots;
}

interface Param {
  readonly root: string;
  /** The parameter as it enters the key (see canonicalQuery). */
  readonly text: string;
}

/**
 * A name or value in the key: escaped as key components are, and '&' too, so
 * the '&', '=', ',' and '#' that canonicalQuery puts between them are never
 * part of one (escapeKeyComponent turns '%' into '%25' first, so the '%26'
 * added here cannot be mistaken for one that was sent).
 */
function component(text: string): string {
  const escaped = escapeKeyComponent(text);
  return escaped.indexOf('&') === -1 ? escaped : escaped.replace(/&/g, '%26');
}

/** A lone parameter canonicalQuery keeps as it is: name and value of unreserved characters (RFC 3986), the name not empty. */
const PLAIN_PARAM = /^[\w.~-]+=[\w.~-]*$/;
const ACCESS_TOKEN_PARAM = `${ACCESS_TOKEN}=`;

const byRoot = (x: Param, y: Param): number => (x.root < y.root ? -1 : x.root > y.root ? 1 : 0);

// The canonical form is safe in a key as it is (no ':', '{', '}', '%' escapes of its own making):
//   sorted:   name=value&name=value ...           (a name, once escaped, never starts with ',' or '#')
//   ordered:  ',' + the same, in request order;   ',,' when the query starts with '?'
//   entries:  name=value, name=#rawValue (value not valid UTF-8), #rawPart (a part the parsers read apart,
//             or one holding a character browsers always escape, sent raw)
//   as sent:  '#' + the whole query, escaped      (more parts than the parsers read)

/**
 * Canonical query, ready to enter a key unescaped: decoded parameters, sorted
 * by root name, parameters of the same root kept in request order. A query
 * with a part the parsers read differently (undecodable name, a split qs makes
 * elsewhere, a name starting with '[' that qs files under another root) keeps
 * every parameter in order, and so does one with a part holding `"`, `'`, `<` or
 * `>` raw (that part kept as sent), and one starting with '?' (URLSearchParams,
 * Koa 3's parser, drops that '?'); one with more parts than the parsers read
 * stays as sent. With `allow`, parameters of other roots are dropped, except
 * `access_token`, which is never dropped. '' when nothing is left.
 */
export function canonicalQuery(query: string, allow?: ReadonlySet<string>): string {
  if (query === '') return '';
  // One name=value of characters no parser decodes and no key escapes (`?page=2`, most queries):
  // its canonical form is itself, with no split, decoding or sorting to find that out.
  if (PLAIN_PARAM.test(query)) return allow === undefined || allowedRoots(allow).has(query.slice(0, query.indexOf('='))) || query.startsWith(ACCESS_TOKEN_PARAM) ? query : '';
  const parts = query.split('&');
  if (parts.length > MAX_QUERY_PARTS) return '#' + component(query);
  const roots = allow === undefined ? undefined : allowedRoots(allow);
  const params: Param[] = [];
  const leadingQuestionMark = query.charCodeAt(0) === 63; /* ? */
  let ordered = leadingQuestionMark;
  const sentRaw = BROWSER_ENCODED.test(query);
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decodeComponent(eq === -1 ? part : part.slice(0, eq));
    // The first part of a query starting with '?' is another name to URLSearchParams: kept as sent.
    if (name === undefined || !splitsAlike(part, eq) || (i === 0 && leadingQuestionMark) || (sentRaw && BROWSER_ENCODED.test(part))) {
      ordered = true;
      params.push({ root: '', text: '#' + component(part) });
      continue;
    }
    const root = rootOf(name);
    // qs files `[a]=1` under `a` and `[]=1` under `0`: such a name may join any root.
    const anyRoot = name.charCodeAt(0) === 91; /* [ */
    if (anyRoot) ordered = true;
    else if (roots !== undefined && !roots.has(root) && root !== ACCESS_TOKEN) continue;
    const rawValue = eq === -1 ? '' : part.slice(eq + 1);
    const value = decodeComponent(rawValue);
    params.push({ root, text: component(name) + (value === undefined ? '=#' + component(rawValue) : '=' + component(value)) });
  }
  if (params.length === 0) return '';
  if (!ordered && params.length > 1) params.sort(byRoot); // stable: same-root order is kept
  let out = leadingQuestionMark ? ',,' : ordered ? ',' : '';
  for (let i = 0; i < params.length; i++) out += (i === 0 ? '' : '&') + params[i]!.text;
  return out;
}

/** Decoding for recognizing a name: valid escapes of ASCII characters are decoded even where the rest is not valid UTF-8. */
function lenientDecode(text: string): string {
  return decodeComponent(text) ?? text.replace(/\+/g, ' ').replace(/%([0-7][0-9A-Fa-f])/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

// A leading '?' is dropped by URLSearchParams (Koa 3) from the first name.
const ACCESS_TOKEN_NAME = /^\??\[*access_token(?:$|[[\]])/;

/**
 * `query` with the value of each `access_token` parameter (any spelling
 * hasAccessToken reads) replaced by `redacted`: for what reports a request
 * target to listeners and logs, which must not carry a credential.
 */
export function redactAccessToken(query: string): string {
  if (!hasAccessToken(query)) return query;
  const parts = query.split('&');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const eq = part.indexOf('=');
    if (eq !== -1 && ACCESS_TOKEN_NAME.test(lenientDecode(part.slice(0, eq)))) parts[i] = `${part.slice(0, eq)}=redacted`;
  }
  return parts.join('&');
}

/**
 * A request target as events and the debug log report it: an `access_token`
 * value in its query redacted (a credential, RFC 6750 §2.3).
 */
export function reportedTarget(target: string): string {
  const q = target.indexOf('?');
  if (q === -1) return target;
  const hash = target.indexOf('#', q);
  const end = hash === -1 ? target.length : hash;
  const query = target.slice(q + 1, end);
  const redacted = redactAccessToken(query);
  return redacted === query ? target : target.slice(0, q + 1) + redacted + target.slice(end);
}

/**
 * Whether a query carries `access_token` (RFC 6750 §2.3) under any spelling a
 * parser reads as that parameter: escaped, `access_token[]`, `[access_token]`.
 */
export function hasAccessToken(query: string): boolean {
  if (query.indexOf(ACCESS_TOKEN) === -1 && query.indexOf('%') === -1) return false;
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    if (ACCESS_TOKEN_NAME.test(lenientDecode(eq === -1 ? part : part.slice(0, eq)))) return true;
  }
  return false;
}
