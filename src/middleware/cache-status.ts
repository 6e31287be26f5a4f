// Cache-Status header values (RFC 9211), built once. Every answer the cache
// did not serve, or did not store, says why in `detail`, with a token from
// the fixed lists below (README: "Why is this not cached?"). The field is a
// list, one member per cache, the one closest to the origin first (§2): an
// upstream's members (an origin behind a CDN or Varnish that the app proxies)
// are kept, stored with the answer, and ours follows them.
import type { OutgoingHttpHeader, ServerResponse } from 'node:http';
import { outgoingField } from './outgoing-field.js';

export const CACHE_STATUS = 'cache-status';
export const HIT_L1 = 'tiercache; hit; detail=L1';
export const HIT_L2 = 'tiercache; hit; detail=L2';
export const MISS = 'tiercache; fwd=miss';
export const MISS_STORED = 'tiercache; fwd=miss; stored';
export const MISS_COLLAPSED = 'tiercache; fwd=miss; collapsed';
export const BYPASS = 'tiercache; fwd=bypass';
/**
 * Origin mode, a revalidation (RFC 9211): `fwd=stale` for a stale entry, `fwd=request` for a fresh
 * one the request asked to revalidate, with the status the handler answered and whether it was stored.
 */
export function forwardedStatus(why: 'stale' | 'request', status: number, stored: boolean): string {
  return `tiercache; fwd=${why}; fwd-status=${status}${stored ? '; stored' : ''}`;
}

/**
 * Origin mode, a revalidation whose answer is not stored, and why: forwarded as any revalidation (a
 * response was found, so no `fwd=miss`, RFC 9211 §2.2), with the `detail` a miss would give.
 */
export function forwardedUnstored(why: 'stale' | 'request', status: number, reason: MissReason): string {
  return `${forwardedStatus(why, status, false)}; detail=${reason}`;
}

/** A stale entry revalidated with a 304 and served. */
export const REVALIDATED = forwardedStatus('stale', 304, true);

/**
 * Why a request was neither served from nor stored in the cache
 * (`fwd=bypass`). The first ten are always said (`app`: the middleware's
 * `bypass(req)` option asked for it); the last four only with
 * `cacheStatus: 'verbose'`, since they concern requests the cache was never
 * meant to handle.
 */
export const BYPASS_REASONS = ['authorization', 'cookie', 'access-token', 'method-override', 'body', 'authority', 'path', 'app', 'range', 'precondition', 'no-rule', 'method', 'disabled', 'closed'] as const;
export type BypassReason = (typeof BYPASS_REASONS)[number];

/** Bypass reasons said only with `cacheStatus: 'verbose'`. */
export const QUIET_BYPASS_REASONS: ReadonlySet<BypassReason> = new Set(['no-rule', 'method', 'disabled', 'closed']);

/** Why an answer the handler produced (`fwd=miss`) was not stored. */
export const MISS_REASONS = ['set-cookie', 'no-store', 'private', 'no-cache', 'vary-star', 'status', 'too-large', 'truncated', 'invalidated', 'expired', 'head', 'request-no-store', 'waited', 'authorization', 'trailer', 'unreachable', 'target'] as const;
export type MissReason = (typeof MISS_REASONS)[number];

const bypassValues = new Map<string, string>(BYPASS_REASONS.map((r) => [r, `${BYPASS}; detail=${r}`]));
const missValues = new Map<string, string>(MISS_REASONS.map((r) => [r, `${MISS}; detail=${r}`]));

/** `tiercache; fwd=bypass; detail=<reason>`. */
export function bypassStatus(reason: BypassReason): string {
  return bypassValues.get(reason)!;
}

/** `tiercache; fwd=miss; detail=<reason>` (not stored, and why). */
export function missStatus(reason: MissReason): string {
  return missValues.get(reason)!;
}

/**
 * Origin mode, a request with `only-if-cached` that nothing stored fits: the cache answers 504 by itself.
 * Nothing went forward (RFC 9211 §2.2: no `fwd`) and nothing was served from the cache (no `hit`).
 */
