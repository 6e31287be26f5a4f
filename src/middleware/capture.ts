// Captures what a handler sends through a node ServerResponse while passing
// every byte on at once: write() and end() are wrapped on the instance, and a
// copy is kept up to a byte limit. writeHead() is wrapped so the cache sees
// the status and headers that go with the bytes it captures (including those
// added by wrappers further in, such as compression's Content-Encoding), and
// node's _storeHeader() so it also sees the head exactly as it goes out, after
// every writeHead hook mounted anywhere (express-session adds its Set-Cookie
// there). A body counts as complete only after a clean end() with as many
// bytes as a declared Content-Length, on a connection still open.
// Works the same under Express and Koa: both answer through node's res.
import { OutgoingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { Http2ServerResponse, type ServerHttp2Stream } from 'node:http2';
import { inspect } from 'node:util';
import type { HeaderSet } from './http-entry.js';
import { endInSlices, HTTP2_SLICE, writeStoredHead } from './replay.js';
import { readyResponse } from './slot-ready.js';
import { assigned, shadowOwn } from './own-property.js';
import { keepSaidAfterUpstream } from './cache-status.js';
import { keepRawHeaderLists } from './raw-header-list.js';
import { hasOutgoingField, outgoingField, sendsTrailers } from './outgoing-field.js';

/** A different answer to send instead of the handler's (stale-if-error). */
export interface Replacement {
  readonly status: number;
  readonly headers: HeaderSet;
  readonly age: number;
  readonly cacheStatus: string | undefined;
  /** undefined for HEAD. */
  readonly body: Buffer | undefined;
  /** The stored answer's own reason phrase; undefined: node's for the status. */
  readonly reason?: string | undefined;
}

/**
 * The handler's answer is withdrawn and another, made later, takes its place:
 * `handover` gets the writer for it (origin mode: a 304 that validated nothing
 * stored is answered by an unconditional retry, see FillCapture).
 */
export interface Handover {
  readonly handover: (writer: AnswerWriter) => void;
}

/**
 * Writes an answer on the real response, underneath the capture and whatever
 * the handler's side wrapped on it after the capture (that answer went
 * through wrappers of its own). Late calls, once the answer is out, do nothing.
 */
export interface AnswerWriter {
  readonly res: ServerResponse;
  head(status: number, headers: OutgoingHttpHeaders, reason?: string): void;
  write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean;
  end(cb?: () => void): void;
}

/** Answer the request with a 304 instead of the body (the body is still captured and stored). */
export const NOT_MODIFIED = 'not-modified';

/** Why a body known before the head left cannot be stored. */
export type BodyProblem = 'too-large' | 'truncated';

export interface CaptureHooks {
  /**
   * The handler's head, with `status`, is about to be judged (before
   * headers()): a promise to wait for first, or undefined to go on at once.
   * Meanwhile every call of the handler's (writeHead, write, end) is held back,
   * to run in order once it settles, and the answer counts as sent, as while
   * a store is under way (stale-if-error asking Redis whether the stale entry
   * may stand in for a 5xx).
   */
  hold?(res: ServerResponse, status: number): Promise<void> | undefined;
  /**
   * The handler's headers are about to go out (synchronous; may change headers
   * on `res`). `body` is the whole body when it is known before the headers
   * leave (end() with no earlier write), else undefined. Returning a
   * Replacement sends it instead and discards everything the handler writes;
   * returning NOT_MODIFIED answers 304 instead of the body (the body is still captured): at once when the
   * whole answer is one end(), at the end for a streamed one over HTTP/1 (its head is built now, and leaves
   * then); over HTTP/2 a streamed one goes whole (its head leaves as it is built, and a 304 ends the stream).
   */
  headers(res: ServerResponse, body: Buffer | undefined, problem?: BodyProblem, utf8Head?: boolean): Replacement | Handover | typeof NOT_MODIFIED | undefined | void;
  /** The head is being serialized, after every writeHead hook: the last look at what is really sent (may set headers). */
  sent(res: ServerResponse): void;
  /**
   * What the handler writes can no longer be stored: `pastLimit` when it went past the byte limit, else
   * it was not bytes, or the capture gave up for a client that stopped reading (see stalled).
   */
  unstorable(pastLimit: boolean): void;
  /**
   * end() was called: `body` is everything written when it is complete and
   * storable, else undefined. The real end waits until the returned promise settles.
   * `utf8Head`: the app alone sends this answer's head as UTF-8, not latin1 (see Capture.utf8Head).
   */
  finish(body: Buffer | undefined, utf8Head?: boolean): Promise<void> | void;
  /**
   * end() was called and finish() comes a turn later (HTTP/2, see captureEnd): the answer is whole, so a
   * client that leaves meanwhile (its 'close' may come first) leaves it to that judging.
   */
  ending?(): void;
  /** end() was given something other than bytes (node throws it to the handler): nothing will be stored. */
  abort(): void;
  /**
   * The client stopped reading: a write met backpressure and no 'drain' came
   * within STALL_MS. `stop` gives the capture up (nothing more is kept, nothing
   * is stored; the answer still goes on whole); called with undefined once the
   * client drains the response after all.
   */
  stalled?(stop: (() => void) | undefined): void;
}

type Callback = (err?: Error | null) => void;
type WriteHead = ServerResponse['writeHead'];
type StoreHeader = (firstLine: string, headers: unknown) => void;

const KEEP_ON_304 = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary', 'cache-status', 'age']);

/**
 * A copy of a chunk's bytes (the caller may reuse its buffer after write());
 * undefined for none; null when it cannot be captured (node will reject it
 * itself). Taken from node's pool: the copy lives only until the store, which
 * packs head and body into a buffer of the entry's own (see http-entry's
 * packed), so no slab is ever kept alive by L1; an allocation of its own here
 * cost a miss about 1.7 µs more.
 */
function toBuffer(chunk: unknown, encoding: unknown): Buffer | undefined | null {
  if (chunk === undefined || chunk === null) return undefined;
  try {
    // An encoding that is not a string (write's callback in its place, null) is utf8 to Buffer.from, as to node's write().
    if (typeof chunk === 'string') {
      // ASCII (as long in UTF-8 as in UTF-16: anything else takes more bytes) is the same bytes in latin1, which
      // node copies where UTF-8 is encoded a character at a time (a JSON body from Koa: most fills' body).
      if ((encoding === undefined || encoding === 'utf8') && Buffer.byteLength(chunk) === chunk.length) return Buffer.from(chunk, 'latin1');
      return Buffer.from(chunk, encoding as BufferEncoding);
    }
    if (chunk instanceof Uint8Array) {
      const out = Buffer.allocUnsafe(chunk.byteLength);
      out.set(chunk);
      return out;
    }
  } catch {
    // an unknown encoding, say: null below
  }
  return null;
}

export function hasBody(status: number): boolean {
  return status >= 200 && status !== 204 && status !== 304;
}

/** Lets node say the status's own reason phrase. HTTP/2 has none (node warns when one is set). */
function clearReason(res: ServerResponse): void {
  if (!(res instanceof Http2ServerResponse)) res.statusMessage = '';
}

/** node's own flags on an HTTP/1 response (absent on HTTP/2's). */
interface OutgoingFlags {
  _hasBody?: boolean;
  _headerSent?: boolean;
  /** removeHeader('content-length'): node adds none (and sends chunks, unless Transfer-Encoding was removed too). */
  _removedContLen?: boolean;
  /** removeHeader('transfer-encoding'): node sends no chunks, whatever the HTTP version. */
  _removedTE?: boolean;
}

/** Whether node sends a body with this response at all: not for a HEAD (node's own flag, false then). */
function sendsBody(res: ServerResponse): boolean {
  return (res as unknown as OutgoingFlags)._hasBody !== false;
}

/** Whether node has sent the head (undefined on HTTP/2). */
function headLeft(res: ServerResponse): boolean | undefined {
  return (res as unknown as OutgoingFlags)._headerSent;
}

/** A Transfer-Encoding that makes node send chunks (node's own test); one without chunked sends none. */
const CHUNKED = /(?:^|\W)chunked(?:$|\W)/i;

/**
 * The handler ruled out chunks for a body written in parts, for every request: a Transfer-Encoding
 * without chunked, a Content-Length, Transfer-Encoding removed, or useChunkedEncodingByDefault turned
 * off (node turns it off for HTTP/1.0 itself: not counted then).
 */
function noChunks(res: ServerResponse): boolean {
  const te = outgoingField(res, 'transfer-encoding');
  if (te !== undefined) return !CHUNKED.test(String(te));
  return hasOutgoingField(res, 'content-length') || (res as unknown as OutgoingFlags)._removedTE === true || (res.useChunkedEncodingByDefault === false && res.req?.httpVersion === '1.1');
}

/**
 * Whether node sends chunks for a body given whole to end() on a head it has
 * not built: a Transfer-Encoding with chunked, trailers (which need chunks),
 * or no Content-Length where node adds none (the handler removed it) and
 * chunks are not ruled out. Else it declares the length: so does the capture.
 */
function endSendsChunks(res: ServerResponse): boolean {
  const te = outgoingField(res, 'transfer-encoding');
  if (te !== undefined) return CHUNKED.test(String(te));
  if (hasOutgoingField(res, 'content-length')) return false;
  if (hasOutgoingField(res, 'trailer')) return true;
  const flags = res as unknown as OutgoingFlags;
  return flags._removedContLen === true && flags._removedTE !== true;
}

/** Encodings whose byte length Buffer.byteLength gives exactly. */
const EXACT_LENGTH = new Set(['utf8', 'utf-8', 'latin1', 'binary', 'ascii', 'ucs2', 'ucs-2', 'utf16le', 'utf-16le']);
/**
 * Encodings whose byte length Buffer.byteLength reckons from the string's
 * length alone (and its trailing '='), with no copy: the bytes made from
 * well-formed text (these patterns), and more than those from any other
 * (what is not base64 or hex is skipped, or ends the bytes).
 */
const RECKONED_LENGTH = new Map([
  ['base64', /^[A-Za-z0-9+/_-]*={0,2}$/],
  ['base64url', /^[A-Za-z0-9+/_-]*={0,2}$/],
  ['hex', /^[0-9a-fA-F]*$/],
]);

/**
 * The bytes a string makes in `encoding` (a write's callback or none: utf8),
 * undefined where only making them tells: base64 or hex that is not
 * well-formed, an unknown encoding (which node rejects).
 */
function exactByteLength(text: string, encoding: unknown): number | undefined {
  if (!encoding || typeof encoding === 'function') return Buffer.byteLength(text, 'utf8');
  if (typeof encoding !== 'string') return undefined;
  const name = encoding.toLowerCase();
  if (EXACT_LENGTH.has(name)) return Buffer.byteLength(text, name as BufferEncoding);
  return RECKONED_LENGTH.get(name)?.test(text) === true ? Buffer.byteLength(text, name as BufferEncoding) : undefined;
}

/**
 * Whether `chunk` surely makes more than `room` bytes, told without making
 * them: then it cannot be kept, and needs no copy.
 */
function pastRoom(chunk: unknown, encoding: unknown, room: number): boolean {
  if (chunk instanceof Uint8Array) return chunk.byteLength > room;
  // Three bytes a character at most (base64 and hex make fewer): most strings fit without asking.
  if (typeof chunk !== 'string' || chunk.length * 3 <= room) return false;
  const length = exactByteLength(chunk, encoding);
  return length !== undefined && length > room;
}

/** A string node writes as utf8 (the default): the one kind of chunk node joins the head to and sends as UTF-8. */
function utf8String(chunk: unknown, encoding: unknown): chunk is string {
  return typeof chunk === 'string' && (!encoding || encoding === 'utf8' || typeof encoding === 'function');
}

const NODE_WRITE = OutgoingMessage.prototype.write;
const NODE_END = OutgoingMessage.prototype.end;
const H2_END = Http2ServerResponse.prototype.end;

/**
 * Copies headers given to writeHead() onto the response, so getHeaders() shows
 * the full set, repetitions kept. What node's writeHead() refuses (a flat list
 * of odd length, a value that is undefined) throws node's own error to the
 * handler, as it would without the cache.
 */
export function applyHeaderArgument(res: ServerResponse, headers: unknown): void {
  if (typeof headers !== 'object' || headers === null) return;
  if (Array.isArray(headers)) {
    // Grouped by lower-case name (header names are case-insensitive: setHeader would replace 'Link' with 'link'), sent under the first spelling.
    const grouped = new Map<string, { name: string; values: string[] }>();
    const add = (name: unknown, value: unknown) => {
      const spelled = String(name);
      // Stryker disable next-line MethodExpression: upper case groups the same names
      const key = spelled.toLowerCase();
      const group = grouped.get(key);
      if (group === undefined) grouped.set(key, { name: spelled, values: [String(value)] });
      else group.values.push(String(value));
    };
    if (Array.isArray(headers[0])) for (const [k, v] of headers as Array<[unknown, unknown]>) add(k, v);
    else {
      if (headers.length % 2 !== 0) throw oddHeaderList(headers);
      for (let i = 0; i < headers.length; i += 2) add(headers[i], headers[i + 1]);
    }
    for (const { name, values } of grouped.values()) res.setHeader(name, values.length === 1 ? values[0]! : values);
    return;
  }
  for (const [name, value] of Object.entries(headers as OutgoingHttpHeaders)) res.setHeader(name, value as string | number | readonly string[]);
}

/** node's ERR_INVALID_ARG_VALUE for writeHead(status, [name, value, name]). */
function oddHeaderList(headers: unknown[]): TypeError {
  const err = new TypeError(`The argument 'headers' is invalid. Received ${inspect(headers)}`) as TypeError & { code: string };
  err.code = 'ERR_INVALID_ARG_VALUE';
  return err;
}

/** The declared Content-Length, or undefined when none (or not a plain number). */
function declaredLength(res: ServerResponse): number | undefined {
  const value = outgoingField(res, 'content-length');
  if (value === undefined) return undefined;
  // Number() skips surrounding white space itself.
  const n = Number(value);
  // Stryker disable next-line LogicalOperator: a value that is no safe integer (NaN, a fraction, Infinity) never equals a body's length, as -1 does not
  return Number.isSafeInteger(n) && n >= 0 ? n : -1;
}

/**
 * Where a captured response keeps its captures: one object each, no closures
 * per response. Middleware nested in middleware (app-wide and per route)
 * captures twice, each capture wrapping what the other left on `res`, so
 * each depth has its own set of wrappers, reading its own capture.
 */
const CAPTURES = Symbol('tiercache.captures');

interface Captured {
  [CAPTURES]: Capture[] | undefined;
  _storeHeader: StoreHeader;
}

/** The state of one response's capture; the wrappers below are shared by every response. */
class Capture {
  chunks: Buffer[] | undefined = undefined;
  first: Buffer | undefined = undefined;
  size = 0;
  overflow = false;
  wrote = false;
  headersSeen = false;
  ended = false;
  /** end() was called and the real end waits for the store: later calls must not reach node yet. */
  pending = false;
  replaced = false;
  notModified = false;
  /** The replacement's own head and body are being written through the wrapped methods. */
  writingReplacement = false;
  /** The real end is running (finishEnd): what it writes is its own. */
  finishing = false;
  /** end() runs a writeHead put on further in than this capture, for the fields it sets (see captureEnd). */
  collectingHead = false;
  /** That writeHead called this capture's while end() ran it (else it owes the call: see standAside). */
  headCollected = false;
  /** A writeHead hook further in owes the head (see standAside): every call passes on untouched. */
  headOwed = false;
  /** Content-Length that goes with the captured bytes (undefined: none declared). */
  declared: number | undefined = undefined;
  status = 200;
  // What end() was called with, for the real end once the store is done.
  endChunk: unknown = undefined;
  endEncoding: unknown = undefined;
  endCallback: unknown = undefined;
  /**
   * The bytes captured from a UTF-8 string given to end() that reaches node as it came. Given the
   * string, node joins the head to it and counts and encodes both as UTF-8 a character at a time;
   * given these bytes, it sends the head as latin1 before them. With an ASCII head those are the same
   * bytes on the wire (see finishEnd); a head beyond ASCII goes with the string, as without the cache.
   */
  endBytes: Buffer | undefined = undefined;
  /**
   * The app alone sends this answer's head as UTF-8, header values beyond
   * ASCII as other bytes than latin1 (é: c3 a9, not e9). node joins the head to
   * the first body chunk it sends when that is a utf8 string and sends both
   * as UTF-8; otherwise (a Buffer, another encoding, a chunk-length line
   * first, no body: a HEAD, a 304) the head goes as latin1. Said only where
   * the handler's calls settle it for every request (a whole body given to
   * end() as a string, or a first write() with a Content-Length), and only
   * when nothing but captures stands between here and node's own methods
   * (a wrapper below, compression(), could send other bytes): else false,
   * and hits send latin1, as before. Whatever it says, a fill's own answer is
   * what node makes of the handler's calls.
   */
  utf8Head = false;
  /** The handler's calls held back while a hold runs (see CaptureHooks.hold); undefined when none runs. */
  held: Array<readonly [HeldMethod, IArguments]> | undefined = undefined;
  /** An end() is among the held calls. */
  heldEnd = false;
  private holdAsked = false;
  /** A destroy() of the socket held back while the end waits for the store, or while a hold runs (see holdSocket). */
  private heldDestroy = false;
  private releaseSocket: (() => void) | undefined = undefined;
  /** Armed as a write meets backpressure, refreshed for the next time (see pressed): one per capture at most. */
  private stallTimer: NodeJS.Timeout | undefined = undefined;
  /** A write met backpressure and no 'drain' has come since. */
  private awaitingDrain = false;
  /** The hooks were told the client stopped reading (see CaptureHooks.stalled). */
  private saidStalled = false;

  constructor(
    readonly res: ServerResponse,
    readonly maxBytes: number,
    readonly hooks: CaptureHooks,
    readonly writeHead: (...a: unknown[]) => ServerResponse,
    readonly write: (...a: unknown[]) => boolean,
    readonly end: (...a: unknown[]) => ServerResponse,
    readonly storeHeader: StoreHeader,
  ) {}

  /**
   * A write returned false: the client reads slower than the handler writes. Where
   * the handler streams (a pipe waits for 'drain'), the end, and the store every
   * request waiting on this fill waits for, then comes only as fast as this client
   * reads: one that stops holds them. No 'drain' within STALL_MS, with the handler
   * waiting for one, tells the hooks.
   * Per backpressure, not per write: one timer for the capture, one listener.
   */
  pressed(): void {
    if (this.awaitingDrain || this.hooks.stalled === undefined) return;
    this.awaitingDrain = true;
    if (this.stallTimer !== undefined) {
      this.stallTimer.refresh();
      return;
    }
    this.stallTimer = setTimeout(noDrainInTime, STALL_MS, this).unref();
    const drained = (): void => {
      this.awaitingDrain = false;
      if (!this.saidStalled) return;
      this.saidStalled = false;
      this.tellStalled(undefined);
    };
    CAPTURE_DRAINS.add(drained);
    this.res.on('drain', drained);
  }

  /** STALL_MS after backpressure began (see pressed). */
  stallTimeUp(): void {
    if (!this.awaitingDrain || this.saidStalled || this.ended || this.overflow || this.replaced || this.res.destroyed) return;
    // Only a handler that waits for 'drain' (a pipe, a Koa stream body, once(res, 'drain')) ends as slowly as its
    // client reads. One that writes all it has (write()'s false ignored) or writes and ends later on its own
    // (a query) ends, and stores, at its own pace: giving it up ran the handler again for its waiters and,
    // holding the Redis lock, stored nothing for a slow client. Looked at again later: a pipe may begin.
    if (!waitedForDrain(this.res)) {
      this.stallTimer!.refresh();
      return;
    }
    this.saidStalled = true;
    this.tellStalled(() => this.giveUp(false));
  }

  private tellStalled(stop: (() => void) | undefined): void {
    try {
      this.hooks.stalled!(stop);
    } catch {
      // a cache bookkeeping failure must never break the response
    }
  }

  giveUp(pastLimit: boolean): void {
    if (this.overflow) return;
    this.overflow = true;
    this.chunks = undefined;
    this.first = undefined;
    this.hooks.unstorable(pastLimit);
  }

  keep(buf: Buffer | undefined | null): void {
    if (buf === null) return this.giveUp(false); // not storable: something other than bytes or a string
    if (buf === undefined || this.overflow || buf.length === 0) return;
    if (this.size + buf.length > this.maxBytes) return this.giveUp(true);
    if (this.first === undefined) this.first = buf;
    else (this.chunks ??= [this.first]).push(buf);
    this.size += buf.length;
  }

  /** The bytes written so far, in one buffer (transient, like toBuffer's copies: the store packs its own). */
  body(): Buffer | undefined {
    if (this.overflow) return undefined;
    if (this.chunks === undefined) return this.first ?? EMPTY;
    const out = Buffer.allocUnsafe(this.size);
    let at = 0;
    for (const chunk of this.chunks) at += chunk.copy(out, at);
    return out;
  }

  /** Everything the client was meant to get arrived here, and the connection is still there to get it. */
  complete(): boolean {
    if (this.overflow || this.res.destroyed) return false;
    // A 304 instead of a 200 (NOT_MODIFIED) still stores the 200, all of it: this.status is the 200's.
    if (!hasBody(this.status)) return true;
    return this.declared === undefined || this.declared === this.size;
  }

  /**
   * Runs the headers hook once; true when it asked for a replacement, which is
   * then sent. `single`: the whole answer is the end() under way (no write()
   * before), kept or not.
   */
  seeHeaders(whole: Buffer | undefined, problem?: BodyProblem, single = false): boolean {
    if (this.headersSeen) return false;
    this.headersSeen = true;
    const res = this.res;
    let replacement: Replacement | Handover | typeof NOT_MODIFIED | undefined | void;
    try {
      replacement = this.hooks.headers(res, whole, problem, this.utf8Head);
    } catch {
      // a cache bookkeeping failure must never break the response
    }
    this.status = res.statusCode;
    this.declared = declaredLength(res);
    if (replacement === NOT_MODIFIED) {
      if (whole !== undefined || single) this.notModified = true;
      else if (!(res instanceof Http2ServerResponse)) {
        // Streamed: the head of a 304 is built now (headersSent: an error handler leaves the answer alone), and
        // node sends it at the end, with no body: it ignores what is written after a 304's head (as it would the
        // handler's own 304), while the capture keeps it for the store. The stream runs to its end as before (a
        // piped file is read and closed), and the answer is stored before the 304 goes, as any fill is.
        this.notModified = true;
        this.notModifiedHead();
        this.writeHead.call(res, 304);
      }
      return false;
    }
    if (replacement === undefined || res.headersSent) return false;
    this.replaced = true;
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    // The handler's reason phrase ('Service Unavailable', set by Koa or Express's final handler) is not the replacement's.
    clearReason(res);
    if ('handover' in replacement) {
      try {
        replacement.handover(this.writer());
      } catch {
        res.destroy(); // never a request left unanswered
      }
      return true;
    }
    this.writingReplacement = true;
    try {
      writeStoredHead(res, replacement.status, replacement.headers, replacement.age, replacement.cacheStatus, replacement.reason);
      // No body (a HEAD): end(undefined) is end() to node. HTTP/2's end() writes its chunk through res.write().
      // A large one over HTTP/2 goes a slice at a time, as a hit's does (replay.ts endInSlices): whole, a few
      // at once on one session passed its maxSessionMemory, and node refused the session's next streams.
      const body = replacement.body;
      if (body !== undefined && body.length > HTTP2_SLICE && res instanceof Http2ServerResponse) endInSlices(res, body, this.write, this.end);
      else this.end.call(res, body);
    } finally {
      this.writingReplacement = false;
    }
    return true;
  }

  /** The handler's head made a 304's: the fields a 304 keeps (RFC 9110 §15.4.5), node's reason phrase. */
  notModifiedHead(): void {
    const res = this.res;
    for (const name of res.getHeaderNames()) if (!KEEP_ON_304.has(name)) res.removeHeader(name);
    res.statusCode = 304;
    // Koa's body setter has said 'OK' by now: a 304's reason phrase is node's.
    clearReason(res);
  }

  /** The writer a Handover gets: the methods this capture wrapped, as they were before it. */
  private writer(): AnswerWriter {
    const res = this.res;
    const pass = <T>(write: () => T): T => {
      this.writingReplacement = true;
      try {
        return write();
      } finally {
        this.writingReplacement = false;
      }
    };
    return {
      res,
      head: (status, headers, reason) => {
        if (res.headersSent) return;
        for (const [name, value] of Object.entries(headers)) if (value !== undefined) res.setHeader(name, value);
        res.statusCode = status;
        // HTTP/2 has no reason phrase (node warns when one is given).
        pass(() => this.writeHead.call(res, status, res instanceof Http2ServerResponse ? undefined : reason));
      },
      write: (chunk, encoding, cb) => {
        if (res.writableEnded) {
          swallow(typeof encoding === 'function' ? encoding : cb);
          return true;
        }
        return pass(() => this.write.call(res, chunk, encoding, cb));
      },
      end: (cb) => {
        if (res.writableEnded) return swallow(cb);
        pass(() => this.end.call(res, cb));
      },
    };
  }

  /**
   * Asks the hooks whether the head, first seen now (with `status`), must
   * wait (see CaptureHooks.hold): if so, true is returned, and the caller
   * holds its call back in `held`, where every later one goes too. (Its
   * arguments are not passed here: an arguments object that escapes on every
   * call is made on every call, and this runs on every miss.)
   */
  startHold(status: number): boolean {
    // Asked once: the held calls, run again, go on.
    if (this.holdAsked) return false;
    this.holdAsked = true;
    const res = this.res;
    let wait: Promise<void> | undefined;
    try {
      wait = this.hooks.hold?.(res, status);
    } catch {
      // a cache bookkeeping failure must never break the response: no hold
    }
    if (wait === undefined) return false;
    this.held = [];
    // An error handler that runs meanwhile must leave this answer alone, as while a store is under
    // way: it sees the head as sent (Express's final handler would write a second answer into the
    // held one), and a destroy() of the socket waits until the answer has gone out.
    const restoreHeadersSent = shadowOwn(res, 'headersSent', { configurable: true, get: () => true });
    this.holdSocket();
    // A destroy() of the response itself (the handler giving up after a partial 5xx, Koa's onerror for a
    // streamed body that failed) runs after the held calls, as it would have after them without the hold:
    // the stale entry that stands in goes out whole first, as it does when nothing is asked.
    let destroyed: [Error | undefined] | undefined;
    const restoreDestroy = shadowOwn(
      res,
      'destroy',
      assigned(function heldDestroy(this: ServerResponse, err?: Error) {
        destroyed ??= [err];
        return this;
      }),
    );
    const release = () => {
      restoreHeadersSent();
      restoreDestroy();
      this.releaseHeld();
      if (destroyed !== undefined) res.destroy(destroyed[0]);
    };
    wait.then(release, release);
    return true;
  }

  /** The hold settled: the held calls run, in order, as they would have at once. */
  private releaseHeld(): void {
    const calls = this.held!;
    this.held = undefined;
    this.releaseSocket?.();
    this.releaseSocket = undefined;
    const destroy = this.heldDestroy;
    this.heldDestroy = false;
    const res = this.res;
    try {
      for (const [method, args] of calls) method.apply(res, args as unknown as unknown[]);
    } catch (err) {
      // What node rejects it would have thrown to the handler; too late for that now (see finishEnd).
      res.destroy(err as Error);
    }
    if (!destroy) return;
    // A store now under way holds it on (see finishEnd); else destroyed as asked, once an ended answer is out.
    if (this.pending) this.heldDestroy = true;
    else {
      // Read now: on 'finish' node has detached the socket from the response (res.socket is null) before this listener runs.
      const socket = res.socket;
      if (res.writableEnded && !res.writableFinished && !res.destroyed) res.once('finish', () => socket?.destroy());
      else socket?.destroy();
    }
  }

  /**
   * While the end waits for the store, the answer is whole but not sent. An
   * error handler that runs now sees headersSent and may destroy the socket
   * (Express's final handler does, for a handler that threw after answering):
   * a destroy() without an error waits until the answer has gone out.
   */
  holdSocket(): void {
    const res = this.res;
    const socket = res.socket;
    if (socket === null || socket === undefined) return;
    const original = socket.destroy;
    // Over HTTP/2 res.socket is node's proxy, and this lands on the stream itself, whose destroy() node also
    // calls when the peer closes it (a reset, a cancelled request): held, that stream never closed (no
    // 'close', the real end failing with 'write after end' at the app) until its whole session went.
    const stream = res instanceof Http2ServerResponse ? res.stream : undefined;
    this.releaseSocket = shadowOwn(
      socket,
      'destroy',
      assigned((err?: Error) => {
        if (err !== undefined || stream?.closed === true || !(this.pending || this.held !== undefined)) return original.call(socket, err);
        this.heldDestroy = true;
        return socket;
      }),
    );
  }

  /**
   * A writeHead hook further in took the call that end() or the first
   * write() made to it for node, and keeps it to pass on later (after an
   * await, on setImmediate): no head is built now. The capture stands aside,
   * and the answer goes as node's would without the cache: the body with no
   * head before it (no status line), nothing stored, as no head was judged.
   * The call made here stands for node's first: that one does not reach the
   * hook again (one call more than node alone makes: its second late call
   * threw ERR_HTTP_HEADERS_SENT where nothing catches it, and the process went
   * down where node alone goes on). Any further call node makes reaches the
   * hook, as without the cache: node 24's end() of a chunk asks twice (once to
   * see whether the chunk can go as the last one, once to write it), so the app
   * alone's second late call throws there, and must here too. Its late calls
   * reach node as they would have, which builds a head that never goes out.
   * Later calls pass on untouched.
   */
  standAside(method: (...a: unknown[]) => unknown, args: IArguments): unknown {
    this.headOwed = true;
    this.headersSeen = true;
    this.chunks = undefined;
    this.first = undefined;
    void Promise.resolve(this.hooks.finish(undefined)).catch(() => undefined);
    const res = this.res;
    const hook = res.writeHead;
    const taken = function (this: ServerResponse): ServerResponse {
      if (res.writeHead === (taken as WriteHead)) res.writeHead = hook;
      return this;
    };
    res.writeHead = taken as WriteHead;
    try {
      return method.apply(res, args as unknown as unknown[]);
    } finally {
      if (res.writeHead === (taken as WriteHead)) res.writeHead = hook;
    }
  }

  /** Hands the ended answer to the fill (its body when complete and no trailer fields follow), then ends it for real once that is done. */
  judgeEnd(): void {
    let result: Promise<void> | void;
    try {
      result = this.hooks.finish(this.complete() && !sendsTrailers(this.res) ? this.body() : undefined, this.utf8Head);
    } catch {
      result = undefined;
    }
    if (result === undefined) {
      this.finishEnd();
      return;
    }
    if (!this.pending) {
      this.pending = true;
      this.holdSocket();
    }
    result.then(
      () => this.finishEnd(),
      () => this.finishEnd(),
    );
  }

  /**
   * Over HTTP/2 node asks for trailer fields once the body has left, and sends
   * what the response holds then: fields given up to that moment (in a timer,
   * in a 'wantTrailers' listener, while a slow reader takes a large body) go
   * to the client, and were missing from every hit of the answer stored a
   * turn after end(). The body goes now; the answer is judged when node asks
   * (or when the stream closes before it does, reset by the client), and its
   * trailers, which end the stream, go once the store is done. False where
   * the head ended the stream (a 204, a 304): nothing can follow it; and for
   * a body larger than the client's flow-control window takes at once: node
   * asks only once the client has read the rest, and the store and every
   * request waiting on this fill would wait on how fast this client reads (a
   * paused one held them the 3 s a waiter waits). Those are judged a turn
   * after end(), as before: trailers given later miss their hits (README).
   */
  judgeAtTrailers(res: Http2ServerResponse): boolean {
    const stream = res.stream;
    if (stream.writableEnded || stream.destroyed || this.size > peerWindow(stream)) return false;
    const send = stream.sendTrailers;
    let judged = false;
    const judge = (headers?: OutgoingHttpHeaders): void => {
      if (judged) return;
      judged = true;
      clearTimeout(late);
      restore();
      stream.off('close', onClose);
      let result: Promise<void> | void;
      try {
        result = this.hooks.finish(sendsTrailers(this.res) ? undefined : this.body(), this.utf8Head);
      } catch {
        result = undefined;
      }
      const sendNow = (): void => {
        this.finishEnd();
        if (headers === undefined) return;
        try {
          send.call(stream, headers);
        } catch {
          // closed meanwhile (reset, the session gone): nothing left to end
        }
      };
      if (result === undefined) sendNow();
      else result.then(sendNow, sendNow);
    };
    const onClose = (): void => judge();
    // Copied when node asks, as node's own sendTrailers copies them: what an app adds later (a 'wantTrailers'
    // listener after node's) never goes, and must not go once a store made the real call wait.
    const restore = shadowOwn(stream, 'sendTrailers', assigned((headers: OutgoingHttpHeaders) => judge(Object.assign(Object.create(null) as OutgoingHttpHeaders, headers))));
    stream.once('close', onClose);
    // The window read above can shrink before node packs the body (the client's SETTINGS, another stream's DATA
    // sent first), and node then asks only once this client reads: past TRAILERS_WAIT it is judged with what it
    // holds, and node's ask, whenever it comes, sends the trailers itself.
    const late = setTimeout(onClose, TRAILERS_WAIT_MS).unref();
    // The real end now, its trailers (END_STREAM) held: the hold on destroy() stays till they go.
    this.finishEnd();
    if (!judged) {
      this.pending = true;
      this.holdSocket();
    }
    return true;
  }

  /** The real end, once the store is done (or at once). */
  finishEnd(): void {
    this.pending = false;
    const res = this.res;
    this.releaseSocket?.();
    if (this.heldDestroy) {
      const socket = res.socket;
      // Destroyed as asked, once the answer is out (or at once if it cannot be).
      if (socket !== null && socket !== undefined && !res.writableEnded && !res.destroyed) res.once('finish', () => socket.destroy());
      else socket?.destroy();
    }
    if (res.writableEnded) return;
    try {
      if (this.notModified) {
        this.end.call(res, this.endCallback);
        return;
      }
      const bytes = this.endBytes !== undefined && asciiHead(res);
      this.finishing = true;
      try {
        callGiven(this.end, res, bytes ? this.endBytes : this.endChunk, bytes ? undefined : this.endEncoding, this.endCallback);
      } finally {
        this.finishing = false;
      }
    } catch (err) {
      // What node rejects it would have thrown to the handler; too late for that now,
      // so the response is ended with the error.
      res.destroy(err as Error);
    }
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * How long an HTTP/2 answer judged at its trailers waits for node to ask for
 * them. Where the body fits the client's window node asks as it packs the
 * body, in the first turn after end(); a wait this long means the client
 * holds it, and the store and the requests waiting on it must not wait on that.
 */
const TRAILERS_WAIT_MS = 50;

/**
 * How long a fill's response may stay backpressured (a write returned false,
 * no 'drain' since) before its client counts as not reading (see
 * Capture.pressed). Measured on loopback, 8 MiB piped to a client reading
 * steadily: the longest wait for a 'drain' was 30 ms at full speed, ~200 ms
 * at 10 MB/s (TCP's window opens in bursts), ~550 ms at 3 MB/s, whose body
 * took 2.8 s: its waiters are better off running the handler than waiting.
 */
const STALL_MS = 500;

function noDrainInTime(capture: Capture): void {
  capture.stallTimeUp();
}

/** The 'drain' listeners captures put on their responses (see Capture.pressed). */
const CAPTURE_DRAINS = new WeakSet<(...a: unknown[]) => unknown>();

/** Whether something other than a capture listens for `res`'s 'drain': a pipe adds its listener as it pauses for one. */
function waitedForDrain(res: ServerResponse): boolean {
  for (const listener of res.listeners('drain')) if (!CAPTURE_DRAINS.has(listener as (...a: unknown[]) => unknown)) return true;
  return false;
}

/** What the client lets this HTTP/2 stream send before it reads: its initial stream window, within what is left of the session's. */
function peerWindow(stream: ServerHttp2Stream): number {
  const session = stream.session;
  if (session === undefined) return 0;
  try {
    return Math.min(session.remoteSettings.initialWindowSize ?? 65_535, session.state.remoteWindowSize ?? 0);
  } catch {
    return 0; // the session went: judged as before
  }
}

/**
 * `fn` called on `self` with those of a, b, c that are defined, in that order: the arguments end()
 * was given, and no more (a wrapper further on may count them), without an array for every fill.
 */
function callGiven(fn: (...a: unknown[]) => unknown, self: unknown, a: unknown, b: unknown, c: unknown): void {
  if (a === undefined) {
    if (b === undefined) {
      if (c === undefined) fn.call(self);
      else fn.call(self, c);
    } else if (c === undefined) fn.call(self, b);
    else fn.call(self, b, c);
  } else if (b === undefined) {
    if (c === undefined) fn.call(self, a);
    else fn.call(self, a, c);
  } else if (c === undefined) fn.call(self, a, b);
  else fn.call(self, a, b, c);
}

/** Whether node has built the head and it is all ASCII (so latin1, UTF-8 alike). */
function asciiHead(res: ServerResponse): boolean {
  const head = (res as unknown as { _header?: unknown })._header;
  return typeof head === 'string' && Buffer.byteLength(head) === head.length;
}

/** A capture wrapper whose call is held back (see Capture.startHold). */
type HeldMethod = (this: ServerResponse, ...args: unknown[]) => unknown;

/** What the handler writes after a replacement went out is dropped; its callbacks still run. */
export function swallow(cb: unknown): void {
  if (typeof cb === 'function') process.nextTick(cb as Callback);
}

interface Wrappers {
  readonly storeHeader: StoreHeader;
  readonly writeHead: WriteHead;
  readonly write: ServerResponse['write'];
  readonly end: ServerResponse['end'];
}

/** The wrappers of the capture at `depth` (0: the first one on a response). */
function wrappersAt(depth: number): Wrappers {
  function captureStoreHeader(this: ServerResponse & Captured, firstLine: string, headers: unknown): void {
    const c = this[CAPTURES]![depth]!;
    if (!c.replaced) {
      try {
        c.hooks.sent(this);
      } catch {
        // never break the response
      }
    }
    return c.storeHeader.call(this, firstLine, headers);
  }

  function captureWriteHead(this: ServerResponse & Captured, statusCode: number, reason?: unknown, headers?: unknown): ServerResponse {
    const c = this[CAPTURES]![depth]!;
    if (c.writingReplacement) return c.writeHead.apply(this, arguments as unknown as unknown[]);
    if (c.collectingHead) {
      // Called from end() through that later writeHead: its fields are taken; the head itself goes as end() sends it.
      c.headCollected = true;
      if (typeof reason === 'string') this.statusMessage = reason;
      else headers ??= reason;
      this.statusCode = statusCode;
      applyHeaderArgument(this, headers);
      return this;
    }
    if (c.held !== undefined || (!c.replaced && !c.pending && !c.headersSeen && !this.headersSent && c.startHold(statusCode))) {
      c.held!.push([captureWriteHead as HeldMethod, arguments]);
      return this;
    }
    if (c.replaced || c.pending) return this;
    if (c.headersSeen || this.headersSent) return c.writeHead.apply(this, arguments as unknown as unknown[]);
    if (typeof reason !== 'string') {
      // As node reads it: headers in the reason's place, unless given as well (writeHead(200, undefined, headers)).
      headers ??= reason;
      reason = undefined;
    }
    this.statusCode = statusCode;
    applyHeaderArgument(this, headers);
    // A 304 (NOT_MODIFIED) has had its own head built.
    if (c.seeHeaders(undefined) || c.notModified) return this;
    // A reason that is undefined is no reason to node: it sends the status's own.
    return c.writeHead.call(this, this.statusCode, reason);
  }

  function captureWrite(this: ServerResponse & Captured, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    const c = this[CAPTURES]![depth]!;
    // The replacement's own body, and the real end's own write (HTTP/2's end() writes its chunk through write()).
    if (c.writingReplacement || c.finishing || c.headOwed) return c.write.apply(this, arguments as unknown as unknown[]);
    // Held back (see Capture.startHold): what it writes goes, or not, once the hold settles.
    if (c.held !== undefined || (!c.replaced && !c.pending && !c.headersSeen && !this.headersSent && c.startHold(this.statusCode))) {
      c.held!.push([captureWrite as HeldMethod, arguments]);
      return true;
    }
    if (typeof encoding === 'function') cb = encoding;
    // A writeHead put on the response further in than this capture (see captureEnd): node's own write() calls
    // the response's writeHead before it sends the head, so it runs here, as node would run it, before the head
    // is judged: else the fields it sets went out on the fill but were missing from the stored entry, and every hit.
    if (!c.replaced && !c.pending && !c.headersSeen && !this.headersSent && this.writeHead !== captureWriteHead) {
      this.writeHead(this.statusCode);
      // It kept the call to pass on later (its own writeHead would have judged the head): see standAside.
      if (!c.headersSeen && !this.headersSent) return c.standAside(c.write, arguments) as boolean;
    }
    if (c.replaced || c.pending || (!this.headersSent && c.seeHeaders(undefined))) {
      swallow(cb);
      return true;
    }
    if (!c.wrote) flushedHead(this, c, depth);
    c.wrote = true;
    // Past the limit (or a capture of nothing, maxBytes 0: StaleIfErrorGuard) no copy is kept: none is made.
    // Stryker disable next-line ConditionalExpression: keep() drops the copy past the limit anyway; this only spares making it
    if (c.overflow || pastRoom(chunk, encoding, c.maxBytes - c.size)) c.giveUp(true);
    else c.keep(toBuffer(chunk, encoding));
    const before = headLeft(this);
    const result = c.write.apply(this, arguments as unknown as unknown[]);
    if (!result) c.pressed();
    // This write carried the head, joined to it as UTF-8 whatever the HTTP version when the handler ruled
    // out chunks (a Content-Length, Transfer-Encoding removed); an empty string is joined even to a chunked head.
    if (before === false && headLeft(this) === true && utf8String(chunk, encoding) && (chunk === '' || noChunks(this)) && reachesNode(this, depth, 'write')) c.utf8Head = true;
    return result;
  }

  function captureEnd(this: ServerResponse & Captured, chunk?: unknown, encoding?: unknown, cb?: unknown): ServerResponse {
    const c = this[CAPTURES]![depth]!;
    if (c.headOwed) return c.end.apply(this, arguments as unknown as unknown[]);
    if (c.held !== undefined || (!c.replaced && !c.pending && !c.ended && !c.headersSeen && !this.headersSent && c.startHold(this.statusCode))) {
      // A second end() while the first is held (Koa's respond() after the handler's own res.end(): it reads
      // writableEnded, false until the held end runs): dropped, as while a store is under way; run again,
      // node would throw ERR_STREAM_WRITE_AFTER_END at the response, an 'error' no one listens to.
      if (c.heldEnd) {
        swallow(typeof chunk === 'function' ? chunk : typeof encoding === 'function' ? encoding : cb);
        return this;
      }
      c.heldEnd = true;
      c.held!.push([captureEnd as HeldMethod, arguments]);
      return this;
    }
    if (c.replaced) {
      swallow(typeof chunk === 'function' ? chunk : typeof encoding === 'function' ? encoding : cb);
      if (!c.ended) {
        c.ended = true;
        void Promise.resolve(c.hooks.finish(undefined)).catch(() => undefined);
      }
      return this;
    }
    if (c.pending) {
      // A second end() while the first waits for the store (res.send() then res.end(), an
      // error handler after a send): node would see it first and end the response short.
      swallow(typeof chunk === 'function' ? chunk : typeof encoding === 'function' ? encoding : cb);
      return this;
    }
    if (c.ended) return c.end.apply(this, arguments as unknown as unknown[]);
    if (typeof chunk === 'function') {
      cb = chunk;
      chunk = undefined;
      encoding = undefined;
    } else if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    c.ended = true;
    // A string too big to keep is not copied (100 MB past maxBodyBytes doubled the memory it takes): its length will do.
    // (Three bytes a character at most: most strings fit without asking.)
    // Bytes too many to keep are not copied either: node is handed the handler's own (nothing waits for a store).
    const length = chunk instanceof Uint8Array ? chunk.byteLength : typeof chunk === 'string' && (c.overflow || chunk.length * 3 > c.maxBytes - c.size) ? exactByteLength(chunk, encoding) : undefined;
    const copy = length === undefined || (!c.overflow && c.size + length <= c.maxBytes);
    const last = copy ? toBuffer(chunk, encoding) : undefined;
    if (last === null) {
      // Not bytes: node throws to the handler, as it would without the cache; nothing is stored.
      c.hooks.abort();
      return c.end.apply(this, arguments as unknown as unknown[]);
    }
    if (copy) c.keep(last);
    else c.giveUp(true);
    if (!this.headersSent && this.writeHead !== captureWriteHead && !c.wrote) {
      // A writeHead put on the response further in than this capture (on-headers mounted after the cache:
      // response-time): node's own end() calls the response's writeHead, so it runs here, before the head is
      // judged and stored (and before what the head's status and fields settle below: a hook's 204 has no body
      // to join the head to); the head then goes below this capture's, as it would have.
      c.collectingHead = true;
      try {
        this.writeHead(this.statusCode);
      } finally {
        c.collectingHead = false;
      }
      // It kept the call to pass on later (after an await, on setImmediate): see standAside.
      if (!c.headCollected && !this.headersSent) return c.standAside(c.end, arguments) as ServerResponse;
    }
    // A string that reaches node as it came is handed on so (node joins the head to it, in UTF-8, as
    // without the cache); one that meets another wrapper first goes on as the bytes made from it, as it
    // always has here: the head then goes as latin1, as hits send it (see Capture.utf8Head).
    const direct = typeof chunk === 'string' && reachesNode(this, depth, 'end');
    const encoded = typeof chunk === 'string' && !direct && last !== undefined;
    // Bytes go to node as the copy kept: the real end may wait for the store (Redis, late tags), and a handler
    // that reuses its buffer once end() returned (a pool) would have the waiting end send what it wrote since;
    // the app alone hands node those bytes at once.
    c.endChunk = (encoded || chunk instanceof Uint8Array) && last !== undefined ? last : chunk;
    c.endEncoding = encoded ? undefined : encoding;
    c.endCallback = cb;
    c.endBytes = direct && last !== undefined && chunk !== '' && utf8String(chunk, encoding) ? last : undefined;
    // The whole body as a string: with the head built here (a Content-Length added, unless the handler
    // chose chunks) or by the handler with a Content-Length, the app alone joins them, for every request with a body.
    if (direct && !c.wrote && chunk !== '' && utf8String(chunk, encoding) && hasBody(this.statusCode) && (this.headersSent ? headLeft(this) !== true && this.hasHeader('content-length') && noChunks(this) : !endSendsChunks(this))) c.utf8Head = true;
    else if (!c.wrote) flushedHead(this, c, depth);
    if (!this.headersSent) {
      let whole = !c.wrote ? c.body() : undefined;
      // The whole body is known before the head leaves: a body that cannot be stored is said so now.
      let problem: BodyProblem | undefined;
      if (c.overflow) problem = 'too-large';
      else if (whole !== undefined) {
        const declared = declaredLength(this);
        if ((declared !== undefined && declared !== whole.length && hasBody(this.statusCode)) || this.destroyed) problem = 'truncated';
      }
      if (problem !== undefined) whole = undefined;
      if (c.seeHeaders(whole, problem, !c.wrote)) {
        swallow(cb);
        void Promise.resolve(c.hooks.finish(undefined)).catch(() => undefined);
        return this;
      }
      // Put the head together now (node sends it with the body later): from here on
      // headersSent is true, so an error handler that runs while the store is under way
      // leaves this answer alone instead of writing a second one over it.
      if (c.notModified) c.notModifiedHead();
      else if (!c.wrote && c.declared === undefined && !endSendsChunks(this) && !this.hasHeader('transfer-encoding') && hasBody(this.statusCode) && sendsBody(this)) {
        // What node's end() declares for a body given whole, also past what is stored (too large).
        const declared = length ?? (last === undefined ? 0 : last.length);
        this.setHeader('content-length', declared);
        c.declared = declared;
      }
      try {
        c.writeHead.call(this, this.statusCode);
      } catch (err) {
        // node refused the head: over HTTP/2 a connection-specific field (Keep-Alive, Transfer-Encoding,
        // Upgrade), which node checks only here. Nothing went out: nothing is stored, and the handler gets
        // node's error, as without the cache (Koa answers 500), where the answer used to be stored and served.
        c.hooks.abort();
        throw err;
      }
    }
    // Over HTTP/2 trailer fields given after end() go out too, as long as node has not asked for them (at the
    // stream's 'wantTrailers', once the body has left): an answer that could be stored is judged then (see
    // judgeAtTrailers), or, where its head ended the stream, a turn later; its end held till then.
    if (this instanceof Http2ServerResponse && c.complete()) {
      c.pending = true;
      c.holdSocket();
      c.hooks.ending?.();
      if (!c.judgeAtTrailers(this)) setImmediate(() => c.judgeEnd());
    } else c.judgeEnd();
    return this;
  }

  return {
    storeHeader: captureStoreHeader,
    writeHead: captureWriteHead as WriteHead,
    write: captureWrite as ServerResponse['write'],
    end: captureEnd as ServerResponse['end'],
  };
}

/** Built once: responses are captured at most twice or three times (app-wide, router, route). */
const WRAPPERS: Wrappers[] = [0, 1, 2, 3].map(wrappersAt);

/**
 * The head left before any body (res.flushHeaders(): node sends it joined to
 * an empty string, as UTF-8), with no wrapper of another kind below.
 */
function flushedHead(res: ServerResponse & Captured, c: Capture, depth: number): void {
  if (headLeft(res) === true && reachesNode(res, depth, 'write')) c.utf8Head = true;
}

/**
 * Whether what the capture at `depth` passes on reaches node's own write or
 * end unchanged: through the captures below it (each passes a string on as
 * it came), and no other wrapper (compression(), a relayed retry).
 */
function reachesNode(res: ServerResponse & Captured, depth: number, method: 'write' | 'end'): boolean {
  const captures = res[CAPTURES]!;
  // Past WRAPPERS' depths each capture has wrappers of its own: none known here, so none passes.
  for (let d = depth; d > 0; d--) if (captures[d]![method] !== WRAPPERS[d - 1]?.[method]) return false;
  const own: unknown = captures[0]![method];
  return method === 'write' ? own === NODE_WRITE : own === NODE_END || own === H2_END;
}

/**
 * Wraps `res` so its body is captured for `hooks`, up to `maxBytes`. A
 * response that closes before end() is the caller's to notice (it listens
 * for 'close' anyway): no listener of its own here.
 */
export function captureResponse(res: ServerResponse, maxBytes: number, hooks: CaptureHooks): void {
  readyResponse(res);
  const target = res as ServerResponse & Captured;
  const capture = new Capture(
    res,
    maxBytes,
    hooks,
    res.writeHead as unknown as (...a: unknown[]) => ServerResponse,
    res.write as unknown as (...a: unknown[]) => boolean,
    res.end as unknown as (...a: unknown[]) => ServerResponse,
    target._storeHeader,
  );
  const captures = target[CAPTURES];
  const depth = captures === undefined ? 0 : captures.length;
  // Most responses are captured once: an array of one, not an empty one grown by push() to the size it takes first.
  if (captures === undefined) target[CAPTURES] = [capture];
  else captures.push(capture);
  const wrappers = WRAPPERS[depth] ?? wrappersAt(depth);
  if (res instanceof Http2ServerResponse) {
    beforeHead(res, () => {
      if (!capture.replaced) capture.hooks.sent(res);
    });
  } else target._storeHeader = wrappers.storeHeader;
  res.writeHead = wrappers.writeHead;
  res.write = wrappers.write;
  res.end = wrappers.end;
}

/**
 * HTTP/2 (node's compatibility API) has no _storeHeader: every head leaves
 * through its stream's respond(), with the response's own header object, after
 * every writeHead hook. `look` runs just before, and may still change headers
 * on `res`. One closure per response: HTTP/2 responses are not the hot path.
 */
function beforeHead(res: Http2ServerResponse, look: () => void): void {
  const stream = res.stream;
  const respond = stream.respond;
  stream.respond = function respondAfterLook(this: typeof stream, ...args: Parameters<typeof respond>) {
    try {
      look();
    } catch {
      // never break the response
    }
    return respond.apply(this, args);
  };
}

/**
 * For answers the cache does not capture (pass-through, HEAD, no-store,
 * bypassed requests): the Cache-Groups header is for the cache only and never
 * reaches the client. Removed at the last moment, after every writeHead hook;
 * then too, a Cache-Status the handler set over ours is followed by ours
 * (keepSaidAfterUpstream). Called once ours is said (see keepRawHeaderLists).
 */
export function stripCacheGroups(res: ServerResponse): void {
  if (res instanceof Http2ServerResponse) {
    beforeHead(res, () => {
      res.removeHeader('cache-groups');
      keepSaidAfterUpstream(res as unknown as ServerResponse);
    });
    return;
  }
  readyResponse(res);
  // Ours is set already: a raw header list the app gives writeHead must still go as node sends it for the app alone.
  keepRawHeaderLists(res);
  const target = res as unknown as { _storeHeader: StoreHeader };
  const original = target._storeHeader;
  target._storeHeader = function _storeHeader(this: ServerResponse, firstLine: string, headers: unknown) {
    if (this.hasHeader('cache-groups')) this.removeHeader('cache-groups');
    // Headers set before the app ran (ours) make node pass its own header object here, which this updates.
    keepSaidAfterUpstream(this);
    return original.call(this, firstLine, withoutCacheGroups(headers));
  };
}

const isCacheGroups = (name: unknown) => String(name).toLowerCase() === 'cache-groups';

/**
 * Headers handed to writeHead() with nothing set before reach _storeHeader as
 * given (a raw array or the caller's object): a copy without Cache-Groups.
 */
function withoutCacheGroups(headers: unknown): unknown {
  if (headers === null || typeof headers !== 'object') return headers;
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) return (headers as Array<[unknown, unknown]>).filter(([n]) => !isCacheGroups(n));
    if (!headers.some((v, i) => i % 2 === 0 && isCacheGroups(v))) return headers;
    const out: unknown[] = [];
    for (let i = 0; i + 1 < headers.length; i += 2) if (!isCacheGroups(headers[i])) out.push(headers[i], headers[i + 1]);
    return out;
  }
  const names = Object.keys(headers);
  if (!names.some(isCacheGroups)) return headers;
  const copy: Record<string, unknown> = {};
  for (const name of names) if (!isCacheGroups(name)) copy[name] = (headers as Record<string, unknown>)[name];
  return copy;
}
