// Keys (and variants) whose answer was last seen too large to store, and the
// paths they are on, as one instance learned them. A fill sets a request's
// conditionals aside so the app answers in full; for an answer that is never
// stored, that made every revalidation produce the whole body (a file read at
// disk speed) for a 304 the app alone gives without it. A conditional miss
// for a key or path known here keeps its conditionals instead (see
// FillCapture): the path too, since a query the app ignores (`?x=1`, `?x=2`)
// makes a new key of the same file for every request; per user on a
// user-scoped route, as its keys are (what one user's answers are is not
// told to another). A path is known only to requests whose conditionals one
// of its large answers meets (its ETag, its Last-Modified): they revalidate
// that answer, under whatever key, and set aside they would have the app read
// it whole for the cache's 304. Others on the path (a small page of a list
// with one page too large) are set aside and filled as before: kept, the app
// answered them with its own 304, nothing was stored, and every revalidation
// of them ran the app while one large answer an hour kept the path known.
// A date says less than a tag: a revalidation dated on or after a large
// answer's Last-Modified is met by it, whichever answer on the path it
// revalidates (a small page dated later too), so the app's own 304 to it
// tells which: dated as none of the path's large answers, its key's next
// conditional miss is set aside and filled (`fits`); dated as one, nothing is
// learned (a client choosing new queries and later dates reads nothing).
// Consulted on misses only, never on a hit; bounded in count (the least
// recently learned go first), in length (what the app or a client chose is
// held as a digest past a bound) and in time, so an answer that fits again is
// tried again.
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { variantKey, varyValue } from '../keys/request-key.js';
import { splitList } from '../keys/header-list.js';
import { isNotModified, opaqueTag, type Conditions } from './conditional.js';
import { parseHttpDate } from './http-date.js';

/** The validators of an answer too large to store, as its head gave them. */
export interface Validators {
  readonly etag: string | undefined;
  readonly lastModified: string | undefined;
}

/** The validators of an answer's head. */
export function validatorsOf(headers: OutgoingHttpHeaders): Validators {
  const { etag, 'last-modified': lastModified } = headers;
  return { etag: etag === undefined ? undefined : String(etag), lastModified: lastModified === undefined ? undefined : String(lastModified) };
}

/** What is known of a path: until when, and the earliest Last-Modified of its answers too large (their ETags: `tags`, their dates: `dates`). */
interface PathMark {
  readonly until: number;
  /** In ms; undefined: none was a date. */
  readonly lastModified: number | undefined;
}

/** Keys (and variants), and paths, known at most, per middleware: a client can make many distinct keys too large. */
export const OVERSIZED_KEYS = 1_024;

/** Longest path learned, with its user's id (a key is bounded already, a path and an id are not): 1,024 of them take ~0.5 MiB at most. */
export const OVERSIZED_MAX_PATH = 512;

/**
 * Longest entity tag held as given (its opaque part); a longer one is held as its SHA-256: the app (or an
 * upstream it proxies) chooses its tags, and 1,024 of 64 KiB held 64 MiB. Common tags are far shorter
 * (Express's 30-40 characters, a quoted SHA-256 in hex 66).
 */
export const OVERSIZED_MAX_TAG = 128;

/**
 * Most entity tags of a revalidation looked up; a longer list is taken as met, as `*` is (its conditionals kept:
 * the app answers them, nothing is stored). No client revalidates that many answers at once; each one looked up
 * costs a key of the path (up to OVERSIZED_MAX_PATH) and the tag: a hostile list of thousands, milliseconds.
 */
export const OVERSIZED_TAGS_ASKED = 32;

/** Most characters of Vary names held for a key; past it the key is held for all its variants, as for `Vary: *`. */
export const OVERSIZED_MAX_VARY = 256;

/** What is learned holds this long at most (and the route's TTL at most): long enough to matter, short enough to retry. */
export const OVERSIZED_FOR_MS = 60 * 60 * 1000;

