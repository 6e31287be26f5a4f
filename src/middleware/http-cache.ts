// The framework-neutral HTTP cache: plan the request (rule, TTL, key, bypass),
// serve from L1 / L2, or run the handler once per key (coalescing) while
// capturing its answer, store it in both tiers before the answer ends, and
// hand it to the requests that waited. The adapters (express.ts, koa.ts) only
// translate their request objects and "run the rest of the app" into this.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import computeEtag from 'etag';
import type { TierCache } from '../cache/tier-cache.js';
import { buildRequestKey, normalizedHeaderValue, REQUEST_KEY, variantKey } from '../keys/request-key.js';
import { normalizeRoutePath, originForm, pathOf } from '../keys/path-normalize.js';
import { implicitTags, keyTag, prefixTag } from '../keys/tags.js';
import type { FillStamp, StoredEntry } from '../store/entry.js';
import type { FillLock } from '../store/fill-lock.js';
import { ownBytes } from '../store/entry-codec.js';
import { coarseNow } from '../store/coarse-clock.js';

const EMPTY_HEAD = Buffer.alloc(0);
import { UNDECIDED, type Tier } from '../store/tiered-store.js';
import { BYPASS, HIT_L1, HIT_L2, MISS, MISS_COLLAPSED, MISS_STORED, staleHit } from './cache-status.js';
import { captureResponse, NOT_MODIFIED, stripCacheGroups, type Replacement } from './capture.js';
import { REFRESH_HEADER as REFRESH_HEADER_NAME, refreshHeaders, takeRefreshMarker, type Dispatch } from './refresh.js';
import { replay } from './replay.js';
import { conditionsOf, isNotModified, type Conditions } from './conditional.js';
import { httpValueOf, manifestEntry, PreparedResponse, responseEntry, VaryManifest } from './http-entry.js';
import type { ResolvedMiddlewareOptions } from './options.js';
import { requestBypassReason, requestForbidsStore, responseForbidsStore, storedHeaders, ttlForStatus, varyOf } from './storage-rules.js';

/**
 * Marks a request whose answer a middleware is capturing. When a second
 * tiercache middleware (per route, inside an app-wide one) handles the same
 * request, the outer one stands down: only the innermost, most specific
 * options (user scope, tags, TTL) decide what is stored.
 */
const ACTIVE_FILL = Symbol('tiercache.activeFill');

interface Snapshot {
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
}

interface ActiveFill {
  readonly owner: object;
  standDown(): void;
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
  /** For the entry's tags, built only when a fill needs them (never on a hit). */
  readonly routePath: string;
  readonly user: string | undefined;
  readonly arg: unknown;
}

/** What a fill produced, for the requests that waited on it. */
interface FillOutcome {
  readonly response: PreparedResponse;
  readonly createdAt: number;
  /** Response Vary names and the values the filling request had for them. */
  readonly varyOn: readonly string[];
  readonly varyValues: ReadonlyArray<string | undefined>;
}

/** The fill was done by another instance: waiters look the entry up themselves. */
const LOOK_AGAIN = Symbol('look again');
type Outcome = FillOutcome | typeof LOOK_AGAIN | undefined;

class Flight {
  private settled = false;
  private resolve!: (outcome: Outcome) => void;
  readonly outcome = new Promise<Outcome>((r) => (this.resolve = r));

  settle(outcome: Outcome): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve(outcome);
  }

  wait(ms: number): Promise<Outcome> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((r) => (timer = setTimeout(r, ms, undefined)));
    return Promise.race([this.outcome, timeout]).finally(() => clearTimeout(timer));
  }
}

/** How often a request waiting on another instance's fill looks for the entry. */
const REMOTE_FILL_POLL_MS = 20;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs the rest of the app; resolves false ("the cache did not answer"). */
async function passOn(next: () => unknown): Promise<boolean> {
  await next();
  return false;
}

interface Found {
  readonly entry: StoredEntry;
  readonly response: PreparedResponse;
  readonly tier: Tier;
}

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The path of a Location-style header value when it points at this origin; undefined otherwise. */
function sameOriginPath(value: string | number | string[] | undefined, host: string | undefined): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  if (value.startsWith('/') && !value.startsWith('//')) return pathOf(value);
  try {
    const url = new URL(value);
    return host !== undefined && url.host === host ? url.pathname : undefined;
  } catch {
    return undefined;
  }
}

