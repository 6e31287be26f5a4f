// Answers a request from a stored response: its header fields exactly as the
// handler sent them (every repetition, in order, the origin's Date), plus Age
// and Cache-Status, then one end(buffer) (a large one over HTTP/2 in slices, see
// endInSlices). Conditional requests get a 304 with the headers RFC 9110 asks
// for and no body; HEAD gets the headers only.
import { IncomingMessage, ServerResponse, STATUS_CODES } from 'node:http';
import { coarseNow } from '../store/coarse-clock.js';
import { forgetSaid } from './cache-status.js';
import { conditionsOf, isNotModified } from './conditional.js';
import type { HeaderSet, PreparedResponse } from './http-entry.js';

/** node's private slot for headers set with setHeader (null until the first one); undefined if node renames it. */
export const OUT_HEADERS = Object.getOwnPropertySymbols(new ServerResponse(new IncomingMessage(null as never))).find((s) => s.description === 'kOutHeaders');
/**
 * node's own, as writeHead: a layer that hooks a response's _storeHeader (ours do, capture.ts) runs while the
 * head is built. When it is not, writeHead counts as not node's either: no hit reaches the node form then.
 */
const plainStoreHeader = nodeOwn((ServerResponse.prototype as unknown as { _storeHeader: unknown })._storeHeader, 'function _storeHeader(', 'processHeader(');

/**
 * node's own writeHead, else undefined (every head then goes through setHeader). A wrapper an APM agent put
 * on the prototype before this module loaded (dd-trace wraps writeHead so) is what a response
 * inherits, and runs in every writeHead: a field it set or removed there for one request stayed in the node
 * form every later hit of the entry shares, and its setHeader merged the flat array (repeated fields lost).
 * Told apart by node's source: a wrapper calls the writeHead beneath it, never _storeHeader.
 */
export const plainWriteHead = plainStoreHeader === undefined ? undefined : nodeOwn(ServerResponse.prototype.writeHead, 'function writeHead(', 'this._storeHeader(');

/** `fn` when its source is node's: it begins as node's (name, parameters) and calls what node's does; else undefined. */
function nodeOwn<T>(fn: T, start: string, calls: string): T | undefined {
  const source = typeof fn === 'function' ? Function.prototype.toString.call(fn) : '';
  return source.startsWith(start) && source.includes(calls) ? fn : undefined;
}

/**
 * Writes the status line and `headers` with Age and Cache-Status. A flat raw
 * array reaches the wire as given, but only while nothing was set on `res` and
 * nobody wrapped writeHead (both would merge it with setHeader, keeping only
 * the last value of a repeated field); otherwise each field is set by name
 * with all its values.
 *
 * Headers already set whose every name the stored set replaces anyway (Express
 * sets X-Powered-By on every request, and the entry has it from its fill) would
 * leave the same answer either way: they are dropped and the raw array used,
 * which saves a setHeader per field on every Express hit.
 */
export function writeStoredHead(res: ServerResponse, status: number, headers: HeaderSet, age: number, cacheStatus: string | undefined, reason?: string, framed = true): void {
  const ageText = String(age);
  // Stryker disable next-line BlockStatement: without the raw path every hit takes the setHeader path below, which sends the same fields
  if (framed && OUT_HEADERS !== undefined && res.writeHead === plainWriteHead) {
    const slots = res as unknown as Record<symbol, Record<string, unknown> | null>;
    const already = slots[OUT_HEADERS];
    // Stryker disable next-line BlockStatement: the same
    if (already === null || (already !== undefined && headers.replacesAll(already, cacheStatus !== undefined))) {
      // Only while nothing but node runs in writeHead: a hook of _storeHeader that sets a field (capture.ts's
      // keepSaidAfterUpstream) would set it in the object every hit of the entry shares.
      const form = (res as unknown as { _storeHeader: unknown })._storeHeader === plainStoreHeader ? headers.nodeFormWith(ageText, cacheStatus) : undefined;
      if (form !== undefined) {
        // node sends headers set on the response without validating them again (see nodeFormWith).
        slots[OUT_HEADERS] = form;
        try {
          res.writeHead(status, reason);
        } finally {
          // As the array leaves it: nothing set on res once its head is written (getHeader() reads undefined),
          // and nothing later set on res reaches the object every hit of the entry shares.
          slots[OUT_HEADERS] = null;
        }
        return;
      }
      slots[OUT_HEADERS] = null;
      // A reason that is undefined is no reason to node: the headers are read in its place.
      res.writeHead(status, reason, headers.rawWith(ageText, cacheStatus));
      return;
    }
  }
  // A 204 or 304 has no body: what a middleware in front said of one it gave Koa (an envelope of ctx.body,
  // undefined on a hit) is dropped, as Koa and Express drop it from their own, unless stored (set again below).
  if (status === 204 || status === 304) for (const name of BODY_FIELDS) res.removeHeader(name);
  // A Cache-Status an outer layer said before the app ran is not this answer's (the raw path above drops it with the rest).
  forgetSaid(res);
  headers.setOn(res);
  // Framing left to node: what follows this head is not known to be the stored body (see replay's headOnly).
  if (!framed) res.removeHeader('content-length');
  res.setHeader('age', ageText);
  if (cacheStatus !== undefined) res.setHeader('cache-status', headers.statusAfterUpstream(cacheStatus));
  res.writeHead(status, reason);
}