export const ONLY_IF_CACHED = 'tiercache; detail=only-if-cached';

/** A stale answer: `ttl` is the negative remaining freshness in whole seconds (at least -1). */
export function staleHit(tier: 'L1' | 'L2', secondsPastFresh: number): string {
  return `tiercache; hit; ttl=${-Math.max(1, Math.ceil(secondsPastFresh))}; detail=${tier}`;
}

/**
 * Origin mode: a fresh entry served because the revalidation the request
 * asked for (no-cache, max-age=0) failed with `status`. Forwarded, so no
 * `hit` (RFC 9211 §2.1); `ttl` is its remaining freshness in whole seconds.
 */
export function freshAfterFailedRefresh(tier: 'L1' | 'L2', status: number, secondsLeft: number): string {
  return `tiercache; fwd=request; fwd-status=${status}; ttl=${Math.floor(secondsLeft)}; detail=${tier}`;
}

/** Where a layer keeps the Cache-Status it said before the app ran (see sayBeforeApp). */
const SAID_BEFORE_APP = Symbol('tiercache.saidBeforeApp');

/**
 * Sets the Cache-Status of an answer the app is about to make (a bypass, an
 * answer that will not be stored), noting it as ours: a layer further in that
 * fills the request finds it on the response, and must not take it for an
 * upstream cache's member (see upstreamStatus).
 */
export function sayBeforeApp(res: ServerResponse, value: string): void {
  res.setHeader(CACHE_STATUS, value);
  (res as unknown as Record<symbol, string | undefined>)[SAID_BEFORE_APP] = value;
}

/** What a layer of ours said before the app ran (sayBeforeApp), while it stands; else undefined. */
export function saidBeforeApp(res: ServerResponse): string | undefined {
  return (res as unknown as Record<symbol, string | undefined>)[SAID_BEFORE_APP];
}

/**
 * The Cache-Status the handler's answer came with (an upstream cache's
 * members, proxied through), as set on `res`, for the layer that fills. What
 * a layer of ours said before the app ran (sayBeforeApp) is no upstream's:
 * it is taken off, since the layer that fills speaks for the cache now. Nor
 * is a value still as it was when the fill began (`inFront`: set by a
 * middleware in front of the cache, closer to the client than ours): it is
 * neither stored nor put before ours, and ours replaces it, as it always did;
 * to such a value the handler may have appended (res.append): the lines it
 * added are the upstream's, the front layer's are taken off.
 */
export function upstreamStatus(res: ServerResponse, inFront: unknown): string | string[] | undefined {
  const said = forgetSaid(res);
  const value = outgoingField(res, CACHE_STATUS);
  if (value === undefined) return undefined;
  if (said === undefined) {
    if (value === inFront) return undefined;
    const appended = appendedTo(value, inFront) ?? prependedTo(value, inFront);
    if (appended === undefined) return typeof value === 'number' ? String(value) : value;
    // The front layer's members alone (set again as a copy, or joined with a trailing comma): no upstream's.
    if (appended.length === 0) return undefined;
    return keepOnly(res, appended);
  }
  // Set over ours, or appended to it (the handler's own members): ours taken out either way.
  const upstream = membersBut(value, said);
  if (upstream.length === 0) {
    res.removeHeader(CACHE_STATUS);
    return undefined;
  }
  return keepOnly(res, upstream);
}

/** Leaves `lines` (at least one) as the response's Cache-Status; returns the value set. */
function keepOnly(res: ServerResponse, lines: string[]): string | string[] {
  const kept = lines.length === 1 ? lines[0]! : lines;
  res.setHeader(CACHE_STATUS, kept);
  return kept;
}

/** What appDone read: nothing yet (see FillCapture.appDone). */
export const NOT_READ: unique symbol = Symbol('tiercache.notRead');

