// Path normalization for route-table matching and path tags. Follows what
// routers treat as "the same route" (case-insensitive, trailing slash
// ignored) plus RFC 3986 equivalences (percent-encoded unreserved characters,
// dot segments, repeated slashes), so `/ADMIN/`, `/%61dmin` and `//admin`
// cannot slip past a rule written for `/admin`. Keys do NOT use this: they keep
// the raw path, so two different request targets never share an entry.

// Anything that may change: escapes, upper case (non-ASCII too), dot segments, extra slashes.
const NEEDS_WORK = /[%A-Z\u0080-\uFFFF]|\/\/|\/\.|.\/$/;
const PERCENT_ESCAPE = /%([0-9A-Fa-f]{2})/g;

function decodeUnreserved(match: string, hex: string): string {
  const code = parseInt(hex, 16);
  const isUnreserved =
    (code >= 0x41 && code <= 0x5a) || // A-Z
    (code >= 0x61 && code <= 0x7a) || // a-z
    (code >= 0x30 && code <= 0x39) || // 0-9
    code === 0x2d || code === 0x2e || code === 0x5f || code === 0x7e; // - . _ ~
  return isUnreserved ? String.fromCharCode(code) : match.toUpperCase();
}

/**
 * Returns the route form of a request path (no query): lower case, unreserved
 * characters decoded, dot segments resolved, repeated and trailing slashes
 * removed. Always starts with '/'.
 */
export function normalizeRoutePath(path: string): string {
  if (path.length === 0) return '/';
  if (!NEEDS_WORK.test(path) && path.charCodeAt(0) === 47 /* / */) return path;
  let decoded = path.indexOf('%') === -1 ? path : path.replace(PERCENT_ESCAPE, decodeUnreserved);
  decoded = decoded.toLowerCase();
  const out: string[] = [];
  for (const segment of decoded.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  return '/' + out.join('/');
}

const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/;

/**
 * A request target in origin form: `http://host/a?b` (absolute form, which
 * clients may send and node passes on as is) becomes `/a?b`, so keys, table
 * rules and tags see the same path as for `/a?b`.
 */
export function originForm(url: string): string {
  if (url.charCodeAt(0) === 47 /* / */) return url;
  const match = ABSOLUTE_FORM.exec(url);
  if (match === null) return url;
  const rest = url.slice(match[0].length);
  return rest.charCodeAt(0) === 47 ? rest : '/' + rest;
}

/** The path of a request target: everything before '?' (and '#', which clients never send). */
export function pathOf(url: string): string {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const h = path.indexOf('#');
  return h === -1 ? path : path.slice(0, h);
}

/** The parent of a normalized path ('/a/b' -> '/a', '/a' -> '/'), or undefined for '/'. */
export function parentPath(normalized: string): string | undefined {
  if (normalized === '/') return undefined;
  const i = normalized.lastIndexOf('/');
  return i <= 0 ? '/' : normalized.slice(0, i);
}
