// The request target as the cache may use it. Clients may send absolute form
// (`GET http://host/a HTTP/1.1`); node passes it on as is, and the frameworks
// then build redirects and links from that authority, not from Host. Such a
// request may share entries with `/a` only when its authority is the Host the
// entry is for; otherwise (RFC 9112 §3.2.2) it is neither stored nor served.
// Even then it is served from entries but never fills one, as a target with a
// '#' is not: the apps reflect the target as sent (see HttpRequestContext.sentOdd).
//
// The apps read an absolute-form target with url.parse (parseurl, which Express 4
// and 5 and Koa 2 and 3 use for any target not starting with '/'), which rewrites
// it: a '\' before the query is a '/' to it, and some characters node admits in a
// target are percent-encoded. `GET http://h/api\admin\x` is routed as /api/admin/x,
// so it is keyed, matched against the table and tagged as that path (the
// origin-form `/api\admin\x`, which the apps route as it is, keeps its own entry).
// parseurl takes the same path for an origin-form target that holds a '#'.

const ABSOLUTE_FORM = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)/;
const DEFAULT_PORT: Readonly<Record<string, string>> = { http: ':80', https: ':443' };

function sameAuthority(scheme: string, authority: string, host: string): boolean {
  const a = authority.toLowerCase();
  const h = host.trim().toLowerCase();
  if (a === h) return true;
  const port = DEFAULT_PORT[scheme.toLowerCase()];
  return port !== undefined && (a === h + port || a + port === h);
}

/** What url.parse percent-encodes, of the characters node's parser lets into a target (node's lib/url.js autoEscapeChars). */
const PARSER_ESCAPED = /["'<>\\^`{|}]/g;
const PARSER_ESCAPES: Readonly<Record<string, string>> = { '"': '%22', "'": '%27', '<': '%3C', '>': '%3E', '\\': '%5C', '^': '%5E', '`': '%60', '{': '%7B', '|': '%7C', '}': '%7D' };

/** The path and query url.parse gives the apps for what follows the authority of an absolute-form target. */
function asAppsReadIt(rest: string): string {
  // search() ignores the g flag's lastIndex, which test() would carry from one call to the next.
  if (rest.search(PARSER_ESCAPED) === -1) return rest;
  // A '\' before the query (or fragment) separates segments, as in browsers; one after it is escaped.
  let end = rest.search(/[?#]/);
  if (end === -1) end = rest.length;
  const slashed = rest.slice(0, end).replace(/\\/g, '/') + rest.slice(end);
  return slashed.replace(PARSER_ESCAPED, (ch) => PARSER_ESCAPES[ch]!);
}

/**
 * An origin-form target holding a '#' (which clients never send), as parseurl reads it: with
 * url.parse. Undefined when that begins with '//': url.parse may then take what follows for an
 * authority (`//x@y/z#` is the path `/z` to it).
 */
function withFragment(url: string): string | undefined {
  const read = asAppsReadIt(url);
  return read.charCodeAt(1) === 47 /* / */ ? undefined : read;
}

/**
 * The origin form of `url`: itself when it starts with '/' (as the apps read
 * it when it holds a '#'), the path and query of an absolute-form target whose
 * authority is `host` (as the apps read them, see above), else undefined (a
 * foreign authority, no Host, userinfo, no recognisable form, or a '#' target
 * url.parse may read an authority into).
 */
export function ownOriginForm(url: string, host: string | undefined): string | undefined {
  if (url.charCodeAt(0) === 47 /* / */) return url.indexOf('#') === -1 ? url : withFragment(url);
  const match = ABSOLUTE_FORM.exec(url);
  if (match === null || host === undefined || match[2]!.includes('@')) return undefined;
  if (!sameAuthority(match[1]!, match[2]!, host)) return undefined;
  return pathAfter(url, match);
}

/**
 * The path and query the apps route an absolute-form target to, whatever its
 * authority (they route by the path alone): a write sent so is still made
 * there. Undefined when `url` is not in absolute form.
 */
export function routedOriginForm(url: string): string | undefined {
  const match = ABSOLUTE_FORM.exec(url);
  return match === null ? undefined : pathAfter(url, match);
}

/**
 * The path and query the apps read from any target: itself when in plain origin form; an absolute-form
 * one's or one holding a '#' as url.parse reads them. Undefined when no origin form can be told.
 */
export function appsOriginForm(url: string): string | undefined {
  if (url.charCodeAt(0) === 47 /* / */) return url.indexOf('#') === -1 ? url : withFragment(url);
  return routedOriginForm(url);
}

/** What follows the authority `match` ends at, as the apps read it, starting with '/'. */
function pathAfter(url: string, match: RegExpExecArray): string {
  const rest = asAppsReadIt(url.slice(match[0].length));
  return rest.charCodeAt(0) === 47 ? rest : '/' + rest;
}