function varyPairs(headers: IncomingMessage['headers'], names: readonly string[]): Array<[string, string | undefined]> {
  return names.map((n) => [n, normalizedHeaderValue(headers[n])]);
}

function cacheGroupsOf(value: string | number | string[] | undefined): string[] {
  if (value === undefined) return [];
  const out: string[] = [];
  // RFC 9875: a list of strings ("a", "b"); bare tokens are accepted too.
  for (const part of (Array.isArray(value) ? value.join(',') : String(value)).split(',')) {
    let g = part.trim();
    if (g.startsWith('"') && g.endsWith('"') && g.length >= 2) g = g.slice(1, -1).replace(/\\(.)/g, '$1');
    if (g !== '') out.push(g);
  }
  return out;
}

export class HttpCache<R> {
  private readonly flights = new Map<string, Flight>();
  private readonly refreshing = new Set<string>();

  constructor(
    private readonly cache: TierCache,
    private readonly options: ResolvedMiddlewareOptions<R>,
    /** How to re-send a request into the app (stale-while-revalidate); undefined when the adapter cannot. */
    private readonly dispatchOf: (app: unknown) => Dispatch | undefined = () => undefined,
  ) {}

  /**
   * Serves the request from the cache (resolves true: the adapter must not
   * run the app) or runs `next` once, capturing and storing its answer
   * (resolves false). Errors from `next` propagate; the cache's own never do.
   */
  handle(context: HttpRequestContext<R>, next: () => unknown): boolean | Promise<boolean> {
    const c = context.url.charCodeAt(0) === 47 ? context : { ...context, url: originForm(context.url) };
    // A middleware further in (per route) decides for this request: one mounted further out stands down.
    const outer = (c.req as unknown as Record<symbol, ActiveFill | undefined>)[ACTIVE_FILL];
    if (outer !== undefined && outer.owner !== this) outer.standDown();
    const method = c.req.method;
    if (method !== undefined && UNSAFE_METHODS.has(method) && !this.options.methods.has(method)) {
      this.invalidateAfterWrite(c);
      return passOn(next);
    }
    let plan: Plan | undefined;
    try {
      plan = this.plan(c);
    } catch (err) {
      this.cache.reportError(err as Error, 'could not plan a request; passing it through');
    }
    if (plan === undefined) return passOn(next);
    const req = c.req;
    (req as unknown as Record<symbol, string>)[REQUEST_KEY] = plan.key;
    if (req.headers[REFRESH_HEADER_NAME] !== undefined && takeRefreshMarker(req)) {
      // Our own background refresh: run the handler and store, whatever is cached.
      return this.fill(c, plan, next, undefined);
    }
    // The L1 hit is answered synchronously: no promise, no microtask.
    let local: Found | undefined;
    try {
      local = this.findInL1(plan.key, req);
    } catch {
      local = undefined;
    }
    if (local !== undefined) {
      const now = coarseNow();
      if (local.entry.freshUntil > now) {
        if (this.cache.listenerCount('hit') > 0) this.cache.emit('hit', { key: plan.key, tier: 'L1' });
        replay(req, c.res, local.response, local.entry.createdAt, now, this.status(HIT_L1));
        return true;
      }
    }
    return this.serveOrFill(c, plan, next, local);
  }

  /** L1 alone, without I/O: a valid entry (possibly stale), or undefined when L2 or Redis must be asked. */
  private findInL1(key: string, req: IncomingMessage): Found | undefined {
    const store = this.cache.store;
    const entry = store.lookupL1(key, false);
    if (entry === undefined || entry === UNDECIDED) return undefined;
    const value = httpValueOf(entry);
    if (value instanceof PreparedResponse) return { entry, response: value, tier: 'L1' };
    if (!(value instanceof VaryManifest)) return undefined;
    const variant = store.lookupL1(variantKey(key, varyPairs(req.headers, value.headers)), false);
    if (variant === undefined || variant === UNDECIDED) return undefined;
    const response = httpValueOf(variant);
    return response instanceof PreparedResponse ? { entry: variant, response, tier: 'L1' } : undefined;
  }