/**
 * The answer's Cache-Status put back as the app left it (`fromApp`, read once
 * the layers further in were done: Koa writes the head only after every
 * middleware has run). A layer in front that set or added a member after
 * next() is no upstream cache: its member, taken for one, was stored with the
 * entry and replayed, before ours, to every later client. It goes, as it goes
 * on hits (written over by the stored fields). One that removed the field
 * (upstream internals hidden from clients) is left so: nothing is stored.
 */
export function asTheAppLeftIt(res: ServerResponse, fromApp: OutgoingHttpHeader | undefined | typeof NOT_READ): void {
  if (fromApp === NOT_READ) return;
  const now = outgoingField(res, CACHE_STATUS);
  if (now === fromApp || now === undefined) return;
  if (fromApp === undefined) res.removeHeader(CACHE_STATUS);
  else res.setHeader(CACHE_STATUS, fromApp);
}

/**
 * The answer's Cache-Status as an app that answers by itself later (Koa:
 * ctx.respond = false, then a write once its middleware are done) leaves it:
 * what a layer in front changed between the app's return (`atAppDone`) and
 * Koa's read of ctx.respond (`atChainEnd`), its code after next(), is that
 * layer's, taken for an upstream's it was stored and replayed. It is put back
 * to what the app had set, with what the app added to it since; a value the
 * app set anew is its own, and a field the layer in front removed stays so.
 */
export function asTheAppAnsweredLate(res: ServerResponse, atAppDone: OutgoingHttpHeader | undefined, atChainEnd: OutgoingHttpHeader | undefined): void {
  if (atChainEnd === undefined || (atAppDone !== undefined && linesOf(atAppDone).join('\n') === linesOf(atChainEnd).join('\n'))) return;
  const now = outgoingField(res, CACHE_STATUS);
  if (now === undefined) return;
  const added = appendedTo(now, atChainEnd);
  if (added === undefined) return;
  const lines = atAppDone === undefined ? added : [...linesOf(atAppDone), ...added];
  if (lines.length === 0) res.removeHeader(CACHE_STATUS);
  else keepOnly(res, lines);
}

/**
 * A layer of ours writes the answer's Cache-Status after the app ran (a fill,
 * a hit written field by field): what an outer layer said before is no
 * longer the cache's word. Returns it.
 */
export function forgetSaid(res: ServerResponse): string | undefined {
  const holder = res as unknown as Record<symbol, string | undefined>;
  const said = holder[SAID_BEFORE_APP];
  if (said !== undefined) holder[SAID_BEFORE_APP] = undefined;
  return said;
}

/**
 * For an answer the cache does not capture (a bypass, a HEAD miss), as its
 * head goes out: when the handler set a Cache-Status of its own over the one
 * we said before it ran (an upstream's, proxied through), ours follows it
 * instead of being lost. A handler that removed the field is left so.
 */
export function keepSaidAfterUpstream(res: ServerResponse): void {
  const said = (res as unknown as Record<symbol, string | undefined>)[SAID_BEFORE_APP];
  if (said === undefined) return;
  const value = res.getHeader(CACHE_STATUS);
  if (value === undefined || value === said) return;
  const upstream = membersBut(value, said);
  if (upstream.length > 0) res.setHeader(CACHE_STATUS, [...upstream, said]);
}

/**
 * The lines of `value` that follow those of `front` when it begins with them
 * all (appended to it; none when it holds only them), else undefined. Also when the handler joined the field
 * by hand (`prev + ', ' + theirs`, as a list's members may be), then perhaps
 * appended more lines: what follows `front`'s members and a comma then.
 */
function appendedTo(value: OutgoingHttpHeader, front: unknown): string[] | undefined {
  if (front === undefined) return undefined;
  const lines = linesOf(front);
  const values = linesOf(value);
  // values[i] from offset `at`: where the next of front's members must begin.
  let i = 0;
  let at = 0;
  for (const line of lines) {
    const text = values[i];
    if (text === undefined || !text.startsWith(line, at)) return undefined;
    const after = joinedAt(text, at + line.length);
    if (after === undefined) return undefined;
    if (after === text.length) {
      i++;
      at = 0;
    } else at = after;
  }
  return at === 0 ? values.slice(i) : [values[i]!.slice(at), ...values.slice(i + 1)];
}

