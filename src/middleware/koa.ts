// Koa adapter (Koa 2 and 3): translates ctx/next into the core. Hits are
// written to ctx.res by the cache (Koa's own respond is skipped), so
// middleware in front cannot alter bytes that were stored as sent; they are
// written when Koa would respond, so what those middleware do after `await
// next()` (a session's renewed cookie) happens before, as for the app's answers.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Http2ServerResponse, ServerHttp2Stream, ServerStreamResponseOptions } from 'node:http2';
import type { DefaultContext, DefaultState, ParameterizedContext } from 'koa';
import type { TierCache } from '../cache/tier-cache.js';
import { assertCache } from './express.js';
import { swallow } from './capture.js';
import { HttpCache } from './http-cache.js';
import { koaRoutePattern } from '../observe/route-label.js';
import { dispatchFor, remounted, type Dispatch, type NodeHandler } from './refresh.js';
import { type DeferredHit, endStoredBody } from './replay.js';
import { resolveMiddlewareOptions, type MiddlewareOptions } from './options.js';
import { CTX_RESPOND, OWN_RESPOND, type ChainEnd, type RespondWatch } from './koa-respond.js';
import { OUT_HEADERS } from './outgoing-field.js';

/** What a router (@koa/router, koa-router) puts on ctx for a matched route. */
export interface KoaRouterParams {
  /** The route's parameters (`/movies/:id` -> `ctx.params.id`); only set under a router. */
  params: Record<string, string>;
}

/**
 * The ctx the option callbacks receive by default: Koa's own context, with
 * what the app declared on Koa's `DefaultState` and `DefaultContext`
 * (`declare module 'koa' { interface DefaultState { user?: User } }` types
 * `ctx.state.user`) and a router's `ctx.params`. A callback written with
 * another type, `(ctx: RouterContext<AppState>) => ...`, gets that type
 * instead: no generic to pass.
 */
export type KoaContext<StateT = DefaultState, ContextT = DefaultContext> = ParameterizedContext<StateT, ContextT & KoaRouterParams>;

/** What the returned middleware needs from ctx (any Koa 2/3 context has it). */
export interface KoaRuntimeContext {
  app?: unknown;
  req: IncomingMessage;
  res: ServerResponse;
  originalUrl: string;
  respond?: boolean;
}

export type KoaCacheOptions<Ctx = KoaContext> = MiddlewareOptions<Ctx>;

/** What koaCache returns: a Koa middleware (typed on what it reads so Koa 2 and 3 both take it). */
export type KoaCacheMiddleware = (ctx: KoaRuntimeContext, next: () => Promise<unknown>) => Promise<void>;

/**
 * Background refreshes re-enter the Koa app the request came through. Mounted
 * in Express, Koa was handed ctx.originalUrl, not the full target the cache
 * keys: the refresh goes there (see remounted).
 */
function koaDispatch(app: unknown, req: IncomingMessage, ctx: unknown): Dispatch | undefined {
  if (typeof app !== 'object' || app === null || typeof (app as { callback?: unknown }).callback !== 'function') return undefined;
  const dispatch = dispatchFor(app as { callback(): NodeHandler }, (a) => a.callback());
  return typeof (req as { originalUrl?: unknown }).originalUrl === 'string' ? remounted(dispatch, (ctx as KoaRuntimeContext).originalUrl) : dispatch;
}

/**
 * Whether `fn` is in the stack of a matched @koa/router route
 * (router.get(path, fn, handler)) rather than app-wide or in router.use(),
 * whose layers match every method. Route facts left on ctx by earlier
 * routers (`_matchedRoute`) do not say how this middleware was mounted.
 */
function mountedOnRoute(matched: unknown, fn: unknown): boolean {
  if (!Array.isArray(matched)) return false;
  for (const layer of matched) {
    const l = layer as { methods?: unknown; stack?: unknown } | null;
    if (Array.isArray(l?.methods) && l.methods.length > 0 && Array.isArray(l.stack) && l.stack.includes(fn)) return true;
  }
  return false;
}