  /** Past a fresh L1 hit: L2, stale answers, or the handler. */
  private async serveOrFill(c: HttpRequestContext<R>, plan: Plan, next: () => unknown, local: Found | undefined): Promise<boolean> {
    const { req, res } = c;
    let found = local;
    if (found === undefined) {
      try {
        found = await this.find(plan.key, req);
      } catch (err) {
        this.cache.reportError(err as Error, 'cache lookup failed; running the handler');
      }
    }
    const now = coarseNow();
    if (found !== undefined) {
      const entry = found.entry;
      if (entry.freshUntil > now) {
        if (this.cache.listenerCount('hit') > 0) this.cache.emit('hit', { key: plan.key, tier: found.tier });
        replay(req, res, found.response, entry.createdAt, now, this.status(found.tier === 'L1' ? HIT_L1 : HIT_L2));
        return true;
      }
      const dispatch = now < entry.freshUntil + plan.staleWhileRevalidate ? this.dispatchOf(c.app) : undefined;
      if (dispatch !== undefined) {
        this.cache.emit('hit', { key: plan.key, tier: found.tier, stale: true });
        replay(req, res, found.response, entry.createdAt, now, this.status(staleHit(found.tier, (now - entry.freshUntil) / 1000)));
        this.revalidate(c, plan.key, dispatch);
        return true;
      }
      if (now >= entry.freshUntil + plan.staleIfError) found = undefined;
    }
    if (this.cache.listenerCount('miss') > 0) this.cache.emit('miss', { key: plan.key });
    return this.fill(c, plan, next, found);
  }

  /**
   * RFC 9111 §4.4: a successful POST/PUT/PATCH/DELETE invalidates what is
   * cached under its path (every query variant and everything below it) and
   * under same-origin Location / Content-Location, on every instance.
   */
  private invalidateAfterWrite(c: HttpRequestContext<R>): void {
    const cache = this.cache;
    if (!cache.enabled) return;
    const path = pathOf(c.url);
    const rule = cache.options.routes.matchNormalized(normalizeRoutePath(path));
    // Only where something could be cached: a table rule, a cache-wide TTL or per-route mounting.
    if (!(rule?.cache === true || cache.options.ttl !== undefined || c.perRoute)) return;
    const res = c.res;
    res.once('finish', () => {
      if (res.statusCode < 200 || res.statusCode >= 400) return;
      const tags = new Set<string>();
      // The root is never invalidated this way: a POST to '/' (or a redirect to it after a
      // login) would empty the whole cache on every instance.
      const add = (p: string | undefined) => {
        const tag = p !== undefined && p.startsWith('/') ? prefixTag(p) : undefined;
        if (tag !== undefined) tags.add(tag);
      };
      add(path);
      for (const name of ['location', 'content-location'] as const) add(sameOriginPath(res.getHeader(name), c.req.headers.host));
      if (tags.size === 0) return;
      cache.invalidateTags([...tags]).catch((err: unknown) => cache.reportError(err as Error, `invalidation after ${c.req.method} ${path} failed`));
    });
  }

  /** Refreshes a stale entry in the background, at most one refresh per key at a time. */
  private revalidate(c: HttpRequestContext<R>, key: string, dispatch: Dispatch): void {
    if (this.refreshing.has(key) || this.flights.has(key)) return;
    this.refreshing.add(key);
    dispatch({ url: c.url, headers: refreshHeaders(c.req.headers) })
      .catch((err: unknown) => this.cache.reportError(err as Error, 'background refresh failed'))
      .finally(() => this.refreshing.delete(key));
  }

