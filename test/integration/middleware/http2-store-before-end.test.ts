// An HTTP/2 answer judged when node asks for its trailers (capture.ts
// judgeAtTrailers) is stored before its stream ends, as an HTTP/1.1 answer's
// end waits for its store: a client that has the whole answer and asks
// another instance at once gets it from Redis. Two caches on one real
// redis-server; A's link to it slowed by a TCP proxy, so that A's store is
// still on its way when the body has gone.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import request from 'supertest';
import { koaCache } from '../../../src/koa.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

describe('middleware: an HTTP/2 fill ends once it is stored', function () {
  const ctx = useRedisCaches({ prefix: 'h2end' });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  it("koa3: a client that has the whole answer and asks another instance at once gets a hit from Redis, over a slow link to it", async () => {
    proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 0, true);
    const a = await ctx.open({ redis: proxy.url, l2: { commandTimeout: '3s' } });
    const b = await ctx.open({ l2: { commandTimeout: '3s' } });
    let runs = 0;
    const appOn = (cache: typeof a): Koa => {
      const app = new Koa();
      app.silent = true;
      app.use(koaCache(cache, { ttl: '1m' }) as Koa.Middleware);
      app.use((ctx) => void (ctx.body = `body ${++runs}`));
      return app;
    };
    const server = http2.createServer(appOn(a).callback() as never);
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on('session', (s) => sessions.add(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const authority = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const client = http2.connect(`http://${authority}`);
    try {
      proxy.setDelay(100);
      const first = await new Promise<string>((resolve, reject) => {
        const stream = client.request({ ':path': '/doc' });
        let body = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => (body += chunk));
        stream.on('end', () => resolve(body));
        stream.on('error', reject);
      });
      assert.equal(first, 'body 1');
      const other = await request(appOn(b).callback()).get('/doc').set('Host', authority).timeout(3000);
      assert.deepEqual([other.text, other.headers['cache-status'], runs], ['body 1', 'tiercache; hit; detail=L2', 1], 'the other instance did not find the answer in Redis');
    } finally {
      client.destroy();
      for (const s of sessions) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
