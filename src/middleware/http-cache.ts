// The framework-neutral HTTP cache: plan the request (rule, TTL, key, bypass),
// serve from L1 / L2, or run the handler once per key (coalescing) while
// capturing its answer, store it in both tiers before the answer ends, and
// hand it to the requests that waited. The adapters (express.ts, koa.ts) only
// translate their request objects and "run the rest of the app" into this.
import type { IncomingMessage, OutgoingHttpHeader, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { TierCache } from '../cache/tier-cache.js';
import { isThenable } from '../cache/thenable.js';
import { buildRequestKey, REQUEST_KEY, requestHeader, requestHost, variantKey, varyValue } from '../keys/request-key.js';
import { normalizeRoutePath, pathOf } from '../keys/path-normalize.js';
import { exactPathTag, implicitTags, keyTag, userTag, wellFormedTag } from '../keys/tags.js';
import { jitteredTtl } from '../keys/jitter.js';
import { MAX_TIMER_MS } from '../keys/duration.js';
import { splitList, unquote } from '../keys/header-list.js';
import type { FillStamp, StoredEntry } from '../store/entry.js';
import type { FillLock } from '../store/fill-lock.js';
import { coarseNow } from '../store/coarse-clock.js';
import { L1Store } from '../store/l1-store.js';
import { Validity } from '../store/tag-versions.js';

import { L1_ONLY, NO_TICKET, UNDECIDED, type FillLookup, type FillTicket, type FillWrite, type StoreResult, type Tier, type TieredHit } from '../store/tiered-store.js';
import { respondAsSet, type ChainEnd, type RespondWatch } from './koa-respond.js';
import { afterUpstream, asTheAppAnsweredLate, asTheAppLeftIt, BYPASS, forgetSaid, bypassStatus, forwardedStatus, forwardedUnstored, freshAfterFailedRefresh, HIT_L1, HIT_L2, MISS, MISS_COLLAPSED, MISS_STORED, missStatus, NOT_READ, ONLY_IF_CACHED, QUIET_BYPASS_REASONS, sayBeforeApp, staleHit, upstreamStatus, type BypassReason, type MissReason } from './cache-status.js';
import { captureResponse, NOT_MODIFIED, stripCacheGroups, type AnswerWriter, type BodyProblem, type CaptureHooks, type Handover, type Replacement } from './capture.js';
import { entityTag } from './entity-tag.js';
import { httpDateNow, parseHttpDate } from './http-date.js';
import { isRefresh, refreshRequest, refreshVary, REFRESH_HEADER, type Dispatch } from './refresh.js';
import { ageOf, headersFor, reasonFor, replay, type DeferredHit } from './replay.js';
import { ownOriginForm, routedOriginForm } from './request-target.js';
import { http2BodyKnown, http2BodyUnknown, http2DataFollows } from './http2-body.js';
import { conditionsOf, isNotModified, type Conditions } from './conditional.js';
import { hasOutgoingField, outgoingField, outgoingFields, sendsTrailers, setOutgoingField } from './outgoing-field.js';
import { asSent, httpValueOf, manifestEntry, ownReason, PreparedResponse, responseEntry, VaryManifest, type HttpEntryValue, type StaleRules } from './http-entry.js';
import type { ResolvedMiddlewareOptions } from './options.js';
import { hasDotSegment, requestBypassReason, requestForbidsStore, responseForbidsStore, storedHeaders, targetedForbidsStore, ttlForStatus, varyOf } from './storage-rules.js';
import { OVERSIZED_FOR_MS, OversizedAnswers, validatorsOf } from './oversized-answers.js';
import { originLife, type OriginLife } from './origin/freshness.js';
import { ForcedRefreshes, originBypassReason, originLifetimes, originPlan, revalidatable, staleRulesOf, staleWindow, Use, useOf, type OriginPlan } from './origin/policy.js';
import { addConditions, asOutgoing, refreshedFields, selectsStored } from './origin/revalidation.js';
import { CDN_CACHE_CONTROL, SURROGATE_CONTROL, TIERCACHE_CACHE_CONTROL } from './origin/directives.js';
import { HttpEvents } from '../observe/http-events.js';
import { kindsOf, middlewareBuilt, ORIGIN_KIND, ownerSeen, PASSED_OVER, PassedOver, PER_ROUTE_KIND, SCOPED_KIND } from './passed-over.js';
import type { RoutePatternOf } from '../observe/route-label.js';

/**
 * Marks a request whose answer a middleware is capturing. When a second
 * tiercache middleware (per route, inside an app-wide one) handles the same
 * request, the outer one stands down: only the innermost, most specific
 * options (user scope, tags, TTL) decide what is stored. A property, not a
 * WeakMap: side tables cost more than they save (ephemeron work at every
 * collection; measured by instruction count, bench/miss-instructions.sh).
 */
const ACTIVE_FILL = Symbol('tiercache.activeFill');
/**
 * An entry a layer further out read from L2 and passed over (see passOver),
 * with that layer's cache: its read put the entry in that cache's L1, where
 * a layer of the same cache it is left to finds it. That layer's hit is this
 * request's L2 hit, which the outer layer counted already: reported so, and
 * not counted again as an L1 hit.
 */
const PASSED_FROM_L2 = Symbol('tiercache.passedFromL2');
interface PassedFromL2 {
  readonly key: string;
  readonly cache: TierCache;
  /**
   * Where a fill's lookup found it (a variant's key behind a Vary manifest),
   * with the entry: a stale one the layer it is left to needs not read again,
   * only lock for its fill (see serveOrFill). Undefined when read otherwise.
   */
  readonly read?: PassedRead | undefined;
}
interface PassedRead {
  readonly key: string;
  readonly found: Found;
  /** The Vary manifest's names, when `key` is a variant's: what the request's headers chose it by, further out. */
  readonly vary: readonly string[] | undefined;
}
/** Which caches' middleware decide what a write invalidates (true: its target too): two mounts would invalidate twice. */
const WRITE_SEEN = Symbol('tiercache.writeSeen');
/** Set once a tiercache layer has looked at a request's refresh marker (the first one removes the header). */
const REFRESHING_SEEN = Symbol('tiercache.refreshSeen');

interface Snapshot {
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
  /** The handler's own reason phrase, when it sent one (see ownReason). */
  readonly reason?: string | undefined;
  /**
   * A layer mounted before the cache encoded the body on its way out
   * (compression()): the plain body is stored and that layer encodes each
   * middleware hit again, but the front door, which runs before it, would
   * send it plain. Such an entry is not the front door's to serve.
   */
  readonly encodedOutside?: true | undefined;
  /** `headers` as stored, where L1 alone sized the entry by them when the head was judged (fitsL1): the store takes these. */
  readonly stored?: Array<[string, string]> | undefined;
}

interface ActiveFill {
  standDown(): void;
}

/** A report that waits for the rest of the app (see HttpCache.bypass, fill): stood down by a layer further in. */
class PendingReport implements ActiveFill {
  stoodDown = false;
  standDown(): void {
    this.stoodDown = true;
  }
}

/**
 * stale-if-error for a request whose answer is not stored (a HEAD, a request
 * with no-store): the stale entry's answer in place of the handler's 5xx,
 * nothing else. Nothing waits on such a request, and nothing is kept.
 */
class StaleIfErrorGuard implements CaptureHooks, ActiveFill {
  private stoodDown = false;
  /** Version state's generation as the guard began (see staleIfErrorUntil). */
  private readonly generation: number;
  /** Redis's word on the stale entry, when the 5xx had to ask it (see hold). */
  private redisSays: boolean | undefined = undefined;

  constructor(
    private readonly http: HttpCache<never>,
    private readonly req: IncomingMessage,
    private readonly plan: Plan,
    private readonly stale: Found,
  ) {
    this.generation = http.cache.store.versions.currentGeneration();
  }

  /** A middleware further in (per route) decides for this request, its stale answers included. */
  standDown(): void {
    this.stoodDown = true;
  }

  hold(_r: ServerResponse, status: number): Promise<void> | undefined {
    if (this.stoodDown || status < 500) return undefined;
    return this.http.askBeforeStaleIfError(this.plan, this.stale, this.generation)?.then((word) => void (this.redisSays = word));
  }

  headers(r: ServerResponse): Replacement | undefined {
    if (this.stoodDown || r.statusCode < 500 || this.http.staleIfErrorUntil(this.plan, this.stale, this.generation, this.redisSays) === undefined) return undefined;
    return this.http.staleInstead(this.req, this.plan, this.stale, r.statusCode);
  }

  sent(): void {}
  unstorable(): void {}
  finish(): void {}
  abort(): void {}
}

/** Origin mode reads a response's lifetime from these too (RFC 9111 §4.2.1, RFC 9213), table mode the targeted fields' prohibitions: a hook that changes one late is judged again. */
const LATE_LIFETIME_FIELDS = ['expires', TIERCACHE_CACHE_CONTROL, CDN_CACHE_CONTROL, SURROGATE_CONTROL] as const;

function lifetimeFieldsChanged(r: ServerResponse, before: OutgoingHttpHeaders): boolean {
  for (const name of LATE_LIFETIME_FIELDS) if (outgoingField(r, name) !== before[name]) return true;
  return false;
}

/**
 * One fill's view of its response (the capture hooks): decides storability
 * on the head that goes with the captured bytes and again on the head as
 * sent, releases the fill's waiters as soon as the answer cannot be stored,
 * and stores a complete answer. One object per fill, no closures.
 */
class FillCapture implements CaptureHooks, ActiveFill, ChainEnd {
  private ttl: number | undefined = undefined;
  /** Origin mode: the stored lifetime read from the response. */
  private life: OriginLife | undefined = undefined;
  /** Origin mode: the handler runs with the stale entry's validators; a 304 refreshes it. */
  private readonly revalidating: boolean = false;
  /** A 304 refreshed the entry and its store is under way: the handler's own end stores nothing. */
  private refreshed = false;
  private lateStamp: Promise<FillStamp> | undefined = undefined;
  /** Redis is out of reach, and a request that came before the fill began waits on it: its answer is handed over, not stored. */
  private handOnly = false;
  /** A layer further in (per route) decides for this request (see HttpCache.handle). */
  stoodDown = false;
  /** Redis's word on the stale entry, when a 5xx had to ask it (see hold). */
  private redisSays: boolean | undefined = undefined;
  /** Status and headers as they went out with this body: wrappers further out (compression in front) may change them later. */
  private snapshot: Snapshot | undefined = undefined;
  /** The request's conditionals, set aside: the fill runs unconditionally, the cache answers them. */
  private readonly conditions: Conditions | undefined;
  /** Their header values, given back to the request if a layer further in stands this one down. */
  private readonly setAside: readonly [string | undefined, string | undefined] | undefined = undefined;
  /** The answer is known too large to store (see oversized-answers.ts): the conditionals stay, the app answers them. */
  private readonly keptConditions: boolean = false;
  /** A 200's head as it was judged (its Vary, its validators), for what is learned should its body outgrow the capture (see unstorable). */
  private headAt200: OutgoingHttpHeaders | undefined = undefined;
  /** The reason phrase as the head was judged: a 304 of ours (NOT_MODIFIED) replaces it before it goes out. */
  private reasonAtHead: string | undefined = undefined;
  /** The Cache-Status the handler's answer came with (an upstream cache's), which ours follows. */
  private upstream: string | string[] | undefined = undefined;
  /** Cache-Status as the app left it, when the layers further in were done before the head left (see appDone). */
  private statusFromApp: OutgoingHttpHeader | undefined | typeof NOT_READ = NOT_READ;
  /** Koa: a middleware in front had said it answers by itself before the fill began (see appDone). */
  private readonly frontAnswers: boolean;
  /** Koa, an app that answers by itself later: Cache-Status as it returned, and as Koa read ctx.respond (see appDone). */
  private late: { readonly atAppDone: OutgoingHttpHeader | undefined; atChainEnd: OutgoingHttpHeader | undefined | typeof NOT_READ } | undefined = undefined;

  constructor(
    private readonly http: HttpCache<never>,
    private readonly req: IncomingMessage,
    private readonly plan: Plan,
    private readonly stamp: FillStamp,
    private readonly flight: Flight,
    private readonly stale: Found | undefined,
    private readonly createdAt: number,
    private readonly fill: FillState,
    /** The request's full target and app, for an unconditional retry (see retry). */
    private readonly context: { readonly url: string; readonly app?: unknown; readonly arg?: unknown },
    /** Cache-Status on the response as the fill began: a layer's in front of the cache, no upstream's (see headers()). */
    private readonly statusInFront: unknown,
  ) {
    this.frontAnswers = answersItself(context.arg, true);
    this.conditions = conditionsOf(req.headers);
    const revalidates = revalidatesWith(plan, stale);
    if (this.conditions !== undefined) {
      this.setAside = [req.headers['if-none-match'], req.headers['if-modified-since']];
      // Set aside, they would have the app produce a whole body to be thrown away, never stored, for our 304
      // (fill.keeps: see HttpCache.keepsConditionals). A stale copy at hand fitted once: learned since, the
      // answer grew (kept for stale-if-error, it would otherwise be read whole for every revalidation while the
      // copy is kept). An origin asked about that copy gets its validators instead.
      if (!revalidates && fill.keeps) this.keptConditions = true;
      else {
        delete req.headers['if-none-match'];
        delete req.headers['if-modified-since'];
      }
    }
    if (revalidates) {
      addConditions(req.headers, stale.response);
      this.revalidating = true;
    }
  }

  standDown(): void {
    this.stoodDown = true;
    this.flight.settle(undefined);
    // The layer further in decides: it sees the request as it came (its conditionals, none of ours).
    const headers = this.req.headers;
    delete headers['if-none-match'];
    delete headers['if-modified-since'];
    const [inm, ims] = this.setAside ?? [];
    if (inm !== undefined) headers['if-none-match'] = inm;
    if (ims !== undefined) headers['if-modified-since'] = ims;
  }

  /** The layers further in are done (Koa: its head goes out once the middleware in front are done too). */
  appDone(r: ServerResponse): void {
    if (r.headersSent) return;
    // An app further in that answers by itself (ctx.respond = false: an Express app or a proxy handed the request) writes
    // its head when it likes, after this: the Cache-Status it sets then (an upstream's, proxied through) is its own, not a
    // front layer's. (A middleware in front that said so before the fill began writes after its own next(), as Koa would.)
    if (this.frontAnswers || !answersItself(this.context.arg)) {
      this.statusFromApp = outgoingField(r, 'cache-status');
      return;
    }
    // What a layer in front changes until Koa reads ctx.respond is that layer's: heard through the adapter (see chainEnds).
    const watch = this.http.respondWatch;
    if (watch === undefined || this.stoodDown || !watch.atChainEnd(this.context.arg, this)) return;
    this.late = { atAppDone: copyOf(outgoingField(r, 'cache-status')), atChainEnd: NOT_READ };
  }

  /** Koa read ctx.respond: the middleware in front are done too (the last read before the head counts). */
  chainEnds(r: ServerResponse): void {
    if (this.late !== undefined && !r.headersSent) this.late.atChainEnd = copyOf(outgoingField(r, 'cache-status'));
  }

  /** A 5xx with a stale entry to stand in that local state cannot vouch for waits for Redis's word (see HttpCache.askBeforeStaleIfError). */
  hold(_r: ServerResponse, status: number): Promise<void> | undefined {
    if (this.stoodDown || this.stale === undefined || status < 500) return undefined;
    return this.http.askBeforeStaleIfError(this.plan, this.stale, this.stamp.generation)?.then((word) => void (this.redisSays = word));
  }

  headers(r: ServerResponse, body: Buffer | undefined, problem?: BodyProblem, utf8Head = false): Replacement | Handover | typeof NOT_MODIFIED | undefined {
    if (this.stoodDown) return undefined;
    const { plan, stale, flight } = this;
    const cacheStatus = this.http.options.cacheStatus;
    // Read before the headers are: a Cache-Status said by a layer of ours further out is taken off the answer here,
    // and one a layer in front set after the app was done (see appDone).
    const late = this.late;
    if (late !== undefined) {
      this.late = undefined;
      // The head left before Koa read ctx.respond: a layer in front wrote it, in its code after next() (a serializer of
      // ctx.body under app.context.respond = false), and what it changed is its own, as for one that said so before next().
      if (late.atChainEnd === NOT_READ) asTheAppLeftIt(r, late.atAppDone);
      else asTheAppAnsweredLate(r, late.atAppDone, late.atChainEnd);
    }
    asTheAppLeftIt(r, this.statusFromApp);
    const upstream = (this.upstream = upstreamStatus(r, this.statusInFront));
    if (stale !== undefined && r.statusCode >= 500) {
      const until = this.http.staleIfErrorUntil(plan, stale, this.stamp.generation, this.redisSays);
      if (until !== undefined) {
        flight.settle(staleOutcome(stale, until, this.req, r.statusCode));
        return this.http.staleInstead(this.req, plan, stale, r.statusCode);
      }
    }
    if (this.revalidating && r.statusCode === 304) {
      const fields = r.getHeaders();
      // Only an upstream's Cache-Status is stored (a front layer's is not this answer's: see upstreamStatus).
      if (upstream === undefined) delete fields['cache-status'];
      if (!selectsStored(stale!.response, fields)) return this.retry();
      // node adds Date as it sends the 304: that Date replaces the stored one (§4.3.4), or the refreshed copy keeps its old age.
      if (r.sendDate && fields.date === undefined) fields.date = httpDateNow();
      return this.refresh(fields);
    }
    const rawGroups = outgoingField(r, 'cache-groups');
    if (rawGroups !== undefined) r.removeHeader('cache-groups');
    // Only an upstream's Cache-Status is stored (see upstreamStatus).
    const headers = outgoingFields(r, 'cache-groups', upstream === undefined ? 'cache-status' : undefined);
    let ttl: number | undefined;
    let reason: MissReason | undefined;
    // The app answered the conditionals it was left: why they were left is why nothing is stored. Not its 200
    // either: an answer made under a client's conditionals may be made for that client (a feed that sends only
    // what is newer than If-Modified-Since), and stored it would go to everyone. Its key is no longer known too
    // large (its validators changed): the next conditional miss there sets them aside, and fills. A 200 known too
    // large already (sent whole) is learned instead: forgotten, its next revalidation would be made whole again.
    if (this.keptConditions) {
      reason = 'too-large';
      if (r.statusCode !== 304 && problem !== 'too-large') this.http.oversized.forget(plan.key, this.req.headers);
    } else if (plan.origin === undefined) {
      ttl = ttlForStatus(r.statusCode, plan.ttl, plan.negativeTtl);
      reason = ttl === undefined ? 'status' : (problem ?? responseForbidsStore(headers, plan.userScoped) ?? targetedForbidsStore(headers, this.http.options.targeted, plan.userScoped));
    } else {
      const life = this.originLifeOf(r.statusCode, headers);
      if (typeof life === 'string') reason = life;
      else {
        this.life = life;
        ttl = life.lifetime;
        reason = problem;
      }
    }
    const versions = this.http.cache.store.versions;
    // Redis known down, and no L1 that could serve it meanwhile: stored, it would never be hit. The requests that
    // came before this fill began and wait on it take it all the same (see HttpCache.answerWaiter).
    let unkept = false;
    if (reason === undefined && !this.http.canKeep()) {
      if (flight.handsOver) this.handOnly = true;
      else {
        reason = 'unreachable';
        unkept = true;
      }
    }
    // Invalidated while the handler ran: it will not be stored, so it must not say so.
    if (reason === undefined && !versions.stillCurrent(this.stamp)) {
      reason = 'invalidated';
      // Version state reset while it ran (the bus came back, or missed a message): not known invalidated, and its
      // answer goes to nobody (UNKEPT holds none). As for `unreachable`, those waiting share one fill begun after
      // they came, or each would run the handler as Redis returns.
      if (this.stamp.generation !== versions.currentGeneration()) unkept = true;
    }
    // Slower than its own life (table mode): it would land expired, and is not stored.
    if (reason === undefined && plan.origin === undefined && this.createdAt + ttl! + Math.max(plan.staleWhileRevalidate, plan.staleIfError) <= coarseNow()) reason = 'expired';
    // Origin mode: stale on arrival (max-age=0, an Age past max-age, Expires in the past) with nothing to keep it for.
    if (reason === undefined && this.life !== undefined && this.landsExpired(this.life, headers)) reason = 'expired';
    if (reason !== undefined) ttl = undefined;
    this.ttl = ttl;
    if (r.statusCode === 200) this.headAt200 = headers;
    if (reason === 'too-large') {
      if (r.statusCode === 304) this.http.oversized.notModified(plan.key, plan.routePath, plan.user, this.req.headers, validatorsOf(headers), this.oversizedUntil(), coarseNow());
      else if (!this.keptConditions || problem === 'too-large') this.learnTooLarge(headers);
    }
    if (ttl === undefined) {
      // Those waiting could have had it but for Redis: they share one fill begun after they came instead (HttpCache.fill).
      flight.settle(unkept ? UNKEPT : undefined);
      if (cacheStatus) setOutgoingField(r, 'cache-status', afterUpstream(upstream, this.unstoredStatus(r.statusCode, reason!)));
      return this.notModifiedUnstored(r, headers);
    }
    if (rawGroups !== undefined) {
      const groups = cacheGroupsOf(rawGroups).filter((g) => !this.stamp.tags.includes(g));
      // Groups are known only now; their versions are read now (README: they may lag the fill's start).
      if (groups.length > 0) this.lateStamp = Promise.resolve(versions.stampLocally(groups) ?? versions.stamp(groups));
    }
    // The Date the stored copy replays is the one this answer carries.
    if (r.sendDate && headers.date === undefined) setOutgoingField(r, 'date', (headers.date = httpDateNow()));
    // An origin's answers keep the validators it gave (none invented: the origin could not match them).
    if (plan.origin === undefined && body !== undefined && r.statusCode === 200 && headers.etag === undefined) setOutgoingField(r, 'etag', (headers.etag = entityTag(body)));
    // With L1 alone the entry is sized now, by the fields it will hold: the store takes the same pairs.
    let stored: Array<[string, string]> | undefined;
    if (body !== undefined && !this.handOnly && this.http.l1Alone()) {
      stored = storedHeaders(headers);
      if (!this.http.fitsL1(plan, r.statusCode, stored, body, this.stamp, this.life === undefined ? undefined : staleRulesOf(this.life), this.req.httpVersionMajor < 2 ? ownReason(r.statusCode, r.statusMessage) : undefined, utf8Head)) {
        this.ttl = undefined;
        this.learnTooLarge(headers);
        flight.settle(undefined);
        if (cacheStatus) setOutgoingField(r, 'cache-status', afterUpstream(upstream, this.unstoredStatus(r.statusCode, 'too-large')));
        return this.notModifiedUnstored(r, headers);
      }
    }
    // A streamed answer (body undefined) is matched on validators the handler set before its head left: the cache's own ETag needs the whole body.
    const notModified = this.conditionsMet(r, headers);
    // A streamed body is stored only if it ends complete and within maxBodyBytes, known after the head left.
    // The snapshot (what is stored) keeps the upstream's Cache-Status alone: ours is said afresh on every answer.
    if (cacheStatus) setOutgoingField(r, 'cache-status', afterUpstream(upstream, this.handOnly ? this.unstoredStatus(r.statusCode, 'unreachable') : this.revalidating ? this.forwarded(r.statusCode, body !== undefined) : body !== undefined ? MISS_STORED : MISS));
    this.snapshot = { status: r.statusCode, headers, stored };
    // HTTP/2 has no reason phrase (node warns at a mere read of it).
    if (this.req.httpVersionMajor < 2) this.reasonAtHead = r.statusMessage;
    return notModified ? NOT_MODIFIED : undefined;
  }

  /** Whether the request's own conditionals (set aside for the fill) match this 200's validators. */
  private conditionsMet(r: ServerResponse, headers: OutgoingHttpHeaders): boolean {
    if (this.conditions === undefined || r.statusCode !== 200) return false;
    const lm = headers['last-modified'];
    const etag = headers.etag;
    return isNotModified(this.conditions, etag === undefined ? undefined : String(etag), lm === undefined ? undefined : parseHttpDate(String(lm)));
  }

  /**
   * An answer that is not stored still gets the 304 the app alone would give
   * (its conditionals were set aside so the fill would see a whole answer),
   * judged on the handler's own validators; not one that sets a cookie: the
   * cache's 304 keeps only the fields RFC 9110 lists, and the cookie must
   * reach the client (a renewed session), so it goes whole.
   */
  private notModifiedUnstored(r: ServerResponse, headers: OutgoingHttpHeaders): typeof NOT_MODIFIED | undefined {
    return headers['set-cookie'] === undefined && this.conditionsMet(r, headers) ? NOT_MODIFIED : undefined;
  }

  /** Hooks that ran after ours (express-session's Set-Cookie, mounted before the cache) count too. */
  sent(r: ServerResponse): void {
    const snapshot = this.snapshot;
    if (this.ttl === undefined || this.stoodDown || snapshot === undefined) return;
    // node has set the reason phrase by now (writeHead(status, reason) sets it only then); a 304 of ours
    // (NOT_MODIFIED) carries its own: the entry's is the one the head had when it was judged.
    // Read now, as the head goes out, an empty phrase is what the status line says (`200 `, given to writeHead);
    // read when the head was judged, node may still put the status's own in its place.
    const own = this.req.httpVersionMajor >= 2 ? undefined : r.statusCode !== snapshot.status ? ownReason(snapshot.status, this.reasonAtHead) : r.statusMessage === '' ? '' : ownReason(snapshot.status, r.statusMessage);
    const before = snapshot.headers;
    const vary = outgoingField(r, 'vary');
    // An encoder out there also says Vary: Accept-Encoding where it left this answer plain (compression() to a client
    // that asked for identity): it encodes the next client's, and adds that Vary to every hit, which the front door,
    // running before it, would do for neither (a gzip client served plain ever after an identity client's fill).
    const encodedOutside = outgoingField(r, 'content-encoding') !== before['content-encoding'] || (vary !== before.vary && addsAcceptEncoding(before.vary, vary)) ? true : undefined;
    // A Vary added as the head went out (a hook mounted before the cache) says what the answer depends on:
    // the entry is keyed on it too, an encoder out there or not. Accept-Encoding is left out: an encoder
    // (compression()) adds it, and the bytes kept here are taken before any encoding, which it applies
    // again on every replay.
    const late = vary === before.vary ? undefined : lateVary(before.vary, vary);
    const headers = late === undefined ? before : ({ ...before, vary: late } as OutgoingHttpHeaders);
    if (own !== undefined || encodedOutside || headers !== before) this.snapshot = { status: snapshot.status, headers, reason: own, encodedOutside, stored: headers === before ? snapshot.stored : undefined };
    // Trailer fields given before the head: over HTTP/2 they follow any body (HTTP/1 sends them after chunks, which
    // it decides later: the capture's end asks again), and the head would say stored of what never is.
    if (sendsTrailers(r)) return this.drop(r, 'trailer');
    if (!hasOutgoingField(r, 'set-cookie') && !hasOutgoingField(r, 'trailer') && outgoingField(r, 'cache-control') === before['cache-control'] && vary === before.vary && !lifetimeFieldsChanged(r, before)) return;
    const sent = r.getHeaders();
    const reason = this.plan.origin === undefined ? (responseForbidsStore(sent, this.plan.userScoped) ?? targetedForbidsStore(sent, this.http.options.targeted, this.plan.userScoped)) : this.originLifeOf(r.statusCode, sent);
    if (typeof reason === 'string') this.drop(r, reason);
  }

  /**
   * Origin mode: whether the answer would be stored already past its stale
   * window (no validator to revalidate it by, no stale window): the store
   * drops such an entry (TieredStore.storeFill), so it must not say `stored`.
   */
  private landsExpired(life: OriginLife, headers: OutgoingHttpHeaders): boolean {
    const now = coarseNow();
    if (life.createdAt + life.lifetime > now) return false;
    const kept = (name: 'etag' | 'last-modified') => headers[name] !== undefined && !life.withoutFields.includes(name);
    return originEntryLifetimes(this.plan, life, kept('etag') || kept('last-modified')).staleUntil <= now;
  }

  /** Origin mode: whether (and for how long) this answer may be stored, read from its own headers. */
  private originLifeOf(status: number, headers: OutgoingHttpHeaders): OriginLife | MissReason {
    if (headers.trailer !== undefined) return 'trailer';
    const origin = this.plan.origin!;
    return originLife({
      status,
      headers,
      requestTime: this.createdAt,
      responseTime: coarseNow(),
      heuristicCap: origin.keep,
      targeted: origin.targeted,
      authorized: this.req.headers.authorization !== undefined,
      userScoped: this.plan.userScoped,
    });
  }

  /**
   * Origin mode, §4.3.4: the handler answered the revalidation with 304. The
   * stale entry's headers are updated with the 304's (§3.2) and stored, and
   * the client gets the stored answer (or its own 304) instead of the 304.
   */
  private refresh(headers: OutgoingHttpHeaders): Replacement | undefined {
    const stale = this.stale!;
    const flight = this.flight;
    const before = stale.response;
    const fields = refreshedFields(before, headers);
    const merged = asOutgoing(fields);
    // Read from the 304 but never stored: its Age (the refreshed copy's age, §4.2.3) and its
    // Set-Cookie (this client's; with one the copy is not stored, as no answer with one is).
    const cookies = headers['set-cookie'];
    const life = this.originLifeOf(before.status, headers.age === undefined && cookies === undefined ? merged : { ...merged, age: headers.age, 'set-cookie': cookies });
    const now = coarseNow();
    let createdAt = now;
    // Invalidated while the handler ran, as headers() judges a 200: the store would refuse it, so it must not say stored.
    const kept = typeof life !== 'string' && this.http.cache.store.versions.stillCurrent(this.stamp);
    if (!kept) flight.settle(undefined);
    else {
      this.life = life;
      this.ttl = life.lifetime;
      // A stored response the front door may not serve (encoded outside, see Snapshot) stays so: a 304 is not encoded.
      // The stored head's characters (fields and reason), stored again as the stored head went.
      this.snapshot = { status: before.status, headers: merged, reason: before.headReason, encodedOutside: this.plan.isPublic && !before.isPublic ? true : undefined };
      createdAt = life.createdAt;
      void this.finish(before.body, before.utf8Head);
      this.refreshed = true;
    }
    const sent = asSent(cookies === undefined ? fields : [...fields, ...[cookies].flat().map((c): [string, string] => ['set-cookie', String(c)])], before.headReason, before.utf8Head);
    const answer = new PreparedResponse(before.status, sent.headers, before.body, before.isPublic, undefined, false, sent.reason, before.route, sent.bytes);
    const age = ageOf(createdAt, now);
    const cacheStatus = this.http.status(kept ? this.forwarded(304, true) : forwardedUnstored(this.forwardedWhy(), 304, typeof life === 'string' ? life : 'invalidated'));
    // A 304 of ours keeps none of the cookies the handler's 304 set for this client: it gets the whole answer then.
    if (cookies === undefined && this.conditions !== undefined && answer.status === 200 && isNotModified(this.conditions, answer.etag, answer.lastModified)) {
      return { status: 304, headers: answer.notModifiedHeaders, age, cacheStatus, body: undefined };
    }
    return storedAnswer(this.req, answer, age, cacheStatus);
  }

  /**
   * Origin mode, §4.3.4: the 304 validated another representation than the
   * stored one (another strong ETag, weak validators that match nothing
   * stored), so it refreshes nothing and the stored bytes answer nothing.
   * The handler's 304 is withdrawn and the request re-sent into the app
   * without the cache's validators, as a background refresh is (its answer
   * is stored if it may be); the client gets that answer. The fill's waiters
   * wait for it too, and look in the cache again once it has ended.
   */
  private retry(): Handover {
    const { req, http, context, flight } = this;
    flight.retrying = true;
    const dispatch = req.method === 'GET' ? http.dispatchOf(context.app, req, this.plan.arg as never) : undefined;
    const request = refreshRequest(req, context.url);
    // The client's own conditionals go along: the retry's fill answers them as any fill does.
    const conditions = this.conditions;
    if (conditions?.ifNoneMatch !== undefined) request.headers['if-none-match'] = conditions.ifNoneMatch;
    if (conditions?.ifModifiedSince !== undefined) request.headers['if-modified-since'] = conditions.ifModifiedSince;
    const cacheStatus = http.status(this.forwarded(304, false));
    const failed = (out: AnswerWriter) => {
      flight.settle(undefined);
      // An adapter that cannot re-send (none of ours), or an app that failed: no valid answer came back.
      if (out.res.headersSent) return void out.res.destroy();
      out.head(502, cacheStatus === undefined ? { 'content-length': 0 } : { 'content-length': 0, 'cache-status': cacheStatus });
      out.end();
    };
    return {
      handover: (out) =>
        queueMicrotask(() => {
          if (dispatch === undefined) return failed(out);
          dispatch(request, this.retryWriter(out)).then(
            // Ended without an end() of its own (its response destroyed): the waiters look for themselves.
            () => flight.settle(LOOK_AGAIN),
            (err: unknown) => {
              http.cache.reportError(err as Error, 'unconditional retry of a revalidation failed', 'refresh');
              failed(out);
            },
          );
        }),
    };
  }

  /**
   * The retry's answer on its way to the client. Its end releases the fill's
   * waiters, to find what the retry stored (stored before the end passes on).
   * A 5xx is answered with the stale entry where stale-if-error allows it, as
   * a 5xx to the revalidation itself is (see headers()); the app's answer is dropped.
   * A 5xx that must ask Redis first (see hold) holds the retry's calls back, in order, meanwhile.
   */
  private retryWriter(out: AnswerWriter): AnswerWriter {
    const { req, plan, stale, flight, http } = this;
    let instead = false;
    let asked = false;
    let held: Array<() => void> | undefined;
    const writer: AnswerWriter = {
      res: out.res,
      head: (status, headers, reason) => {
        if (held !== undefined) return void held.push(() => writer.head(status, headers, reason));
        const asking = status >= 500 && !asked ? this.hold(out.res, status) : undefined;
        asked = true;
        if (asking !== undefined) {
          const calls = (held = [() => writer.head(status, headers, reason)]);
          const release = () => {
            held = undefined;
            try {
              for (const call of calls) call();
            } catch (err) {
              out.res.destroy(err as Error); // what the relay would have thrown to the app: too late for that now
            }
          };
          return void asking.then(release, release);
        }
        const until = status >= 500 ? http.staleIfErrorUntil(plan, stale!, this.stamp.generation, this.redisSays) : undefined;
        if (until === undefined) return out.head(status, headers, reason);
        instead = true;
        flight.settle(staleOutcome(stale!, until, req, status));
        const answer = http.staleInstead(req, plan, stale!, status);
        answer.headers.setOn(out.res);
        out.head(answer.status, { age: String(answer.age), 'cache-status': answer.cacheStatus === undefined ? undefined : answer.headers.statusAfterUpstream(answer.cacheStatus) }, answer.reason);
        if (answer.body !== undefined) out.write(answer.body);
        out.end();
      },
      write: (chunk, encoding, cb) => {
        if (held !== undefined) {
          held.push(() => writer.write(chunk, encoding, cb));
          return true;
        }
        if (!instead) return out.write(chunk, encoding, cb);
        const done = typeof encoding === 'function' ? encoding : cb;
        if (typeof done === 'function') process.nextTick(done as () => void);
        return true;
      },
      end: (cb) => {
        if (held !== undefined) return void held.push(() => writer.end(cb));
        flight.settle(LOOK_AGAIN);
        out.end(cb);
      },
    };
    return writer;
  }

  /**
   * RFC 9211 for an answer to a revalidation: `fwd=stale` when the entry was stale,
   * `fwd=request` when it was fresh and the request asked for it (no-cache, max-age=0).
   */
  private forwarded(status: number, stored: boolean): string {
    return forwardedStatus(this.forwardedWhy(), status, stored);
  }

  private forwardedWhy(): 'stale' | 'request' {
    return this.stale!.entry.freshUntil > this.createdAt ? 'request' : 'stale';
  }

  /** Cache-Status of an answer that is not stored, and why: a revalidation's says what it forwarded, as a stored one does. */
  private unstoredStatus(status: number, reason: MissReason): string {
    return this.revalidating ? forwardedUnstored(this.forwardedWhy(), status, reason) : missStatus(reason);
  }

  unstorable(pastLimit: boolean): void {
    if (pastLimit && this.headAt200 !== undefined && !this.stoodDown) this.learnTooLarge(this.headAt200);
    this.drop(undefined, 'too-large');
  }

  /**
   * This answer (its head: `headers`) is too large to store: the next conditional misses for its key (and
   * variant), or those on its path that revalidate it (its validators), keep their conditionals (see the constructor).
   */
  private learnTooLarge(headers: OutgoingHttpHeaders): void {
    const on = varyOf(headers);
    this.http.oversized.learn(this.plan.key, this.plan.routePath, this.plan.user, on === '*' ? [] : on, this.req.headers, validatorsOf(headers), this.oversizedUntil(), coarseNow());
  }

  /** Until when what is learned of this answer's size holds: the route's TTL, an hour at most. */
  private oversizedUntil(): number {
    return this.createdAt + Math.min(this.plan.ttl, OVERSIZED_FOR_MS);
  }

  /** Not storable after all: release the waiters at once, and say why if the head has not gone out. */
  private drop(r: ServerResponse | undefined, reason: MissReason): void {
    this.ttl = undefined;
    this.flight.settle(undefined);
    if (r !== undefined && this.http.options.cacheStatus && !r.headersSent) r.setHeader('cache-status', afterUpstream(this.upstream, this.unstoredStatus(r.statusCode, reason)));
  }

  /** Stores a complete answer; returns a promise only when the store must wait (Redis, Cache-Groups versions). */
  finish(body: Buffer | undefined, utf8Head = false): Promise<void> | void {
    // A retry under way (its withdrawn 304 ends here): the retry's own end releases the waiters.
    if (this.refreshed || this.flight.retrying) return;
    const { flight, snapshot, ttl } = this;
    if (this.stoodDown || ttl === undefined || body === undefined || snapshot === undefined) {
      flight.settle(undefined);
      return;
    }
    // It fits again (a shorter file): its conditional requests are the cache's to answer again.
    this.http.oversized.forget(this.plan.key, this.req.headers);
    const failed = (err: unknown) => {
      flight.settle(undefined);
      this.http.cache.reportError(err as Error, 'could not store a response', 'store');
    };
    try {
      const outcome = this.http.store(this.req, snapshot, this.plan, this.stamp, this.lateStamp, this.createdAt, ttl, body, this.fill, this.life, utf8Head, !this.handOnly);
      if (!(outcome instanceof Promise)) return flight.settle(outcome);
      return outcome.then((o) => flight.settle(o), failed);
    } catch (err) {
      failed(err);
    }
  }

  ending(): void {
    this.fill.judging = true;
  }

  abort(): void {
    this.flight.settle(undefined);
  }

  /**
   * The client stopped reading a streamed answer, and the end (with the store)
   * waits on it. Requests waiting on this fill must not: it gives up (nothing
   * stored) and one of them fills in its place, as for a client that left: at
   * once when one that may fill waits here, or (the fill holds the Redis lock)
   * maybe on another instance, else when one comes (see Flight.stall), so a
   * slow client alone still stores its answer. Waiters that may not fill (a
   * HEAD) are let go instead. `stop` undefined: it reads again.
   */
  stalled(stop: (() => void) | undefined): void {
    const flight = this.flight;
    if (flight.done) return;
    if (stop === undefined) {
      flight.stall = undefined;
      return;
    }
    const giveUp = (): void => {
      flight.abandoned = true;
      // The capture gives up: unstorable() settles the flight, its waiters go on.
      stop();
    };
    if (flight.fillerWaits || this.fill.ticket.lock !== undefined) giveUp();
    else {
      flight.stall = giveUp;
      // Those waiting could not fill in its place (a HEAD): given up for them, the answer would only be lost.
      flight.letGo();
    }
  }
}

/**
 * Answers within this many bytes of l1.maxBytes (the body, and its header
 * characters three times over: JSON escapes, UTF-8, the strings a hit keeps)
 * are sized exactly before an L1-only fill says `stored`.
 */
const L1_SIZING_BAND = 64 * 1024;

/** A stored response as the answer that replaces the handler's (a refreshed or a stale one), fit for this request. */
function storedAnswer(req: IncomingMessage, response: PreparedResponse, age: number, cacheStatus: string | undefined): Replacement {
  return { status: response.status, headers: headersFor(req, response), age, cacheStatus, body: req.method === 'HEAD' ? undefined : response.body, reason: reasonFor(req, response) };
}

const REFILLS = Symbol('tiercache.refills');
/** A waiter may fill in for a fill whose client left, twice at most (each such fill could be left the same way). */
function takeRefill(req: IncomingMessage): boolean {
  const holder = req as unknown as Record<symbol, number | undefined>;
  const taken = holder[REFILLS] ?? 0;
  if (taken >= 2) return false;
  holder[REFILLS] = taken + 1;
  return true;
}

/** An origin-mode entry's times: what storeStamped stores, and what FillCapture.landsExpired judges by. */
function originEntryLifetimes(plan: Plan, life: OriginLife, validator: boolean): { createdAt: number; freshUntil: number; staleUntil: number } {
  return originLifetimes(life, validator, plan.origin!.keep, plan.staleWhileRevalidate, plan.staleIfError);
}

/** Whether Vary `after` names Accept-Encoding where `before` did not (an encoder's hook added it). */
function addsAcceptEncoding(before: unknown, after: unknown): boolean {
  const names = (v: unknown) => splitList(v as Parameters<typeof splitList>[0]).map((n) => n.toLowerCase());
  return names(after).includes('accept-encoding') && !names(before).includes('accept-encoding');
}

/**
 * The Vary to key an entry on when it changed as the head went out and now
 * names more than Accept-Encoding that it did not before: the names it had,
 * then the new ones but Accept-Encoding. Undefined when nothing new counts.
 */
function lateVary(before: unknown, after: unknown): string | undefined {
  const names = (v: unknown) => splitList(v as Parameters<typeof splitList>[0]);
  const had = names(before);
  const was = new Set(had.map((n) => n.toLowerCase()));
  const added = names(after).filter((n) => !was.has(n.toLowerCase()) && n.toLowerCase() !== 'accept-encoding');
  return added.length === 0 ? undefined : [...had, ...added].join(', ');
}

/**
 * A user id as the key holds it. Anything but a string or a finite number
 * (an object, a promise, NaN) would give every user one key: thrown, so the
 * request passes through uncached and the error is reported.
 */
function userId(raw: unknown): string {
  if (typeof raw === 'string' || (typeof raw === 'number' && Number.isFinite(raw))) return String(raw);
  const what = raw instanceof Promise ? 'a promise (user() must not be async)' : typeof raw === 'number' ? String(raw) : typeof raw === 'object' ? 'an object' : `a ${typeof raw}`;
  throw new TypeError(`tiercache: the user option returned ${what}, not a string or a finite number (return the id, e.g. req.user?.id); the request passed through uncached`);
}

/** Characters in stored header names and values, for fitsL1's shortcut: two additions a field. */
function fieldChars(fields: ReadonlyArray<readonly [string, string]>): number {
  let n = 0;
  for (const [name, value] of fields) n += name.length + value.length;
  return n;
}

/** Per-route mounting without any TTL source caches for this long. */
export const DEFAULT_ROUTE_TTL = 60_000;
/** How long a request waits for another's fill of the same key before running the handler itself. */
export const COALESCE_WAIT_MS = 3_000;

/** What the adapter knows about the request. */
export interface HttpRequestContext<R> {
  /** Passed to the option functions: Express `req` or Koa `ctx`. */
  readonly arg: R;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The full request target (not mount-relative). */
  readonly url: string;
  /** Mounted on a route (true) or app-wide (false). */
  readonly perRoute: boolean;
  /** The method before any override middleware changed it, when the framework keeps it. */
  readonly originalMethod?: string | undefined;
  /** The framework's app object, for background refreshes (see HttpCache's dispatchOf). */
  readonly app?: unknown;
  /**
   * The target came in a form no browser sends (absolute form, a '#'), which the apps reflect as sent
   * (express.static's directory redirect, Koa's ctx.href): served from entries, it never fills one.
   */
  readonly sentOdd?: boolean;
  /**
   * Koa: where the cache leaves its hit for the adapter to write later, once the middleware in front of it have run
   * (see replay). Carried with the request, not put on the response: an Express app or the front door the Koa app
   * hands the request to (`ctx.respond = false`) writes its hits at once, Koa will not.
   */
  readonly deferred?: DeferredHit | undefined;
}

interface Plan {
  readonly key: string;
  readonly ttl: number;
  readonly negativeTtl: number | undefined;
  readonly staleWhileRevalidate: number;
  readonly staleIfError: number;
  readonly userScoped: boolean;
  /** Keyed by the table alone and asked without credentials: the front door may serve the entry. */
  readonly isPublic: boolean;
  /** This middleware has a `user` option: see StoredHead.r. */
  readonly scoped: boolean;
  /** This middleware is mounted on the route: see StoredHead.w. */
  readonly perRoute: boolean;
  /** For the entry's tags, built only when a fill needs them (never on a hit). */
  readonly routePath: string;
  readonly user: string | undefined;
  readonly arg: unknown;
  /** Origin mode (RFC 9111): what the request asks, how lifetimes are read; undefined in table mode. */
  readonly origin: OriginPlan | undefined;
  /** The bounded route label of events, set when the first event of the request is built (see HttpEvents). */
  route?: string | undefined;
}

/** What a fill produced, for the requests that waited on it. */
interface FillOutcome {
  /** The stored response entry; decoded when a waiter replays it (most fills have none). */
  readonly entry: StoredEntry;
  readonly createdAt: number;
  /** Response Vary names and the values the filling request had for them. */
  readonly varyOn: readonly string[];
  readonly varyValues: ReadonlyArray<string | undefined>;
  /** Not stored (Redis out of reach): only for the requests that came before its fill began (see HttpCache.answerWaiter). */
  readonly unkept?: true;
}

/**
 * The fill's request was answered with this stale entry (stale-if-error, or
 * stale-while-revalidate while a refresh runs): so are its waiters, until `until`.
 */
interface StaleOutcome {
  readonly stale: Found;
  readonly until: number;
  /** stale-if-error: the status the handler failed with (undefined: stale-while-revalidate, nothing forwarded). */
  readonly failed: number | undefined;
  /** The stale answer's Vary names and the values the filling request had for them: a waiter that differs gets its own answer. */
  readonly varyOn: readonly string[];
  readonly varyValues: ReadonlyArray<string | undefined>;
}

/**
 * Cache-Status of an entry served in place of the handler's answer, `left` ms
 * before (or past) its freshness ends. Still fresh after a failure (origin
 * mode: the request asked to revalidate, and the revalidation failed): not
 * stale, and forwarded.
 */
function staleAnswerStatus(tier: 'L1' | 'L2', left: number, failed: number | undefined): string {
  return left > 0 && failed !== undefined ? freshAfterFailedRefresh(tier, failed, left / 1000) : staleHit(tier, -left / 1000);
}

/** `stale`, given to the fill's waiters until `until`, when they send what `req` sent for its Vary names. */
function staleOutcome(stale: Found, until: number, req: IncomingMessage, failed?: number): StaleOutcome {
  const fields = stale.response.headers.fields();
  const vary: string[] = [];
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === 'vary') vary.push(fields[i + 1]!);
  // A stored answer never says Vary: * (storeStamped stores none).
  const varyOn = varyOf({ vary: vary.join(', ') }) as string[];
  return { stale, until, failed, varyOn, varyValues: varyOn.map((n) => varyValue(req.headers, n)) };
}