/** A field value (or the value a layer in front set) as its lines, each as text. */
function linesOf(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [String(value)];
}

/**
 * The lines of `value` before those of `front` when it ends with them all:
 * the upstream's members joined or set before the value in front (RFC 9211
 * order, the origin's side first: `theirs + ', ' + prev`); else undefined.
 */
function prependedTo(value: OutgoingHttpHeader, front: unknown): string[] | undefined {
  if (front === undefined) return undefined;
  const lines = linesOf(front);
  const values = linesOf(value);
  // values[i] up to offset `end`: where the previous of front's members must end.
  let i = values.length - 1;
  let end = i < 0 ? 0 : values[i]!.length;
  for (let l = lines.length - 1; l >= 0; l--) {
    const text = values[i];
    const member = lines[l]!;
    if (text === undefined || !text.slice(0, end).endsWith(member)) return undefined;
    const before = joinedBefore(text, end - member.length);
    if (before === undefined) return undefined;
    if (before === 0) {
      i--;
      end = i < 0 ? 0 : values[i]!.length;
    } else end = before;
  }
  return end === (values[i]?.length ?? 0) ? values.slice(0, i + 1) : [...values.slice(0, i), values[i]!.slice(0, end)];
}

/** Where the member before `at` in `text` ends: 0 at the line's start, or before a comma (whitespace around it allowed); undefined when neither. */
function joinedBefore(text: string, at: number): number | undefined {
  if (at === 0) return 0;
  while (text[at - 1] === ' ' || text[at - 1] === '\t') at--;
  if (text[at - 1] !== ',') return undefined;
  at--;
  while (text[at - 1] === ' ' || text[at - 1] === '\t') at--;
  return at;
}

/** Where the next member begins past `at` in `text`: its end, or past a comma (whitespace around it allowed); undefined when neither follows. */
function joinedAt(text: string, at: number): number | undefined {
  if (at === text.length) return at;
  while (text[at] === ' ' || text[at] === '\t') at++;
  if (text[at] !== ',') return undefined;
  at++;
  while (text[at] === ' ' || text[at] === '\t') at++;
  return at;
}

/** What follows `said` then a comma (whitespace around it allowed) in `text`, perhaps nothing; undefined when `text` is not so. */
function joinedAfter(text: string, said: string): string | undefined {
  if (!text.startsWith(said)) return undefined;
  const at = joinedAt(text, said.length);
  return at === undefined || at === said.length ? undefined : text.slice(at);
}

/** What precedes a comma then `said` (whitespace around the comma allowed) at the end of `text`; undefined when `text` is not so. */
function joinedBeforeSaid(text: string, said: string): string | undefined {
  if (!text.endsWith(said)) return undefined;
  const at = joinedBefore(text, text.length - said.length);
  return at === undefined || at === text.length - said.length ? undefined : text.slice(0, at);
}

/**
 * The field lines of a Cache-Status value on a response, but the one a layer
 * of ours said (sayBeforeApp); also where the handler joined its own to ours
 * by hand (`ours + ', ' + theirs`): ours is never stored as an upstream's.
 */
function membersBut(value: OutgoingHttpHeader, said: string): string[] {
  const out: string[] = [];
  for (const line of linesOf(value)) {
    const theirs = line === said ? '' : (joinedAfter(line, said) ?? joinedBeforeSaid(line, said) ?? line);
    if (theirs !== '') out.push(theirs);
  }
  return out;
}

/** `ours` as the last member after the upstream's field lines, kept as they came (RFC 9211 §2). */
export function afterUpstream(upstream: OutgoingHttpHeader | undefined, ours: string): string | string[] {
  if (upstream === undefined) return ours;
  return Array.isArray(upstream) ? [...(upstream as string[]), ours] : [String(upstream), ours];
}
