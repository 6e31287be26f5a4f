// Keys (and variants) whose answer was last seen too large to store, as one
// instance learned them. A fill sets a request's conditionals aside so the
// app answers in full; for an answer that is never stored, that made every
// revalidation produce the whole body (a file read at disk speed) for a 304
// the app alone gives without it. A conditional miss for a key known here
// keeps its conditionals instead (see FillCapture). Consulted on misses only,
// never on a hit; bounded in count (the least recently learned go first) and
// in time, so a key that fits again is tried again.
import type { IncomingHttpHeaders } from 'node:http';
import { variantKey, varyValue } from '../keys/request-key.js';

/** Keys (and variants) known at most, per middleware: a client can make many distinct keys too large. */
export const OVERSIZED_KEYS = 1_024;

/** What is learned holds this long at most (and the route's TTL at most): long enough to matter, short enough to retry. */
export const OVERSIZED_FOR_MS = 60 * 60 * 1000;

export class OversizedAnswers {
  /** By key: the request fields its too-large answer varied on (Vary), which tell its variants apart. */
  private readonly varyOn = new Map<string, readonly string[]>();
  /** By key, or by variant where the answer varied: until when it is known too large. */
  private readonly until = new Map<string, number>();

  /** Whether the answer to this request (its key, and its variant) was too large to store, as learned and still held at `now`. */
  known(key: string, headers: IncomingHttpHeaders, now: number): boolean {
    const names = this.varyOn.get(key);
    if (names === undefined) return false;
    const at = variantOf(key, names, headers);
    const until = this.until.get(at);
    if (until === undefined) return false;
    if (until > now) return true;
    this.until.delete(at);
    return false;
  }

  /** The answer to this request was too large to store. `names`: the request fields it varied on; undefined: as learned before. */
  learn(key: string, names: readonly string[] | undefined, headers: IncomingHttpHeaders, until: number): void {
    const on = names ?? this.varyOn.get(key) ?? [];
    latest(this.varyOn, key, on);
    latest(this.until, variantOf(key, on, headers), until);
  }

  /** The answer to this request was stored: its variant is no longer known too large. */
  forget(key: string, headers: IncomingHttpHeaders): void {
    const names = this.varyOn.get(key);
    if (names !== undefined) this.until.delete(variantOf(key, names, headers));
  }

  /** How many keys and variants are known (for tests of the bound). */
  get size(): number {
    return this.until.size;
  }
}

/** Sets `key` as the most recent in `map` (a Map keeps insertion order), dropping the oldest past the bound. */
function latest<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > OVERSIZED_KEYS) map.delete(map.keys().next().value!);
}

function variantOf(key: string, names: readonly string[], headers: IncomingHttpHeaders): string {
  return names.length === 0 ? key : variantKey(key, names.map((n): [string, string | undefined] => [n, varyValue(headers, n)]));
}
