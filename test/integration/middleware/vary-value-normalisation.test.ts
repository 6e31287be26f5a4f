// Why this test exists: the value of a varied request header entered the key
// with the whitespace around every comma removed, as if every field were a
// list. In a field that is not one (User-Agent, a custom X- field), and in a
// quoted string of one that is, a comma is text: `Foo (X, Y)` and
// `Foo (X,Y)` are two values, and one client was served the answer made for
// the other (RFC 9111 §4.1 allows such normalisation only where the field's
// syntax does; found by a hostile review). List fields still share a variant
// whatever their whitespace.
import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Koa from 'koa';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { front } from '../../../src/node.js';
import { useCleanup } from '../../support/cache-context.js';

let counter = 0;

/** Pairs of values that differ only in whitespace next to a comma, which the field's syntax does not allow to drop. */
const DISTINCT: Array<[string, string, string]> = [
  ['user-agent', 'Foo/1.0 (X11, Linux)', 'Foo/1.0 (X11,Linux)'],
  ['x-filter', 'a, b', 'a,b'],
  // A list field, but the comma is inside a quoted string.
  ['sec-ch-ua', '"Brand, A";v="1"', '"Brand,A";v="1"'],
];
/** Values of list fields that are one list (whitespace around separators, empty elements). */
const SAME: Array<[string, string, string]> = [
  ['accept-language', 'en, fr;q=0.8', 'en,fr;q=0.8'],
  ['accept', 'text/html ,  application/json,', 'text/html,application/json'],
  ['sec-ch-ua', '"A";v="1", "B";v="2"', '"A";v="1","B";v="2"'],
];

describe('varied request headers: whitespace next to commas', () => {
  const { track, serve } = useCleanup();
  const newCache = (vary: string[]) => track(createCache({ namespace: `vary-ws-${process.pid}-${++counter}`, redis: false, routes: { '/api/echo': { ttl: '5m', vary } } }));

  function expressApp(cache: ReturnType<typeof newCache>, name: string, runs: { n: number }, viaResponse = false): express.Express {
    const app = express();
    app.use(expressCache(cache));
    app.get('/api/echo', (req, res) => {
      runs.n++;
      if (viaResponse) res.setHeader('Vary', name);
      res.json({ value: req.headers[name], run: runs.n });
    });
    return app;
  }

  for (const [name, first, second] of DISTINCT) {
    it(`Express (route vary): ${name} "${first}" and "${second}" are two variants, each answered with its own`, async () => {
      const runs = { n: 0 };
      const app = expressApp(newCache([name]), name, runs);
      assert.deepEqual((await request(app).get('/api/echo').set(name, first)).body, { value: first, run: 1 });
      assert.deepEqual((await request(app).get('/api/echo').set(name, second)).body, { value: second, run: 2 }, `"${second}" was served the answer made for "${first}"`);
      assert.deepEqual((await request(app).get('/api/echo').set(name, first)).body, { value: first, run: 1 }, 'the first variant is still a hit');
    });

    it(`Express (Vary in the response): ${name} "${first}" and "${second}" are two variants`, async () => {
      const runs = { n: 0 };
      const app = expressApp(newCache([]), name, runs, true);
      assert.deepEqual((await request(app).get('/api/echo').set(name, first)).body, { value: first, run: 1 });
      assert.deepEqual((await request(app).get('/api/echo').set(name, first)).body, { value: first, run: 1 }, 'the variant is a hit');
      assert.deepEqual((await request(app).get('/api/echo').set(name, second)).body, { value: second, run: 2 }, `"${second}" was served the answer made for "${first}"`);
    });

    it(`Koa: ${name} "${first}" and "${second}" are two variants`, async () => {
      const cache = newCache([name]);
      const app = new Koa();
      let runs = 0;
      app.use(koaCache(cache));
      app.use((ctx) => {
        ctx.body = { value: ctx.get(name), run: ++runs };
      });
      const server = app.callback();
      assert.deepEqual((await request(server).get('/api/echo').set(name, first)).body, { value: first, run: 1 });
      assert.deepEqual((await request(server).get('/api/echo').set(name, second)).body, { value: second, run: 2 }, `"${second}" was served the answer made for "${first}"`);
    });

    it(`front door: ${name} "${second}" is not answered from the entry of "${first}"`, async () => {
      const cache = newCache([name]);
      const runs = { n: 0 };
      const server = await serve(front(cache, expressApp(cache, name, runs) as RequestListener));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/echo`;
      assert.deepEqual(await (await fetch(base, { headers: { [name]: first } })).json(), { value: first, run: 1 });
      assert.deepEqual(await (await fetch(base, { headers: { [name]: first } })).json(), { value: first, run: 1 }, 'the variant is a hit');
      assert.deepEqual(await (await fetch(base, { headers: { [name]: second } })).json(), { value: second, run: 2 }, `"${second}" was served the answer made for "${first}"`);
      assert.notEqual(cache.keyFor({ method: 'GET', url: '/api/echo', headers: { [name]: first } }), cache.keyFor({ method: 'GET', url: '/api/echo', headers: { [name]: second } }));
    });
  }

  for (const [name, first, second] of SAME) {
    it(`list field ${name}: "${first}" and "${second}" share one variant`, async () => {
      const runs = { n: 0 };
      const app = expressApp(newCache([name]), name, runs);
      assert.deepEqual((await request(app).get('/api/echo').set(name, first)).body, { value: first, run: 1 });
      assert.deepEqual((await request(app).get('/api/echo').set(name, second)).body, { value: first, run: 1 }, 'one list, written with other whitespace, filled again');
    });
  }
});
