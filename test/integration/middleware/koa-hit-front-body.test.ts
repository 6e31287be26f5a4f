// Koa: a middleware in front of the cache that sets ctx.body after next() (an
// envelope, a serializer) acts on a hit too, where ctx.body is undefined. The
// body it sets never goes out (README), but Koa's setters left their marks on
// the response the hit was then written to (found by helper-95): the status
// setter's reason phrase ('204 OK', '301 OK', '304 OK') and, on a 204 or a
// 304, the Content-Type and Content-Length of that body. A 304 whose
// Content-Type differs from the stored answer's makes a client's cache replace
// the one it holds (RFC 9111 §3.2), and neither may carry that Content-Length
// (RFC 9110 §8.6). Koa and Express strip those three fields from a 204 or 304
// of their own; a hit does too, and sends the reason phrase of its status.
import assert from 'node:assert/strict';
import { get, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { createCache } from '../../../src/index.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup } from '../../support/cache-context.js';
import { Koa2 } from './apps.js';

let counter = 0;

interface Answer {
  readonly status: number;
  readonly reason: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

function fetch(server: Server, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, reason: res.statusMessage!, headers: res.headers, body }));
    }).on('error', reject);
  });
}

describe('middleware: Koa hits and a body set in front of the cache', () => {
  const cleanup = useCleanup();

  for (const [name, Framework] of [
    ['koa3', Koa],
    ['koa2', Koa2],
  ] as const) {
    describe(name, () => {
      async function serve() {
        const cache = cleanup.track(createCache({ namespace: `koa-front-body${process.pid}-${++counter}`, redis: false }));
        const app = new (Framework as typeof Koa)();
        app.silent = true;
        // An envelope around every answer that is no error.
        app.use(async (ctx, next) => {
          await next();
          if (ctx.status < 400) ctx.body = JSON.stringify({ ok: true, data: ctx.body ?? null });
        });
        app.use(koaCache(cache, { ttl: '1m' }) as Koa.Middleware);
        app.use((ctx) => {
          if (ctx.path === '/none') ctx.body = null;
          else if (ctx.path === '/moved') {
            ctx.redirect('/there');
            ctx.status = 301;
          } else {
            ctx.set('ETag', '"e1"');
            ctx.body = { n: 1 };
          }
        });
        return cleanup.serve(app.callback());
      }

      it('a stored 204 goes out as 204 No Content, without the envelope’s Content-Type and Content-Length', async () => {
        const server = await serve();
        const fill = await fetch(server, '/none');
        assert.equal(`${fill.status} ${fill.reason}`, '204 No Content');
        const hit = await fetch(server, '/none');
        assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
        assert.equal(`${hit.status} ${hit.reason}`, '204 No Content');
        assert.equal(hit.headers['content-type'], undefined);
        assert.equal(hit.headers['content-length'], undefined);
      });

      it('a conditional hit goes out as 304 Not Modified, without the envelope’s Content-Type and Content-Length', async () => {
        const server = await serve();
        const fill = await fetch(server, '/doc');
        assert.equal(fill.body, '{"ok":true,"data":{"n":1}}');
        const hit = await fetch(server, '/doc', { 'if-none-match': '"e1"' });
        assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
        assert.equal(`${hit.status} ${hit.reason}`, '304 Not Modified');
        assert.equal(hit.headers['content-type'], undefined);
        assert.equal(hit.headers['content-length'], undefined);
        assert.equal(hit.headers['etag'], '"e1"');
        const whole = await fetch(server, '/doc');
        assert.equal(`${whole.status} ${whole.reason}`, '200 OK');
        assert.equal(whole.headers['content-type'], fill.headers['content-type']);
        assert.equal(whole.body, fill.body);
      });

      it('a stored 301 goes out as 301 Moved Permanently', async () => {
        const server = await serve();
        const fill = await fetch(server, '/moved');
        assert.equal(`${fill.status} ${fill.reason}`, '301 Moved Permanently');
        const hit = await fetch(server, '/moved');
        assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
        assert.equal(`${hit.status} ${hit.reason}`, '301 Moved Permanently');
        assert.equal(hit.headers['location'], '/there');
        assert.equal(hit.body, fill.body);
      });
    });
  }
});