// The return type takes any context that has what the middleware reads: one
// typed on the app's state would make router.get infer its own state from it.
/**
 * Koa middleware that serves repeat GETs from the cache and stores the
 * downstream answer. `app.use(koaCache(cache))` takes TTLs from the route
 * table; `router.get(path, koaCache(cache, { ttl: '5m' }), handler)` caches one route.
 * Options are those of expressCache, with `ctx` in place of `req`.
 * @throws TierCacheConfigError for unknown or ill-typed options.
 */
export function koaCache<Ctx = KoaContext>(cache: TierCache, options?: KoaCacheOptions<Ctx>): KoaCacheMiddleware {
  assertCache('koaCache', cache);
  const core = new HttpCache<Ctx>(cache, resolveMiddlewareOptions('koaCache', options), koaDispatch, koaRoutePattern, KOA_RESPOND);
  // Not an async function: a miss that fills pays for one promise reaction here instead of an async frame, its
  // promise and the await's; an answer known at once (an L1 hit) returns a resolved promise, no frame.
  return function tiercache(ctx: KoaRuntimeContext, next: () => Promise<unknown>): Promise<void> {
    let deferred: DeferredHit;
    let result: boolean | Promise<boolean>;
    try {
      const perRoute = mountedOnRoute((ctx as { matched?: unknown }).matched, tiercache);
      // Mounted in Express or Connect (expressApp.use('/v1', koa.callback())), ctx.originalUrl is the mount-relative
      // req.url Koa was handed: keys and the route table take the full target, as under Express itself.
      const url = (ctx.req as { originalUrl?: unknown }).originalUrl;
      // koa-methodoverride (a port of method-override) keeps the method the client sent on ctx.request, as Express's does on req.
      const originalMethod = (ctx as { request?: { originalMethod?: string } }).request?.originalMethod;
      deferred = { status: 0, write: undefined, appDone: undefined, report: undefined, body: undefined, writeHead: undefined, storeHeader: undefined };
      result = core.handle({ arg: ctx as Ctx, req: ctx.req, res: ctx.res, url: typeof url === 'string' ? url : ctx.originalUrl, perRoute, originalMethod, app: ctx.app, deferred }, next);
      if (typeof result === 'boolean') {
        afterHandle(ctx, deferred, result);
        // A promise of this request's own, as an async function returns: koa-compose gives it unchanged to the
        // middleware in front as next()'s, and one shared by every hit carried what one request put on it to the
        // next (a request id, a WeakMap key of a tracer's). One allocation; no microtask.
        return Promise.resolve();
      }
    } catch (err) {
      // As an async middleware would: what is thrown is the returned promise's rejection.
      return Promise.reject(err as Error);
    }
    return result.then((answered) => afterHandle(ctx, deferred, answered));
  };
}

/** What the middleware does once the core has decided: `answered`, a hit to write (see respondLater), or the app ran. */
function afterHandle(ctx: KoaRuntimeContext, deferred: DeferredHit, answered: boolean): void {
  if (!answered) {
    // A write whose invalidation waits: decided once Koa responds (an error thrown further in never gets here).
    if (deferred.appDone !== undefined) whenKoaResponds(ctx, deferred.appDone);
    return;
  }
  const write = deferred.write;
  if (write === undefined) ctx.respond = false;
  else respondLater(ctx, deferred, write);
}

const NO_BODY = Buffer.alloc(0);

/** The hit waiting for Koa to respond (see respondLater), on the response (its writeHead finds it there). */
const PENDING_HIT = Symbol('tiercache.pendingHit');
/** What waits to hear that Koa responds (see whenKoaResponds), on the ctx. */
const ON_RESPOND = Symbol('tiercache.onRespond');
/** The fill told when Koa reads ctx.respond (see FillCapture.appDone), on the ctx. */
const AT_CHAIN_END = Symbol('tiercache.atChainEnd');
/** Context prototypes (app.context) that have the accessor. */
const readied = new WeakSet<object>();

/**
 * The response's writeHead from before ours (see respondLater), on the response: kept after the hit is set aside, for
 * a wrapper put around ours since (on-headers after next()), which still calls ours, and must reach what ours hid.
 */
const BENEATH = Symbol('tiercache.writeHeadBeneath');

/**
 * The response's _storeHeader from before ours (see storeHeadOfPendingHit), on the response once the hit is set
 * aside with ours wrapped since; until then on the hit (DeferredHit.storeHeader): one property fewer added to
 * every held response.
 */
