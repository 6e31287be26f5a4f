// Cache-Control as RFC 9111 §5.2 and §4.2.1 read it for origin mode: the
// first occurrence of a directive counts (a later repetition is remembered,
// so that freshness can be judged stale instead), arguments may be tokens or
// quoted strings, and a delta-seconds argument that is not 1*DIGIT is
// invalid. The targeted fields of RFC 9213 (`Tiercache-Cache-Control`,
// optionally `CDN-Cache-Control`) are Structured Field dictionaries: when one
// parses, it replaces Cache-Control for every caching decision.
import type { OutgoingHttpHeaders } from 'node:http';
import { splitList, unquote, type FieldValue } from '../../keys/header-list.js';
import { parseDictionary, type Member } from './structured-dictionary.js';

export interface Directives {
  /** Directive name (lower case) to its first argument ('' when it had none). */
  readonly values: ReadonlyMap<string, string>;
  /** Directives that appeared more than once, with another argument than the first. */
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
    const value = eq === -1 ? '' : unquote(element.slice(eq + 1));
    const first = values.get(name);
    if (first === undefined) values.set(name, value);
    // The same directive twice with the same value says nothing new (a framework and a proxy both set it).
    else if (first !== value) (repeated ??= new Set()).add(name);
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
  const names = splitList(raw);
  // The qualified form lists one or more names (§5.2.2.4, §5.2.2.7): `private=","` names none, and
  // read as a list it would free the whole answer, so it is the bare directive.
  return names.length === 0 ? undefined : names.map((n) => n.toLowerCase());
}

/** Directives whose Cache-Control argument is delta-seconds: an Integer in a targeted field. */
const DELTA_DIRECTIVES = new Set(['max-age', 's-maxage', 'stale-while-revalidate', 'stale-if-error']);
/** Directives without an argument: a Boolean in a targeted field. */
const FLAG_DIRECTIVES = new Set(['no-store', 'public', 'must-revalidate', 'proxy-revalidate', 'must-understand', 'no-transform', 'immutable']);
/** Directives with an optional list of field names: true, or a String of names. */
const LISTING_DIRECTIVES = new Set(['no-cache', 'private']);

/**
 * A directive's argument as Cache-Control would give it ('' for none), or
 * undefined when the member's type is not the one its Cache-Control syntax
 * implies: RFC 9213 §2.1 says not to use such a value (`max-age=1.5`,
 * `max-age="60"`, `no-store=?0`, `private=("a" "b")`).
 */
function argumentOf(name: string, member: Member): string | undefined {
  if (member.type === 'boolean') return member.value ? '' : undefined;
  if (DELTA_DIRECTIVES.has(name)) return member.type === 'integer' && member.value >= 0 ? String(member.value) : undefined;
  if (FLAG_DIRECTIVES.has(name)) return undefined;
  if (LISTING_DIRECTIVES.has(name)) return member.type === 'string' ? member.value : undefined;
  return member.type === 'inner-list' ? undefined : String(member.value);
}

/** A targeted field as an RFC 8941 dictionary, or undefined when it does not parse (then it is ignored, RFC 9213 §2.1). */
function parseTargeted(value: FieldValue): Directives | undefined {
  const members = parseDictionary(Array.isArray(value) ? value.join(', ') : String(value));
  if (members === undefined || members.size === 0) return undefined;
  const values = new Map<string, string>();
  for (const [name, member] of members) {
    const argument = argumentOf(name, member);
    if (argument !== undefined) values.set(name, argument);
  }
  return { values, repeated: NONE.repeated };
}

export const TIERCACHE_CACHE_CONTROL = 'tiercache-cache-control';
export const CDN_CACHE_CONTROL = 'cdn-cache-control';
export const SURROGATE_CONTROL = 'surrogate-control';

/**
 * Directives that say how long or whether to store: only a Surrogate-Control holding one replaces
 * Cache-Control. An ESI marker alone (`content="ESI/1.0"`), or an extension, says nothing about
 * storing, and would otherwise set aside the origin's `private` or `no-store`.
 */
const SURROGATE_CACHING = new Set(['max-age', 's-maxage', 'no-store', 'no-cache', 'private', 'public', 'must-revalidate', 'proxy-revalidate', 'must-understand', 'stale-while-revalidate', 'stale-if-error']);

/**
 * Surrogate-Control (W3C Edge Architecture 1.0): the directives addressed to
 * every surrogate or, after a ';', to the one named `device`; undefined when
 * none addressed to us says how to store (see SURROGATE_CACHING).
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
  for (const name of values.keys()) if (SURROGATE_CACHING.has(name)) return { values, repeated: NONE.repeated };
  return undefined;
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
