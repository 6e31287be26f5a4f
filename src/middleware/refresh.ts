// Background refresh for stale-while-revalidate: the stale entry is served at
// once and the same request is re-dispatched into the app in-process, marked
// with a per-process secret header so the cache runs the handler and stores
// the fresh answer instead of serving the stale one again. The same re-dispatch,
// its answer relayed to the client, retries a revalidation whose 304 validated
// nothing stored (origin mode, RFC 9111 §4.3.4).
//
// The request is a real node IncomingMessage / ServerResponse pair on a
// socket that discards what is written but reports the connection facts of
// the request that triggered it (addresses, ports, TLS): what the app stores
// is served to everyone, so `req.ip`, `req.protocol` and the trust-proxy
// decision must be the ones the real request got. Injection libraries that use
// look-alike objects (light-my-request) break under Express, which swaps the
// prototypes of req and res for its own.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { IncomingMessage, ServerResponse, type IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { reportedTarget } from '../keys/canonical-query.js';
import { requestHost } from '../keys/request-key.js';
import { applyHeaderArgument, type AnswerWriter } from './capture.js';
import { appsOriginForm } from './request-target.js';

export const REFRESH_HEADER = 'x-tiercache-refresh';
/** Unguessable, so no client can force fills by sending the header. */
export const REFRESH_TOKEN = randomBytes(16).toString('hex');
/** On a refresh of a variant: the Vary manifest's names it was chosen by (see refreshVary). */
const REFRESH_VARY = Symbol('tiercache.refreshVary');
/** Set on a request once its refresh marker was checked: every tiercache layer the request meets sees it. */
const REFRESHING = Symbol('tiercache.refreshing');

/** What a refresh copies from the connection of the request that triggered it. */
export interface ConnectionFacts {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly remoteFamily: string | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  /** TLS: what `req.protocol` / `ctx.protocol` read. */
  readonly encrypted: boolean | undefined;
  readonly authorized: boolean | undefined;
  readonly servername: string | false | undefined;
  readonly alpnProtocol: string | false | undefined;
}

/** A request to re-send into the app. */
export interface RefreshRequest {
  /** The target the app is handed. */
  readonly url: string;
  /** The full target, where the app is handed a mount-relative one (see refreshRequest): set as `req.originalUrl`. */
  readonly originalUrl?: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly httpVersion: string;
  readonly connection: ConnectionFacts;
  /** A variant's refresh: the names of the Vary manifest that chose it (see refreshVary). */
  readonly vary?: readonly string[] | undefined;
}

/** Re-sends a request into an app; resolves when the app has answered. Its answer is dropped, or written through `answer`. */
export type Dispatch = (request: RefreshRequest, answer?: AnswerWriter) => Promise<void>;

export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** The facts of `req`'s connection, read now (the socket may be gone when the refresh runs). */
export function connectionFacts(req: IncomingMessage): ConnectionFacts {
  const s = req.socket as (Socket & { encrypted?: boolean; authorized?: boolean; servername?: string | false; alpnProtocol?: string | false }) | null;
  return {
    remoteAddress: s?.remoteAddress,
    remotePort: s?.remotePort,
    remoteFamily: s?.remoteFamily,
    localAddress: s?.localAddress,
    localPort: s?.localPort,
    encrypted: s?.encrypted,
    authorized: s?.authorized,
    servername: s?.servername,
    alpnProtocol: s?.alpnProtocol,
  };
}

/** A socket that accepts and drops whatever the response writes, and reports the original connection's facts. */
export class DiscardingSocket extends Duplex {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly remoteFamily: string | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  // A TLS socket's: undefined (falsy, as Express's req.protocol and Koa's ctx.protocol read it) when the request was plain.
  readonly encrypted: boolean | undefined;
  readonly authorized: boolean | undefined;
  readonly servername: string | false | undefined;
  readonly alpnProtocol: string | false | undefined;

  constructor(facts: ConnectionFacts) {
    super();
    this.remoteAddress = facts.remoteAddress;
    this.remotePort = facts.remotePort;
    this.remoteFamily = facts.remoteFamily;
    this.localAddress = facts.localAddress;
    this.localPort = facts.localPort;
    this.encrypted = facts.encrypted;
    this.authorized = facts.authorized;
    this.servername = facts.servername;
    this.alpnProtocol = facts.alpnProtocol;
  }
  address(): { address: string | undefined; port: number | undefined; family: string | undefined } {
    return { address: this.localAddress, port: this.localPort, family: this.remoteFamily };
  }
  override _write(_chunk: unknown, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    callback();
  }
  override _read(): void {}
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
}