/** What the first round trip of a fill found and took (see HttpCache.startFill). */
interface FillStart {
  /** A valid response entry (fresh or stale), if L2 had one. */
  readonly found: Found | undefined;
  readonly tags: string[];
  readonly lookup: FillLookup;
  /** The key whose lock the lookup asked for: the variant's when a Vary manifest was followed. */
  readonly lockedKey: string;
  /** The names of the Vary manifest followed to lockedKey. */
  readonly vary: readonly string[] | undefined;
}

/** A fill registered by beginFill (its flight is its FillState too), and what its first round trip found. */
interface BegunFill {
  readonly flight: Flight;
  readonly start: FillStart | undefined;
}

/** A fill's Redis state: what its second round trip releases. */
interface FillState {
  /** Set through HttpCache.hold: a ticket that arrives after the fill ended is released at once. */
  ticket: FillTicket;
  /** The fill ended (its flight settled). */
  ended: boolean;
  /** The store step runs (it releases the lock itself). */
  storing: boolean;
  /** The handler ended its answer, which is judged a turn later (HTTP/2: see CaptureHooks.ending). */
  judging: boolean;
  lockedKey: string;
  /**
   * The request's answer is known too large to store: the fill keeps its conditionals and stores nothing
   * (unless it revalidates a stale copy: FillCapture), so it takes no fill lock (see HttpCache.keepsConditionals).
   */
  readonly keeps: boolean;
}