  /** Decides whether and how the request is cached; undefined = pass through untouched. */
  private plan(c: HttpRequestContext<R>): Plan | undefined {
    const cache = this.cache;
    const o = this.options;
    if (!cache.enabled) return undefined;
    const req = c.req;
    const method = req.method ?? 'GET';
    if (!o.methods.has(method) && !(method === 'HEAD' && o.methods.has('GET'))) return undefined;
    const path = pathOf(c.url);
    const routePath = normalizeRoutePath(path);
    const rule = cache.options.routes.matchNormalized(routePath);
    if (rule !== undefined && !rule.cache) return undefined;
    const ttl = o.ttl ?? rule?.ttl ?? cache.options.ttl ?? (c.perRoute ? DEFAULT_ROUTE_TTL : undefined);
    if (ttl === undefined) return undefined;
    const rawUser = o.user?.(c.arg);
    const user = rawUser === undefined || rawUser === null ? undefined : String(rawUser);
    const shared = o.shared ?? rule?.shared ?? false;
    const bypass = requestBypassReason(req.headers, method, c.originalMethod, user !== undefined || shared);
    if (bypass !== undefined) {
      if (o.cacheStatus && !c.res.headersSent) c.res.setHeader('cache-status', BYPASS);
      stripCacheGroups(c.res);
      return undefined;
    }
    const vary = rule?.vary === undefined ? o.vary : [...new Set([...rule.vary, ...o.vary])];
    const key = buildRequestKey({
      namespace: cache.namespace,
      method,
      url: c.url,
      customKey: o.key?.(c.arg),
      queryAllow: o.query ?? rule?.query,
      vary: vary.length === 0 ? undefined : varyPairs(req.headers, vary),
      user,
    });

    const swr = o.staleWhileRevalidate ?? rule?.staleWhileRevalidate ?? 0;
    const sie = o.staleIfError ?? rule?.staleIfError ?? 0;
    const isPublic = o.user === undefined && o.key === undefined && o.vary.length === 0 && o.query === undefined && req.headers.authorization === undefined && req.headers.cookie === undefined;
    return { key, ttl, negativeTtl: o.negativeTtl ?? rule?.negativeTtl, staleWhileRevalidate: swr, staleIfError: sie, userScoped: user !== undefined, isPublic, routePath, user, arg: c.arg };
  }

  /** The entry's own key tag, its implicit user and path tags, and the route's explicit tags. */
  private tagsOf(plan: Plan): string[] {
    const all = implicitTags(plan.routePath, plan.user);
    all.unshift(keyTag(plan.key));
    const explicit = this.options.tags?.(plan.arg as R);
    if (explicit !== undefined) for (const t of explicit) if (typeof t === 'string' && t !== '' && !all.includes(t)) all.push(t);
    return all;
  }

  private status(value: string): string | undefined {
    return this.options.cacheStatus ? value : undefined;
  }

  /** L1 (synchronously when it can decide), then L2; follows a Vary manifest to the request's variant. */
  private async find(key: string, req: IncomingMessage): Promise<Found | undefined> {
    const first = await this.lookup(key);
    if (first === undefined) return undefined;
    const value = httpValueOf(first.entry);
    if (value instanceof PreparedResponse) return { entry: first.entry, response: value, tier: first.tier };
    if (!(value instanceof VaryManifest)) {
      this.cache.store.discard(key);
      return undefined;
    }
    const vkey = variantKey(key, varyPairs(req.headers, value.headers));
    const variant = await this.lookup(vkey);
    if (variant === undefined) return undefined;
    const response = httpValueOf(variant.entry);
    if (response instanceof PreparedResponse) return { entry: variant.entry, response, tier: variant.tier };
    this.cache.store.discard(vkey);
    return undefined;
  }

  private lookup(key: string): { entry: StoredEntry; tier: Tier } | undefined | Promise<{ entry: StoredEntry; tier: Tier } | undefined> {
    const store = this.cache.store;
    const local = store.lookupL1(key);
    if (local === UNDECIDED) return store.get(key);
    if (local !== undefined) return { entry: local, tier: 'L1' };
    return store.getL2(key);
  }

  /** A miss: wait for a fill of the same key under way, or run the handler and store its answer. */
  private async fill(c: HttpRequestContext<R>, plan: Plan, next: () => unknown, stale: Found | undefined): Promise<boolean> {
    const { req, res } = c;
    const running = this.flights.get(plan.key);
    if (running !== undefined) {
      this.cache.coalesced++;
      const outcome = await running.wait(COALESCE_WAIT_MS + (this.cache.fillLock?.ttl ?? 0));
      if (outcome === LOOK_AGAIN) {
        const found = await this.find(plan.key, req).catch(() => undefined);
        if (found !== undefined && found.entry.freshUntil > coarseNow()) {
          replay(req, res, found.response, found.entry.createdAt, coarseNow(), this.status(MISS_COLLAPSED));
          return true;
        }
      } else if (outcome !== undefined && this.reusable(outcome, req)) {
        replay(req, res, outcome.response, outcome.createdAt, coarseNow(), this.status(MISS_COLLAPSED));
        return true;
      }
      if (this.options.cacheStatus && !res.headersSent) res.setHeader('cache-status', MISS);
      stripCacheGroups(res);
      await next();
      return false;
    }
    if (req.method === 'HEAD' || requestForbidsStore(req.headers)) {
      if (this.options.cacheStatus) res.setHeader('cache-status', MISS);
      stripCacheGroups(res);
      await next();
      return false;
    }

    const flight = new Flight();
    this.flights.set(plan.key, flight);
    flight.outcome.then(() => {
      if (this.flights.get(plan.key) === flight) this.flights.delete(plan.key);
    });
    const lock = this.cache.fillLock;
    if (lock !== undefined) {
      const acquired = await lock.acquire(plan.key);
      if (acquired === true) {
        void flight.outcome.then(() => lock.release(plan.key));
      } else if (acquired === false) {
        // Another instance is running the handler for this key: wait for its entry.
        const found = await this.awaitRemoteFill(plan.key, req, lock);
        if (found !== undefined) {
          flight.settle(LOOK_AGAIN);
          replay(req, res, found.response, found.entry.createdAt, coarseNow(), this.status(MISS_COLLAPSED));
          return true;
        }
      }
    }
    try {
      const versions = this.cache.store.versions;
      const tags = this.tagsOf(plan);
      const stamp = versions.stampLocally(tags) ?? (await versions.stamp(tags));
      this.capture(c, plan, stamp, flight, stale);
    } catch (err) {
      flight.settle(undefined);
      this.cache.reportError(err as Error, 'could not start a fill; running the handler uncached');
    }
    try {
      await next();
    } catch (err) {
      flight.settle(undefined);
      throw err;
    }
    return false;
  }