const STORE_BENEATH = Symbol('tiercache.storeHeaderBeneath');

type StoreHeader = (this: ServerResponse, firstLine: string, headers: unknown) => void;

/** A response a hit waits on. */
type HeldResponse = ServerResponse & { [PENDING_HIT]?: DeferredHit | undefined; [BENEATH]?: ServerResponse['writeHead']; [STORE_BENEATH]?: StoreHeader };

/** node's own, where an HTTP/1 head is built and kept (none on an HTTP/2 response: never called there). */
type NodeHead = HeldResponse & { _storeHeader: StoreHeader; _header: string | null };

interface PendingHolder {
  [ON_RESPOND]?: (() => void) | undefined;
  [OWN_RESPOND]?: unknown;
  [CTX_RESPOND]?: unknown;
  [AT_CHAIN_END]?: ChainEnd | undefined;
  res?: HeldResponse;
}

/**
 * ctx.respond of ctx's own once it is false (Koa will not respond: no hit waits for its read), an accessor so that
 * Koa's read is heard all the same by a fill whose app answers later (see FillCapture.appDone).
 */
const ownRespond: PropertyDescriptor = {
  get(this: PendingHolder): unknown {
    if (this[AT_CHAIN_END] !== undefined && this.res !== undefined) this[AT_CHAIN_END].chainEnds(this.res);
    return this[CTX_RESPOND];
  },
  set(this: PendingHolder, value: unknown) {
    this[CTX_RESPOND] = value;
  },
  enumerable: true,
  configurable: true,
};

/** Makes ctx.respond ours, own, holding `value`. */
function ownRespondOf(ctx: PendingHolder, value: unknown): void {
  ctx[CTX_RESPOND] = value;
  Object.defineProperty(ctx, 'respond', ownRespond);
}

/**
 * A fill begins: Koa's read of ctx.respond must be heard on ctx, should its app answer by itself later. The
 * accessor is put on app.context now (it would be at the first hit); where it cannot be (app.context.respond = false
 * made a property of app.context's own before, or the context is frozen), on ctx, with the value it reads.
 */
function hearRespond(arg: unknown): void {
  const ctx = arg as PendingHolder;
  // Its own already: ours (said false), or one a middleware in front set before the accessor was there.
  if (Object.hasOwn(ctx, 'respond')) return;
  const proto: unknown = Object.getPrototypeOf(ctx);
  if (typeof proto !== 'object' || proto === null || proto === Object.prototype || readyContext(proto)) return;
  // Another's accessor (a plugin's) is left alone.
  const theirs = Object.getOwnPropertyDescriptor(proto, 'respond');
  if ((theirs === undefined || 'value' in theirs) && Object.isExtensible(ctx)) ownRespondOf(ctx, (ctx as { respond?: unknown }).respond);
}

/** Writes the hit waiting on `res`, once; whether it was written. */
function writePending(res: HeldResponse | undefined): boolean {
  const pending = res === undefined ? undefined : setAside(res);
  if (pending === undefined) return false;
  // A middleware in front gave the answer itself while Redis was asked (its head out, its end to come): the
  // hit is left alone and not counted, as respondLater leaves it; its head could not follow (ERR_HTTP_HEADERS_SENT
  // into that middleware, and its end never came: the client waited).
  if (res!.headersSent) return false;
  pending.write!();
  return true;
}

/** The hit waiting on `res`, which no longer waits: its writeHead is the response's own again. */
function setAside(res: HeldResponse): DeferredHit | undefined {
  const pending = res[PENDING_HIT];
  if (pending === undefined) return undefined;
  res[PENDING_HIT] = undefined;
  // Unless wrapped since (on-headers in front): that wrapper calls ours, which stands aside then.
  if (res.writeHead === headOfPendingHit) res.writeHead = res[BENEATH]!;
  const held = res as NodeHead;
  if (held._storeHeader === (storeHeadOfPendingHit as StoreHeader)) held._storeHeader = pending.storeHeader!;
  // Wrapped since: ours stays in the chain and passes the call on to what it was put over.
  else if (pending.storeHeader !== undefined) held[STORE_BENEATH] = pending.storeHeader;
  return pending;
}