/** The fill was done by another instance: waiters look the entry up themselves. */
const LOOK_AGAIN = Symbol('look again');
/**
 * The answer could have been stored but Redis is out of reach (`unreachable`): no waiter can be vouched for it,
 * and they share one fill begun after they came instead of running the handler each (see HttpCache.fill).
 */
const UNKEPT = Symbol('unkept');
type Outcome = FillOutcome | StaleOutcome | typeof LOOK_AGAIN | typeof UNKEPT | undefined;

/** What answerWaiter gives a waiter whose answer could not be vouched for: it may wait once more (see HttpCache.fill). */
const UNVOUCHED = Symbol('unvouched');

/** What Flight.wait() resolves for a waiter the fill let go (see Flight.letGo). */
const LET_GO = Symbol('let go');

/**
 * One fill under way for a key. It settles exactly once, however the fill
 * ends: stored (the response), not storable (undefined, as soon as that is
 * known, so waiters run their own handler at once), stale-if-error, or the
 * client gone. Waiters never wait past its deadline, fixed when it began, so a
 * handler that never answers holds later arrivals less, not longer.
 */
class Flight implements FillState {
  private settled = false;
  // Its FillState (see there), on the flight itself: one object per fill where there were three (flight, state, and
  // what beginFill returned) and a closure for onSettle.
  ticket: FillTicket = NO_TICKET;
  ended = false;
  storing = false;
  judging = false;
  lockedKey: string;
  private result: Outcome = undefined;
  /** Its revalidation is being retried unconditionally (FillCapture.retry): that re-sent request must not wait on it. */
  retrying = false;
  /** Ended unrun (its client left before anything was stored, or took a stale answer): its waiters fill in its place (one runs the handler). */
  abandoned = false;
  /** Its client stopped reading (FillCapture.stalled): a request that comes is not held by it, and this gives the fill up. */
  stall: (() => void) | undefined = undefined;
  /** A request that may fill in its place has waited on it: a stall gives it up at once (FillCapture.stalled). */
  fillerWaits = false;
  /**
   * A request that came before it began waits on it (one another fill left: see HttpCache.fill): its answer is
   * handed over even where Redis is out of reach and it cannot be stored (FillCapture.headers).
   */
  handsOver = false;
  private resolve: ((outcome: Outcome) => void) | undefined;
  /** Made when the first waiter (or close()) asks: most fills have none. */
  private promise: Promise<Outcome> | undefined;
  /** Made when the first waiter that may not fill asks; resolved by letGo(). */
  private unheld: Promise<typeof LET_GO> | undefined;
  private release: (() => void) | undefined;

