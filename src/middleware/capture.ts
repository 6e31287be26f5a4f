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
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { HeaderSet } from './http-entry.js';
import { writeStoredHead } from './replay.js';

/** A different answer to send instead of the handler's (stale-if-error). */
export interface Replacement {
  readonly status: number;
  readonly headers: HeaderSet;
  readonly age: number;
  readonly cacheStatus: string | undefined;
  /** undefined for HEAD. */
  readonly body: Buffer | undefined;
}

/** Answer the request with a 304 instead of the body (the body is still captured and stored). */
export const NOT_MODIFIED = 'not-modified';

export interface CaptureHooks {
  /**
   * The handler's headers are about to go out (synchronous; may change headers
   * on `res`). `body` is the whole body when it is known before the headers
   * leave (end() with no earlier write), else undefined. Returning a
   * Replacement sends it instead and discards everything the handler writes;
   * returning NOT_MODIFIED (only honoured with a complete body) answers 304.
   */
  headers(res: ServerResponse, body: Buffer | undefined): Replacement | typeof NOT_MODIFIED | undefined | void;
  /** The head is being serialized, after every writeHead hook: the last look at what is really sent (may set headers). */
  sent(res: ServerResponse): void;
  /** What the handler writes can no longer be stored (past the byte limit, or not bytes). */
  unstorable(): void;
  /**
   * end() was called: `body` is everything written when it is complete and
   * storable, else undefined. The real end waits until the returned promise settles.
   */
  finish(body: Buffer | undefined): Promise<void> | void;
  /** The response closed without end(). */
  abort(): void;
}

type Callback = (err?: Error | null) => void;
type WriteHead = ServerResponse['writeHead'];
type StoreHeader = (firstLine: string, headers: unknown) => void;

const KEEP_ON_304 = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary', 'cache-status', 'age']);

/** The bytes of a chunk; undefined for none; null when it cannot be captured (node will reject it itself). */
function toBuffer(chunk: unknown, encoding: unknown): Buffer | undefined | null {
  if (chunk === undefined || chunk === null) return undefined;
  try {
    if (typeof chunk === 'string') return Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
    if (Buffer.isBuffer(chunk)) return Buffer.from(chunk);
    if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength));
  } catch {
    return null; // an unknown encoding, say
  }
  return null;
}

export function hasBody(status: number): boolean {
  return status >= 200 && status !== 204 && status !== 304;
}

/** Copies headers given to writeHead() onto the response, so getHeaders() shows the full set, repetitions kept. */
export function applyHeaderArgument(res: ServerResponse, headers: unknown): void {
  if (headers === undefined || headers === null) return;
  if (Array.isArray(headers)) {
    const grouped = new Map<string, string[]>();
    const add = (name: unknown, value: unknown) => {
      const key = String(name);
      const values = grouped.get(key);
      if (values === undefined) grouped.set(key, [String(value)]);
      else values.push(String(value));
    };
    if (headers.length > 0 && Array.isArray(headers[0])) for (const [k, v] of headers as Array<[unknown, unknown]>) add(k, v);
    else for (let i = 0; i + 1 < headers.length; i += 2) add(headers[i], headers[i + 1]);
    for (const [name, values] of grouped) res.setHeader(name, values.length === 1 ? values[0]! : values);
    return;
  }
  if (typeof headers === 'object') {
    for (const [name, value] of Object.entries(headers as OutgoingHttpHeaders)) {
      if (value !== undefined) res.setHeader(name, value as string | number | readonly string[]);
    }
  }
}

/** The declared Content-Length, or undefined when none (or not a plain number). */
function declaredLength(res: ServerResponse): number | undefined {
  const value = res.getHeader('content-length');
  if (value === undefined) return undefined;
  const n = typeof value === 'number' ? value : Number(String(value).trim());
  return Number.isSafeInteger(n) && n >= 0 ? n : -1;
}

