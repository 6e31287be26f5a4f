// An HTTP/2 fill whose trailers are held until node asks for them (capture.ts
// judgeAtTrailers) is judged, and stored, only then. Whether node asks soon is
// read from the client's flow-control window when the body is handed over; a
// client can shrink that window (SETTINGS) before node packs the body, which
// then waits for the client to read. Found by a hostile review (h173): the
// store, and every request on another connection waiting on this fill, waited
// on that client (3 s, then they ran the handler themselves).
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { createCache, type TierCache } from '../../../src/index.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup, useRedisCaches } from '../../support/cache-context.js';

let counter = 0;

describe('middleware: an HTTP/2 fill whose client shrinks its window before the body leaves', () => {
  const cleanup = useCleanup();

  it('is stored without waiting for that client: a request on another connection gets its answer, not a run of its own', async () => {
    const cache = cleanup.track(createCache({ namespace: `h2hold-${process.pid}-${++counter}`, redis: false }));
    let hostile: http2.ClientHttp2Session | undefined;
    const app = new Koa();
    app.silent = true;
    app.use(koaCache(cache, { ttl: '1m' }) as Koa.Middleware);
    let runs = 0;
    app.use(async (ctx) => {
      runs++;
      if (runs === 1) {
        // The client's SETTINGS (initial window 0) is written to the socket in this turn's immediates; the body is
        // handed to node just after, before the server reads that frame, and packed once it has.
        hostile!.settings({ initialWindowSize: 0 });
        await new Promise((resolve) => setImmediate(resolve));
      }
      ctx.body = `body ${runs}`;
    });
    const server = http2.createServer(app.callback() as never);
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on('session', (s) => sessions.add(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    hostile = http2.connect(url);
    hostile.on('error', () => undefined);
    const other = http2.connect(url);
    try {
      await new Promise((resolve) => hostile!.once('remoteSettings', resolve));
      const fill = hostile.request({ ':path': '/k' });
      fill.on('error', () => undefined);
      const head = await new Promise<http2.IncomingHttpHeaders>((resolve) => fill.once('response', resolve));
      assert.equal(head['cache-status'], 'tiercache; fwd=miss; stored', 'premise: the fill is one that can be stored');
      const answer = await new Promise<string>((resolve) => {
        const stream = other.request({ ':path': '/k' });
        let body = '';
        let status = '';
        stream.setEncoding('utf8');
        stream.on('response', (h) => (status = String(h['cache-status'])));
        stream.on('data', (chunk: string) => (body += chunk));
        stream.on('close', () => resolve(`${body} (${status})`));
      });
      // Joined to the fill, or a hit of what it stored: its answer either way, never a run of its own.
      assert.match(answer, /^body 1 \(tiercache; (?:hit; detail=L1|fwd=miss; collapsed)\)$/);
      assert.equal(runs, 1);
    } finally {
      hostile.destroy();
      other.close();
      for (const s of sessions) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('middleware: an HTTP/2 fill whose trailers are judged when node asks, with a store that takes a while (L2)', () => {
  const { open } = useRedisCaches({ prefix: 'h2hold-l2', defaults: { l2: { commandTimeout: '3s' } } });

  it("trailer fields an app adds in a 'wantTrailers' listener of its own, after node's, go on no answer, as with the app alone", async () => {
    // node copies the trailers it sends when it asks (its own listener, first): the app's later listener is too late.
    const serve = async (cache?: TierCache): Promise<string[]> => {
      const app = new Koa();
      app.silent = true;
      if (cache !== undefined) app.use(koaCache(cache, { ttl: '1m' }) as Koa.Middleware);
      app.use((ctx) => {
        const res = ctx.res as unknown as http2.Http2ServerResponse;
        res.stream.on('wantTrailers', () => res.addTrailers({ 'x-late': 'v' }));
        ctx.body = 'body';
      });
      const server = http2.createServer(app.callback() as never);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      const answers: string[] = [];
      try {
        for (let i = 0; i < 3; i++) {
          answers.push(
            await new Promise<string>((resolve) => {
              const stream = client.request({ ':path': '/k' });
              let body = '';
              let trailers = 'none';
              stream.setEncoding('utf8');
              stream.on('data', (chunk: string) => (body += chunk));
              stream.on('trailers', (t) => (trailers = String(t['x-late'])));
              stream.on('close', () => resolve(`${body} trailer=${trailers}`));
            }),
          );
        }
      } finally {
        client.close();
        await new Promise((resolve) => server.close(resolve));
      }
      return answers;
    };
    const alone = await serve();
    assert.deepEqual(alone, ['body trailer=none', 'body trailer=none', 'body trailer=none'], 'premise: the app alone');
    assert.deepEqual(await serve(await open()), alone);
  });
});
