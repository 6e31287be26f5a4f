// A caching reverse proxy: tiercache in origin mode (RFC 9111 shared cache)
// in front of any HTTP origin. Requests are forwarded with node:http —
// method, target, headers and body — and answers streamed back; hop-by-hop
// fields (RFC 9110 §7.6.1) are dropped both ways and Via is added. Origin
// trouble becomes 502 (unreachable, broken answer) or 504 (too slow).
import { request, STATUS_CODES, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { globalAgent } from 'node:https';
import { Socket } from 'node:net';
import { parse } from 'node:url';
import express from 'express';
import type { TierCache } from '../../src/index.js';
import { expressCache, type ExpressCacheOptions } from '../../src/express.js';
import { front } from '../../src/node.js';

export interface ProxyOptions {
  /** The origin, e.g. http://127.0.0.1:9000 (a path prefix is kept in front of every request path). */
  readonly origin: string;
  /** How long the origin may take to start answering before the client gets 504. @default 30 s */
  readonly timeoutMs?: number;
  /** This proxy's name in Via. @default 'tiercache' */
  readonly name?: string;
  /**
   * This proxy's device name for Surrogate-Control (W3C Edge Architecture): announced in
   * Surrogate-Capability, and directives addressed to it are read; false: neither. @default 'tiercache'
   */
  readonly surrogate?: string | false;
  /** More middleware options (`cdnCacheControl`, `requestDirectives`, `staleIfError`, ...); `freshness` is always 'origin'. */
  readonly cacheOptions?: ExpressCacheOptions;
}

/** Always hop-by-hop (RFC 9110 §7.6.1), plus the fields a Connection header names. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function hopByHop(connection: string | string[] | undefined): Set<string> {
  const names = new Set(HOP_BY_HOP);
  const values = connection === undefined ? [] : Array.isArray(connection) ? connection : [connection];
  for (const value of values) for (const name of value.split(',')) if (name.trim() !== '') names.add(name.trim().toLowerCase());
  return names;
}

/** What the request's own framing and routing need: never taken out of the request, even when Connection names it. */
const FRAMING = new Set(['connection', 'host', 'content-length', 'transfer-encoding']);

/** Requests whose X-Forwarded-For asForwarded has made what the origin gets: the forwarder sends it unchanged. */
const forwardedFor = new WeakSet<IncomingMessage>();

/**
 * Makes the request the cache reads the one the origin gets: the hop-by-hop
 * fields out, X-Forwarded-Host in (from Host, when the client sent none), and
 * the peer's address after any X-Forwarded-For. A `Vary` answer is filed under
 * the values of the request it answered; a field kept for the cache but not
 * forwarded (`Connection: accept-language`), or one the forwarder adds, would
 * file it under a value the origin never saw, for every client that sends
 * that value in earnest (or, for X-Forwarded-Host and X-Forwarded-For, none:
 * every client got the first one's answer).
 *
 * The cache's own stale-while-revalidate refresh comes through here too, with
 * the headers of the request it refreshes (the address appended already), on
 * an in-process socket of its own: only a request off a connection gets the
 * address appended, or the refresh would send it twice, and be keyed so.
 */
function asForwarded(req: IncomingMessage): void {
  // Once per request: proxyHandler's call before the front door, then proxyApp's.
  if (forwardedFor.has(req)) return;
  for (const name of hopByHop(req.headers.connection)) if (!FRAMING.has(name)) delete req.headers[name];
  if (req.headers['x-forwarded-host'] === undefined && req.headers.host !== undefined) req.headers['x-forwarded-host'] = req.headers.host;
  if (req.socket instanceof Socket) req.headers['x-forwarded-for'] = withVia(req.headers['x-forwarded-for'], req.socket.remoteAddress ?? '');
  forwardedFor.add(req);
}

/** Raw header pairs without the hop-by-hop ones, repetitions and order kept. */
function endToEnd(raw: readonly string[], connection: string | string[] | undefined): Array<[string, string]> {
  const drop = hopByHop(connection);
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    if (name !== undefined && value !== undefined && !drop.has(name.toLowerCase())) out.push([name, value]);
  }
  return out;
}

