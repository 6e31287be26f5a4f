// Header values beyond ASCII reach the wire as different bytes depending on how
// the handler sent its body: node joins the head to a first body chunk that is
// a utf8 string and sends both as UTF-8 (é: c3 a9), and sends the head as
// latin1 otherwise (a Buffer body, a chunked stream, a HEAD: é is e9). The
// cache sent every head as latin1: a fill and every hit of `res.json()` or a
// Koa string body differed from the app alone. Each answer here is compared,
// byte for byte (read as latin1 text), with the app alone's to the same request.
import assert from 'node:assert/strict';
import type { RequestListener, Server } from 'node:http';
import express from 'express';
import Koa from 'koa';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { front } from '../../../src/node.js';
import type { TierCache } from '../../../src/index.js';
import http2 from 'node:http2';
import compression from 'compression';
import { decodeEntry, encodeEntry } from '../../../src/store/entry-codec.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { valuesOf, wireRequest, type WireAnswer } from '../../support/http-wire.js';

type Build = (cache: TierCache | undefined) => RequestListener;

const NAME = 'café';

function expressApp(send: (res: express.Response) => void): Build {
  return (cache) => {
    const app = express();
    if (cache !== undefined) app.use(expressCache(cache));
    app.get('/v', (_req, res) => {
      res.set('X-Name', NAME);
      send(res);
    });
    return app;
  };
}

function koaApp(body: () => unknown): Build {
  return (cache) => {
    const app = new Koa();
    if (cache !== undefined) app.use(koaCache(cache));
    app.use((ctx) => {
      ctx.set('X-Name', NAME);
      ctx.body = body();
    });
    return app.callback();
  };
}

const apps: Record<string, { build: Build; utf8: boolean }> = {
  // Express makes the string bytes itself to hash its ETag: latin1.
  'Express res.json()': { build: expressApp((res) => res.json({ ok: true })), utf8: false },
  'Express res.send(Buffer)': { build: expressApp((res) => res.send(Buffer.from('bytes'))), utf8: false },
  'Express res.write(string) streamed (chunked)': {
    build: expressApp((res) => {
      res.type('text');
      res.write('str');
      res.end('eam');
    }),
    utf8: false,
  },
  'Express res.end(string) with a Content-Length': {
    build: expressApp((res) => {
      res.setHeader('content-length', 6);
      res.end('string');
    }),
    utf8: true,
  },
  // node sends chunks then (no Content-Length of its own): the cache adds none either.
  'Express res.end(string) with Content-Length removed': {
    build: expressApp((res) => {
      res.removeHeader('content-length');
      res.end('string');
    }),
    utf8: false,
  },
  'Express res.write(string) with Transfer-Encoding removed (no chunks, any HTTP version)': {
    build: expressApp((res) => {
      res.removeHeader('transfer-encoding');
      res.write('str');
      res.end('eam');
    }),
    utf8: true,
  },
  'Express res.write(string) with a Content-Length and Transfer-Encoding: chunked (chunks win)': {
    build: expressApp((res) => {
      res.setHeader('content-length', 6);
      res.setHeader('transfer-encoding', 'chunked');
      res.write('str');
      res.end('eam');
    }),
    utf8: false,
  },
  'Koa string body': { build: koaApp(() => 'text'), utf8: true },
  'Koa Buffer body': { build: koaApp(() => Buffer.from('bytes')), utf8: false },
  // Koa's body setter removes Content-Length and its respond() sets it again: no chunks.
  'Koa JSON body': { build: koaApp(() => ({ ok: true })), utf8: true },
};

/** What a client reading the head as latin1 sees of the X-Name field. */
const nameOf = (answer: WireAnswer) => valuesOf(answer, 'x-name').join();
const UTF8_BYTES = Buffer.from(NAME, 'utf8').toString('latin1');
const LATIN1_BYTES = NAME;