  /** Waiters never wait past this. */
  readonly deadline: number;

  constructor(
    /** The key it fills (the flights map's): lockedKey until a Vary manifest leads to a variant's. */
    readonly key: string,
    /** When the fill began: Age and the TTL count from here. */
    readonly startedAt: number,
    wait: number,
    readonly keeps: boolean,
    /** Told once, synchronously, when the fill settles. */
    private readonly owner: FlightOwner,
    /** Its place among the fills its owner began: a request that read a lower count when it came, came before it began. */
    readonly ordinal: number,
  ) {
    this.lockedKey = key;
    this.deadline = startedAt + wait;
  }

  get done(): boolean {
    return this.settled;
  }

  settle(outcome: Outcome): void {
    if (this.settled) return;
    this.settled = true;
    this.result = outcome;
    this.owner.flightSettled(this);
    this.resolve?.(outcome);
  }

  /** Resolves with the outcome once the fill settles. */
  get outcome(): Promise<Outcome> {
    if (this.promise === undefined) {
      this.promise = this.settled ? Promise.resolve(this.result) : new Promise<Outcome>((r) => (this.resolve = r));
    }
    return this.promise;
  }

  /**
   * The outcome, or undefined once the deadline has passed; for a waiter
   * that may not fill in its place (`mayFill` false: a HEAD), LET_GO once
   * letGo() says it goes on without it.
   */
  wait(mayFill: boolean): Promise<Outcome | typeof LET_GO> {
    const ms = this.deadline - coarseNow();
    if (ms <= 0) return Promise.resolve(undefined);
    if (mayFill) this.fillerWaits = true;
    let timer: NodeJS.Timeout | undefined;
    // A deadline weeks away (a long l2.lockTimeout) would fire at once: cut to the longest timer, still weeks.
    const timeout = new Promise<undefined>((r) => (timer = setTimeout(r, Math.min(ms, MAX_TIMER_MS), undefined)));
    const waits: Array<Promise<Outcome | typeof LET_GO>> = [this.outcome, timeout];
    if (!mayFill) waits.push((this.unheld ??= new Promise<typeof LET_GO>((r) => (this.release = () => r(LET_GO)))));
    return Promise.race(waits).finally(() => clearTimeout(timer));
  }

  /** Its client stopped reading and nothing waits that could fill in its place: those waiting go on without it. */
  letGo(): void {
    const release = this.release;
    // Waiters that come once its client reads again wait on it anew.
    this.unheld = undefined;
    this.release = undefined;
    release?.();
  }
}

/** Who registered a flight (HttpCache.beginFill), told when it settles. */
interface FlightOwner {
  flightSettled(flight: Flight): void;
}

/** How often a request waiting on another instance's fill looks for the entry. */
const REMOTE_FILL_POLL_MS = 20;

/** Whether a fill with `stale` at hand revalidates it (origin mode): the origin is asked with its validators. */
function revalidatesWith(plan: Plan, stale: Found | undefined): stale is Found {
  return plan.origin !== undefined && stale !== undefined && stale.unchecked === undefined && revalidatable(stale.response);
}

/**
 * Whether a fill may store, and so takes the fill lock: one that keeps its conditionals stores nothing,
 * unless it revalidates `stale` after all (FillCapture sets them aside then).
 */
function mayStore(state: FillState, plan: Plan, stale: Found | undefined): boolean {
  return !state.keeps || revalidatesWith(plan, stale);
}

/** `found` if it may answer a request that waited for another instance's fill: checked and fresh. */
function freshFound(found: Found | undefined): Found | undefined {
  return found !== undefined && found.unchecked === undefined && found.entry.freshUntil > coarseNow() ? found : undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));


/**
 * Runs the rest of the app: false ("the cache did not answer"), at once when
 * the framework's next() is synchronous (Express), else once it settles (Koa).
 */
function passOn(next: () => unknown): boolean | Promise<boolean> {
  const result = next();
  return isThenable(result) ? Promise.resolve(result).then(() => false) : false;
}

interface Found {
  readonly entry: StoredEntry;
  readonly response: PreparedResponse;
  readonly tier: Tier;
  /** findInL1: the L1 hits it took (manifest and variant), counted once the request is served or passed past the cache. */
  readonly lookups?: number;
  /**
   * An L1 entry only Redis could vouch for, taken while Redis did not answer
   * (see HttpCache.outageStandIn): it stands in for a 5xx, nothing else (it
   * is never served, nor revalidated).
   */
  readonly unchecked?: true;
  /** A variant's: the names of the Vary manifest that led to it (its refresh locks the variant's key by them). */
  readonly vary?: readonly string[] | undefined;
}

/**
 * An entry a middleware with `user` stored (per route, further in) is that one's to serve, not this plan's;
 * so is one a middleware in origin mode stored (its stale rules): by the table's rules a no-cache or
 * must-revalidate answer would go out stale, and the request's own directives would be ignored; and so is
 * one a middleware mounted on its route stored, for an app-wide one (DESIGN §3: the innermost decides): the
 * route's own bypass() would be skipped, its stale windows replaced by a table rule's.
 */
function notOurs(plan: Plan, found: Found): boolean {
  return (found.response.scoped && !plan.scoped) || (found.response.staleRules !== undefined && plan.origin === undefined) || (found.response.perRoute && !plan.perRoute);
}

/** A hit found by HttpCache.find; `unverified` by get() (its manifest's, for a variant): an unchecked one. */
function foundOf(hit: TieredHit, response: PreparedResponse, manifestUnverified?: true, vary?: readonly string[]): Found {
  return (hit.unverified ?? manifestUnverified) === true ? { entry: hit.entry, response, tier: hit.tier, unchecked: true, vary } : { entry: hit.entry, response, tier: hit.tier, vary };
}

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** RFC 9110 §9.2.1. Origin mode treats every other method as unsafe (RFC 9111 §4.4: "including methods whose safety is unknown"). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/** The path of a Location-style header value when it points at this origin; undefined otherwise. */
function sameOriginPath(value: string | number | string[] | undefined, host: string | undefined, requestPath: string): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  if (value.startsWith('/') && !value.startsWith('//')) return pathOf(value);
  // Without Host (HTTP/1.0) a relative reference still names this origin; an absolute one cannot be told apart.
  if (host === undefined && (value.startsWith('//') || /^[a-z][a-z0-9+.-]*:/i.test(value))) return undefined;
  try {
    // An absolute URI naming this host, or a relative reference (`items`, `./items`, `../list`),
    // resolved against the request's own path (RFC 9110 §10.2.2, §10.2.3; RFC 3986 §5). Hosts are
    // compared as URL writes them (lower case, no default port): `Example.com:80` is `example.com`.
    const base = new URL(`http://${host ?? 'origin.invalid'}${requestPath}`);
    const url = new URL(value, base);
    return url.host === base.host ? url.pathname : undefined;
  } catch {
    // a reference that does not parse: no path of ours
  }
  return undefined;
}

/**
 * Koa: the app said it answers by itself (`ctx.respond = false`, per request or on app.context for all), read
 * where koa.ts's accessors keep it: Koa's own read of ctx.respond is not heard before it happens. `thisRequest`:
 * said on ctx itself (by a middleware, not once for the app).
 */
function answersItself(arg: unknown, thisRequest = false): boolean {
  return typeof arg === 'object' && arg !== null && (!thisRequest || Object.hasOwn(arg, 'respond')) && respondAsSet(arg) === false;
}

/** A header value to compare later: node appends to an array in place (res.appendHeader). */
function copyOf(value: OutgoingHttpHeader | undefined): OutgoingHttpHeader | undefined {
  return Array.isArray(value) ? value.slice() : value;
}

function varyPairs(headers: IncomingMessage['headers'], names: readonly string[]): Array<[string, string | undefined]> {
  return names.map((n) => [n, varyValue(headers, n)]);
}

function cacheGroupsOf(value: string | number | string[] | undefined): string[] {
  // RFC 9875: a list of strings ("a", "b"), which may hold commas and escapes; bare tokens are accepted too.
  const out: string[] = [];
  for (const element of splitList(value)) {
    const group = element.charCodeAt(0) === 34 /* " */ ? unquote(element) : element.split(';', 1)[0]!.trim();
    if (group !== '') out.push(group);
  }
  return out;
}

/** Paths whose tags are kept built (a scan of distinct paths only rebuilds them; the map never grows past this). */
const PATH_TAG_CACHE_SIZE = 1_024;
/** Longest path whose tags are kept (its tags hold it up to nine times over): 1,024 of them ~5 MiB at most. */
const PATH_TAG_CACHE_MAX_PATH = 256;

export class HttpCache<R> {
  private readonly flights = new Map<string, Flight>();
  /** How many fills beginFill began (see Flight.ordinal). */
  private fillsBegun = 0;
  private readonly pathTagCache = new Map<string, readonly string[]>();
  private readonly refreshing = new Set<string>();
  /** Orphans being removed (see removeOrphan), by key: a fill of the key waits for its removal. */
  private readonly removals = new Map<string, Promise<unknown>>();
  /** Origin mode: refreshes that requests forced, per key (rate limit). */
  private readonly forced = new ForcedRefreshes();
  /** Keys whose answers were too large to store: their conditional misses keep their conditionals (see FillCapture). */
  readonly oversized = new OversizedAnswers();
  /** Events and outcome counters (see observe/http-events.ts). */
  readonly events: HttpEvents<R>;

  constructor(
    readonly cache: TierCache,
    readonly options: ResolvedMiddlewareOptions<R>,
    /** How to re-send a request into the app (stale-while-revalidate, a revalidation's retry); undefined when the adapter cannot. */
    readonly dispatchOf: (app: unknown, req: IncomingMessage, arg: R) => Dispatch | undefined = () => undefined,
    /** The framework's matched route pattern, for the route label of events. */
    routePatternOf?: RoutePatternOf<R>,
    /** Koa: what the adapter does about ctx.respond for a fill. */
    readonly respondWatch?: RespondWatch,
  ) {
    this.events = new HttpEvents(cache, routePatternOf);
    // Entries marked seen by a middleware built before this one are watched again (see passed-over.ts).
    middlewareBuilt();
    // close() waits (bounded) for fills under way, their handlers included, to be stored.
    cache.addFillSource(this);
  }

  /** The fills under way (for close()). */
  pendingFills(): Array<Promise<unknown>> {
    const out: Array<Promise<unknown>> = [];
    for (const flight of this.flights.values()) if (!flight.done) out.push(flight.outcome);
    return out;
  }

  /**
   * Serves the request from the cache (resolves true: the adapter must not
   * run the app) or runs `next` once, capturing and storing its answer
   * (resolves false). Errors from `next` propagate; the cache's own never do.
   */
  handle(context: HttpRequestContext<R>, next: () => unknown): boolean | Promise<boolean> {
    let c = context;
    const method = c.req.method;
    // Absolute form naming another authority: neither served nor stored (a write is still decided below).
    let foreign = false;
    // Absolute form, or a '#' (clients send neither): the path and query as the app reads them (request-target.ts).
    if (c.url.charCodeAt(0) !== 47 /* / */ || c.url.indexOf('#') !== -1) {
      let url = ownOriginForm(c.url, requestHost(c.req.headers));
      if (url === undefined) {
        // The app routes it by its path all the same: a write sent so is made there and invalidates it.
        url = method === undefined || SAFE_METHODS.has(method) ? undefined : routedOriginForm(c.url);
        if (url === undefined) return this.bypass(c, next, 'authority');
        foreign = true;
      }
      c = { ...c, url, sentOdd: true };
    }
    const req = c.req;
    // A middleware further in (per route) decides for this request: one mounted further out stands down,
    // also when it is this same middleware mounted twice (app-wide and on the route): its own first
    // capture would otherwise hold a fill that this pass then waits on until COALESCE_WAIT_MS.
    const outer = (req as unknown as Record<symbol, ActiveFill | undefined>)[ACTIVE_FILL];
    if (outer !== undefined) {
      outer.standDown();
      // An entry a layer further out passed over (see passOver) is this one's if it is of this one's kind.
      const passed = (req as unknown as Record<symbol, PassedOver | undefined>)[PASSED_OVER];
      if (passed !== undefined) passed.seenBy(this.cache, (this.options.user !== undefined ? SCOPED_KIND : 0) | (this.originModeAt(c.url) ? ORIGIN_KIND : 0) | (c.perRoute ? PER_ROUTE_KIND : 0));
    }
    if (method !== undefined && !this.options.methods.has(method) && (UNSAFE_METHODS.has(method) || (!SAFE_METHODS.has(method) && this.originModeAt(c.url)))) {
      this.invalidateAfterWrite(c);
      return this.bypass(c, next, foreign ? 'authority' : 'method');
    }
    if (foreign) return this.bypass(c, next, 'authority');
    // The head left already (a middleware in front flushed it: Koa's ctx.flushHeaders()): no stored head can
    // follow it, nor can this answer's be seen to be stored. The app answers under it, as without the cache.
    if (c.res.headersSent) return passOn(next);
    const plan = this.planOrReport(c);
    // An HTTP/2 GET whose stream is still open may yet end with no byte (an empty DATA frame): no body then.
    if (plan === 'body' && http2BodyUnknown(req)) return http2BodyKnown(req).then(() => this.handlePlanned(c, next, this.planOrReport(c)));
    return this.handlePlanned(c, next, plan);
  }

  /** plan(), or undefined (passed through) when planning fails. */
  private planOrReport(c: HttpRequestContext<R>): Plan | BypassReason | undefined {
    try {
      return this.plan(c);
    } catch (err) {
      this.cache.reportError(err as Error, 'could not plan a request; passing it through');
      return undefined;
    }
  }

  /** handle() once the request is planned. */
  private handlePlanned(c: HttpRequestContext<R>, next: () => unknown, plan: Plan | BypassReason | undefined): boolean | Promise<boolean> {
    const req = c.req;
    if (plan === undefined || typeof plan === 'string') return this.bypass(c, next, plan);
    (req as unknown as Record<symbol, string>)[REQUEST_KEY] = plan.key;
    if ((req.headers[REFRESH_HEADER] !== undefined || (req as unknown as Record<symbol, unknown>)[REFRESHING_SEEN] !== undefined) && this.isOwnRefresh(req)) {
      // Our own background refresh: run the handler and store, whatever is cached.
      return this.fill(c, plan, next, undefined);
    }
    // The L1 hit is answered synchronously: no promise, no microtask.
    let local: Found | undefined;
    try {
      local = this.findInL1(plan.key, req);
    } catch {
      // a lookup that failed is no entry: local stays undefined
    }
    if (local !== undefined && notOurs(plan, local)) return this.passOver(c, plan, local, next);
    if (local !== undefined) {
      const passed = (req as unknown as Record<symbol, PassedFromL2 | undefined>)[PASSED_FROM_L2];
      const readFromL2 = passed !== undefined && passed.key === plan.key && passed.cache === this.cache;
      if (!readFromL2) this.cache.store.noteL1Hits(local.lookups!);
      const now = coarseNow();
      // A refresh the request forces is decided here (the rate limit): refused, the fresh L1 entry is a hit, and Redis is not asked.
      if (plan.origin === undefined ? local.entry.freshUntil > now : useOf(plan.origin, local.entry, local.response, now, this.forced, plan.key) === Use.Hit) {
        const tier = readFromL2 ? 'L2' : 'L1';
        if (this.cache.hitListened) this.reportServed(c.deferred, plan, tier, false);
        replay(req, c.res, local.response, local.entry.createdAt, now, this.status(readFromL2 ? HIT_L2 : HIT_L1), c.deferred);
        return true;
      }
    } else if (this.cache.store.l2 === undefined && plan.origin?.needs?.onlyIfCached !== true) {
      // L1 only and nothing there: there is nobody to ask, so the fill starts now, without a promise.
      return this.fillLocally(c, plan, next);
    }
    return this.serveOrFill(c, plan, next, local);
  }

