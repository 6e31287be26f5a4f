// Run by front-door-prototype-writehead.test.ts in a process of its own: a
// wrapper is put on ServerResponse.prototype before tiercache loads, as an APM
// agent started with `-r` puts its own (dd-trace wraps writeHead so). WRAP
// says which: 'writeHead' (a wrapper of its own name), 'named' (a writeHead
// wrapper whose source begins as node's: only what it calls tells them apart)
// or '_storeHeader' (a wrapper of the method that writes the head, which
// changes the headers it is handed). For a request with X-Trace it sets
// X-Trace-Id, for one with X-Drop it removes the ETag. Prints the answers, one
// JSON array, for the test to judge.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

type Proto = { writeHead: (...a: unknown[]) => http.ServerResponse; _storeHeader: (firstLine: string, headers: unknown) => void };
const proto = http.ServerResponse.prototype as unknown as Proto;
const requestOf = (res: unknown) => (res as { req: http.IncomingMessage }).req;
const wrap = process.env['WRAP'] ?? 'writeHead';
if (wrap === '_storeHeader') {
  const beneath = proto._storeHeader;
  proto._storeHeader = function wrappedStoreHeader(this: http.ServerResponse, firstLine: string, headers: unknown) {
    const req = requestOf(this);
    const trace = req.headers['x-trace'];
    // node hands it a flat array of names and values or its object of [name, value] by name.
    if (Array.isArray(headers)) {
      if (typeof trace === 'string') headers.push('x-trace-id', trace);
      const at = headers.findIndex((v, i) => i % 2 === 0 && String(v).toLowerCase() === 'etag');
      if (req.headers['x-drop'] !== undefined && at !== -1) headers.splice(at, 2);
    } else if (headers !== null && typeof headers === 'object') {
      const fields = headers as Record<string, unknown>;
      if (typeof trace === 'string') fields['x-trace-id'] = ['x-trace-id', trace];
      if (req.headers['x-drop'] !== undefined) delete fields['etag'];
    }
    return beneath.call(this, firstLine, headers);
  };
} else {
  const beneath = proto.writeHead;
  function around(res: http.ServerResponse, args: unknown[]): http.ServerResponse {
    const req = requestOf(res);
    const trace = req.headers['x-trace'];
    if (typeof trace === 'string') res.setHeader('x-trace-id', trace);
    if (req.headers['x-drop'] !== undefined) res.removeHeader('etag');
    return beneath.apply(res, args);
  }
  proto.writeHead =
    wrap === 'named'
      ? function writeHead(this: http.ServerResponse, ...args: unknown[]) {
          return around(this, args);
        }
      : function wrappedWriteHead(this: http.ServerResponse, ...args: unknown[]) {
          return around(this, args);
        };
}

const { createCache } = await import('../../src/index.js');
const { expressCache } = await import('../../src/express.js');
const { front } = await import('../../src/node.js');
const { koaCache } = await import('../../src/koa.js');
const express = (await import('express')).default;
const Koa = (await import('koa')).default;

export interface Answer {
  how: string;
  asked: Record<string, string>;
  cacheStatus: string | undefined;
  traceId: string | undefined;
  etag: string | undefined;
  multi: string[];
}

async function ask(port: number, path: string, headers: Record<string, string>): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res));
    }).on('error', reject);
  });
}

const answers: Answer[] = [];
/** The app under test: Express behind the front door or alone, or Koa. */
function handlerOf(how: string, cache: ReturnType<typeof createCache>): http.RequestListener {
  if (how === 'koa') {
    const app = new Koa();
    app.use(koaCache(cache));
    app.use((ctx) => {
      if (ctx.path === '/api/x') {
        ctx.append('x-multi', 'a');
        ctx.append('x-multi', 'b');
        ctx.body = { ok: true };
      } else ctx.body = { y: true };
    });
    return app.callback();
  }
  const app = express();
  app.use(expressCache(cache));
  app.get('/api/x', (_req, res) => {
    // Two fields of one name: the flat array sends both, setHeader merging it keeps the last.
    res.append('x-multi', 'a');
    res.append('x-multi', 'b');
    res.json({ ok: true });
  });
  app.get('/api/y', (_req, res) => res.json({ y: true }));
  return how === 'front door' ? front(cache, app) : app;
}

for (const how of ['front door', 'middleware', 'koa']) {
  const cache = createCache({ redis: false, routes: { '/api': '5m' } });
  const server = http.createServer(handlerOf(how, cache));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  for (const path of ['/api/x', '/api/y']) {
    const asks: Array<Record<string, string>> = [{}, {}, { 'x-trace': 'client-1' }, {}, { 'x-drop': '1' }, {}];
    for (const asked of asks) {
      const res = await ask(port, path, asked);
      const multi = res.rawHeaders.filter((_v, i, raw) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === 'x-multi');
      const one = (name: string) => res.headers[name] as string | undefined;
      answers.push({ how: `${how} ${path}`, asked, cacheStatus: one('cache-status'), traceId: one('x-trace-id'), etag: one('etag'), multi });
    }
  }
  server.close();
  await cache.close();
}
process.stdout.write(JSON.stringify(answers));