/** Fields that describe a body, which a 204 or 304 has none of. */
const BODY_FIELDS = ['content-type', 'content-length', 'transfer-encoding'] as const;

/**
 * The stored reason phrase to send, else node's own for the status, given so (node would keep one a
 * middleware in front left on the response: Koa's status setter, run by an envelope of ctx.body on a
 * hit, sent `301 OK`); none over HTTP/2, which has none (node warns when given one).
 */
export function reasonFor(req: IncomingMessage, response: PreparedResponse): string | undefined {
  return req.httpVersionMajor >= 2 ? undefined : ((req.method === 'HEAD' ? response.headReason : response.reason) ?? STATUS_CODES[response.status]);
}

/**
 * The stored headers to send with this request's answer: a HEAD's, and any
 * over HTTP/2 (whose header values node sends as latin1 whatever the body),
 * may differ (PreparedResponse.utf8Head).
 */
export function headersFor(req: IncomingMessage, response: PreparedResponse): HeaderSet {
  return req.method === 'HEAD' || req.httpVersionMajor >= 2 ? response.headHeaders : response.headers;
}

/** Age in whole seconds of an entry whose fill began at `createdAt`. */
export function ageOf(createdAt: number, now: number): number {
  return now > createdAt ? Math.floor((now - createdAt) / 1000) : 0;
}

/** A hit the adapter writes later (Koa): left here by replay, written once the middleware in front of the cache have run. */
export interface DeferredHit {
  /** The hit's status, as the answer will have it (200, or 304 for a request whose condition it meets). */
  status: number;
  /** Writes the hit; `headOnly`: its head alone, for a head a layer in front sends while the hit waits (see replay). */
  write: ((headOnly?: boolean) => void) | undefined;
  /**
   * Not a hit: a write whose invalidation waits to be decided (see
   * HttpCache.invalidateAfterWrite). The adapter calls it once the app is
   * done with the response: Koa 2 ends nothing for a client that is gone, so
   * end() cannot tell.
   */
  appDone: (() => void) | undefined;
  /**
   * Counts the hit (the 'hit' event, so Prometheus and the status page, and
   * stats().stale for a stale one), run as it is written. A middleware in
   * front that throws once Koa would respond makes Koa's error the answer,
   * and the hit is never written: counted as a hit, that request would show
   * an answer from the cache that nobody got, so it counts as none. The tiers'
   * own counters (stats().l1.hits, l2.hits) keep it: they count what a
   * lookup found, and L1 or Redis did have the entry.
   */
  report: (() => void) | undefined;
  /** The stored body, for a head a middleware in front sent before the hit could be (see koa.ts bodyAfterHead). */
  body: Buffer | undefined;
  /** The response's writeHead while the hit waits, put back once it is written (see koa.ts headOfPendingHit). */
  writeHead: ServerResponse['writeHead'] | undefined;
  /** The response's _storeHeader from before the hit's, put back when it is set aside (see koa.ts storeHeadOfPendingHit). */
  storeHeader: ((this: ServerResponse, firstLine: string, headers: unknown) => void) | undefined;
}

/**
 * `deferred`: the adapter writes hits later (Koa, once the middleware in front of the cache have run, see koa.ts):
 * the hit is left there instead of written.
 */
