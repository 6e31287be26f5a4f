// The RFC 9111 tests' world: a scriptable origin (each test says, per path,
// what it answers: status, headers, body, delay, and sees every request it
// got), the proxy example in front of it (in process: the same app
// `npm run example:proxy` serves), and a small client that keeps repeated
// response fields apart.
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createCache, type CacheOptions, type TierCache } from '../../src/index.js';
import { proxyHandler, type ProxyOptions } from '../../examples/proxy/proxy.js';

export interface Scripted {
  readonly status?: number;
  /** Header pairs, repetitions allowed. A function gets the request (conditionals). */
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  readonly body?: string;
  readonly delayMs?: number;
}

export interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

type Script = Scripted | ((req: Seen, n: number) => Scripted);

export class Origin {
  private readonly scripts = new Map<string, Script>();
  readonly seen = new Map<string, Seen[]>();
  server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = (req.url ?? '/').split('?')[0]!;
        const seen: Seen = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString() };
        const list = this.seen.get(path) ?? [];
        list.push(seen);
        this.seen.set(path, list);
        const script = this.scripts.get(path) ?? {};
        const answer = typeof script === 'function' ? script(seen, list.length) : script;
        const send = () => {
          const flat: string[] = [];
          let hasDate = false;
          for (const [n, v] of answer.headers ?? []) {
            flat.push(n, v);
            if (n.toLowerCase() === 'date') hasDate = true;
          }
          if (!hasDate) flat.push('Date', new Date().toUTCString());
          res.sendDate = false;
          const status = answer.status ?? 200;
          res.writeHead(status, flat);
          res.end(status === 304 || req.method === 'HEAD' ? undefined : (answer.body ?? `${path} #${list.length}`));
        };
        if (answer.delayMs) setTimeout(send, answer.delayMs);
        else send();
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** What `path` answers from now on. */
  script(path: string, script: Script): void {
    this.scripts.set(path, script);
  }

  /** How many requests for `path` reached the origin. */
  count(path: string): number {
    return this.seen.get(path)?.length ?? 0;
  }

  last(path: string): Seen {
    const list = this.seen.get(path);
    if (list === undefined || list.length === 0) throw new Error(`the origin saw no request for ${path}`);
    return list[list.length - 1]!;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

export interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Every field as received: [name (lower case), value]. */
  readonly fields: Array<[string, string]>;
  readonly body: string;
}

/** `localAddress`: the client's own address (another of 127.0.0.0/8 for a second client's). */
export function fetchOnce(base: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: string; localAddress?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const req = request({ hostname: url.hostname, port: url.port, path: url.pathname + url.search, method: init.method ?? 'GET', headers: { connection: 'close', ...init.headers }, agent: false, localAddress: init.localAddress }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const fields: Array<[string, string]> = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) fields.push([res.rawHeaders[i]!.toLowerCase(), res.rawHeaders[i + 1]!]);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, fields, body: Buffer.concat(chunks).toString() });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

export interface ProxyHandle {
  readonly base: string;
  readonly cache: TierCache;
  get(path: string, headers?: Record<string, string>): Promise<Answer>;
  send(method: string, path: string, headers?: Record<string, string>, body?: string): Promise<Answer>;
  stop(): Promise<void>;
}

let namespaces = 0;

/** The proxy example in front of `origin`, L1 only unless `cacheOptions.redis` says otherwise. */
export async function startProxy(origin: Origin, cacheOptions: Partial<CacheOptions> = {}, proxyOptions: Partial<ProxyOptions> = {}): Promise<ProxyHandle> {
  const cache = createCache({ namespace: `rfc9111-${process.pid}-${++namespaces}`, redis: false, ttl: '1h', freshness: 'origin', ...cacheOptions } as CacheOptions);
  cache.on('error', () => undefined);
  await cache.ready();
  const server = createServer(proxyHandler(cache, { origin: origin.url, ...proxyOptions }));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    cache,
    get: (path, headers) => fetchOnce(base, path, { headers }),
    send: (method, path, headers, body) => fetchOnce(base, path, { method, headers, body }),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await cache.close();
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An HTTP-date `seconds` from now. */
export function httpDate(seconds: number): string {
  return new Date(Date.now() + seconds * 1000).toUTCString();
}

let paths = 0;
/** A path no other test uses. */
export function freshPath(name: string): string {
  return `/${name}-${++paths}`;
}

/**
 * A scriptable origin and the proxy example in front of it, started before
 * the enclosing describe's tests and stopped after them. `proxy` forwards to
 * the running proxy (it throws if used outside the tests).
 */
export function useOriginAndProxy(): { readonly origin: Origin; readonly proxy: ProxyHandle } {
  const origin = new Origin();
  let running: ProxyHandle | undefined;
  const current = (): ProxyHandle => {
    if (running === undefined) throw new Error('the proxy runs only inside the tests of its describe()');
    return running;
  };
  before(async () => {
    await origin.start();
    running = await startProxy(origin);
  });
  after(async () => {
    await running?.stop();
    running = undefined;
    await origin.stop();
  });
  const proxy: ProxyHandle = {
    get base() {
      return current().base;
    },
    get cache() {
      return current().cache;
    },
    get: (path, headers) => current().get(path, headers),
    send: (method, path, headers, body) => current().send(method, path, headers, body),
    stop: () => current().stop(),
  };
  return { origin, proxy };
}