/** Wraps `res` so its body is captured for `hooks`, up to `maxBytes`. */
export function captureResponse(res: ServerResponse, maxBytes: number, hooks: CaptureHooks): void {
  const originalWriteHead = res.writeHead;
  const originalWrite = res.write;
  const originalEnd = res.end;
  const originalStoreHeader = (res as unknown as { _storeHeader: StoreHeader })._storeHeader;
  let chunks: Buffer[] = [];
  let size = 0;
  let overflow = false;
  let wrote = false;
  let headersSeen = false;
  let ended = false;
  /** end() was called and the real end waits for the store: later calls must not reach node yet. */
  let pending = false;
  let replaced = false;
  let notModified = false;
  /** The replacement's own head is being written through the wrapped writeHead. */
  let writingReplacement = false;
  /** Content-Length that goes with the captured bytes (undefined: none declared). */
  let declared: number | undefined;
  let status = 200;

  const giveUp = () => {
    if (overflow) return;
    overflow = true;
    chunks = [];
    hooks.unstorable();
  };
  const keep = (buf: Buffer | undefined | null) => {
    if (buf === null) return giveUp(); // not storable: something other than bytes or a string
    if (buf === undefined || overflow || buf.length === 0) return;
    if (size + buf.length > maxBytes) return giveUp();
    chunks.push(buf);
    size += buf.length;
  };
  const body = (): Buffer | undefined => (overflow ? undefined : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
  /** Everything the client was meant to get arrived here, and the connection is still there to get it. */
  const complete = (): boolean => {
    if (overflow || res.destroyed) return false;
    if (notModified || !hasBody(status)) return true;
    return declared === undefined || declared === size;
  };

  /** Runs the headers hook once; true when it asked for a replacement, which is then sent. */
  const seeHeaders = (whole: Buffer | undefined): boolean => {
    if (headersSeen) return false;
    headersSeen = true;
    let replacement: Replacement | typeof NOT_MODIFIED | undefined | void;
    try {
      replacement = hooks.headers(res, whole);
    } catch {
      // a cache bookkeeping failure must never break the response
    }
    status = res.statusCode;
    declared = declaredLength(res);
    if (replacement === NOT_MODIFIED) {
      notModified = whole !== undefined;
      return false;
    }
    if (replacement === undefined || res.headersSent) return false;
    replaced = true;
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    writingReplacement = true;
    try {
      writeStoredHead(res, replacement.status, replacement.headers, replacement.age, replacement.cacheStatus);
    } finally {
      writingReplacement = false;
    }
    (originalEnd as (...a: unknown[]) => ServerResponse).call(res, ...(replacement.body === undefined ? [] : [replacement.body]));
    return true;
  };
  /** What the handler writes after a replacement went out is dropped; its callbacks still run. */
  const swallow = (cb: unknown) => {
    if (typeof cb === 'function') process.nextTick(cb as Callback);
  };

  (res as unknown as { _storeHeader: StoreHeader })._storeHeader = function _storeHeader(this: ServerResponse, firstLine: string, headers: unknown) {
    if (!replaced) {
      try {
        hooks.sent(this);
      } catch {
        // never break the response
      }
    }
    return originalStoreHeader.call(this, firstLine, headers);
  };

  res.writeHead = function writeHead(this: ServerResponse, statusCode: number, reason?: unknown, headers?: unknown) {
    if (writingReplacement) return (originalWriteHead as (...a: unknown[]) => ServerResponse).apply(this, arguments as unknown as unknown[]);
    if (replaced || pending) return this;
    if (headersSeen || res.headersSent) return (originalWriteHead as (...a: unknown[]) => ServerResponse).apply(this, arguments as unknown as unknown[]);
    if (typeof reason !== 'string') {
      headers = reason;
      reason = undefined;
    }
    res.statusCode = statusCode;
    applyHeaderArgument(res, headers);
    if (seeHeaders(undefined)) return this;
    const call = originalWriteHead as (...a: unknown[]) => ServerResponse;
    return reason === undefined ? call.call(this, res.statusCode) : call.call(this, res.statusCode, reason);
  } as WriteHead;

  res.write = function write(this: ServerResponse, chunk: unknown, encoding?: unknown, cb?: unknown) {
    if (typeof encoding === 'function') cb = encoding;
    if (replaced || pending || (!res.headersSent && seeHeaders(undefined))) {
      swallow(cb);
      return true;
    }
    wrote = true;
    keep(toBuffer(chunk, encoding));
    return (originalWrite as (...a: unknown[]) => boolean).apply(this, arguments as unknown as unknown[]);
  } as ServerResponse['write'];

  res.end = function end(this: ServerResponse, chunk?: unknown, encoding?: unknown, cb?: unknown) {
    if (replaced) {
      swallow(typeof chunk === 'function' ? chunk : typeof encoding === 'function' ? encoding : cb);
      if (!ended) {
        ended = true;
        void Promise.resolve(hooks.finish(undefined)).catch(() => undefined);
      }
      return this;
    }
    if (pending) {
      // A second end() while the first waits for the store (res.send() then res.end(), an
      // error handler after a send): node would see it first and end the response short.
      swallow(typeof chunk === 'function' ? chunk : typeof encoding === 'function' ? encoding : cb);
      return this;
    }
    if (ended) return (originalEnd as (...a: unknown[]) => ServerResponse).apply(this, arguments as unknown as unknown[]);
    if (typeof chunk === 'function') {
      cb = chunk;
      chunk = undefined;
      encoding = undefined;
    } else if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    ended = true;
    const last = toBuffer(chunk, encoding);
    if (last === null) {
      // Not bytes: node throws to the handler, as it would without the cache; nothing is stored.
      hooks.abort();
      return (originalEnd as (...a: unknown[]) => ServerResponse).apply(this, arguments as unknown as unknown[]);
    }
    keep(last);
    const whole = !wrote && !res.headersSent ? body() ?? undefined : undefined;
    if (!res.headersSent) {
      if (seeHeaders(whole)) {
        swallow(cb);
        void Promise.resolve(hooks.finish(undefined)).catch(() => undefined);
        return res;
      }
      // Put the head together now (node sends it with the body later): from here on
      // headersSent is true, so an error handler that runs while the store is under way
      // leaves this answer alone instead of writing a second one over it.
      if (notModified) {
        for (const name of res.getHeaderNames()) if (!KEEP_ON_304.has(name)) res.removeHeader(name);
        res.statusCode = 304;
      } else if (whole !== undefined && declared === undefined && res.getHeader('transfer-encoding') === undefined && hasBody(res.statusCode)) {
        res.setHeader('content-length', whole.length);
        declared = whole.length;
      }
      try {
        (originalWriteHead as (...a: unknown[]) => ServerResponse).call(res, res.statusCode);
      } catch {
        // node rejected the head (an invalid header value): end() below reports it
      }
    }
    const finishEnd = () => {
      pending = false;
      if (res.writableEnded) return;
      try {
        if (notModified) {
          (originalEnd as (cb?: Callback) => ServerResponse).call(res, cb as Callback | undefined);
          return;
        }
        const args: unknown[] = [];
        if (chunk !== undefined) args.push(chunk);
        if (encoding !== undefined) args.push(encoding);
        if (cb !== undefined) args.push(cb);
        (originalEnd as (...a: unknown[]) => ServerResponse).apply(res, args);
      } catch (err) {
        // What node rejects it would have thrown to the handler; too late for that now,
        // so the response is ended with the error.
        res.destroy(err as Error);
      }
    };
    let result: Promise<void> | void;
    try {
      result = hooks.finish(complete() ? body() : undefined);
    } catch {
      result = undefined;
    }
    if (result === undefined) finishEnd();
    else {
      pending = true;
      result.then(finishEnd, finishEnd);
    }
    return res;
  } as ServerResponse['end'];

  res.once('close', () => {
    if (!ended) hooks.abort();
  });
}

/**
 * For answers the cache does not capture (pass-through, HEAD, no-store,
 * bypassed requests): the Cache-Groups header is for the cache only and never
 * reaches the client. Removed at the last moment, after every writeHead hook.
 */
export function stripCacheGroups(res: ServerResponse): void {
  const target = res as unknown as { _storeHeader: StoreHeader };
  const original = target._storeHeader;
  target._storeHeader = function _storeHeader(this: ServerResponse, firstLine: string, headers: unknown) {
    if (this.hasHeader('cache-groups')) this.removeHeader('cache-groups');
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