export function replay(req: IncomingMessage, res: ServerResponse, response: PreparedResponse, createdAt: number, now: number, cacheStatus: string | undefined, deferred: DeferredHit | undefined): void {
  if (deferred !== undefined) {
    deferred.status = response.status === 200 && notModified(req, response) ? 304 : response.status;
    deferred.body = response.body;
    // report is set before replay() (HttpCache.reportServed). The write without one stays the bare call: a
    // closure that also read deferred.report cost a Koa hit under wrk 6-7 µs of its ~39 (bench/http/run.mjs).
    // Age as the hit leaves, not as it was found: the middleware in front may take seconds after next().
    const report = deferred.report;
    deferred.write =
      report === undefined
        ? (headOnly) => replayNow(req, res, response, createdAt, coarseNow(), cacheStatus, headOnly)
        : (headOnly) => {
            report();
            replayNow(req, res, response, createdAt, coarseNow(), cacheStatus, headOnly);
          };
    return;
  }
  replayNow(req, res, response, createdAt, now, cacheStatus);
}

/** Whether a 200's request carries conditions the stored answer meets. */
function notModified(req: IncomingMessage, response: PreparedResponse): boolean {
  // Read once: node's req.headers is a getter (IncomingMessage builds the object on the first read).
  const headers = req.headers;
  if (headers['if-none-match'] === undefined && headers['if-modified-since'] === undefined) return false;
  const conditions = conditionsOf(headers);
  return conditions !== undefined && isNotModified(conditions, response.etag, response.lastModified);
}

/**
 * `headOnly`: the head alone, sent for a layer in front that sends it while
 * the hit waits (koa.ts, headOfPendingHit), with that layer's fields under
 * the stored ones; what follows is the stored body or what that layer writes
 * itself, so the length is node's to frame (a HEAD keeps the stored one: no
 * body follows it).
 */
function replayNow(req: IncomingMessage, res: ServerResponse, response: PreparedResponse, createdAt: number, now: number, cacheStatus: string | undefined, headOnly?: boolean): void {
  const age = ageOf(createdAt, now);
  if (response.status === 200 && notModified(req, response)) {
    writeStoredHead(res, 304, response.notModifiedHeaders, age, cacheStatus, req.httpVersionMajor >= 2 ? undefined : STATUS_CODES[304]);
    if (headOnly !== true) res.end();
    return;
  }
  if (headOnly === true) {
    writeStoredHead(res, response.status, headersFor(req, response), age, cacheStatus, reasonFor(req, response), req.method === 'HEAD');
    return;
  }
  writeStoredHead(res, response.status, headersFor(req, response), age, cacheStatus, reasonFor(req, response));
  // No body, no write of one: over HTTP/2 node ends the stream with the head of a 204, and a write after it,
  // even of no byte, is ERR_STREAM_WRITE_AFTER_END (Koa reported one on every such hit).
  if (req.method === 'HEAD' || response.body.length === 0) res.end();
  else endStoredBody(req, res, response.body);
}

/** Ends `res` with a stored body: over HTTP/2 a large one a slice at a time (see endInSlices). */
export function endStoredBody(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  if (body.length > HTTP2_SLICE && req.httpVersionMajor >= 2) endInSlices(res, body, res.write, res.end);
  else res.end(body);
}

/**
 * Over HTTP/2 all that a session's streams have handed node to send counts
 * against its maxSessionMemory (10 MiB by default), and past it node refuses
 * the session's new streams (RST_STREAM ENHANCE_YOUR_CALM): a few large hits
 * given whole at once on one connection (a page's images) made the rest of
 * that page's requests fail, where the app streaming them by backpressure
 * answered all. A large body goes a slice at a time, each once the one before
 * is written, as a stream piped to the response would.
 */
export const HTTP2_SLICE = 64 * 1024;

/**
 * `write`, `end`: the response's own, as they are when it starts (what a Koa
 * hit leaves on the response once written drops later writes, koa.ts), or
 * those beneath a capture (its stale replacement, capture.ts).
 */
export function endInSlices(res: ServerResponse, body: Buffer, write: (...a: never[]) => unknown, end: (...a: never[]) => unknown): void {
  const writeSlice = write as (this: ServerResponse, chunk: Buffer, cb?: (err?: Error | null) => void) => boolean;
  const endBare = end as (this: ServerResponse) => ServerResponse;
  let at = 0;
  const next = (err?: Error | null): void => {
    // The stream closed under it (a reset, the session gone): nothing more can go.
    if (err) return;
    if (body.length - at <= HTTP2_SLICE) {
      // Not end(chunk): HTTP/2's end() writes its chunk through res.write(), which drops it by then where the hit
      // went after a head sent in front (koa.ts bodyAfterHead, then dropLaterWrites).
      writeSlice.call(res, body.subarray(at));
      endBare.call(res);
      return;
    }
    const from = at;
    at += HTTP2_SLICE;
    writeSlice.call(res, body.subarray(from, at), next);
  };
  next();
}