function withVia(via: string | string[] | undefined, hop: string): string {
  const earlier = via === undefined ? [] : Array.isArray(via) ? via : [via];
  return [...earlier, hop].join(', ');
}

/**
 * The request's path and query, whatever the form of its target (origin or
 * absolute form). An absolute-form target is read the way Express reads it (and
 * the cache keys it), with url.parse: `http://host/a\\b` is `/a/b` to both.
 */
function pathAndQuery(url: string | undefined): string {
  if (url === undefined || url === '') return '/';
  if (url.startsWith('/')) return url;
  try {
    const parsed = parse(url);
    return (parsed.pathname ?? '/') + (parsed.search ?? '');
  } catch {
    return '/';
  }
}

/** A '.' or '..' segment (also percent-encoded, or after a '\\', which some servers take for '/'). */
const DOT_SEGMENT = /[/\\](?:\.|%2e){1,2}(?:[/\\?#]|$)/i;

/** Whether a path climbs, or may climb, out of the prefix it is put under: origins resolve dot segments. */
function leavesPrefix(path: string): boolean {
  const query = path.indexOf('?');
  return DOT_SEGMENT.test(query === -1 ? path : path.slice(0, query));
}

/**
 * Whether a request's body is in no transfer coding but chunked (or has none).
 * Transfer codings are hop-by-hop: this proxy is the recipient that must
 * undo them, and node undoes chunked alone (a request whose last coding is
 * not chunked it refuses itself). The body of `gzip, chunked` reached the
 * origin still gzipped, under `chunked` alone: nothing said so.
 */
function chunkedOnly(codings: string | undefined): boolean {
  if (codings === undefined) return true;
  for (const coding of codings.split(',')) {
    const name = coding.trim().toLowerCase();
    // Empty list elements are no codings (RFC 9110 §5.6.1).
    if (name !== '' && name !== 'chunked') return false;
  }
  return true;
}

/** Answers an error the proxy itself produced (never over an answer already under way). */
function fail(res: ServerResponse, status: 501 | 502 | 504, why: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${STATUS_CODES[status]}: ${why}\n`;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/** The (req, res) handler that forwards a request to the origin and streams the answer back. */
export function forwarder(options: ProxyOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const origin = new URL(options.origin);
  if (origin.protocol !== 'http:' && origin.protocol !== 'https:') throw new Error(`ORIGIN_URL must be an http(s) URL, not ${options.origin}`);
  const base = origin.pathname.replace(/\/+$/, '');
  // node's https.request is http.request with the https agent.
  const agent = origin.protocol === 'https:' ? globalAgent : undefined;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const hop = `1.1 ${options.name ?? 'tiercache'}`;
  const surrogate = options.surrogate ?? 'tiercache';

  return function forward(req: IncomingMessage, res: ServerResponse): void {
    const path = pathAndQuery(req.url);
    if (base !== '' && leavesPrefix(path)) {
      // Under a prefix, /base/../admin would reach what the proxy does not publish.
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 30, 'cache-control': 'no-store' });
      res.end('Bad Request: dot segment path\n');
      return;
    }
    if (!chunkedOnly(req.headers['transfer-encoding'])) {
      // RFC 9112 §6.1: a transfer coding not understood is 501. The body is left unread: the connection ends with this answer.
      res.setHeader('connection', 'close');
      fail(res, 501, 'a request body in a transfer coding other than chunked');
      return;
    }
    const headers: OutgoingHttpHeaders = {};
    // req.headers, not rawHeaders: the cache may have changed them (conditionals of a revalidation).
    const drop = hopByHop(req.headers.connection);
    for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && !drop.has(name)) headers[name] = value;
    if (!forwardedFor.has(req)) headers['x-forwarded-for'] = withVia(req.headers['x-forwarded-for'], req.socket.remoteAddress ?? '');
    headers['x-forwarded-host'] ??= req.headers.host;
    headers.host = origin.host;
    headers.via = withVia(req.headers.via, hop);
    if (surrogate !== false) headers['surrogate-capability'] = withVia(req.headers['surrogate-capability'], `${surrogate}="Surrogate/1.0"`);
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    // A body of unknown length goes out chunked, whatever the method: node frames one by itself only for
    // methods that usually carry a body, and a GET's bytes sent bare would be the origin's next request.
    if (hasBody && headers['content-length'] === undefined) headers['transfer-encoding'] = 'chunked';
    let settled = false;
    let answered: IncomingMessage | undefined;
    const upstream = request({ protocol: origin.protocol, agent, hostname: origin.hostname, port: origin.port, method: req.method, path: base + path, headers, timeout: timeoutMs }, (answer) => {
      settled = true;
      answered = answer;
      upstream.setTimeout(0);
      // Set by name (repetitions kept together, in order), so that what runs after the
      // head (the write invalidation reading Location) sees the fields too.
      const byName = new Map<string, string[]>();
      for (const [name, value] of endToEnd(answer.rawHeaders, answer.headers.connection)) {
        const lower = name.toLowerCase();
        const values = byName.get(lower);
        if (values === undefined) byName.set(lower, [value]);
        else values.push(value);
      }
      const via = byName.get('via');
      byName.set('via', [withVia(via, hop)]);
      try {
        // One value as a string: what reads the head later (the write invalidation's Location) expects one.
        for (const [name, values] of byName) res.setHeader(name, values.length === 1 ? values.join('') : values);
        res.writeHead(answer.statusCode ?? 502);
      } catch {
        for (const name of res.getHeaderNames()) res.removeHeader(name);
        answer.resume();
        fail(res, 502, 'the origin sent a header this proxy cannot forward');
        return;
      }
      answer.on('error', () => res.destroy());
      answer.on('aborted', () => {
        if (!answer.complete) res.destroy();
      });
      answer.pipe(res);
    });
    upstream.on('timeout', () => {
      upstream.destroy();
      if (!settled) {
        settled = true;
        fail(res, 504, `the origin did not answer within ${timeoutMs} ms`);
      }
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (settled) {
        // Trouble on the origin's connection after its answer was complete (bytes past a
        // Content-Length, say) is no trouble for the answer already sent.
        if (!res.writableFinished && answered?.complete !== true) res.destroy();
        return;
      }
      settled = true;
      fail(res, 502, err.code ?? 'the origin could not be reached');
    });
    // The client left: stop asking the origin.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    if (hasBody) req.pipe(upstream);
    else upstream.end();
  };
}

/**
 * The proxy in the form of a node request handler (`createServer(proxyHandler(cache, options))`):
 * the request made the one the origin gets (asForwarded), then the front door,
 * then the proxy app. The front door keys a Vary variant from the request's
 * fields before the app runs: read the way the client sent them, a client that named
 * another's address in X-Forwarded-For was served that client's answer.
 */
export function proxyHandler(cache: TierCache, options: ProxyOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const door = front(cache, proxyApp(cache, options));
  return function proxy(req: IncomingMessage, res: ServerResponse): void {
    asForwarded(req);
    door(req, res);
  };
}

/** The proxy app: tiercache in origin mode, then the forwarder. Serve it through proxyHandler (front door included). */
export function proxyApp(cache: TierCache, options: ProxyOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', false);
  const surrogateControl = options.surrogate === false ? false : (options.surrogate ?? 'tiercache');
  app.use((req, _res, next) => {
    asForwarded(req);
    next();
  });
  app.use(expressCache(cache, { surrogateControl, ...options.cacheOptions, freshness: 'origin' }));
  const forward = forwarder(options);
  app.use((req, res) => forward(req, res));
  // Whatever goes wrong in here is the proxy's own failure, never a crash.
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    void _next;
    fail(res, 502, err instanceof Error ? err.message : 'proxy error');
  });
  return app;
}
