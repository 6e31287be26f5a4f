// The 304 the cache makes on a filling request (the handler answered 200, the
// client's If-None-Match matched) where the handler's calls do not give the
// whole answer at once: its own writeHead() before the body (HTTP/1), or one
// end() past maxBodyBytes (HTTP/2, where a streamed 304 is not built early).
// A mutation run (s25, survivors of 925cda3: capture.ts seeHeaders'
// notModified) showed no test noticed when these went out as 200s or threw.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Koa from 'koa';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup } from '../../support/cache-context.js';

let counter = 0;

describe('middleware: the 304 of a filling request whose handler gives its head or body its own way', () => {
  const cleanup = useCleanup();
  const newCache = () => cleanup.track(createCache({ namespace: `fill-304-own-${process.pid}-${++counter}`, redis: false }));

  it("Express: the handler's own writeHead(200, { ETag }) then write() and end(): a 304, no error; the 200 is stored whole", async () => {
    const errors: unknown[] = [];
    const app = express();
    app.get('/doc', expressCache(newCache(), { ttl: '1m' }), (_req, res) => {
      res.writeHead(200, { ETag: '"d1"', 'Content-Type': 'text/plain' });
      res.write('the ');
      res.end('document');
    });
    app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      errors.push(err);
      if (!res.headersSent) res.status(500).end();
    });
    const conditional = await request(app).get('/doc').set('If-None-Match', '"d1"');
    assert.deepEqual([conditional.status, conditional.text, errors], [304, '', []]);
    const full = await request(app).get('/doc');
    assert.deepEqual([full.status, full.text], [200, 'the document']);
    assert.equal(full.headers.etag, '"d1"');
  });

  it('Koa over HTTP/2: a body past maxBodyBytes given whole, with the handler\'s ETag: a 304, no body', async () => {
    const app = new Koa();
    app.use(koaCache(newCache(), { ttl: '1m', maxBodyBytes: 1024 }));
    app.use((ctx) => {
      ctx.set('ETag', '"big"');
      ctx.type = 'text/plain';
      ctx.body = 'x'.repeat(4096);
    });
    const server = http2.createServer(app.callback() as never);
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on('session', (s) => sessions.add(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = client.request({ ':path': '/doc', 'if-none-match': '"big"' });
        let status = 0;
        let body = '';
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.setEncoding('utf8');
        stream.on('data', (d: string) => (body += d));
        stream.on('end', () => resolve({ status, body }));
        stream.on('error', reject);
      });
      assert.deepEqual(answer, { status: 304, body: '' });
    } finally {
      client.destroy();
      for (const s of sessions) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