  /** fill() for L1 only (no stale entry, no Redis): synchronous unless it must wait on a fill under way. */
  private fillLocally(c: HttpRequestContext<R>, plan: Plan, next: () => unknown): boolean | Promise<boolean> {
    const { req, res } = c;
    this.cache.store.noteL1Miss();
    // A waiter, or an answer not stored: fill() reports them (the L1 miss is counted).
    if (this.joining(plan.key)) return this.fill(c, plan, next, undefined, undefined, true);
    const refused = this.fillRefused(c, plan);
    if (refused !== undefined || res.destroyed) {
      this.unstored(res, refused ?? 'request-no-store');
      return this.passOnReporting(c.req, next, this.outerMiss(plan, true));
    }
    const flight = this.beginFill(plan, req, res);
    let capture: FillCapture | undefined;
    try {
      const stamp = this.cache.store.versions.stampLocally(this.tagsOf(plan))!;
      capture = this.capture(c, plan, stamp, flight, undefined, flight.startedAt, flight);
    } catch (err) {
      flight.settle(undefined);
      this.cache.reportError(err as Error, 'could not start a fill; running the handler uncached');
    }
    return this.runHandler(res, next, flight, capture, undefined, plan, true);
  }

  /**
   * Passes on a request whose entry is another kind of middleware's to serve
   * (notOurs): one further in, per route. Unless one of that kind was seen
   * here already for this entry, the request is watched (see passed-over.ts):
   * if none sees it, none is left (the route's config changed since the entry
   * was stored) and the entry is removed once the answer is out.
   */
  private passOver(c: HttpRequestContext<R>, plan: Plan, found: Found, next: () => unknown, read?: PassedRead): boolean | Promise<boolean> {
    const response = found.response;
    if (found.tier === 'L2') (c.req as unknown as Record<symbol, PassedFromL2>)[PASSED_FROM_L2] = { key: plan.key, cache: this.cache, read };
    // An entry only Redis could vouch for, while it does not answer: nothing to remove it by. A HEAD
    // may be routed to a handler of its own (app.head), past the route's middleware: the GETs decide.
    if (ownerSeen(response) || found.unchecked === true || c.req.method === 'HEAD') return passOn(next);
    const holder = c.req as unknown as Record<symbol, PassedOver | ActiveFill | undefined>;
    const watch = new PassedOver(this, plan.key, found.entry, response, kindsOf(response), holder[PASSED_OVER] as PassedOver | undefined);
    holder[PASSED_OVER] = watch;
    // The layers further in look for watches only when one is active (see handle).
    holder[ACTIVE_FILL] = watch;
    const res = c.res;
    res.once('finish', () => watch.decide(res.statusCode));
    return passOn(next);
  }

  /**
   * An entry passed over that no middleware of its kind saw a request for
   * (see passOver): removed under its key, as invalidateKey does (its key tag
   * bumped, every variant with it; L1 here and on every instance, L2), so the
   * route fills again. Not when it is gone already (removed by another
   * request, here or elsewhere), nor while Redis is known down (the removal
   * would only queue, and the entry cannot be vouched for meanwhile anyway).
   */
  removeOrphan(key: string, entry: StoredEntry): void {
    const cache = this.cache;
    if (!cache.enabled || cache.closed || cache.store.versions.check(entry) === Validity.Invalid) return;
    if (cache.store.l2 !== undefined && !this.l2Reachable()) return;
    const removal: Promise<unknown> = cache
      .invalidateKey(key)
      .catch((err: unknown) => cache.reportError(err as Error, 'could not remove an entry no middleware of its kind serves', 'invalidation'))
      .finally(() => {
        if (this.removals.get(key) === removal) this.removals.delete(key);
      });
    this.removals.set(key, removal);
  }

  /** A miss, to 'miss' listeners; `collapsed`: it waits on a fill under way. */
  private reportMiss(plan: Plan, collapsed: boolean): void {
    if (this.cache.listenerCount('miss') > 0) this.events.miss(plan, collapsed);
  }

  /**
   * What a request passed on reports once the rest of the app has had its
   * chance to reach a layer further in (per route, which stands this one down
   * and reports its own outcome): `report`, or, when stood down, nothing, and
   * the L1 miss this layer counted is taken back (one request, one count).
   */
  private unlessStoodDown(l1Noted: boolean, report: () => void): (stoodDown: boolean) => void {
    return (stoodDown) => {
      if (!stoodDown) this.late(report);
      else if (l1Noted) this.cache.store.unnoteL1Miss();
    };
  }

  /** unlessStoodDown for a miss that is no wait. */
  private outerMiss(plan: Plan, l1Noted: boolean): (stoodDown: boolean) => void {
    return (stoodDown) => this.missOnceReached(plan, l1Noted, stoodDown);
  }

  /**
   * outerMiss's report, given whether a layer further in stood this one down: made with no closure unless a 'miss'
   * listener will be told (a fill makes one per request otherwise).
   */
  private missOnceReached(plan: Plan, l1Noted: boolean, stoodDown: boolean): void {
    if (stoodDown) {
      if (l1Noted) this.cache.store.unnoteL1Miss();
    } else if (this.cache.listenerCount('miss') > 0) this.late(() => this.events.miss(plan, false));
  }

  /**
   * Passes a request on (the cache neither serves nor stores it) and gives
   * `after`, as next() returns, whether a layer further in stood this one down
   * (see runHandler): its report waits for that.
   */
  private passOnReporting(req: IncomingMessage, next: () => unknown, after: ((stoodDown: boolean) => void) | undefined): boolean | Promise<boolean> {
    if (after === undefined) return passOn(next);
    const pending = new PendingReport();
    (req as unknown as Record<symbol, ActiveFill>)[ACTIVE_FILL] = pending;
    let result: unknown;
    try {
      result = next();
    } finally {
      after(pending.stoodDown);
    }
    return isThenable(result) ? Promise.resolve(result).then(() => false) : false;
  }

  /**
   * A report made once the rest of the app runs: a listener that throws then
   * must not reach the adapter, which would answer the request a second time
   * (its error handler) while the handler goes on. Reported as an error instead.
   */
  private late(report: () => void): void {
    try {
      report();
    } catch (err) {
      this.cache.reportError(err as Error, 'an event listener threw', 'middleware');
    }
  }

  /**
   * Passes a request the cache neither serves nor stores, saying why (quiet
   * reasons — a route the cache is not meant for — only when verbose).
   */
  private bypass(c: HttpRequestContext<R>, next: () => unknown, reason: BypassReason | undefined): boolean | Promise<boolean> {
    const o = this.options;
    const said = reason === undefined ? o.verboseStatus : o.verboseStatus || !QUIET_BYPASS_REASONS.has(reason);
    if (said && o.cacheStatus && !c.res.headersSent) sayBeforeApp(c.res, reason === undefined ? BYPASS : bypassStatus(reason));
    stripCacheGroups(c.res);
    if (!said || reason === undefined) return passOn(next);
    // Reported once a layer further in has had its chance: it stands this one down and reports its own.
    return this.passOnReporting(c.req, next, this.unlessStoodDown(false, () => this.events.bypass(c.url, c.arg, reason)));
  }

  /** The handler answers a request whose answer will not be stored: say why, keep Cache-Groups in. */
  private unstored(res: ServerResponse, reason: MissReason): void {
    if (this.options.cacheStatus && !res.headersSent) sayBeforeApp(res, missStatus(reason));
    stripCacheGroups(res);
  }

  /** Whether lifetimes at this target come from the origin (freshness: 'origin' on the route, its rule, or the cache). */
  private originModeAt(url: string): boolean {
    const o = this.options.freshness;
    if (o !== undefined) return o === 'origin';
    const rule = this.cache.options.routes.matchNormalized(normalizeRoutePath(pathOf(url)));
    return (rule?.freshness ?? this.cache.options.freshness) === 'origin';
  }

  /** What a layer further out of this cache read from L2 for this request's key and left on it (see passOver). */
  private passedRead(req: IncomingMessage, plan: Plan): PassedFromL2['read'] {
    const passed = (req as unknown as Record<symbol, PassedFromL2 | undefined>)[PASSED_FROM_L2];
    return passed !== undefined && passed.key === plan.key && passed.cache === this.cache ? passed.read : undefined;
  }

  /** The key `local` was found under, when a layer further out read it from L2 for this request and it is stale (see passOver). */
  private readFurtherOut(req: IncomingMessage, plan: Plan, local: Found): string | undefined {
    const read = this.passedRead(req, plan);
    return read !== undefined && read.found.entry === local.entry ? read.key : undefined;
  }

  /**
   * L1 off: what a layer further out read from L2 for this request and left to this one (see passOver), if this
   * one may serve it. A variant only when this request's headers, as they are here, choose it by the manifest
   * that led to it: a middleware between may have set a varied one since (a tenant from an API key). Not one an
   * invalidation made or heard since has outdated (L1 would have dropped it).
   */
  private passedWithoutL1(req: IncomingMessage, plan: Plan): Found | undefined {
    const read = this.passedRead(req, plan);
    if (read === undefined || notOurs(plan, read.found)) return undefined;
    if (read.key !== plan.key && (read.vary === undefined || variantKey(plan.key, varyPairs(req.headers, read.vary)) !== read.key)) return undefined;
    return this.cache.store.versions.check(read.found.entry) === Validity.Invalid ? undefined : read.found;
  }

  /** Whether `req` is our background refresh (remembered on the request for every layer it meets). */
  private isOwnRefresh(req: IncomingMessage): boolean {
    (req as unknown as Record<symbol, unknown>)[REFRESHING_SEEN] = true;
    return isRefresh(req);
  }

  /** L1 alone, without I/O: a valid entry (possibly stale), or undefined when L2 or Redis must be asked. */
  private findInL1(key: string, req: IncomingMessage): Found | undefined {
    const store = this.cache.store;
    const entry = store.lookupL1(key, false, undefined, false);
    if (entry === undefined || entry === UNDECIDED) return undefined;
    const value = httpValueOf(entry);
    if (value instanceof PreparedResponse) return { entry, response: value, tier: 'L1', lookups: 1 };
    const variant = value instanceof VaryManifest ? store.lookupL1(variantKey(key, varyPairs(req.headers, value.headers)), false, undefined, false) : undefined;
    if (variant === undefined || variant === UNDECIDED) {
      store.noteL1Hits(1);
      return undefined;
    }
    const response = httpValueOf(variant);
    if (response instanceof PreparedResponse) return { entry: variant, response, tier: 'L1', lookups: 2, vary: (value as VaryManifest).headers };
    store.noteL1Hits(2);
    return undefined;
  }

  /** Past a fresh L1 hit: L2, stale answers, or the handler. */
  private async serveOrFill(c: HttpRequestContext<R>, plan: Plan, next: () => unknown, local: Found | undefined): Promise<boolean> {
    const { req, res } = c;
    // A fill begun before the removal reaches Redis would record its marker version, and be refused there.
    const removal = this.removals.size === 0 ? undefined : this.removals.get(plan.key);
    if (removal !== undefined) await removal;
    // L1 off: no L1 kept what a layer further out read from L2 for this request; read again, Redis would be asked
    // twice and the hit counted twice. Fresh, it is served as handlePlanned serves one passed through L1.
    if (local === undefined && this.cache.store.l1 === undefined) {
      local = this.passedWithoutL1(req, plan);
      if (local !== undefined) {
        const now = coarseNow();
        if (plan.origin === undefined ? local.entry.freshUntil > now : useOf(plan.origin, local.entry, local.response, now, this.forced, plan.key) === Use.Hit) return this.serveFresh(c, plan, local, now, undefined);
      }
    }
    let found = local;
    let begun: BegunFill | undefined;
    // Only when Redis did not answer the fill's lookup: the L1 entry findInL1 could not vouch for, for a 5xx.
    let standIn: Found | undefined;
    // This request's L1 miss, counted here: taken back if a layer further in decides (see outerMiss).
    let l1Noted = false;
    try {
      if (this.cache.store.l2 !== undefined && this.mayStartFill(c, plan)) {
        if (local === undefined) {
          this.cache.store.noteL1Miss();
          l1Noted = true;
        }
        // One round trip: the L2 lookup and, on a miss (or a stale entry), the fill's lock and
        // stamp. The fill is registered first, so requests for the key on this instance wait on it.
        begun = { flight: this.beginFill(plan, req, res), start: undefined };
        // A stale entry a layer further out read from L2 for this request (see passOver): what L2 holds was
        // just read and counted; only this layer's lock and stamp are wanted (its tags may differ).
        const read = local === undefined ? undefined : this.readFurtherOut(req, plan, local);
        const start = await this.startFill(plan, req, begun.flight, read);
        begun = { flight: begun.flight, start };
        if (start.found !== undefined) found = start.found;
        else if (read !== undefined) found = { ...local!, tier: 'L2' };
        else if (found === undefined && start.lookup.unanswered === true) standIn = this.outageStandIn(plan, req);
      } else if (found === undefined) {
        // find() counts its L1 lookup: a miss, unless L1 answered (an entry only Redis could vouch for).
        // A waiter or a HEAD passed on to the route's layer is counted there again: this one is taken back.
        found = await this.find(plan.key, req);
        l1Noted = found?.tier !== 'L1' || found.unchecked === true;
      }
    } catch (err) {
      this.cache.reportError(err as Error, 'cache lookup failed; running the handler');
    }
    // The entry found before the lookup was checked then, and is served (stale) only now: an invalidation heard
    // during that round trip counts, and after a bus reset an L1 entry needs Redis's word, as on arrival.
    if (found !== undefined && found.entry === local?.entry) {
      const validity = this.cache.store.versions.check(found.entry);
      if (validity === Validity.Invalid || (validity === Validity.Unknown && local.tier === 'L1')) found = undefined;
    }
    if (found !== undefined && notOurs(plan, found)) {
      begun?.flight.settle(undefined);
      const start = begun?.start;
      return this.passOver(c, plan, found, next, start?.found === found ? { key: start.lockedKey, found, vary: start.vary } : undefined);
    }
    // Redis did not answer for find()'s L1 entry: not served, a stand-in for a 5xx at most (see outageStandIn).
    if (found?.unchecked === true) {
      standIn = this.standInWithin(plan, found);
      found = undefined;
    }
    const now = coarseNow();
    if (plan.origin !== undefined) return this.serveOrigin(c, plan, next, found, begun, now, l1Noted, standIn);
    if (found !== undefined) {
      const entry = found.entry;
      if (entry.freshUntil > now) return this.serveFresh(c, plan, found, now, begun);
      if (this.serveWhileRevalidating(c, plan, found, now, plan.staleWhileRevalidate, begun)) return true;
      if (now >= entry.freshUntil + plan.staleIfError) found = undefined;
    }
    return this.fill(c, plan, next, found ?? standIn, begun, l1Noted);
  }

  /**
   * stale-if-error for a request that arrives in an outage (DESIGN §3, §4):
   * findInL1 passed over the L1 entry (only Redis could vouch for it, the bus
   * being down) and the fill's lookup got no answer from Redis. Without it
   * the 5xx would find nothing to stand in for it. Never served, fresh or
   * stale, nor revalidated (Found.unchecked): at a 5xx, staleIfErrorUntil
   * decides as for any stale entry local state cannot vouch for (Redis still
   * down: it stands in unless an invalidation this instance made covers it;
   * Redis back: its word). Undefined outside its stale-if-error window, and
   * where the route has none. Costs nothing unless Redis failed the lookup.
   */
  private outageStandIn(plan: Plan, req: IncomingMessage): Found | undefined {
    const l1 = this.cache.store.l1;
    if (l1 === undefined) return undefined;
    const versions = this.cache.store.versions;
    const usable = (entry: StoredEntry | undefined) => (entry !== undefined && versions.check(entry) !== Validity.Invalid ? entry : undefined);
    let entry = usable(l1.peek(plan.key));
    let value = entry === undefined ? undefined : httpValueOf(entry);
    if (value instanceof VaryManifest) {
      entry = usable(l1.peek(variantKey(plan.key, varyPairs(req.headers, value.headers))));
      value = entry === undefined ? undefined : httpValueOf(entry);
    }
    return value instanceof PreparedResponse ? this.standInWithin(plan, { entry: entry!, response: value, tier: 'L1', unchecked: true }) : undefined;
  }