/** How long a background refresh may take before it is given up on (the app keeps running it; its answer goes nowhere). */
const REFRESH_TIMEOUT_MS = 60_000;

/** A Dispatch into a node-style handler (an Express app, Koa's app.callback()); `timeoutMs` for tests. */
export function dispatchInto(handler: NodeHandler, timeoutMs = REFRESH_TIMEOUT_MS): Dispatch {
  return ({ url, originalUrl, headers, httpVersion, connection, vary }, answer) =>
    new Promise<void>((resolve, reject) => {
      const socket = new DiscardingSocket(connection) as unknown as Socket;
      const req = new IncomingMessage(socket);
      req.method = 'GET';
      req.url = url;
      if (originalUrl !== undefined) (req as IncomingMessage & { originalUrl?: string }).originalUrl = originalUrl;
      req.headers = headers;
      if (vary !== undefined) (req as unknown as Record<symbol, readonly string[]>)[REFRESH_VARY] = vary;
      const [major, minor] = httpVersion === '1.0' ? [1, 0] : [1, 1];
      req.httpVersion = `${major}.${minor}`;
      req.httpVersionMajor = major!;
      req.httpVersionMinor = minor!;
      req.complete = true;
      req.push(null);
      const res = new ServerResponse(req);
      res.assignSocket(socket);
      // A server relays its socket's 'drain' to the response (in the connection
      // listener this socket never meets): without it a handler that waits for
      // 'drain' after a write said the buffers were full would wait forever.
      socket.on('drain', () => res.emit('drain'));
      if (answer !== undefined) relay(res, answer);
      // A relayed answer has its client waiting: no limit of ours (the server's own timeouts, or the
      // client leaving, end it). A background refresh has nobody waiting, so it is given up on: its
      // response is closed as a client that leaves closes it, which ends its fill (the key is free for
      // the next refresh, its late answer stored nowhere). Left open, the fill stayed registered and no
      // stale hit refreshed the key again for the rest of its stale window.
      const giveUp = () => {
        // Reported to listeners and the logger: an access_token the target carries is a credential.
        reject(new Error(`background refresh of ${reportedTarget(url)} took over ${timeoutMs} ms`));
        res.destroy();
      };
      const timer = answer === undefined ? setTimeout(giveUp, timeoutMs) : undefined;
      timer?.unref();
      const done = () => {
        clearTimeout(timer);
        socket.destroy();
        resolve();
      };
      res.once('finish', done);
      res.once('close', done);
      try {
        handler(req, res);
      } catch (err) {
        clearTimeout(timer);
        reject(err as Error);
      }
    });
}

/**
 * Makes `res` write its answer through `out` (onto another response) as the
 * app gives it: head when the first byte or the end comes, bytes as written,
 * 'drain' and 'finish' from the response written to, which closing ends it.
 */
function relay(res: ServerResponse, out: AnswerWriter): void {
  let sent = false;
  let ended = false;
  const head = () => {
    if (sent) return;
    sent = true;
    out.head(res.statusCode, res.getHeaders(), res.statusMessage || undefined);
  };
  Object.defineProperty(res, 'headersSent', { configurable: true, get: () => sent });
  Object.defineProperty(res, 'writableEnded', { configurable: true, get: () => ended });
  res.writeHead = function relayedWriteHead(this: ServerResponse, status: number, reason?: unknown, headers?: unknown): ServerResponse {
    if (sent) return this;
    if (typeof reason !== 'string') {
      headers ??= reason;
      reason = undefined;
    }
    this.statusCode = status;
    if (typeof reason === 'string') this.statusMessage = reason;
    applyHeaderArgument(this, headers);
    head();
    return this;
  } as ServerResponse['writeHead'];
  // As node's own implicit head: through writeHead, so hooks on it (on-headers) run.
  res.write = function relayedWrite(this: ServerResponse, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    if (!sent) this.writeHead(this.statusCode);
    head();
    return out.write(chunk, encoding, cb);
  } as ServerResponse['write'];
  res.end = function relayedEnd(this: ServerResponse, chunk?: unknown, encoding?: unknown, cb?: unknown): ServerResponse {
    if (typeof chunk === 'function') [cb, chunk, encoding] = [chunk, undefined, undefined];
    else if (typeof encoding === 'function') [cb, encoding] = [encoding, undefined];
    if (ended) return this;
    ended = true;
    if (!sent) this.writeHead(this.statusCode);
    head();
    if (chunk !== undefined && chunk !== null) out.write(chunk, encoding);
    out.end(() => {
      res.emit('finish');
      if (typeof cb === 'function') (cb as () => void)();
    });
    return this;
  } as ServerResponse['end'];
  out.res.on('drain', () => res.emit('drain'));
  const gone = () => {
    if (!out.res.writableFinished) res.destroy();
  };
  // The client may have left before the answer was handed over (while the handler made its 304):
  // its 'close' is past, and the app's answer would have nowhere to go, ever.
  if (out.res.destroyed) queueMicrotask(gone);
  else out.res.once('close', gone);
}