describe('middleware: header values beyond ASCII go out as the app alone sends them', () => {
  const ctx = useRedisCaches({ prefix: 'hvbytes', flush: true });
  const routes = { routes: { '/v': '1m' as const } };

  for (const [name, { build, utf8 }] of Object.entries(apps)) {
    it(`${name}: the fill, L1 and L2 hits and a HEAD hit send the app alone's bytes (${utf8 ? 'UTF-8' : 'latin1'})`, async () => {
      const alone = await ctx.serve(build(undefined));
      const expected = await wireRequest(alone, '/v');
      const expectedHead = await wireRequest(alone, '/v', {}, { method: 'HEAD' });
      // node's own choice, which the cache must follow (the test means nothing if the app alone does not differ).
      assert.equal(nameOf(expected), utf8 ? UTF8_BYTES : LATIN1_BYTES);
      assert.equal(nameOf(expectedHead), LATIN1_BYTES);

      const one = await ctx.serve(build(await ctx.open(routes)));
      const fill = await wireRequest(one, '/v');
      assert.match(valuesOf(fill, 'cache-status').join(), /fwd=miss/);
      const l1 = await wireRequest(one, '/v');
      assert.match(valuesOf(l1, 'cache-status').join(), /hit; detail=L1/);
      const head = await wireRequest(one, '/v', {}, { method: 'HEAD' });
      assert.match(valuesOf(head, 'cache-status').join(), /hit/);
      const two = await ctx.serve(build(await ctx.open(routes)));
      const l2 = await wireRequest(two, '/v');
      assert.match(valuesOf(l2, 'cache-status').join(), /hit; detail=L2/);
      const l2Head = await wireRequest(await ctx.serve(build(await ctx.open(routes))), '/v', {}, { method: 'HEAD' });
      assert.match(valuesOf(l2Head, 'cache-status').join(), /hit; detail=L2/);

      assert.deepEqual(
        { fill: nameOf(fill), l1: nameOf(l1), l2: nameOf(l2), head: nameOf(head), l2Head: nameOf(l2Head) },
        { fill: nameOf(expected), l1: nameOf(expected), l2: nameOf(expected), head: nameOf(expectedHead), l2Head: nameOf(expectedHead) },
      );
    });
  }

  it("Express: a reason phrase beyond ASCII is replayed as the fill sent it, and a HEAD's as the app alone sends it", async () => {
    const build: Build = (cache) => {
      const app = express();
      if (cache !== undefined) app.use(expressCache(cache));
      app.get('/v', (_req, res) => {
        res.statusMessage = 'Très bien';
        res.setHeader('content-length', 2);
        res.end('ok');
      });
      return app;
    };
    const alone = await ctx.serve(build(undefined));
    const expected = (await wireRequest(alone, '/v')).reason;
    const expectedHead = (await wireRequest(alone, '/v', {}, { method: 'HEAD' })).reason;
    assert.notEqual(expected, expectedHead);
    const one = await ctx.serve(build(await ctx.open(routes)));
    const fill = await wireRequest(one, '/v');
    const hit = await wireRequest(one, '/v');
    const head = await wireRequest(one, '/v', {}, { method: 'HEAD' });
    assert.match(valuesOf(head, 'cache-status').join(), /hit/);
    assert.deepEqual([fill.reason, hit.reason, head.reason], [expected, expected, expectedHead]);
  });

  it('the front door replays a public entry filled with a UTF-8 head as it was sent, and its HEAD as latin1', async () => {
    const cache = await ctx.open(routes);
    const utf8App = apps['Express res.end(string) with a Content-Length']!;
    const alone = await ctx.serve(utf8App.build(undefined));
    const app = utf8App.build(cache);
    let reachedApp = 0;
    const server: Server = await ctx.serve(
      front(cache, (req, res) => {
        reachedApp++;
        app(req, res);
      }),
    );
    await wireRequest(server, '/v');
    const hit = await wireRequest(server, '/v');
    const head = await wireRequest(server, '/v', {}, { method: 'HEAD' });
    assert.equal(reachedApp, 1, 'the front door answered the hits');
    assert.match(valuesOf(hit, 'cache-status').join(), /hit/);
    assert.equal(nameOf(hit), UTF8_BYTES);
    assert.equal(nameOf(hit), nameOf(await wireRequest(alone, '/v')));
    assert.equal(nameOf(head), nameOf(await wireRequest(alone, '/v', {}, { method: 'HEAD' })));
  });

  it('over HTTP/2 (whose header values node sends as latin1) a hit of an HTTP/1.1 fill sends what the app alone sends over HTTP/2', async () => {
    const build = apps['Koa string body']!.build;
    const h2Name = async (listener: RequestListener) => {
      const server = http2.createServer(listener as never);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const client = http2.connect(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
      try {
        return await new Promise<{ name: string; status: string }>((resolve, reject) => {
          const stream = client.request({ ':path': '/v' });
          stream.on('response', (headers) => resolve({ name: Buffer.from(String(headers['x-name']), 'latin1').toString('latin1'), status: String(headers['cache-status']) }));
          stream.on('error', reject);
          stream.resume();
        });
      } finally {
        client.close();
        server.close();
      }
    };
    const alone = await h2Name(build(undefined));
    const cache = await ctx.open(routes);
    const one = await ctx.serve(build(cache));
    assert.equal(nameOf(await wireRequest(one, '/v')), UTF8_BYTES);
    const hit = await h2Name(build(cache));
    assert.match(hit.status, /hit; detail=L1/);
    assert.equal(hit.name, alone.name);
  });

  it('a fill answered with the cache\'s own 304 stores the head the 200 goes with: its hits send UTF-8, as the app alone', async () => {
    const build = koaApp(() => 'text');
    const withEtag: Build = (cache) => {
      const inner = build(cache);
      return (req, res) => {
        res.setHeader('etag', '"v1"');
        inner(req, res);
      };
    };
    const expected = nameOf(await wireRequest(await ctx.serve(withEtag(undefined)), '/v'));
    assert.equal(expected, UTF8_BYTES);
    const conditional = await wireRequest(await ctx.serve(withEtag(await ctx.open(routes))), '/v', { 'if-none-match': '"v1"' });
    assert.equal(conditional.status, 304);
    assert.match(valuesOf(conditional, 'cache-status').join(), /stored/);
    const l2 = await wireRequest(await ctx.serve(withEtag(await ctx.open(routes))), '/v');
    assert.match(valuesOf(l2, 'cache-status').join(), /hit; detail=L2/);
    assert.equal(nameOf(l2), expected);
  });

  it('res.flushHeaders() before the body (node sends that head as UTF-8): hits send it so too', async () => {
    const build = expressApp((res) => {
      res.type('text');
      res.flushHeaders();
      res.end('flushed');
    });
    const expected = nameOf(await wireRequest(await ctx.serve(build(undefined)), '/v'));
    assert.equal(expected, UTF8_BYTES);
    const one = await ctx.serve(build(await ctx.open(routes)));
    await wireRequest(one, '/v');
    const hit = await wireRequest(one, '/v');
    assert.match(valuesOf(hit, 'cache-status').join(), /hit; detail=L1/);
    assert.equal(nameOf(hit), expected);
  });

  it('app-level and per-route caches on one request (two captures): both pass the string on, and hits of either send UTF-8', async () => {
    const build: Build = (cache) => {
      const app = express();
      if (cache !== undefined) app.use(expressCache(cache));
      const handler = (_req: express.Request, res: express.Response) => {
        res.set('X-Name', NAME);
        res.setHeader('content-length', 6);
        res.end('nested');
      };
      if (cache !== undefined) app.get('/v', expressCache(cache, { ttl: '1m' }), handler);
      else app.get('/v', handler);
      return app;
    };
    const expected = nameOf(await wireRequest(await ctx.serve(build(undefined)), '/v'));
    assert.equal(expected, UTF8_BYTES);
    const one = await ctx.serve(build(await ctx.open(routes)));
    const fill = await wireRequest(one, '/v');
    const hit = await wireRequest(one, '/v');
    assert.match(valuesOf(hit, 'cache-status').join(), /hit/);
    assert.deepEqual([nameOf(fill), nameOf(hit)], [expected, expected]);
  });

  it('compression() mounted in front (a wrapper between the cache and node): the fill and its hits send the head alike, latin1, as the app alone (chunked)', async () => {
    const build: Build = (cache) => {
      const app = express();
      app.use(compression());
      if (cache !== undefined) app.use(expressCache(cache));
      app.get('/v', (_req, res) => {
        res.set('X-Name', NAME);
        res.type('text');
        res.end('x'.repeat(3000));
      });
      return app;
    };
    const expected = nameOf(await wireRequest(await ctx.serve(build(undefined)), '/v'));
    assert.equal(expected, LATIN1_BYTES);
    const one = await ctx.serve(build(await ctx.open(routes)));
    const fill = await wireRequest(one, '/v');
    const hit = await wireRequest(one, '/v');
    assert.match(valuesOf(hit, 'cache-status').join(), /hit; detail=L1/);
    assert.deepEqual([nameOf(fill), nameOf(hit)], [expected, expected]);
  });

  it('an entry in Redis marked as a UTF-8 head whose bytes are not UTF-8 is a miss: no 500 on a HEAD or a 304, no crash through the front door', async () => {
    const build = apps['Koa Buffer body']!.build;
    const cache = await ctx.open(routes);
    await wireRequest(await ctx.serve(build(cache)), '/v');
    const key = cache.keyFor({ method: 'GET', url: '/v', headers: {} });
    const stored = decodeEntry((await ctx.admin.getBuffer(key))!);
    const head = JSON.parse(stored.head.toString('utf8')) as { h: Array<[string, string]>; u?: number };
    assert.ok(head.h.some(([n, v]) => n === 'x-name' && v === NAME), 'the handler\'s characters stored as they are (a latin1 head)');
    head.u = 1;
    const damaged = encodeEntry({ ...stored, head: Buffer.from(JSON.stringify(head)) });
    for (const [method, headers] of [['HEAD', {}], ['GET', { 'if-none-match': String(head.h.find(([n]) => n === 'etag')?.[1]) }], ['GET', {}]] as const) {
      // Each request finds the damaged entry (the one before filled over it).
      await ctx.admin.set(key, damaged, 'PX', 60_000);
      const other = await ctx.open(routes);
      const app = build(other);
      const answer = await wireRequest(await ctx.serve(front(other, app)), '/v', headers, { method });
      assert.notEqual(answer.status, 500, `${method} ${JSON.stringify(headers)}`);
      assert.ok(answer.status === 200 || answer.status === 304, `${method}: ${answer.status}`);
      assert.doesNotMatch(valuesOf(answer, 'cache-status').join(), /hit; detail=L2/, 'the damaged entry was served');
    }
  });

  it('a string past maxBodyBytes is passed on whole, with the Content-Length node declares, in every encoding (multibyte UTF-8, latin1, UTF-16, base64, hex)', async () => {
    const bodies: Array<[string, BufferEncoding | undefined]> = [['é€'.repeat(40), undefined], ['é'.repeat(50), 'latin1'], ['ab'.repeat(30), 'utf16le'], [Buffer.from('x'.repeat(60)).toString('base64'), 'base64'], ['0a'.repeat(60), 'hex']];
    for (const [text, encoding] of bodies) {
      const build: Build = (cache) => {
        const app = express();
        if (cache !== undefined) app.use(expressCache(cache, { maxBodyBytes: 16 }));
        app.get('/v', (_req, res) => void res.end(text, encoding as BufferEncoding));
        return app;
      };
      const alone = await wireRequest(await ctx.serve(build(undefined)), '/v');
      const through = await wireRequest(await ctx.serve(build(await ctx.open(routes))), '/v');
      assert.match(valuesOf(through, 'cache-status').join(), /too-large/, String(encoding));
      assert.deepEqual([valuesOf(through, 'content-length'), through.body], [valuesOf(alone, 'content-length'), alone.body], String(encoding));
      assert.equal(Buffer.byteLength(through.body, 'latin1'), Number(valuesOf(alone, 'content-length')[0]), String(encoding));
    }
  });

  it('Express: a string body past maxBodyBytes (passed through, not stored) goes out as from the app alone: its Content-Length and a UTF-8 head', async () => {
    const build: Build = (cache) => {
      const app = express();
      if (cache !== undefined) app.use(expressCache(cache, { maxBodyBytes: 16 }));
      app.get('/v', (_req, res) => {
        res.set('X-Name', NAME);
        res.end('x'.repeat(64));
      });
      return app;
    };
    const alone = await wireRequest(await ctx.serve(build(undefined)), '/v');
    const through = await wireRequest(await ctx.serve(build(await ctx.open(routes))), '/v');
    assert.match(valuesOf(through, 'cache-status').join(), /too-large/);
    assert.deepEqual([nameOf(through), valuesOf(through, 'content-length'), valuesOf(through, 'transfer-encoding')], [nameOf(alone), ['64'], []]);
    assert.equal(nameOf(alone), UTF8_BYTES);
  });

  it('Express: an answer that declares trailer fields is sent as from the app alone (chunks, then its trailer) and never stored: a hit could not send the trailer', async () => {
    for (const maxBodyBytes of [1024, 16]) {
      const build: Build = (cache) => {
        const app = express();
        if (cache !== undefined) app.use(expressCache(cache, { maxBodyBytes }));
        app.get('/v', (_req, res) => {
          res.setHeader('Trailer', 'X-T');
          res.addTrailers({ 'X-T': '1' });
          res.end('x'.repeat(40));
        });
        return app;
      };
      const alone = await wireRequest(await ctx.serve(build(undefined)), '/v');
      const server = await ctx.serve(build(await ctx.open(routes)));
      for (const answer of [await wireRequest(server, '/v'), await wireRequest(server, '/v')]) {
        assert.equal(answer.status, 200);
        assert.equal(answer.body, alone.body, `maxBodyBytes ${maxBodyBytes}: the chunks and the trailer`);
        assert.match(valuesOf(answer, 'cache-status').join(), maxBodyBytes === 16 ? /too-large/ : /detail=trailer/);
      }
    }
  });

  it('Express: trailer fields a streamed answer adds without declaring them (addTrailers, no Trailer field) are never stored: each answer carries them, as from the app alone', async () => {
    const build: Build = (cache) => {
      const app = express();
      if (cache !== undefined) app.use(expressCache(cache));
      app.get('/v', (_req, res) => {
        res.write('part1;');
        res.addTrailers({ 'X-Checksum': 'abc' });
        res.end('part2');
      });
      return app;
    };
    const alone = await wireRequest(await ctx.serve(build(undefined)), '/v');
    assert.match(alone.body, /x-checksum: abc/i, 'node sends the trailer of a chunked answer');
    const server = await ctx.serve(build(await ctx.open(routes)));
    for (const answer of [await wireRequest(server, '/v'), await wireRequest(server, '/v')]) {
      assert.equal(answer.body, alone.body, `the chunks and the trailer (${valuesOf(answer, 'cache-status').join()})`);
    }
  });

  it('Express: trailer fields added to an answer with a Content-Length, which node never sends (no chunks), do not keep it from being stored', async () => {
    const build: Build = (cache) => {
      const app = express();
      if (cache !== undefined) app.use(expressCache(cache));
      app.get('/v', (_req, res) => {
        res.setHeader('Content-Length', '11');
        res.addTrailers({ 'X-Checksum': 'abc' });
        res.end('hello world');
      });
      return app;
    };
    const alone = await wireRequest(await ctx.serve(build(undefined)), '/v');
    assert.doesNotMatch(alone.body, /x-checksum/i, 'node sent a trailer without chunks');
    const server = await ctx.serve(build(await ctx.open(routes)));
    await wireRequest(server, '/v');
    const second = await wireRequest(server, '/v');
    assert.equal(second.body, alone.body);
    assert.match(valuesOf(second, 'cache-status').join(), /; hit/, 'the answer was not stored');
  });
});
