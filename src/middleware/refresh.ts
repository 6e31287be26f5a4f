// Background refresh for stale-while-revalidate: the stale entry is served at
// once and the same request is re-dispatched into the app in-process, marked
// with a per-process secret header so the cache runs the handler and stores
// the fresh answer instead of serving the stale one again.
//
// The request is a real node IncomingMessage / ServerResponse pair on a
// socket that discards what is written. Injection libraries that use look-alike
// objects (light-my-request) break under Express, which swaps the prototypes
// of req and res for its own.
import { randomBytes } from 'node:crypto';
import { IncomingMessage, ServerResponse, type IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

export const REFRESH_HEADER = 'x-tiercache-refresh';
/** Unguessable, so no client can force fills by sending the header. */
export const REFRESH_TOKEN = randomBytes(16).toString('hex');

/** Re-sends a request into an app; resolves when the app has answered. */
export type Dispatch = (request: { url: string; headers: IncomingHttpHeaders }) => Promise<void>;

export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** A socket that accepts and drops whatever the response writes. */
class DiscardingSocket extends Duplex {
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 0;
  readonly localAddress = '127.0.0.1';
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

/** How long a background refresh may take before it is given up on (the app keeps running it). */
const REFRESH_TIMEOUT_MS = 60_000;

/** A Dispatch into a node-style handler (an Express app, Koa's app.callback()). */
export function dispatchInto(handler: NodeHandler): Dispatch {
  return ({ url, headers }) =>
    new Promise<void>((resolve, reject) => {
      const socket = new DiscardingSocket() as unknown as Socket;
      const req = new IncomingMessage(socket);
      req.method = 'GET';
      req.url = url;
      req.headers = headers;
      req.httpVersion = '1.1';
      req.httpVersionMajor = 1;
      req.httpVersionMinor = 1;
      req.complete = true;
      req.push(null);
      const res = new ServerResponse(req);
      res.assignSocket(socket);
      const timer = setTimeout(() => reject(new Error(`background refresh of ${url} took over ${REFRESH_TIMEOUT_MS} ms`)), REFRESH_TIMEOUT_MS);
      timer.unref();
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

/** Whether this request is our own background refresh (the marker is removed). */
export function takeRefreshMarker(req: IncomingMessage): boolean {
  const marker = req.headers[REFRESH_HEADER];
  if (marker === undefined) return false;
  delete req.headers[REFRESH_HEADER];
  return marker === REFRESH_TOKEN;
}

/** The headers of a refresh: the original request's, without conditionals, plus the marker. */
export function refreshHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const copy: IncomingHttpHeaders = { ...headers, [REFRESH_HEADER]: REFRESH_TOKEN };
  delete copy['if-none-match'];
  delete copy['if-modified-since'];
  delete copy['content-length'];
  delete copy['transfer-encoding'];
  return copy;
}