/**
 * A layer in front sends the head while the hit waits for Koa's read of
 * ctx.respond: ctx.flushHeaders() or a writeHead of its own after next(),
 * leaving the body to Koa. Without the cache that head has the app's fields,
 * so here it is the stored answer's: its status, reason and fields over those
 * that layer set (its writeHead's own with them), Age and Cache-Status, and
 * the hit counts. The body follows at Koa's read (bodyAfterHead), unless that
 * layer writes one itself: the length is node's to frame then. A head of
 * another status is that layer's own answer (an error of its own), as are
 * Koa's error answers (see answersErrorsItself): sent as it asks.
 */
function headOfPendingHit(this: HeldResponse, statusCode: number, reason?: unknown, fields?: unknown): ServerResponse {
  const pending = this[PENDING_HIT];
  // No hit, or its head under way (a writeHead wrapped around ours since calls back here): the one ours was put over.
  const own = this[BENEATH]!;
  if (this.writeHead === headOfPendingHit) this.writeHead = own;
  if (pending?.writeHead === undefined || Number(statusCode) !== pending.status || this.headersSent) return own.apply(this, arguments as never);
  pending.writeHead = undefined;
  setFields(this, typeof reason === 'string' ? fields : reason);
  pending.write!(true);
  return this;
}

/**
 * Where node builds every HTTP/1 head, past any writeHead: a layer in front
 * that put node's own writeHead back after next() (or calls it on ctx.res)
 * builds its head here without headOfPendingHit, and the stored body followed
 * a head with none of the stored fields (no Content-Type, ETag, Cache-Status),
 * not counted as a hit. That head is the hit's as headOfPendingHit makes it:
 * what that writeHead was given is set on the response (node passes its own
 * header object when setHeader was used, the caller's fields otherwise), and
 * the stored head is built in its place. The hit's own head comes through here
 * too, once pending.writeHead is cleared.
 */
function storeHeadOfPendingHit(this: NodeHead, firstLine: string, headers: unknown): void {
  const pending = this[PENDING_HIT];
  const own = pending === undefined ? this[STORE_BENEATH]! : pending.storeHeader!;
  if (pending?.writeHead === undefined || this.statusCode !== pending.status) return own.call(this, firstLine, headers);
  pending.writeHead = undefined;
  if (OUT_HEADERS !== undefined && headers !== (this as unknown as Record<symbol, unknown>)[OUT_HEADERS]) setFields(this, headers);
  // node's writeHead, called again inside its own: no head is stored yet, so it builds the stored one (and ends here).
  pending.write!(true);
  // A writeHead put on since that took the call and built nothing: the head that was asked for, rather than none.
  if (!this._header) own.call(this, firstLine, headers);
}

/** On an HTTP/2 stream a hit waits on: its response, and its respond() from before ours (see respondOfPendingHit). */
const HELD = Symbol('tiercache.heldResponse');
const RESPOND_BENEATH = Symbol('tiercache.respondBeneath');

type HeldStream = ServerHttp2Stream & { [HELD]?: HeldResponse; [RESPOND_BENEATH]?: ServerHttp2Stream['respond'] };

/**
 * HTTP/2 (node's compatibility API) has no _storeHeader: every head leaves
 * through its stream's respond(), which is where storeHeadOfPendingHit's work
 * is done there. Put on once per stream, and left: it stands aside once no hit
 * waits (HTTP/2 hits are not the measured path).
 */
function holdHttp2Head(res: Http2ServerResponse): void {
  const stream = res.stream as HeldStream;
  stream[HELD] = res as unknown as HeldResponse;
  if (stream.respond === respondOfPendingHit) return;
  stream[RESPOND_BENEATH] = stream.respond;
  stream.respond = respondOfPendingHit;
}

function respondOfPendingHit(this: HeldStream, headers?: OutgoingHttpHeaders, options?: ServerStreamResponseOptions): void {
  const res = this[HELD];
  const pending = res?.[PENDING_HIT];
  const own = this[RESPOND_BENEATH]!;
  if (pending?.writeHead === undefined || res!.statusCode !== pending.status) return own.call(this, headers, options);
  // The compatibility writeHead set what it was given on the response already.
  pending.writeHead = undefined;
  pending.write!(true);
  if (!this.headersSent) own.call(this, headers, options);
}