export class OversizedAnswers {
  /** By key: the request fields its too-large answer varied on (Vary), which tell its variants apart. */
  private readonly varyOn = new Map<string, readonly string[]>();
  /** By key, or by variant where the answer varied: until when it is known too large. */
  private readonly until = new Map<string, number>();
  /** By route path (normalised), and user on a user-scoped route: some answer on it known too large. */
  private readonly paths = new Map<string, PathMark>();
  /**
   * By path (as `paths`) and ETag (opaque part, see tagOf): until when an answer with it was too large there.
   * Each one: a path with two large answers (two variants, two files chosen by query) keeps the revalidations
   * of both; with the last one's alone, a client alternating them had every request read one whole.
   */
  private readonly tags = new Map<string, number>();
  /**
   * By path and Last-Modified (see dateOf), as `tags`: the app's 304 dated as one of them revalidates a large
   * answer. (The path's earliest alone would take a later large answer's 304 for a small page's, and have
   * it read whole, once per new query.)
   */
  private readonly dates = new Map<string, number>();
  /**
   * By key: until when its answer is known to be none of its path's large ones (the app's 304 said so): its
   * conditional misses are set aside and filled though the path's earliest date meets them.
   */
  private readonly fits = new Map<string, number>();

  /**
   * Whether the answer to this request was too large to store, as learned and still held at `now`: of its
   * key (and variant), or the answer on its path (for its user, `user` given) that its `conditions` revalidate.
   */
  known(key: string, path: string, user: string | undefined, headers: IncomingHttpHeaders, conditions: Conditions, now: number): boolean {
    const names = this.varyOn.get(key);
    if (names !== undefined && held(this.until, variantOf(key, names, headers), now)) return true;
    if (held(this.fits, key, now)) return false;
    const at = pathOf(path, user);
    if (at === undefined) return false;
    const mark = this.paths.get(at);
    if (mark === undefined) return false;
    if (mark.until <= now) {
      this.paths.delete(at);
      return false;
    }
    // Met (as the cache's 304 judges) by a large answer, set aside they would have the app read it whole for
    // that 304; met by none, its 200 goes whole to the client at the client's pace, or a small one is stored.
    if (conditions.ifNoneMatch === undefined) return isNotModified(conditions, undefined, mark.lastModified);
    const tags = splitList(conditions.ifNoneMatch, false);
    if (tags.length > OVERSIZED_TAGS_ASKED) return true;
    for (const tag of tags) {
      if (tag === '*' || held(this.tags, tagOf(at, tag), now)) return true;
    }
    return false;
  }

  /** The answer to this request was too large to store, at `now`. `names`: the request fields it varied on. */
  learn(key: string, path: string, user: string | undefined, names: readonly string[], headers: IncomingHttpHeaders, validators: Validators, until: number, now: number): void {
    const on = names.reduce((n, name) => n + name.length, 0) > OVERSIZED_MAX_VARY ? [] : names;
    latest(this.varyOn, key, on);
    latest(this.until, variantOf(key, on, headers), until);
    this.fits.delete(key);
    const at = pathOf(path, user);
    if (at === undefined) return;
    // The earliest while the path is held: a date between two answers' would have the earlier read whole. Not
    // one whose time is up (a mark is dropped only when asked about): it would keep conditionals no answer held meets.
    const date = validators.lastModified === undefined ? NaN : parseHttpDate(validators.lastModified);
    const mark = this.paths.get(at);
    const earlier = mark !== undefined && mark.until > now ? mark.lastModified : undefined;
    const lastModified = Number.isNaN(date) ? earlier : earlier === undefined ? date : Math.min(earlier, date);
    latest(this.paths, at, { until, lastModified });
    if (validators.etag !== undefined) latest(this.tags, tagOf(at, validators.etag), until);
    if (!Number.isNaN(date)) latest(this.dates, dateOf(at, date), until);
  }

