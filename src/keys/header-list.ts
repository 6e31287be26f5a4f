// Header field lists as RFC 9110 §5.6 writes them: elements separated by
// commas with optional whitespace, where a comma inside a quoted string is
// text, not a separator (`no-cache="set-cookie, x"`, `Cache-Groups: "a, b"`,
// an ETag `"v1,gz"`). Splitting on every comma would break those elements
// apart, so every list the cache reads goes through here.

/** A field value as node gives it: repeated fields come as an array, which is one list (RFC 9110 §5.3). */
export type FieldValue = string | number | readonly string[] | undefined;

const SP = 0x20;
const HTAB = 0x09;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;

function trimOws(text: string, start: number, end: number): string {
  while (start < end && (text.charCodeAt(start) === SP || text.charCodeAt(start) === HTAB)) start++;
  while (end > start && (text.charCodeAt(end - 1) === SP || text.charCodeAt(end - 1) === HTAB)) end--;
  return text.slice(start, end);
}

/**
 * The elements of a list-based field, OWS trimmed, empty elements dropped.
 * Commas inside quoted strings do not split. `quotedPairs`: a backslash in a
 * quoted string escapes the next character (quoted-string, §5.6.4); entity
 * tags (§8.8.3) have no escapes, so If-None-Match passes false.
 */
export function splitList(value: FieldValue, quotedPairs = true): string[] {
  if (value === undefined) return [];
  const text = typeof value === 'string' ? value : typeof value === 'number' ? String(value) : value.join(',');
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (quoted) {
      if (c === BACKSLASH && quotedPairs) i++;
      else if (c === DQUOTE) quoted = false;
    } else if (c === DQUOTE) {
      quoted = true;
    } else if (c === COMMA) {
      const element = trimOws(text, start, i);
      if (element !== '') out.push(element);
      start = i + 1;
    }
  }
  const last = trimOws(text, start, text.length);
  if (last !== '') out.push(last);
  return out;
}

/**
 * The text of a quoted string at the start of `text` (escapes undone, what
 * follows the closing quote ignored), or `text` itself when it does not start
 * with a quote. An unterminated string runs to the end.
 */
export function unquote(text: string): string {
  if (text.charCodeAt(0) !== DQUOTE) return text;
  let out = '';
  let from = 1;
  for (let i = 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === BACKSLASH) {
      out += text.slice(from, i);
      from = ++i; // the escaped character is kept, whatever it is
    } else if (c === DQUOTE) {
      return out + text.slice(from, i);
    }
  }
  return out + text.slice(from);
}

/** `name=value` parameters of a list (Cache-Control directives): lower-cased names, values unquoted, '' for a bare name. */
export function parseDirectives(value: FieldValue): Map<string, string> {
  const directives = new Map<string, string>();
  for (const element of splitList(value)) {
    const eq = element.indexOf('=');
    const name = (eq === -1 ? element : element.slice(0, eq)).trim().toLowerCase();
    if (name === '') continue;
    directives.set(name, eq === -1 ? '' : unquote(element.slice(eq + 1).trim()));
  }
  return directives;
}
