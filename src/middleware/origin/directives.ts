// Cache-Control as RFC 9111 §5.2 and §4.2.1 read it for origin mode: the
// first occurrence of a directive counts (a later repetition is remembered,
// so that freshness can be judged stale instead), arguments may be tokens or
// quoted strings, and a delta-seconds argument that is not 1*DIGIT is
// invalid. The targeted fields of RFC 9213 (`Tiercache-Cache-Control`,
// optionally `CDN-Cache-Control`) are Structured Field dictionaries: when one
// parses, it replaces Cache-Control for every caching decision.
import type { OutgoingHttpHeaders } from 'node:http';
import { splitList, unquote, type FieldValue } from '../../keys/header-list.js';

export interface Directives {
  /** Directive name (lower case) to its first argument ('' when it had none). */
  readonly values: ReadonlyMap<string, string>;
  /** Directives that appeared more than once. */
  readonly repeated: ReadonlySet<string>;
}

const NONE: Directives = { values: new Map(), repeated: new Set() };

/** RFC 9111 §1.2.2: a delta-seconds too large to represent counts as 2^31. */
export const DELTA_SECONDS_MAX = 2_147_483_648;

export function parseDirectives(value: FieldValue): Directives {
  if (value === undefined) return NONE;
  const values = new Map<string, string>();
  let repeated: Set<string> | undefined;
  for (const element of splitList(value)) {
    // No whitespace around '=' (§5.2: token [ "=" ( token / quoted-string ) ]): `max-age =5` is no max-age.
    const eq = element.indexOf('=');
    const name = (eq === -1 ? element : element.slice(0, eq)).toLowerCase();
    if (name === '' || /[\s"]/.test(name)) continue;
    if (values.has(name)) (repeated ??= new Set()).add(name);
    else values.set(name, eq === -1 ? '' : unquote(element.slice(eq + 1)));
  }
  return { values, repeated: repeated ?? NONE.repeated };
}

/** A delta-seconds argument in seconds; undefined when absent, NaN when invalid (§1.2.2: 1*DIGIT). */
export function deltaSeconds(d: Directives, name: string): number | undefined {
  const raw = d.values.get(name);
  if (raw === undefined) return undefined;
  if (!/^[0-9]+$/.test(raw)) return Number.NaN;
  const n = Number(raw);
  return n > DELTA_SECONDS_MAX ? DELTA_SECONDS_MAX : n;
}

/** Field names listed in a qualified no-cache / private ("a, b"), lower case; undefined for the bare directive. */
export function fieldNamesOf(d: Directives, name: string): string[] | undefined {
  const raw = d.values.get(name);
  if (raw === undefined || raw === '') return undefined;
  return splitList(raw).map((n) => n.toLowerCase());
}

const SF_KEY = /^[a-z*][a-z0-9_\-.*]*$/;
const SF_BARE = /^(?:-?[0-9]{1,15}(?:\.[0-9]{1,3})?|[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*|\?[01]|"(?:[^"\\]|\\.)*")$/;

/** A targeted field as an RFC 8941 dictionary, or undefined when it does not parse (then it is ignored, RFC 9213 §2.1). */
function parseTargeted(value: FieldValue): Directives | undefined {
  const values = new Map<string, string>();
  for (const member of splitList(Array.isArray(value) ? value.join(', ') : value)) {
    const semi = member.indexOf(';');
    const item = semi === -1 ? member : member.slice(0, semi);
    const eq = item.indexOf('=');
    const key = (eq === -1 ? item : item.slice(0, eq)).trim();
    if (!SF_KEY.test(key)) return undefined;
    const raw = eq === -1 ? '' : item.slice(eq + 1).trim();
    if (eq !== -1 && !SF_BARE.test(raw)) return undefined;
    // A dictionary's later member wins (RFC 8941 §4.2.2).
    values.set(key, raw === '?1' ? '' : unquote(raw));
  }
  return values.size === 0 ? undefined : { values, repeated: NONE.repeated };
}

export const TIERCACHE_CACHE_CONTROL = 'tiercache-cache-control';
export const CDN_CACHE_CONTROL = 'cdn-cache-control';
export const SURROGATE_CONTROL = 'surrogate-control';

/**
 * Surrogate-Control (W3C Edge Architecture 1.0): the directives addressed to
 * every surrogate or, after a ';', to the one named `device`; undefined when
 * none is addressed to us.
 */
function surrogateDirectives(value: FieldValue, device: string): Directives | undefined {
  const values = new Map<string, string>();
  for (const element of splitList(value)) {
    const semi = element.lastIndexOf(';');
    // A ';' inside a quoted argument is no target.
    const quoted = semi !== -1 && element.indexOf('"') !== -1 && element.indexOf('"') < semi && element.lastIndexOf('"') > semi;
    const target = semi === -1 || quoted ? undefined : element.slice(semi + 1).trim().toLowerCase();
    if (target !== undefined && target !== device) continue;
    const directive = target === undefined ? element : element.slice(0, semi);
    const one = parseDirectives(directive);
    for (const [name, arg] of one.values) if (!values.has(name)) values.set(name, arg);
  }
  return values.size === 0 ? undefined : { values, repeated: NONE.repeated };
}

export interface TargetedFields {
  /** Read CDN-Cache-Control (RFC 9213) after Tiercache-Cache-Control. */
  readonly cdnCacheControl: boolean;
  /** Read Surrogate-Control addressed to this device name (undefined: not at all). */
  readonly surrogate: string | undefined;
}

/** The directives that govern caching a response: a valid targeted field first (RFC 9213), else Cache-Control. */
export function responseDirectives(headers: OutgoingHttpHeaders, targeted: TargetedFields): Directives {
  const own = headers[TIERCACHE_CACHE_CONTROL];
  if (own !== undefined) {
    const parsed = parseTargeted(own as FieldValue);
    if (parsed !== undefined) return parsed;
  }
  if (targeted.cdnCacheControl) {
    const cdn = headers[CDN_CACHE_CONTROL];
    if (cdn !== undefined) {
      const parsed = parseTargeted(cdn as FieldValue);
      if (parsed !== undefined) return parsed;
    }
  }
  if (targeted.surrogate !== undefined) {
    const surrogate = headers[SURROGATE_CONTROL];
    if (surrogate !== undefined) {
      const parsed = surrogateDirectives(surrogate as FieldValue, targeted.surrogate);
      if (parsed !== undefined) return parsed;
    }
  }
  return parseDirectives(headers['cache-control'] as FieldValue);
}
