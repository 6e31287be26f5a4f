// Whether an HTTP/2 request that did not end with its headers has a body.
// HTTP/2 sends a body in DATA frames with neither Content-Length nor
// Transfer-Encoding, and a GET may end its stream with an empty DATA frame
// instead of with its headers (node's client.request(h, { endStream: false })
// then end(), a proxy relaying a GET): no body at all. Told from the stream's
// own state once its frames are in, else by watching what node hands it;
// never by reading it, so the handler reads the body as if the cache were
// not there.
import type { IncomingMessage } from 'node:http';
import { assigned, shadowOwn } from './own-property.js';

/** The parts of node's Http2Stream (and its readable state) read here. */
interface RequestStream {
  endAfterHeaders?: unknown;
  destroyed?: boolean;
  _readableState?: { ended?: boolean; length?: number; dataEmitted?: boolean };
  push(chunk: unknown, encoding?: BufferEncoding): boolean;
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

/**
 * How long a request whose stream is still open waits for its first DATA
 * frame before it is taken to have a body (and bypasses the cache, as it
 * always did). A client that ends a GET with an empty frame sends it with
 * the headers, without waiting for anything: it arrives at once. One that
 * sends its body only later (a duplex stream) is held this long, no longer.
 */
const HTTP2_BODY_WAIT_MS = 50;

function streamOf(req: IncomingMessage): RequestStream | undefined {
  return req.httpVersionMajor >= 2 ? (req as { stream?: RequestStream }).stream : undefined;
}

/**
 * 'none': no body (the stream ended with its headers, or with no byte in
 * its DATA frames, read by someone already or not); 'some': bytes arrived;
 * undefined: the stream is open and nothing has arrived yet.
 */
function bodyOf(stream: RequestStream): 'none' | 'some' | undefined {
  if (stream.endAfterHeaders !== false) return 'none';
  const state = stream._readableState;
  // node's readable state as it is since node 16; without it, nothing can be told: a body.
  if (state === undefined) return 'some';
  // Bytes buffered, or handed to a reader (a body parser mounted before the cache).
  if ((state.length ?? 0) > 0 || state.dataEmitted === true) return 'some';
  return state.ended === true ? 'none' : undefined;
}

/**
 * Whether an HTTP/2 request has, or may yet have, bytes in DATA frames after
 * its headers: a body (a GET with a search query in it, as Elasticsearch's
 * _search takes). HTTP/1 says so in its headers: false.
 */
export function http2DataFollows(req: IncomingMessage): boolean {
  const stream = streamOf(req);
  return stream !== undefined && bodyOf(stream) !== 'none';
}

/** Whether an HTTP/2 request's body is still unknown: its stream is open and nothing has arrived. */
export function http2BodyUnknown(req: IncomingMessage): boolean {
  const stream = streamOf(req);
  return stream !== undefined && !stream.destroyed && bodyOf(stream) === undefined;
}

/**
 * Settles once the first bytes or the end of an HTTP/2 request's stream
 * arrive (see http2DataFollows), the stream closes, or HTTP2_BODY_WAIT_MS
 * pass. What arrives goes on to the stream as it came: node's push() is
 * watched on this one stream, and given back at once.
 */
export function http2BodyKnown(req: IncomingMessage): Promise<void> {
  const stream = streamOf(req)!;
  const push = stream.push;
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      stream.off('close', done);
      restorePush();
      resolve();
    };
    const timer = setTimeout(done, HTTP2_BODY_WAIT_MS);
    stream.once('close', done);
    const restorePush = shadowOwn(
      stream,
      'push',
      assigned(function watchedPush(this: RequestStream, chunk: unknown, encoding?: BufferEncoding): boolean {
        const result = push.call(this, chunk, encoding);
        // An empty DATA frame that does not end the stream tells nothing yet.
        if (bodyOf(stream) !== undefined) done();
        return result;
      }),
    );
  });
}