  /** An unchecked entry (see Found.unchecked) as the stand-in for a 5xx: within its stale-if-error window, where there is one. */
  private standInWithin(plan: Plan, found: Found): Found | undefined {
    const window = plan.origin === undefined ? plan.staleIfError : staleWindow(found.response.staleRules, plan.staleIfError, 'staleIfError');
    return window > 0 && coarseNow() < found.entry.freshUntil + window && !notOurs(plan, found) ? found : undefined;
  }

  private serveFresh(c: HttpRequestContext<R>, plan: Plan, found: Found, now: number, begun: BegunFill | undefined): true {
    // Requests that waited on this lookup find the entry themselves (L1 is warm now).
    begun?.flight.settle(LOOK_AGAIN);
    if (this.cache.hitListened) this.reportServed(c.deferred, plan, found.tier, false);
    replay(c.req, c.res, found.response, found.entry.createdAt, now, this.status(found.tier === 'L1' ? HIT_L1 : HIT_L2), c.deferred);
    return true;
  }

  /** stale-while-revalidate: within `window` past freshness, answers stale and refreshes in the background; false when it cannot. */
  private serveWhileRevalidating(c: HttpRequestContext<R>, plan: Plan, found: Found, now: number, window: number, begun: BegunFill | undefined): boolean {
    const entry = found.entry;
    const dispatch = now < entry.freshUntil + window ? this.dispatchOf(c.app, c.req, c.arg) : undefined;
    if (dispatch === undefined) return false;
    // Requests that waited on this lookup get the stale answer too; the refresh takes the lock itself.
    begun?.flight.settle(staleOutcome(found, entry.freshUntil + window, c.req));
    this.serveStale(c, plan, found, now);
    this.revalidate(c, plan.key, dispatch, found.vary);
    return true;
  }

  private serveStale(c: HttpRequestContext<R>, plan: Plan, found: Found, now: number): void {
    this.reportServed(c.deferred, plan, found.tier, true);
    replay(c.req, c.res, found.response, found.entry.createdAt, now, this.status(staleHit(found.tier, (now - found.entry.freshUntil) / 1000)), c.deferred);
  }

  /**
   * Origin mode past a fresh L1 hit (RFC 9111 §4): serve a stored answer that
   * fits the request, serve stale where the response and route allow it,
   * answer only-if-cached with 504, else run the handler — conditionally when
   * the stale entry has validators (fill() adds them).
   */
  private serveOrigin(c: HttpRequestContext<R>, plan: Plan, next: () => unknown, found: Found | undefined, begun: BegunFill | undefined, now: number, l1Noted: boolean, standIn: Found | undefined): boolean | Promise<boolean> {
    const origin = plan.origin!;
    if (found !== undefined) {
      const use = useOf(origin, found.entry, found.response, now, this.forced, plan.key);
      if (use === Use.Hit) return this.serveFresh(c, plan, found, now, begun);
      if (use === Use.Stale) {
        // Its fill ends unrun: a request that waited on it fills in its place (or it ran its own, storing nothing).
        if (begun !== undefined) begun.flight.abandoned = true;
        begun?.flight.settle(undefined);
        this.serveStale(c, plan, found, now);
        return true;
      }
      const rules = found.response.staleRules;
      if (origin.needs === undefined && this.serveWhileRevalidating(c, plan, found, now, staleWindow(rules, plan.staleWhileRevalidate, 'staleWhileRevalidate'), begun)) return true;
      if (!revalidatable(found.response) && now >= found.entry.freshUntil + staleWindow(rules, plan.staleIfError, 'staleIfError')) found = undefined;
    }
    if (origin.needs?.onlyIfCached === true) {
      // §5.2.1.7: nothing stored fits, and the origin must not be asked.
      begun?.flight.settle(undefined);
      // Answered here, not by the app: what an outer layer said before is not this answer's word.
      forgetSaid(c.res);
      if (this.options.cacheStatus) c.res.setHeader('cache-status', ONLY_IF_CACHED);
      c.res.statusCode = 504;
      c.res.end();
      return true;
    }
    return this.fill(c, plan, next, found ?? standIn, begun, l1Noted);
  }

  /**
   * Registers a fill under way for `key` (before its first round trip):
   * requests for the key on this instance wait on it from now on. However it
   * ends, its waiters go on and what its lookup took in Redis is released.
   */
  private beginFill(plan: Plan, req: IncomingMessage, res: ServerResponse): Flight {
    const key = plan.key;
    const lock = this.cache.fillLock;
    const startedAt = coarseNow();
    const flight = new Flight(key, startedAt, COALESCE_WAIT_MS + (lock?.ttl ?? 0), this.keepsConditionals(plan, req, startedAt), this, ++this.fillsBegun);
    // A fill whose client stopped reading gives way to this one (its lock released, nothing stored).
    this.flights.get(key)?.stall?.();
    this.flights.set(key, flight);
    // A client gone while Redis is asked, or a handler that never calls end(): the fill ends with its request.
    // Not once its store is under way (a revalidation's refresh stores after its answer went out), nor once the
    // handler ended a whole answer that is judged a turn later (HTTP/2): the store, or that judging, settles it.
    // on, not once: 'close' comes once, and once() would wrap the listener in a bound function and its state, per fill.
    res.on('close', () => {
      if (flight.storing || flight.judging || flight.done) return;
      flight.abandoned = true;
      flight.settle(undefined);
    });
    return flight;
  }

  /** A flight of beginFill's settled (called by it, once, synchronously). */
  flightSettled(flight: Flight): void {
    flight.ended = true;
    if (this.flights.get(flight.key) === flight) this.flights.delete(flight.key);
    // Ended without a store (which releases the lock itself): release it, drop counters made for nothing.
    if (!flight.storing) this.cache.store.abandonFill(flight.ticket);
  }

  /** The request's Cache-Control: no-store (origin mode may be told to ignore it). */
  private requestNoStore(req: IncomingMessage, plan: Plan): boolean {
    if (plan.origin !== undefined && !plan.origin.directives.noStore) return false;
    return requestForbidsStore(req.headers);
  }

  /** Whether a request for `key` would wait on a fill under way here (a collapsed miss). */
  private joining(key: string): boolean {
    const running = this.flights.get(key);
    return running !== undefined && !running.done && running.stall === undefined && running.deadline > coarseNow();
  }

  /** Why this request may be answered from an entry or a fill under way, but may not fill one itself. */
  private fillRefused(c: HttpRequestContext<R>, plan: Plan): MissReason | undefined {
    if (c.req.method === 'HEAD') return 'head';
    if (c.sentOdd === true) return 'target';
    return this.requestNoStore(c.req, plan) ? 'request-no-store' : undefined;
  }

  /**
   * Whether a fill of this request keeps its conditionals (see FillCapture), its answer known too large to
   * store at `at` (see oversized-answers.ts): the app answers them, nothing is stored. Such a fill takes no
   * fill lock: held, another instance's request for the key waited for it and then ran its handler unlocked.
   */
  private keepsConditionals(plan: Plan, req: IncomingMessage, at: number): boolean {
    const conditions = conditionsOf(req.headers);
    return conditions !== undefined && this.oversized.known(plan.key, plan.routePath, plan.user, req.headers, conditions, at);
  }

  /** Whether this request would run a fill of its own (so its lookup may take the lock and stamp too). */
  private mayStartFill(c: HttpRequestContext<R>, plan: Plan): boolean {
    // only-if-cached never asks the origin: a fill begun for it would end unrun, after its waiters and its lock waited on it.
    if (this.fillRefused(c, plan) !== undefined || plan.origin?.needs?.onlyIfCached === true) return false;
    const running = this.flights.get(plan.key);
    return running === undefined || running.done || running.stall !== undefined || running.deadline <= coarseNow();
  }

  /**
   * The first round trip of a fill (see TieredStore.lookupForFill), following
   * a Vary manifest to the request's variant (then the variant's key is
   * locked). `found` is a valid entry, fresh or stale.
   */
  /** Keeps what a fill's lookup took in Redis for its second round trip; released at once if the fill already ended. */
  private hold(state: FillState, ticket: FillTicket): void {
    if (state.ended && !state.storing) this.cache.store.abandonFill(ticket);
    else state.ticket = ticket;
  }

  private async startFill(plan: Plan, req: IncomingMessage, state: FillState, readAt?: string): Promise<FillStart> {
    const store = this.cache.store;
    const lock = state.keeps ? undefined : this.cache.fillLock;
    const tags = this.tagsOf(plan);
    let key = readAt ?? plan.key;
    let vary: readonly string[] | undefined;
    let lookup = await store.lookupForFill(key, tags, lock?.request(key), readAt !== undefined);
    if (lookup.hit !== undefined) {
      const value = this.valueOfHit(key, lookup.hit);
      if (value instanceof VaryManifest) {
        store.abandonFill(lookup.ticket);
        vary = value.headers;
        key = variantKey(plan.key, varyPairs(req.headers, vary));
        lookup = await store.lookupForFill(key, tags, lock?.request(key));
      }
    }
    this.hold(state, lookup.ticket);
    state.lockedKey = key;
    let found: Found | undefined;
    if (lookup.hit !== undefined) {
      const response = this.valueOfHit(key, lookup.hit);
      if (response instanceof PreparedResponse) found = { entry: lookup.hit.entry, response, tier: lookup.hit.tier, vary };
      else {
        store.discard(key, lookup.hit.entry);
        if (lookup.stamp === undefined) {
          store.abandonFill(lookup.ticket);
          lookup = await store.lookupForFill(key, tags, lock?.request(key), true);
          this.hold(state, lookup.ticket);
        }
      }
    }
    return { found, tags, lookup, lockedKey: key, vary };
  }

  /**
   * RFC 9111 §4.4: a successful POST/PUT/PATCH/DELETE invalidates what is
   * cached at its target path (every query variant) and at same-origin
   * Location / Content-Location, on every instance — those paths only, not
   * what lies below them: a login redirect answering a write must not flush a
   * subtree (invalidatePrefix is there for the app's own write handlers).
   * One decision per request, by the first middleware that could cache here.
   */
  private invalidateAfterWrite(c: HttpRequestContext<R>): void {
    const cache = this.cache;
    if (!cache.enabled || cache.closed) return;
    const req = c.req as unknown as Record<symbol, Map<TierCache, boolean> | undefined>;
    // Per cache: whether a middleware of that cache decides this write, and whether for its target too.
    const seen = (req[WRITE_SEEN] ??= new Map());
    if (seen.get(cache) === true) return;
    const path = pathOf(c.url);
    // The target only where something could be cached: a table rule, a TTL of the cache or of this
    // middleware, or per-route mounting. Elsewhere (a `false` rule: POST /api/admin/items answered
    // 303 /api/items) only a Location or Content-Location that the table caches is invalidated.
    const couldCache = (p: string) => cache.options.routes.matchNormalized(normalizeRoutePath(p))?.cache === true;
    const targetCached = couldCache(path) || cache.options.ttl !== undefined || this.options.ttl !== undefined || c.perRoute;
    // A second middleware that would look at the Locations alone adds nothing.
    if (!targetCached && seen.has(cache)) return;
    seen.set(cache, targetCached);
    const res = c.res;
    let decided = false;
    const decide = () => {
      if (decided) return;
      decided = true;
      // A middleware further in that could cache the target decides it all.
      if (!targetCached && seen.get(cache) === true) return;
      if (res.statusCode < 200 || res.statusCode >= 400) return;
      const tags = new Set<string>();
      // The root is never invalidated this way (exactPathTag('/') is undefined): a POST to '/'
      // (or a redirect to it after a login) would otherwise empty the root on every instance.
      const add = (p: string | undefined) => {
        const tag = p !== undefined && p.startsWith('/') ? exactPathTag(p) : undefined;
        if (tag !== undefined) tags.add(tag);
      };
      // A dot segment: the router ran the handler of the path as written, whose answers are never cached,
      // while the resolved path names another route's entries (POST /api/beacon/../me must not flush /api/me).
      if (targetCached && !hasDotSegment(path)) add(path);
      for (const name of ['location', 'content-location'] as const) {
        const p = sameOriginPath(res.getHeader(name), requestHost(c.req.headers), path);
        if (p !== undefined && (targetCached || couldCache(p))) add(p);
      }
      if (tags.size === 0) return;
      Promise.resolve()
        .then(() => cache.invalidateTags([...tags]))
        .catch((err: unknown) => cache.reportError(err as Error, `invalidation after ${c.req.method} ${path} failed`, 'invalidation'));
    };
    res.once('finish', decide);
    // The client left before the answer was out: 'finish' never comes, but the write may well have been
    // made. Decided on the status the handler ends with, once it does (not before, even with the head
    // out: the write may not be done yet, and an invalidation ahead of it would let a refill store the
    // old data): as it calls end(), or as the adapter says the app is done (Koa 2 ends nothing for a
    // client that is gone: see DeferredHit.appDone).
    // A response queued behind a pipelined one gets no 'close' either (it never had the socket): node
    // destroys its request when the connection goes, so the request's 'close' is heard too.
    let waiting = false;
    let appDone = false;
    const deferred = c.deferred;
    if (deferred !== undefined) {
      deferred.appDone = () => {
        appDone = true;
        if (waiting) decide();
      };
    }
    const gone = () => {
      if (decided || waiting || res.writableFinished) return;
      if (res.writableEnded || appDone) return decide();
      waiting = true;
      const end = res.end;
      res.end = function endAfterClose(this: ServerResponse, ...args: unknown[]) {
        const out = (end as (...a: unknown[]) => ServerResponse).apply(this, args);
        decide();
        return out;
      } as ServerResponse['end'];
    };
    res.once('close', gone);
    c.req.once('close', gone);
  }

  /**
   * Counts an answer replayed from an entry (see HttpEvents.served) as it is
   * written: at once, or when an adapter that writes hits later (Koa) does
   * (see DeferredHit.report: one never written is no answer of the cache's).
   */
  private reportServed(deferred: DeferredHit | undefined, plan: Plan, tier: Tier, stale: boolean): void {
    if (deferred === undefined) this.events.served(plan, tier, stale);
    else deferred.report = () => this.events.served(plan, tier, stale);
  }

  /** Refreshes a stale entry in the background, at most one refresh per key at a time. */
  private revalidate(c: HttpRequestContext<R>, key: string, dispatch: Dispatch, vary: readonly string[] | undefined): void {
    if (this.refreshing.has(key) || this.flights.has(key)) return;
    this.refreshing.add(key);
    const request = refreshRequest(c.req, c.url);
    // The refresh is the cache's own: the trigger's Cache-Control (no-store) would make it store nothing,
    // while every other request kept getting the stale entry (a client could keep an entry stale so).
    delete request.headers['cache-control'];
    delete request.headers.pragma;
    dispatch(vary === undefined ? request : { ...request, vary })
      .catch((err: unknown) => this.cache.reportError(err as Error, 'background refresh failed', 'refresh'))
      .finally(() => this.refreshing.delete(key));
  }