  /**
   * The app answered this request's conditionals itself with a 304 whose validators are `validators`.
   * Kept for its key (and variant): nothing new about its size, but what was learned of it holds longer.
   * Kept for its path alone: the 304 names the answer revalidated. One of the path's large answers (its
   * ETag or Last-Modified learned there): nothing is learned, and whatever the query, the next keeps its
   * conditionals. None of them: a small answer a date met (a page dated after the large one), or a large one
   * not learned here yet; its key's next conditional miss is set aside and filled, stored when it fits,
   * learned when it does not (once). What was learned of the path is not renewed: it runs out, and the next
   * answer too large teaches it again.
   */
  notModified(key: string, path: string, user: string | undefined, headers: IncomingHttpHeaders, validators: Validators, until: number, now: number): void {
    const names = this.varyOn.get(key);
    if (names !== undefined) {
      const at = variantOf(key, names, headers);
      if (this.until.has(at)) return latest(this.until, at, until);
    }
    const at = pathOf(path, user);
    if (at === undefined) return;
    const { etag, lastModified } = validators;
    const date = lastModified === undefined ? NaN : parseHttpDate(lastModified);
    // A 304 without a validator names no answer.
    if (etag === undefined && Number.isNaN(date)) return;
    if (etag !== undefined && held(this.tags, tagOf(at, etag), now)) return;
    if (!Number.isNaN(date) && held(this.dates, dateOf(at, date), now)) return;
    latest(this.fits, key, until);
  }

  /**
   * The answer to this request was stored: its variant is no longer known too large. Its path still is,
   * until its time is up (another key on it may be the large one; a conditional miss there meanwhile
   * goes to the app, which answers it, and is stored when it answers 200).
   */
  forget(key: string, headers: IncomingHttpHeaders): void {
    const names = this.varyOn.get(key);
    if (names !== undefined) this.until.delete(variantOf(key, names, headers));
  }

  /** How many keys (and variants) and paths are known (for tests of the bound). */
  get size(): { readonly keys: number; readonly paths: number } {
    return { keys: this.until.size, paths: this.paths.size };
  }
}

/**
 * The entry of an entity tag on a path (`at`): its opaque part, or past OVERSIZED_MAX_TAG its digest ('#'
 * and base64url: an opaque tag starts with '"', and a malformed one equal to a digest only keeps
 * conditionals, which the app answers). No header value holds '\n'.
 */
function tagOf(at: string, etag: string): string {
  const tag = opaqueTag(etag);
  return at + '\n' + (tag.length <= OVERSIZED_MAX_TAG ? tag : '#' + createHash('sha256').update(tag).digest('base64url'));
}

/** The entry of a Last-Modified (in ms) on a path (`at`). */
function dateOf(at: string, date: number): string {
  return at + '\n' + date;
}

/** Whether `map` holds `key` past `now`; an entry whose time is up is dropped. */
function held(map: Map<string, number>, key: string, now: number): boolean {
  const until = map.get(key);
  if (until === undefined) return false;
  if (until > now) return true;
  map.delete(key);
  return false;
}

/** Sets `key` as the most recent in `map` (a Map keeps insertion order), dropping the oldest past the bound. */
function latest<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > OVERSIZED_KEYS) map.delete(map.keys().next().value!);
}

/**
 * The path's entry: for a user, prefixed with the id and its length (any character may be in an id).
 * undefined past OVERSIZED_MAX_PATH with the id: an id is the app's (a token, a header's value) and as
 * long as a request's head allows; 1,024 of those held 16 MiB.
 */
function pathOf(path: string, user: string | undefined): string | undefined {
  if (path.length + (user === undefined ? 0 : user.length) > OVERSIZED_MAX_PATH) return undefined;
  return user === undefined ? path : `${user.length}:${user}${path}`;
}

function variantOf(key: string, names: readonly string[], headers: IncomingHttpHeaders): string {
  return names.length === 0 ? key : variantKey(key, names.map((n): [string, string | undefined] => [n, varyValue(headers, n)]));
}