/** What a writeHead call names, set on `res` as node's writeHead sets it over what is there already. */
function setFields(res: ServerResponse, fields: unknown): void {
  if (typeof fields !== 'object' || fields === null) return;
  if (Array.isArray(fields)) {
    for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i]) res.setHeader(String(fields[i]), fields[i + 1] as string);
    return;
  }
  for (const name of Object.keys(fields)) if (name) res.setHeader(name, (fields as Record<string, string>)[name]!);
}

/**
 * Koa reads ctx.respond and the hit's head is gone already, with no word that
 * Koa will not respond: a middleware in front sent it after next() and left
 * the rest to Koa (ctx.flushHeaders(), a writeHead of its own: the stored head,
 * see headOfPendingHit, or its own of another status with no body set on ctx),
 * which would send the app's body after it. The stored body follows (none for a HEAD or a
 * 304), and what that middleware writes later is dropped, as after any hit;
 * an answer it ended itself is left so. Told not to respond, Koa ended nothing
 * and the client waited forever.
 */
function bodyAfterHead(res: ServerResponse | undefined, pending: DeferredHit): void {
  if (res === undefined || res.writableEnded || res.destroyed) return;
  const body = pending.body;
  if (body === undefined || body.length === 0 || pending.status === 304 || res.req.method === 'HEAD') res.end();
  else endStoredBody(res.req, res, body);
  dropLaterWrites(res);
}

/**
 * The hit went out before the middleware in front are done (one set
 * ctx.respond, or Koa's read of it cannot be heard): one that answers by
 * itself (a serializer of ctx.body, undefined on a hit) writes next. What it
 * writes is dropped, its callbacks run: its bytes were what the fill stored,
 * and node would emit write-after-end at the response, an 'error' nobody
 * listens to, which takes the process down. The fields it sets are dropped as
 * ctx.set() drops them once the head is out: node's own setters threw
 * ERR_HTTP_HEADERS_SENT into it (ctx.cookies.set() of a session renewing its
 * cookie, on every hit), and the rest of it never ran.
 */
function dropLaterWrites(res: ServerResponse): void {
  res.writeHead = nothingAfterHit as ServerResponse['writeHead'];
  res.write = writeAfterHit as ServerResponse['write'];
  res.end = endAfterHit as ServerResponse['end'];
  res.setHeader = nothingAfterHit as ServerResponse['setHeader'];
  res.appendHeader = nothingAfterHit as ServerResponse['appendHeader'];
  res.removeHeader = nothingAfterHit as ServerResponse['removeHeader'];
}

function nothingAfterHit(this: ServerResponse): ServerResponse {
  return this;
}

function writeAfterHit(_chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
  swallow(typeof encoding === 'function' ? encoding : cb);
  return true;
}

function endAfterHit(this: ServerResponse, chunk?: unknown, encoding?: unknown, cb?: unknown): ServerResponse {
  swallow(typeof chunk === 'function' ? chunk : typeof encoding === 'function' ? encoding : cb);
  return this;
}

/**
 * Gives a Koa context prototype (app.context) a `respond` accessor: Koa reads
 * ctx.respond last, once the middleware are done, and a hit waiting then is
 * written. Once per app, on the prototype: a property defined on each ctx
 * cost a hit about a third of its time. Whatever the app sets is kept and read back.
 */
