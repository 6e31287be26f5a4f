// A fill whose whole body reaches node as a string in end(): where the head
// node built is ASCII, the cache hands node the bytes it captured from that
// string instead (node then sends the head as latin1 before them, rather than
// joining the two and encoding both as UTF-8). The answer on the wire must
// stay the app alone's, byte for byte, for every body (ASCII, beyond ASCII, a
// lone surrogate, after an earlier write, another encoding) and for a head
// beyond ASCII, which node sends as UTF-8 joined to the string.
import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import express from 'express';
import Koa from 'koa';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup } from '../../support/cache-context.js';
import { wireText } from '../../support/http-wire.js';

type Build = (cache: TierCache | undefined) => RequestListener;

function koaApp(body: () => unknown, name?: string): Build {
  return (cache) => {
    const app = new Koa();
    if (cache !== undefined) app.use(koaCache(cache));
    app.use((ctx) => {
      if (name !== undefined) ctx.set('X-Name', name);
      ctx.body = body();
    });
    return app.callback();
  };
}

function expressApp(send: (res: express.Response) => void): Build {
  return (cache) => {
    const app = express();
    if (cache !== undefined) app.use(expressCache(cache));
    app.get('/v', (_req, res) => send(res));
    return app;
  };
}

const WIDE = 'café ☕ 𝄞 ';

const apps: Record<string, Build> = {
  'Koa ASCII string body': koaApp(() => 'plain text '.repeat(20)),
  'Koa string body beyond ASCII': koaApp(() => WIDE.repeat(20)),
  'Koa JSON body beyond ASCII': koaApp(() => ({ name: WIDE, list: [1, 2, 3] })),
  'Koa string body with a lone surrogate': koaApp(() => 'a\ud800b'),
  'Koa string body, a header beyond ASCII (a UTF-8 head)': koaApp(() => WIDE, 'café'),
  'Koa ASCII string body, a header beyond ASCII (a UTF-8 head)': koaApp(() => 'plain', 'café'),
  'Express res.end(string) with its Content-Length': expressApp((res) => {
    res.setHeader('content-length', Buffer.byteLength(WIDE));
    res.end(WIDE);
  }),
  'Express res.write() then res.end(string), chunked': expressApp((res) => {
    res.type('text');
    res.write('first ');
    res.end(WIDE);
  }),
  'Express res.end(string, "utf8", callback)': expressApp((res) => {
    res.setHeader('content-length', Buffer.byteLength(WIDE));
    res.end(WIDE, 'utf8', () => undefined);
  }),
  'Express res.end(string, "latin1")': expressApp((res) => {
    res.setHeader('content-length', 4);
    res.end('café', 'latin1');
  }),
};

/** The whole answer as latin1 text without the fields that differ between two answers or that only the cache adds. */
function comparable(text: string): string {
  return text
    .split('\r\n')
    .filter((line) => !/^(date|etag|cache-status):/i.test(line))
    .join('\r\n');
}

describe('middleware: a fill ended with a string sends the bytes the app alone sends', () => {
  const cleanup = useCleanup();

  for (const [name, build] of Object.entries(apps)) {
    it(`${name}: the fill's answer is the app alone's, byte for byte`, async () => {
      const alone = await cleanup.serve(build(undefined));
      const expected = await wireText(alone, '/v');
      assert.match(expected, /^HTTP\/1\.1 200 OK\r\n/);
      const cache = cleanup.track(createCache({ redis: false, namespace: 'fill-end-bytes', routes: { '/v': '1m' } }));
      await cache.ready();
      const server = await cleanup.serve(build(cache));
      const fill = await wireText(server, '/v');
      assert.match(fill, /cache-status: [^\r]*fwd=miss/i);
      // Stored: the answer above was a fill's, not one passed through.
      assert.match(await wireText(server, '/v'), /cache-status: [^\r]*hit/i);
      assert.equal(comparable(fill), comparable(expected));
    });
  }
});