  /** Decides whether and how the request is cached; a reason when it passes through untouched. */
  private plan(c: HttpRequestContext<R>): Plan | BypassReason {
    const cache = this.cache;
    const o = this.options;
    // Disabled, or closed: pass through untouched (a closed cache has no tiers to answer from).
    if (!cache.enabled) return 'disabled';
    if (cache.closed) return 'closed';
    const req = c.req;
    const method = req.method ?? 'GET';
    if (!o.methods.has(method) && !(method === 'HEAD' && o.methods.has('GET'))) return 'method';
    const path = pathOf(c.url);
    const routePath = normalizeRoutePath(path);
    const rule = cache.options.routes.matchNormalized(routePath);
    if (rule !== undefined && !rule.cache) return 'no-rule';
    const ttl = o.ttl ?? rule?.ttl ?? cache.options.ttl ?? (c.perRoute ? DEFAULT_ROUTE_TTL : undefined);
    if (ttl === undefined) return 'no-rule';
    const rawUser = o.user?.(c.arg);
    // An empty id is no id (`req.session?.userId ?? ''`): as one, every anonymous session would share its entry.
    const user = rawUser === undefined || rawUser === null || rawUser === '' ? undefined : userId(rawUser);
    const shared = o.shared ?? rule?.shared ?? false;
    const origin = (o.freshness ?? rule?.freshness ?? cache.options.freshness) === 'origin';
    const bypass = (origin ? originBypassReason : requestBypassReason)(req.headers, method, c.originalMethod, user !== undefined || shared, c.url, http2DataFollows(req)) ?? (o.bypass?.(c.arg) === true ? 'app' : undefined);
    if (bypass !== undefined) return bypass;
    const vary = rule?.vary === undefined ? o.vary : [...new Set([...rule.vary, ...o.vary])];
    const key = buildRequestKey({
      namespace: cache.prefix,
      method,
      url: c.url,
      customKey: o.key?.(c.arg),
      queryAllow: o.query ?? rule?.query,
      vary: vary.length === 0 ? undefined : varyPairs(req.headers, vary),
      user,
    });

    const swr = o.staleWhileRevalidate ?? rule?.staleWhileRevalidate ?? 0;
    const sie = o.staleIfError ?? rule?.staleIfError ?? 0;
    // A middleware with `user` stores even its anonymous answers under keys a plain one builds too: see StoredHead.r.
    const scoped = o.user !== undefined;
    const isPublic = !scoped && o.key === undefined && o.vary.length === 0 && o.query === undefined && req.headers.authorization === undefined && req.headers.cookie === undefined;
    // Jitter (a share of the TTL taken off at random) spreads out the expiry of entries filled together.
    const jitter = o.jitter ?? rule?.jitter ?? cache.options.jitter;
    const negativeTtl = o.negativeTtl ?? rule?.negativeTtl;
    return { key, ttl: jitter === 0 ? ttl : jitteredTtl(ttl, jitter), negativeTtl: jitter === 0 || negativeTtl === undefined ? negativeTtl : jitteredTtl(negativeTtl, jitter), staleWhileRevalidate: swr, staleIfError: sie, userScoped: user !== undefined, isPublic, scoped, perRoute: c.perRoute, routePath, user, arg: c.arg, origin: origin ? originPlan(req.headers, o.requestDirectives, o.targeted, ttl) : undefined };
  }

  /** The entry's own key tag, its exact path tag, its implicit user and path tags, and the route's explicit tags. */
  private tagsOf(plan: Plan): string[] {
    const all = [keyTag(plan.key)];
    if (plan.user !== undefined) all.push(userTag(plan.user));
    for (const tag of this.pathTagsOf(plan.routePath)) all.push(tag);
    const explicit = this.options.tags?.(plan.arg as R);
    if (explicit !== undefined) {
      for (const t of explicit) {
        if (typeof t !== 'string' || t === '') continue;
        const tag = wellFormedTag(t);
        if (!all.includes(tag)) all.push(tag);
      }
    }
    return all;
  }

  /** A path's tags (its prefixes and itself exactly), built once per path while it stays in use. */
  private pathTagsOf(routePath: string): readonly string[] {
    let tags = this.pathTagCache.get(routePath);
    if (tags === undefined) {
      const built = implicitTags(routePath);
      const exact = exactPathTag(routePath);
      if (exact !== undefined) built.push(exact);
      // A path the app rewrote may hold any string (see wellFormedTag); built once per path.
      tags = built.map(wellFormedTag);
      // A long path is not kept: a client's 13 KB URLs would otherwise hold ~80 KB of tags each, past any bound.
      if (routePath.length <= PATH_TAG_CACHE_MAX_PATH) {
        if (this.pathTagCache.size >= PATH_TAG_CACHE_SIZE) this.pathTagCache.clear();
        this.pathTagCache.set(routePath, tags);
      }
    }
    return tags;
  }

  status(value: string): string | undefined {
    return this.options.cacheStatus ? value : undefined;
  }

  /**
   * L1 (synchronously when it can decide), then L2; follows a Vary manifest
   * to the request's variant. An L1 entry only Redis could vouch for, while
   * Redis does not answer, comes back unchecked (Found.unchecked): the
   * middleware serves no entry it cannot check (README, "When Redis is
   * down": an outage cannot be told from this instance cut off alone).
   */
  private async find(key: string, req: IncomingMessage, freshOnly = false): Promise<Found | undefined> {
    const first = await this.lookup(key, freshOnly);
    if (first === undefined) return undefined;
    const value = this.valueOfHit(key, first);
    if (value instanceof PreparedResponse) return foundOf(first, value);
    if (!(value instanceof VaryManifest)) {
      this.cache.store.discard(key, first.entry);
      return undefined;
    }
    const vkey = variantKey(key, varyPairs(req.headers, value.headers));
    const variant = await this.lookup(vkey, freshOnly);
    if (variant === undefined) return undefined;
    const response = this.valueOfHit(vkey, variant);
    if (response instanceof PreparedResponse) return foundOf(variant, response, first.unverified, value.headers);
    this.cache.store.discard(vkey, variant.entry);
    return undefined;
  }

  /**
   * The HTTP value of a hit. An entry read from L2 went into L1 charged an
   * estimate from its bytes; decoded, it is charged again at what it holds.
   */
  private valueOfHit(key: string, hit: { entry: StoredEntry; tier: Tier }): HttpEntryValue | undefined {
    const value = httpValueOf(hit.entry);
    if (hit.tier === 'L2' && value !== undefined) this.cache.store.l1?.recharge(key, hit.entry);
    return value;
  }

  /**
   * `freshOnly`: an entry L1 holds past its freshness is passed over for L2's.
   * A request polling for another instance's fill needs that: its own L1
   * still holds the stale entry the fill replaces, and would hide the new one.
   */
  private lookup(key: string, freshOnly = false): TieredHit | undefined | Promise<TieredHit | undefined> {
    const store = this.cache.store;
    const local = store.lookupL1(key);
    // Not served here while Redis does not answer for it (an outage, or this instance cut off alone): see find().
    if (local === UNDECIDED) return freshOnly ? this.freshFromEitherTier(key) : store.get(key);
    if (local !== undefined && !(freshOnly && local.freshUntil <= coarseNow())) return { entry: local, tier: 'L1' };
    return store.getL2(key);
  }

  /** lookup() with freshOnly when L1 cannot vouch for its entry here: Redis decides, and a stale L1 entry still gives way to L2's. */
  private async freshFromEitherTier(key: string): Promise<TieredHit | undefined> {
    const hit = await this.cache.store.get(key);
    return hit?.tier === 'L1' && hit.entry.freshUntil <= coarseNow() ? this.cache.store.getL2(key) : hit;
  }

  /**
   * Answers a request that waited on another's fill, if the outcome fits it; false = run the handler;
   * UNVOUCHED: it fits, but could not be vouched for (Redis out of reach). `owed`: the fill began after the
   * request came (see fill).
   */
  private answerWaiter(c: HttpRequestContext<R>, plan: Plan, outcome: Outcome, owed: boolean): boolean | typeof UNVOUCHED | Promise<boolean | typeof UNVOUCHED> {
    if (outcome === undefined) return false;
    if (outcome === UNKEPT) return UNVOUCHED;
    const { req, res } = c;
    if (outcome === LOOK_AGAIN) {
      return this.find(plan.key, req).then(
        (found) => {
          const now = coarseNow();
          if (found === undefined || found.unchecked === true || found.entry.freshUntil <= now || notOurs(plan, found)) return false;
          // Origin mode: the fill may have ended by serving what its lookup found in L2 (stored by another instance),
          // which no origin validated for this request: one that asks for validation or more freshness (no-cache,
          // max-age, min-fresh) takes it only where it fits as it is, as it would a hit; else it runs its own.
          if (plan.origin?.needs !== undefined && useOf(plan.origin, found.entry, found.response, now) !== Use.Hit) return false;
          replay(req, res, found.response, found.entry.createdAt, now, this.status(MISS_COLLAPSED), c.deferred);
          return true;
        },
        () => false,
      );
    }
    if ('stale' in outcome) {
      const { entry, response, tier } = outcome.stale;
      const now = coarseNow();
      if (now >= outcome.until || !this.reusable(outcome, req)) return false;
      // Origin mode: a request that asks for validation or more freshness (no-cache, max-age, min-fresh) takes a
      // stale answer another got without asking the origin (stale-while-revalidate) only where it accepts one
      // itself (max-stale): else it runs its own. One that stands in for a revalidation that failed answers it too.
      if (outcome.failed === undefined && plan.origin?.needs !== undefined && useOf(plan.origin, entry, response, now) !== Use.Stale) return false;
      this.reportServed(c.deferred, plan, tier, true);
      replay(req, res, response, entry.createdAt, now, this.status(staleAnswerStatus(tier, entry.freshUntil - now, outcome.failed)), c.deferred);
      return true;
    }
    if (!this.reusable(outcome, req)) return false;
    // Invalidated while its store was out (a write answered meanwhile): stored or not, no answer for later arrivals.
    const versions = this.cache.store.versions;
    const validity = versions.check(outcome.entry);
    if (validity === Validity.Invalid) return false;
    const response = httpValueOf(outcome.entry);
    if (!(response instanceof PreparedResponse)) return false;
    // A fill begun after this request came: its handler read the app's state after the request was sent, so an
    // invalidation it may have run through is concurrent with this request, as with the fill's own request, which
    // takes its answer (DESIGN §4 (3)). One known here refused it above; neither Redis's word nor a store is needed.
    if (owed) return this.replayCollapsed(c, response, outcome.createdAt);
    if (outcome.unkept === true) return UNVOUCHED;
    // The bus is down: another instance may have invalidated the answer since it was made (its store may have
    // failed, the answer then kept in L1 alone). Redis vouches for it, as for an L1 hit; when it cannot, this
    // request does not take it (README, When Redis is down: "nor to a request that waits on another's fill").
    if (validity === Validity.Unknown && !versions.trusted) {
      return versions.vouch(outcome.entry).then((word) => (word === true ? this.replayCollapsed(c, response, outcome.createdAt) : UNVOUCHED));
    }
    return this.replayCollapsed(c, response, outcome.createdAt);
  }

  private replayCollapsed(c: HttpRequestContext<R>, response: PreparedResponse, createdAt: number): true {
    replay(c.req, c.res, response, createdAt, coarseNow(), this.status(MISS_COLLAPSED), c.deferred);
    return true;
  }

  /**
   * A miss: wait for a fill of the same key under way, or run the handler and
   * store its answer. `begun`: the fill serveOrFill registered and started.
   * `l1Noted`: given when this request's miss is reported here (serveOrFill,
   * fillLocally), as the rest of the app is reached (see unlessStoodDown);
   * whether the L1 miss was counted already. `since`: fills begun (HttpCache.fillsBegun) when the request first
   * waited on one, given once a fill it waited on left it: one begun later hands it its answer (see answerWaiter).
   */
  private async fill(c: HttpRequestContext<R>, plan: Plan, next: () => unknown, stale: Found | undefined, begun?: BegunFill, l1Noted?: boolean, since?: number): Promise<boolean> {
    const { req, res } = c;
    const reports = l1Noted !== undefined;
    const running = begun === undefined ? this.flights.get(plan.key) : undefined;
    // A retry's re-sent request is the one its flight waits for (isRefresh: known by now for our own).
    if (running !== undefined && !running.done && running.stall === undefined && running.deadline > coarseNow() && !(running.retrying && isRefresh(req))) {
      // A waiter is reported as one once it is known that no layer further in decides for it (see outerMiss):
      // answered here, or passed on with nobody standing this one down.
      const waited = () => {
        this.cache.coalesced++;
        if (reports) this.reportMiss(plan, true);
      };
      // Fills begun from now on begin after this request came.
      const came = since ?? this.fillsBegun;
      const owed = running.ordinal > came;
      if (owed) running.handsOver = true;
      const outcome = await running.wait(this.fillRefused(c, plan) === undefined);
      // Let go by a fill whose client stopped reading, which goes on for that client: on as one that comes now.
      if (outcome === LET_GO) return this.fill(c, plan, next, stale, undefined, l1Noted, since);
      const answered = await this.answerWaiter(c, plan, outcome, owed);
      if (answered === true) {
        this.late(waited);
        return true;
      }
      // Its client left: one waiter fills in its place and the others wait on that one, instead of each
      // running the handler (a client that keeps starting fills and leaving would defeat coalescing).
      if (running.abandoned && !res.destroyed && takeRefill(req)) {
        this.late(waited);
        return this.fill(c, plan, next, stale, undefined, undefined, came);
      }
      // Its answer could not be vouched for (Redis out of reach): the requests it leaves share one fill begun after
      // they came, whose answer needs no word from Redis (see answerWaiter). Each running the handler instead would
      // put every concurrent request of the key on the app at once for as long as Redis is out of reach. Once: one
      // that fill leaves too runs the handler, reported as this wait.
      if (answered === UNVOUCHED && since === undefined) return this.fill(c, plan, next, stale, undefined, l1Noted, came);
      this.unstored(res, 'waited');
      await this.passOnReporting(req, next, this.unlessStoodDown(l1Noted === true, waited));
      return false;
    }
    const refused = begun === undefined ? this.fillRefused(c, plan) : undefined;
    if (begun === undefined && (refused !== undefined || res.destroyed)) {
      this.unstored(res, refused ?? 'request-no-store');
      // Stored or not, a failing handler's answer is replaced as for a GET (nothing captured: maxBytes 0).
      if (stale !== undefined && !res.destroyed) {
        if (reports) this.reportMiss(plan, false);
        const guard = new StaleIfErrorGuard(this as HttpCache<never>, req, plan, stale);
        (req as unknown as Record<symbol, ActiveFill>)[ACTIVE_FILL] = guard;
        captureResponse(res, 0, guard);
        await next();
        return false;
      }
      await this.passOnReporting(req, next, reports ? this.outerMiss(plan, l1Noted) : undefined);
      return false;
    }

    const store = this.cache.store;
    const lock = this.cache.fillLock;
    const flight = begun?.flight ?? this.beginFill(plan, req, res);
    const state: FillState = flight;
    const start = begun?.start;
    const createdAt = flight.startedAt;
    let stamp: FillStamp | undefined = start?.lookup.stamp;
    let capture: FillCapture | undefined;
    try {
      const tags = start?.tags ?? this.tagsOf(plan);
      let theirs = start?.lookup.lock === 'theirs';
      if (store.l2 !== undefined && start === undefined && !flight.done) {
        // A refresh, or a fill that looked nothing up: take the lock and the stamp in one round trip.
        // A local fill past its deadline still holds this instance's lock: do not wait on ourselves.
        // A variant's refresh locks the variant's key, as a fill that followed the manifest does (startFill):
        // under the base key it ran beside that fill, and held up the refreshes of the URL's other variants.
        const names = refreshVary(req);
        const key = names === undefined ? plan.key : variantKey(plan.key, varyPairs(req.headers, names));
        // One that gave way (stalled) released its lock as it did.
        const lookup = await store.lookupForFill(key, tags, (running === undefined || running.done) && mayStore(state, plan, stale) ? lock?.request(key) : undefined, true);
        this.hold(state, lookup.ticket);
        state.lockedKey = key;
        stamp = lookup.stamp;
        theirs = lookup.lock === 'theirs';
      } else if (start !== undefined && state.keeps && lock !== undefined && revalidatesWith(plan, stale) && !flight.done) {
        // Its lookup took no lock, its conditionals known to be kept, but it found a stale copy to revalidate
        // (origin mode): it sets them aside after all, and may store. Locked now, as any fill that may store.
        store.abandonFill(state.ticket);
        const lookup = await store.lookupForFill(state.lockedKey, tags, lock.request(state.lockedKey), true);
        this.hold(state, lookup.ticket);
        stamp = lookup.stamp;
        theirs = lookup.lock === 'theirs';
      }
      if (theirs && lock !== undefined) {
        if (reports) this.reportMiss(plan, false);
        return this.collapseRemote(c, plan, flight, state, lock, next, stale, createdAt, stamp);
      }
      stamp ??= store.versions.stampLocally(tags) ?? (await store.versions.stamp(tags));
      if (res.destroyed || flight.done) flight.settle(undefined); // the client left while Redis was asked
      else capture = this.capture(c, plan, stamp, flight, stale, createdAt, state);
    } catch (err) {
      flight.settle(undefined);
      this.cache.reportError(err as Error, 'could not start a fill; running the handler uncached');
    }
    return this.runHandler(res, next, flight, capture, stale, reports ? plan : undefined, l1Noted === true);
  }