function readyContext(proto: object): boolean {
  if (readied.has(proto)) return true;
  // An app (or a plugin) that made respond its own: hits are written at once, as they were.
  if (Object.getOwnPropertyDescriptor(proto, 'respond') !== undefined || !Object.isExtensible(proto)) return false;
  Object.defineProperty(proto, 'respond', {
    configurable: true,
    get(this: PendingHolder): unknown {
      const res = this.res;
      const pending = res === undefined ? undefined : res[PENDING_HIT];
      if (pending === undefined) {
        const own = this[OWN_RESPOND];
        // Koa responds (an app that answers itself, respond = false, ends what it writes: that decides).
        if (this[ON_RESPOND] !== undefined && own !== false) responding(this);
        if (this[AT_CHAIN_END] !== undefined && this.res !== undefined) this[AT_CHAIN_END].chainEnds(this.res);
        return own;
      }
      if (writePending(res)) return false;
      // The head that left is not the hit's (another status, sent in front) and a body (null too) was set on ctx in front:
      // that middleware's answer, which Koa ends with ctx.body as without the cache (the stored body under a
      // Content-Length said for that body framed the connection's next answer wrong).
      if (pending.writeHead !== undefined && (this as { body?: unknown }).body !== undefined) return this[OWN_RESPOND];
      bodyAfterHead(res, pending);
      return false;
    },
    // Something in front decides otherwise: a hit waiting goes now (and what it writes itself then is
    // dropped, see dropLaterWrites), and the value is kept.
    set(this: PendingHolder, value: unknown) {
      if (writePending(this.res)) dropLaterWrites(this.res!);
      if (value === false && !readied.has(this)) {
        // Koa will not respond: no hit is left to wait for its read on this ctx. Its own property, as respondHeard reads
        // it, sends a hit that comes later at once, before what the middleware that said so writes itself.
        ownRespondOf(this, false);
        return;
      }
      this[OWN_RESPOND] = value;
    },
  });
  // Marks the accessor as ours for respondAsSet, which reads what was set without being heard.
  (proto as PendingHolder)[OWN_RESPOND] = undefined;
  answersErrorsItself(proto);
  readied.add(proto);
  return true;
}

/**
 * Koa answers an error thrown in front after next() with ctx.onerror, which
 * never reads ctx.respond: the hit waiting is no answer then, and the head
 * Koa's answer sends is Koa's, not the hit's (see headOfPendingHit). The
 * context prototype's onerror (Koa's, or an app's own set before) is wrapped
 * once, and becomes an accessor: one the app sets later (on app.context, as
 * koa-onerror does, or on a ctx in front) is wrapped as it is set. Set as a
 * plain property, it hid the wrapper: an error answer of the hit's status (an
 * envelope answered 200) went out under the stored head (its ETag, `hit`) and
 * counted as a hit.
 */
function answersErrorsItself(proto: object): void {
  const onerror: unknown = (proto as { onerror?: unknown }).onerror;
  const own = Object.getOwnPropertyDescriptor(proto, 'onerror');
  if (typeof onerror !== 'function' || (own !== undefined && own.writable !== true)) return;
  (proto as ErrorHolder)[ONERROR] = withoutHit(onerror as OnError);
  Object.defineProperty(proto, 'onerror', {
    // Read by Koa on every request (its finish listener calls ctx.onerror(null)): a field read, no allocation.
    get(this: ErrorHolder): unknown {
      return this[ONERROR];
    },
    // On whichever object is assigned to: app.context for every request, a ctx for its own.
    set(this: ErrorHolder, value: unknown) {
      this[ONERROR] = typeof value === 'function' ? withoutHit(value as OnError) : value;
    },
    // As Koa's own method, listed among ctx's (for...in).
    enumerable: true,
    configurable: true,
  });
}

/** Where the accessor of answersErrorsItself keeps the onerror it hands out. */
const ONERROR = Symbol('tiercache.onerror');

type OnError = (this: PendingHolder, err: unknown) => unknown;

interface ErrorHolder {
  [ONERROR]?: unknown;
}

/** `onerror` that first sets aside the hit waiting on the response: an error is the answer. */
function withoutHit(onerror: OnError): OnError {
  return function onerrorWithoutHit(this: PendingHolder, err: unknown): unknown {
    if (err !== null && err !== undefined && this.res !== undefined) setAside(this.res);
    return onerror.call(this, err);
  };
}

/** For a fill: Koa's read of ctx.respond heard, and told to a fill whose app answers by itself later. */
const KOA_RESPOND: RespondWatch = {
  beforeFill: hearRespond,
  atChainEnd(ctx: unknown, end: ChainEnd): boolean {
    const holder = ctx as PendingHolder;
    holder[AT_CHAIN_END] = end;
    // Ours: ctx's own accessor (hearRespond's, or the false said on it), else the one app.context has.
    return Object.hasOwn(holder, 'respond') ? Object.hasOwn(holder, CTX_RESPOND) : OWN_RESPOND in holder;
  },
};