/**
 * `dispatch` for an app that was handed `appUrl` where the cache keys the full
 * target (a Koa app mounted in Express gets the mount-relative one): the refresh
 * goes to `appUrl`, with the full target as `req.originalUrl`, which keys it as
 * the request was keyed. The full target would reach the app as a path of its own.
 */
export function remounted(dispatch: Dispatch, appUrl: string): Dispatch {
  // Express hands it an absolute-form target or one with a '#' as sent, its path made relative: re-sent so, the
  // refresh is answered for that target (ctx.url, ctx.href) and stored for the origin form the cache keyed.
  const url = withoutFragment(appsOriginForm(appUrl) ?? appUrl);
  return (request, answer) => dispatch({ ...request, url, originalUrl: request.url }, answer);
}

/** The one 'request' handler of the server `req` came in through, or undefined (none known, or several). */
export function serverHandler(req: IncomingMessage): NodeHandler | undefined {
  const server = (req.socket as (Socket & { server?: unknown }) | null)?.server;
  if (!(server instanceof EventEmitter)) return undefined;
  const handlers = server.listeners('request');
  return handlers.length === 1 ? (handlers[0] as NodeHandler) : undefined;
}

const dispatchers = new WeakMap<object, Dispatch>();

/** One Dispatch per app, made on first use from `handlerOf(app)`. */
export function dispatchFor<A extends object>(app: A, handlerOf: (app: A) => NodeHandler): Dispatch {
  let dispatch = dispatchers.get(app);
  if (dispatch === undefined) {
    dispatch = dispatchInto(handlerOf(app));
    dispatchers.set(app, dispatch);
  }
  return dispatch;
}

/**
 * Whether this request is our own background refresh. The marker header is
 * removed (the app never sees it) and remembered on the request, so that every
 * tiercache layer on its way (app-wide and per route) knows, not only the first.
 */
export function isRefresh(req: IncomingMessage): boolean {
  const holder = req as unknown as Record<symbol, boolean | undefined>;
  const known = holder[REFRESHING];
  if (known !== undefined) return known;
  const marker = req.headers[REFRESH_HEADER];
  if (marker === undefined) return false;
  delete req.headers[REFRESH_HEADER];
  holder[REFRESHING] = marker === REFRESH_TOKEN;
  return holder[REFRESHING];
}

/**
 * The Vary manifest's names a refresh of a variant was sent with: each layer the
 * refresh meets finds by them, and its own request headers, the variant's key to lock.
 */
export function refreshVary(req: IncomingMessage): readonly string[] | undefined {
  return (req as unknown as Record<symbol, readonly string[] | undefined>)[REFRESH_VARY];
}

/**
 * A target as a refresh re-sends it: without a '#' and what follows. The trigger's key left them out, and a
 * target holding one may fill no entry (the apps reflect it as sent): re-sent with it, the refresh stored
 * nothing and every browser kept getting the stale entry.
 */
function withoutFragment(url: string): string {
  const hash = url.indexOf('#');
  return hash === -1 ? url : url.slice(0, hash);
}

/** The refresh of `req`: its target, its headers without conditionals plus the marker, its connection's facts. */
export function refreshRequest(req: IncomingMessage, url: string): RefreshRequest {
  const headers: IncomingHttpHeaders = { ...req.headers, [REFRESH_HEADER]: REFRESH_TOKEN };
  // The refresh is an HTTP/1.1 request: an HTTP/2 trigger names its host in :authority, not Host,
  // and its pseudo-header fields are no fields of HTTP/1.1.
  const host = requestHost(req.headers);
  if (host !== undefined) headers.host = host;
  for (const name of Object.keys(headers)) if (name.charCodeAt(0) === 58 /* : */) delete headers[name];
  delete headers['if-none-match'];
  delete headers['if-modified-since'];
  delete headers['content-length'];
  delete headers['transfer-encoding'];
  return { url: withoutFragment(url), headers, httpVersion: req.httpVersion, connection: connectionFacts(req) };
}