  /**
   * Polls for the entry another instance is filling, until it appears, its
   * lock is gone (that fill stored nothing) or the lock's lifetime has passed.
   */
  private async awaitRemoteFill(key: string, req: IncomingMessage, lock: FillLock): Promise<Found | undefined> {
    const deadline = coarseNow() + lock.ttl;
    for (let round = 1; coarseNow() < deadline; round++) {
      await sleep(REMOTE_FILL_POLL_MS);
      const found = await this.find(key, req).catch(() => undefined);
      if (found !== undefined && found.entry.freshUntil > coarseNow()) return found;
      if (round % 5 === 0 && !(await lock.held(key))) return undefined;
    }
    return undefined;
  }

  /** Whether a waiter may be answered with what another request's fill stored. */
  private reusable(outcome: FillOutcome, req: IncomingMessage): boolean {
    if (outcome.varyOn.length === 0) return true;
    for (let i = 0; i < outcome.varyOn.length; i++) {
      if (normalizedHeaderValue(req.headers[outcome.varyOn[i]!]) !== outcome.varyValues[i]) return false;
    }
    return true;
  }

  /** Installs the capture that stores the handler's answer and settles `flight`. */
  private capture(c: HttpRequestContext<R>, plan: Plan, stamp: FillStamp, flight: Flight, stale: Found | undefined): void {
    const { req, res } = c;
    const cache = this.cache;
    const createdAt = coarseNow();
    // Fill unconditionally (the handler must send the full answer), then answer the condition here.
    const conditions: Conditions | undefined = conditionsOf(req.headers);
    if (conditions !== undefined) {
      delete req.headers['if-none-match'];
      delete req.headers['if-modified-since'];
    }
    let ttl: number | undefined;
    let groups: string[] = [];
    let lateStamp: Promise<FillStamp> | undefined;
    let notModified = false;
    let stoodDown = false;
    // Status and headers as they went out with this body: wrappers further out
    // (compression in front of the cache) may change them afterwards.
    let snapshot: Snapshot | undefined;
    const active: ActiveFill = {
      owner: this,
      standDown: () => {
        stoodDown = true;
        flight.settle(undefined);
      },
    };
    (req as unknown as Record<symbol, ActiveFill>)[ACTIVE_FILL] = active;

    captureResponse(res, this.options.maxBodyBytes, {
      headers: (r, body) => {
        if (stoodDown) return undefined;
        if (stale !== undefined && r.statusCode >= 500) return this.staleInstead(req, stale);
        const headers = r.getHeaders();
        groups = cacheGroupsOf(headers['cache-groups']).filter((g) => !stamp.tags.includes(g));
        if (headers['cache-groups'] !== undefined) r.removeHeader('cache-groups');
        ttl = ttlForStatus(r.statusCode, plan.ttl, plan.negativeTtl);
        if (ttl !== undefined && responseForbidsStore(headers, plan.userScoped) !== undefined) ttl = undefined;
        if (ttl !== undefined && groups.length > 0) {
          // Groups are known only now; their versions are read now (README: they may lag the fill's start).
          const versions = cache.store.versions;
          lateStamp = Promise.resolve(versions.stampLocally(groups) ?? versions.stamp(groups));
        }
        if (ttl !== undefined && body !== undefined && r.statusCode === 200 && headers.etag === undefined) r.setHeader('etag', computeEtag(body));
        if (ttl !== undefined && body !== undefined && conditions !== undefined && r.statusCode === 200) {
          const lm = r.getHeader('last-modified');
          const etag = r.getHeader('etag');
          notModified = isNotModified(conditions, etag === undefined ? undefined : String(etag), lm === undefined ? undefined : Date.parse(String(lm)));
        }
        if (this.options.cacheStatus) r.setHeader('cache-status', ttl !== undefined && body !== undefined ? MISS_STORED : MISS);
        snapshot = { status: r.statusCode, headers: r.getHeaders() };
        return notModified ? NOT_MODIFIED : undefined;
      },
      finish: async (body) => {
        if (stoodDown || ttl === undefined || body === undefined || snapshot === undefined) {
          flight.settle(undefined);
          return;
        }
        try {
          const outcome = await this.store(req, snapshot, plan, stamp, lateStamp, createdAt, ttl, body);
          flight.settle(outcome);
        } catch (err) {
          flight.settle(undefined);
          cache.reportError(err as Error, 'could not store a response');
        }
      },
      abort: () => flight.settle(undefined),
    });
  }