/** Runs what waits for Koa to respond, once. */
function responding(ctx: PendingHolder): void {
  const done = ctx[ON_RESPOND]!;
  ctx[ON_RESPOND] = undefined;
  done();
}

/** Whether Koa's read of ctx.respond can be heard on `ctx` (the accessor readyContext gives its prototype). */
function respondHeard(ctx: KoaRuntimeContext): boolean {
  const proto: unknown = Object.getPrototypeOf(ctx);
  // A respond of ctx's own hides it: set before the accessor was there (the app's first hit), or the false its
  // setter keeps as one (nothing to hear then: Koa will not respond).
  return !Object.hasOwn(ctx, 'respond') && typeof proto === 'object' && proto !== null && proto !== Object.prototype && readyContext(proto);
}

/**
 * Calls `done` when Koa responds: it reads ctx.respond once every middleware
 * has run, those in front of the cache included (one may commit the write
 * after the handler). A write whose client left is decided then: Koa 3 ends
 * the response there, Koa 2 ends nothing (its respond() returns for a ctx
 * that is not writable). An error thrown on the way out is answered by
 * Koa's onerror, which reads nothing: no successful write. Where the read
 * cannot be heard, now: the handler is done.
 */
function whenKoaResponds(ctx: KoaRuntimeContext, done: () => void): void {
  if (!respondHeard(ctx)) {
    if (ctx.respond !== false) done();
    return;
  }
  const holder = ctx as PendingHolder;
  const earlier = holder[ON_RESPOND];
  // Two caches on one write: each decides its own.
  holder[ON_RESPOND] =
    earlier === undefined
      ? done
      : () => {
          earlier();
          done();
        };
}

/**
 * A hit goes out when Koa would send an answer: after the middleware in
 * front of the cache have run what follows their `await next()` (koa-session
 * renewing its cookie, a request id, CORS headers), as for the app's own
 * answers. They see the hit's status; what they set on ctx.body or
 * ctx.status is not sent (the stored answer is), the headers they set are,
 * but for those the stored answer names too. An error they throw is the
 * answer (Koa's onerror), as without the cache, and the hit, never written,
 * is not counted as one (see DeferredHit.report).
 */
function respondLater(ctx: KoaRuntimeContext, deferred: DeferredHit, write: () => void): void {
  // Where Koa's read of ctx.respond cannot be heard, or will not come (something in front said it answers by
  // itself, ctx.respond = false before next(), and what it writes after next() would go out first): written
  // at once, and what a middleware in front writes after it is dropped.
  if (!respondHeard(ctx)) {
    // Unless the answer was given while Redis was asked (a middleware in front that answers at once and lets
    // the app go on): it is left alone, as a hit waiting for Koa's read is, and not counted. What that middleware
    // writes next is its own answer's (a head and a first chunk at once, the end once the app is done): kept.
    if (!ctx.res.headersSent) {
      write();
      dropLaterWrites(ctx.res);
    }
    ctx.respond = false;
    return;
  }
  const res = ctx.res as HeldResponse;
  res.statusCode = deferred.status;
  // A body set in front before next() is one the app's handler would have replaced: the stored one stands in, so a
  // layer that sends a head of another status after next() and leaves the end to Koa (which ends with ctx.body) sends
  // what the app alone sends there, framed by its length, not that early body.
  const early = ctx as { body?: unknown };
  if (early.body !== undefined) early.body = deferred.body ?? NO_BODY;
  // A head sent before Koa's read is the hit's (see headOfPendingHit).
  deferred.writeHead = res.writeHead;
  res[BENEATH] = res.writeHead;
  res.writeHead = headOfPendingHit as ServerResponse['writeHead'];
  // And where a head is built past it (node's writeHead put back in front): see storeHeadOfPendingHit.
  const store = (res as NodeHead)._storeHeader;
  if (store === undefined) {
    // An HTTP/1 response without node's _storeHeader (a node that renamed it) goes without this, as before it.
    if ((res as unknown as Partial<Http2ServerResponse>).stream !== undefined) holdHttp2Head(res as unknown as Http2ServerResponse);
  } else {
    deferred.storeHeader = store;
    (res as NodeHead)._storeHeader = storeHeadOfPendingHit as StoreHeader;
  }
  res[PENDING_HIT] = deferred;
}
