// The request target as the cache may use it. Clients may send absolute form
// (`GET http://host/a HTTP/1.1`); node passes it on as is, and the frameworks
// then build redirects and links from that authority, not from Host. Such a
// request may share entries with `/a` only when its authority is the Host the
// entry is for; otherwise (RFC 9112 §3.2.2) it is neither stored nor served.

const ABSOLUTE_FORM = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)/;
const DEFAULT_PORT: Readonly<Record<string, string>> = { http: ':80', https: ':443' };

function sameAuthority(scheme: string, authority: string, host: string): boolean {
  const a = authority.toLowerCase();
  const h = host.trim().toLowerCase();
  if (a === h) return true;
  const port = DEFAULT_PORT[scheme.toLowerCase()];
  return port !== undefined && (a === h + port || a + port === h);
}

/**
 * The origin form of `url`: itself when it starts with '/', the path and query
 * of an absolute-form target whose authority is `host`, else undefined (a
 * foreign authority, no Host, userinfo, or no recognisable form).
 */
export function ownOriginForm(url: string, host: string | undefined): string | undefined {
  if (url.charCodeAt(0) === 47 /* / */) return url;
  const match = ABSOLUTE_FORM.exec(url);
  if (match === null || host === undefined || match[2]!.includes('@')) return undefined;
  if (!sameAuthority(match[1]!, match[2]!, host)) return undefined;
  const rest = url.slice(match[0].length);
  return rest.charCodeAt(0) === 47 ? rest : '/' + rest;
}