  /** stale-if-error: the stale entry's answer, to send in place of the handler's 5xx. */
  private staleInstead(req: IncomingMessage, stale: Found): Replacement {
    const now = coarseNow();
    const response = stale.response;
    const headers = [...response.headers, 'age', String(Math.max(0, Math.floor((now - stale.entry.createdAt) / 1000)))];
    if (this.options.cacheStatus) headers.push('cache-status', staleHit(stale.tier, (now - stale.entry.freshUntil) / 1000));
    this.cache.emit('hit', { key: (req as unknown as Record<symbol, string>)[REQUEST_KEY], tier: stale.tier, stale: true });
    return { status: response.status, headers, body: req.method === 'HEAD' ? undefined : response.body };
  }

  /** Builds the entry (and Vary manifest) from the finished response and stores it in both tiers. */
  private async store(
    req: IncomingMessage,
    sent: Snapshot,
    plan: Plan,
    stamp: FillStamp,
    lateStamp: Promise<FillStamp> | undefined,
    createdAt: number,
    ttl: number,
    body: Buffer,
  ): Promise<FillOutcome | undefined> {
    const outgoing = sent.headers;
    const varyOn = varyOf(outgoing);
    if (varyOn === '*') return undefined;
    const headers = storedHeaders(outgoing);
    if (sent.status === 200 && !headers.some(([n]) => n === 'etag')) headers.push(['etag', computeEtag(body)]);
    let fullStamp = stamp;
    if (lateStamp !== undefined) {
      const late = await lateStamp;
      fullStamp = { epoch: stamp.epoch, tags: [...stamp.tags, ...late.tags], versions: [...stamp.versions, ...late.versions] };
    }
    // Invalidated while the handler ran: never served, so do not push out a newer entry.
    if (!this.cache.store.versions.stillCurrent(fullStamp)) return undefined;
    const life = { createdAt, freshUntil: createdAt + ttl, staleUntil: createdAt + ttl + Math.max(plan.staleWhileRevalidate, plan.staleIfError) };
    // L1 keeps the decoded response, not the head bytes it came from.
    const { entry, l1Entry } = responseEntry(fullStamp, life, sent.status, headers, ownBytes(body), plan.isPublic);
    const store = this.cache.store;
    const varyValues: Array<string | undefined> = [];
    if (varyOn.length === 0) {
      await store.set(plan.key, entry, l1Entry);
    } else {
      const pairs = varyPairs(req.headers, varyOn);
      for (const [, v] of pairs) varyValues.push(v);
      const manifest = manifestEntry(fullStamp, life, varyOn, plan.isPublic);
      await Promise.all([store.set(plan.key, manifest.entry, manifest.l1Entry), store.set(variantKey(plan.key, pairs), entry, l1Entry)]);
    }
    this.cache.fills++;
    this.cache.emit('store', { key: plan.key });
    return { response: entry.decoded as PreparedResponse, createdAt, varyOn, varyValues };
  }
}