  /**
   * Runs the rest of the app for a fill: false ("the cache did not answer"),
   * as passOn does. `missOf`: the miss reported here (see outerMiss) once
   * next() returns, when it is known whether a layer further in stood this
   * fill down: Express's router and Koa's compose call the route's
   * middleware before next() returns, unless something between awaits first
   * (then both layers report, as before).
   */
  private runHandler(res: ServerResponse, next: () => unknown, flight: Flight, capture: FillCapture | undefined, stale: Found | undefined, missOf?: Plan, l1Noted = false): boolean | Promise<boolean> {
    const capturing = capture !== undefined;
    if (!capturing) stripCacheGroups(res);
    // With a stale entry to fall back on, the error answer (written by the framework) decides.
    const failed = (err: unknown): never => {
      if (!capturing || stale === undefined) flight.settle(undefined);
      throw err;
    };
    let result: unknown;
    try {
      result = next();
    } catch (err) {
      if (missOf !== undefined) this.missOnceReached(missOf, l1Noted, capture?.stoodDown === true);
      return failed(err);
    }
    if (missOf !== undefined) this.missOnceReached(missOf, l1Noted, capture?.stoodDown === true);
    if (!isThenable(result)) return false;
    return Promise.resolve(result).then(() => {
      // Koa: the layers further in are done; the head goes out once those in front are too.
      capture?.appDone(res);
      return false;
    }, failed);
  }

  /**
   * Another instance holds the fill lock: wait for its entry and answer with
   * it, or, when it stores nothing in time, fill here after all (unlocked).
   */
  private async collapseRemote(c: HttpRequestContext<R>, plan: Plan, flight: Flight, state: FillState, lock: FillLock, next: () => unknown, stale: Found | undefined, createdAt: number, stamp: FillStamp | undefined): Promise<boolean> {
    const { req, res } = c;
    const found = await this.awaitRemoteFill(plan.key, state.lockedKey, req, lock, flight);
    if (found !== undefined && !notOurs(plan, found)) {
      flight.settle(LOOK_AGAIN);
      replay(req, res, found.response, found.entry.createdAt, coarseNow(), this.status(MISS_COLLAPSED), c.deferred);
      return true;
    }
    let capture: FillCapture | undefined;
    if (!res.destroyed && !flight.done) {
      try {
        const tags = this.tagsOf(plan);
        const versions = this.cache.store.versions;
        capture = this.capture(c, plan, stamp ?? versions.stampLocally(tags) ?? (await versions.stamp(tags)), flight, stale, createdAt, state);
      } catch (err) {
        this.cache.reportError(err as Error, 'could not start a fill; running the handler uncached');
      }
    }
    if (capture === undefined) flight.settle(undefined);
    return this.runHandler(res, next, flight, capture, stale);
  }

  /**
   * Polls for the entry another instance is filling, until it appears, its
   * lock is gone (that fill stored nothing), the lock's lifetime has passed
   * or this request's own fill ended (client gone).
   */
  private async awaitRemoteFill(key: string, lockedKey: string, req: IncomingMessage, lock: FillLock, flight: Flight): Promise<Found | undefined> {
    const deadline = coarseNow() + lock.ttl;
    for (let round = 1; coarseNow() < deadline && !flight.done; round++) {
      await sleep(REMOTE_FILL_POLL_MS);
      const found = freshFound(await this.find(key, req, true).catch(() => undefined));
      if (found !== undefined) return found;
      // The fill's store and its lock's release are one script: a lock gone by now may have gone with a store that
      // landed just after the look above. Looked at once more, or this request runs the handler a second time.
      if (round % 5 === 0 && !(await lock.held(lockedKey))) return freshFound(await this.find(key, req, true).catch(() => undefined));
    }
    return undefined;
  }

  /** Whether a waiter may be answered with what another request's fill stored. */
  private reusable(outcome: FillOutcome | StaleOutcome, req: IncomingMessage): boolean {
    if (outcome.varyOn.length === 0) return true;
    for (let i = 0; i < outcome.varyOn.length; i++) {
      if (varyValue(req.headers, outcome.varyOn[i]!) !== outcome.varyValues[i]) return false;
    }
    return true;
  }

  /** Installs the capture that stores the handler's answer and settles `flight`. */
  private capture(c: HttpRequestContext<R>, plan: Plan, stamp: FillStamp, flight: Flight, stale: Found | undefined, createdAt: number, fill: FillState): FillCapture {
    const capture = new FillCapture(this, c.req, plan, stamp, flight, stale, createdAt, fill, c, outgoingField(c.res, 'cache-status'));
    // After the capture has read what was said in front (a respond of ctx's own this may make is the adapter's).
    this.respondWatch?.beforeFill(c.arg);
    (c.req as unknown as Record<symbol, ActiveFill>)[ACTIVE_FILL] = capture;
    captureResponse(c.res, this.storableBodyBytes(), capture);
    return capture;
  }

  /**
   * With L1 alone, whether L1 keeps this answer: it refuses an entry charged over
   * maxBytes, which the body's length alone does not tell near that bound. Only a
   * body that close is sized exactly, from the entry it will be.
   */
  fitsL1(plan: Plan, status: number, fields: Array<[string, string]>, body: Buffer, stamp: FillStamp, staleRules: StaleRules | undefined, reason: string | undefined, utf8Head: boolean): boolean {
    const maxBytes = this.cache.options.l1!.maxBytes;
    if (body.length + 3 * fieldChars(fields) + L1_SIZING_BAND < maxBytes) return true;
    const now = coarseNow();
    // Sized as it will be stored: its reason phrase and (public) route label are charged too.
    const route = plan.isPublic ? this.events.patternRouteOf(plan) : undefined;
    const { l1Entry } = responseEntry(stamp, { createdAt: now, freshUntil: now, staleUntil: now }, status, fields, body, plan.isPublic, staleRules, plan.scoped, reason, route, utf8Head, plan.perRoute);
    return L1Store.sizeOf(plan.key, l1Entry) <= maxBytes;
  }

  /** Whether L1 alone keeps what fills store (no L2, or Redis known down): then fitsL1 sizes each. */
  l1Alone(): boolean {
    return this.cache.options.l1 !== undefined && !this.l2Reachable();
  }

  /** maxBodyBytes, or with L1 alone (or Redis down) what L1 can hold at all: a bigger body would say `stored` and be dropped. */
  private storableBodyBytes(): number {
    const l1 = this.cache.options.l1;
    return !this.l2Reachable() && l1 !== undefined ? Math.min(this.options.maxBodyBytes, l1.maxBytes) : this.options.maxBodyBytes;
  }

  /** Whether a store may reach Redis: there is one, not known to be down (connecting, it may answer in time). */
  private l2Reachable(): boolean {
    const l2 = this.cache.store.l2;
    return l2 !== undefined && l2.state !== 'down';
  }

  /**
   * Whether a fill stored now can be hit: Redis is not known to be down, or
   * L1 keeps it and is trusted (while the pub/sub connection is down too, an
   * L1 hit must ask Redis, and L1 is flushed when it is back: such a fill is
   * never served).
   */
  canKeep(): boolean {
    return this.l2Reachable() || (this.cache.options.l1 !== undefined && this.cache.store.versions.trusted);
  }

  /**
   * stale-if-error, as a 5xx arrives: until when the stale entry may stand in
   * for it, or undefined when it may not (past its window, or invalidated
   * since this request found it). `generation`: version state's when the
   * request found it (undefined: not known, taken as changed). `redisSays`:
   * the answer of askBeforeStaleIfError, when it asked.
   */
  staleIfErrorUntil(plan: Plan, stale: Found, generation: number | undefined, redisSays?: boolean): number | undefined {
    const until = this.staleIfErrorWindowEnd(plan, stale);
    if (until === undefined) return undefined;
    // The stale entry was valid when this request found it; an invalidation may have reached it since.
    const validity = this.cache.store.versions.check(stale.entry);
    if (validity === Validity.Invalid) return undefined;
    // Local state cannot vouch for it: Redis's word decides; not asked, it stands in only in an outage
    // (Redis known down). Asked nothing, with Redis up (a retry's answer), the 5xx goes out.
    if (validity === Validity.Unknown && this.mayHaveMissed(generation) && !(redisSays ?? (!this.l2Reachable() && this.servedInOutage(stale)))) return undefined;
    return until;
  }

  /** Until when stale-if-error's window lets `stale` stand in; undefined: past it. */
  private staleIfErrorWindowEnd(plan: Plan, stale: Found): number | undefined {
    // Table mode: the stale entry came within its window. Origin mode: revalidation brings stale entries past it.
    const window = plan.origin === undefined ? plan.staleIfError : staleWindow(stale.response.staleRules, plan.staleIfError, 'staleIfError');
    if (plan.origin !== undefined && coarseNow() >= stale.entry.freshUntil + window) return undefined;
    return stale.entry.freshUntil + window;
  }

  /**
   * Whether local version state may have missed an invalidation since
   * `generation`: it was reset since (the bus came back: what was sent
   * meanwhile is lost), or the bus is down now.
   */
  private mayHaveMissed(generation: number | undefined): boolean {
    const versions = this.cache.store.versions;
    return versions.currentGeneration() !== generation || !versions.trusted;
  }

  /**
   * Whether a stale entry that local state cannot vouch for stands in while
   * Redis cannot be asked. Only with the bus down too: this instance then
   * reaches Redis on neither connection, an outage, and DESIGN §3 and §4's
   * fallback decide (an outage costs speed, never errors): it stands in, as
   * an L1 hit is served then (TagVersions.verify), unless this instance
   * invalidated it itself (servableInOutage). §4(3) loses nothing it could
   * keep: an invalidation that reached Redis while this instance could hear
   * of it on neither connection cannot be told from none ("L1 TTLs bound
   * staleness in every case"). With the bus up (it came back while the
   * handler ran), Redis is there, only slow or refusing: no outage, and the
   * 5xx goes out.
   */
  private servedInOutage(stale: Found): boolean {
    const versions = this.cache.store.versions;
    return !versions.trusted && versions.servableInOutage(stale.entry);
  }

  /**
   * stale-if-error, as a 5xx arrives and before staleIfErrorUntil: when local
   * state cannot vouch for the stale entry (it may have missed an
   * invalidation) and Redis may answer, Redis's word, asked now: one round
   * trip, which the 5xx waits for (a bus that never connects, SUBSCRIBE
   * refused, would otherwise turn every stale-if-error into a 5xx for good).
   * undefined when local state decides alone (no L2, the bus connected
   * throughout, Redis known down).
   */
  askBeforeStaleIfError(plan: Plan, stale: Found, generation: number | undefined): Promise<boolean> | undefined {
    const versions = this.cache.store.versions;
    if (!this.l2Reachable() || !this.mayHaveMissed(generation) || this.staleIfErrorWindowEnd(plan, stale) === undefined || versions.check(stale.entry) !== Validity.Unknown) return undefined;
    // No answer in time (the command timed out: how an outage begins, before L2 is known down) is
    // taken as that outage: the first requests of one must not get errors the next ones are spared.
    return versions.askRedis(stale.entry).then(
      (word) => word ?? this.servedInOutage(stale),
      () => false,
    );
  }

  /** stale-if-error: the stale entry's answer, to send in place of the handler's 5xx. */
  staleInstead(req: IncomingMessage, plan: Plan, stale: Found, failed: number): Replacement {
    const now = coarseNow();
    const response = stale.response;
    const cacheStatus = this.status(staleAnswerStatus(stale.tier, stale.entry.freshUntil - now, failed));
    this.events.stale(plan, stale.tier);
    return storedAnswer(req, response, ageOf(stale.entry.createdAt, now), cacheStatus);
  }

  /**
   * Builds the entry (and Vary manifest) from the finished response and stores
   * it in both tiers: the fill's second round trip, which also releases its
   * lock. Synchronous when there is nothing to wait for (L1 only, no Cache-Groups).
   */
  store(
    req: IncomingMessage,
    sent: Snapshot,
    plan: Plan,
    stamp: FillStamp,
    lateStamp: Promise<FillStamp> | undefined,
    createdAt: number,
    ttl: number,
    body: Buffer,
    fill: FillState,
    origin?: OriginLife,
    utf8Head = false,
    /** false: the entry is built for the fill's waiters alone, not stored (FillCapture.handOnly). */
    keep = true,
  ): FillOutcome | undefined | Promise<FillOutcome | undefined> {
    if (lateStamp === undefined) return this.storeStamped(req, sent, plan, stamp, createdAt, ttl, body, fill, origin, utf8Head, keep);
    return lateStamp.then((late) => {
      const full = { epoch: stamp.epoch, tags: [...stamp.tags, ...late.tags], versions: [...stamp.versions, ...late.versions], generation: stamp.generation };
      return this.storeStamped(req, sent, plan, full, createdAt, ttl, body, fill, origin, utf8Head, keep);
    });
  }

  private storeStamped(req: IncomingMessage, sent: Snapshot, plan: Plan, stamp: FillStamp, createdAt: number, ttl: number, body: Buffer, fill: FillState, origin: OriginLife | undefined, utf8Head: boolean, keep: boolean): FillOutcome | undefined | Promise<FillOutcome | undefined> {
    const outgoing = sent.headers;
    const varyOn = varyOf(outgoing);
    if (varyOn === '*') return undefined;
    // Invalidated while the handler ran: never served, so do not push out a newer entry.
    if (!this.cache.store.versions.stillCurrent(stamp)) return undefined;
    let headers = sent.stored ?? storedHeaders(outgoing);
    let life: { createdAt: number; freshUntil: number; staleUntil: number };
    if (origin === undefined) {
      if (sent.status === 200 && !hasField(headers, 'etag')) headers.push(['etag', entityTag(body)]);
      life = { createdAt, freshUntil: createdAt + ttl, staleUntil: createdAt + ttl + Math.max(plan.staleWhileRevalidate, plan.staleIfError) };
    } else {
      // no-cache="f" / private="f": stored without those fields (RFC 9111 §5.2.2.4, §5.2.2.7).
      if (origin.withoutFields.length > 0) headers = headers.filter(([n]) => !origin.withoutFields.includes(n));
      const validator = hasField(headers, 'etag') || hasField(headers, 'last-modified');
      life = originEntryLifetimes(plan, origin, validator);
    }
    const store = this.cache.store;
    // Bytes alone (decoded on the first hit): see http-entry.ts.
    const isPublic = plan.isPublic && sent.encodedOutside === undefined;
    const { entry, l1Entry } = responseEntry(stamp, life, sent.status, headers, body, isPublic, origin === undefined ? undefined : staleRulesOf(origin), plan.scoped, sent.reason, isPublic ? this.events.patternRouteOf(plan) : undefined, utf8Head, plan.perRoute);
    let varyValues: ReadonlyArray<string | undefined> = NO_VARY_VALUES;
    let pairs: Array<[string, string | undefined]> | undefined;
    if (varyOn.length !== 0) {
      pairs = varyPairs(req.headers, varyOn);
      const values: Array<string | undefined> = [];
      for (const [, v] of pairs) values.push(v);
      varyValues = values;
    }
    // Not stored (FillCapture.handOnly): the answer alone, for the requests that came before its fill began.
    if (!keep) return { entry, createdAt: life.createdAt, varyOn, varyValues, unkept: true };
    let writes: FillWrite[];
    if (pairs === undefined) writes = [{ key: plan.key, entry, l1Entry }];
    else {
      const manifest = manifestEntry(stamp, life, varyOn, isPublic, plan.scoped);
      writes = [
        { key: plan.key, entry: manifest.entry, l1Entry: manifest.l1Entry },
        { key: variantKey(plan.key, pairs), entry, l1Entry },
      ];
    }
    fill.storing = true;
    const stored = store.storeFill(writes, fill.ticket);
    const outcome: FillOutcome = { entry, createdAt: life.createdAt, varyOn, varyValues };
    // A store L1 alone takes at once (most fills of an L1-only cache) makes no closure for its outcome.
    if (typeof stored === 'boolean') return this.storedAs(stored, plan, writes, body.length, createdAt, outcome);
    return stored.then((ok) => this.storedAs(ok, plan, writes, body.length, createdAt, outcome));
  }

  /** The fill's outcome once its store has answered `ok`: reported as stored, or none (nothing was). */
  private storedAs(ok: StoreResult, plan: Plan, writes: FillWrite[], bytes: number, createdAt: number, outcome: FillOutcome): FillOutcome | undefined {
    if (!ok) return undefined;
    this.events.stored(plan, writes[writes.length - 1]!.key, bytes, createdAt, ok === L1_ONLY);
    return outcome;
  }
}

/** The Vary values of a fill whose answer varies on nothing: one array for all (FillOutcome's are read only). */
const NO_VARY_VALUES: ReadonlyArray<string | undefined> = [];

/** Whether stored fields hold one named `name` (lower case). */
function hasField(fields: ReadonlyArray<readonly [string, string]>, name: string): boolean {
  for (let i = 0; i < fields.length; i++) if (fields[i]![0] === name) return true;
  return false;
}
