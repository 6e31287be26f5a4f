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
  'Koa string body': { build: koaApp(() => 'text'), utf8: true },
  'Koa Buffer body': { build: koaApp(() => Buffer.from('bytes')), utf8: false },
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
});
