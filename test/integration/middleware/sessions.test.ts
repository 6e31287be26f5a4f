// Cookies set late: session middleware adds its Set-Cookie when the headers
// are written (express-session, through on-headers) or after the rest of the
// app ran (koa-session). Whatever the mounting order, storability is decided on
// the headers as they are actually sent (DESIGN.md section 3), so a first
// visitor's session — and the CSRF token in its page — is never handed to the
// next visitor. Real express-session and koa-session.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { RequestListener } from 'node:http';
import express5 from 'express';
import session from 'express-session';
import Koa3 from 'koa';
import koaSession from 'koa-session';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup } from '../../support/cache-context.js';
import { setAsHeadGoesOut } from '../../support/head-hook.js';
import { express4, Koa2 } from './apps.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
type Order = 'session before the cache' | 'cache before the session';

let counter = 0;

function expressApp(express: typeof express5, cache: TierCache, order: Order): RequestListener {
  const app = express();
  const sessions = session({ secret: 'test secret', resave: false, saveUninitialized: true });
  if (order === 'session before the cache') app.use(sessions, expressCache(cache));
  else app.use(expressCache(cache), sessions);
  app.get('/form', (req: Any, res) => {
    req.session.csrf ??= randomUUID();
    res.send(`csrf=${req.session.csrf}`);
  });
  return app as unknown as RequestListener;
}

function koaApp(Koa: typeof Koa3, cache: TierCache, order: Order): RequestListener {
  const app = new Koa();
  app.keys = ['test secret'];
  const sessions = koaSession({ signed: true }, app as Any) as Any;
  const cached = koaCache(cache) as Any;
  if (order === 'session before the cache') app.use(sessions).use(cached);
  else app.use(cached).use(sessions);
  app.use((ctx: Any) => {
    ctx.session.csrf ??= randomUUID();
    ctx.body = `csrf=${ctx.session.csrf}`;
  });
  return app.callback() as RequestListener;
}

const APPS: ReadonlyArray<readonly [string, (cache: TierCache, order: Order) => RequestListener]> = [
  ['Express 5 + express-session', (cache, order) => expressApp(express5, cache, order)],
  ['Express 4 + express-session', (cache, order) => expressApp(express4, cache, order)],
  ['Koa 3 + koa-session', (cache, order) => koaApp(Koa3, cache, order)],
  ['Koa 2 + koa-session', (cache, order) => koaApp(Koa2, cache, order)],
];

describe('middleware: session cookies set late', function () {
  const cleanup = useCleanup();

  for (const [name, build] of APPS) {
    for (const order of ['session before the cache', 'cache before the session'] as const) {
      it(`${name}, ${order}: a new visitor's page with its session cookie is never stored for the next visitor`, async () => {
        const cache = cleanup.track(createCache({ namespace: `sess${process.pid}-${++counter}`, redis: false, routes: { '/form': '5m' } }));
        const app = build(cache, order);
        const first = await request(app).get('/form');
        assert.ok(first.headers['set-cookie'], 'the first visitor gets a session cookie');
        assert.equal(first.headers['cache-status'], 'tiercache; fwd=miss; detail=set-cookie');
        const second = await request(app).get('/form');
        assert.ok(second.headers['set-cookie'], 'the second visitor gets a session of their own');
        assert.notEqual(second.text, first.text, "the second visitor was handed the first visitor's CSRF token");
        assert.equal(cache.stats().l1.entries, 0);
      });
    }
  }

  // The same for the other headers that decide storability, changed by a hook that runs when the head is written.
  for (const [header, value] of [['Cache-Control', 'no-store'], ['Vary', '*']] as const) {
    it(`Express: ${header}: ${value} set as the head is written, by a middleware mounted before the cache, keeps the answer out of the cache`, async () => {
      const cache = cleanup.track(createCache({ namespace: `sess${process.pid}-${++counter}`, redis: false, routes: { '/late': '5m' } }));
      const app = express5();
      app.use((_req: Any, res: Any, next: Any) => {
        setAsHeadGoesOut(res, header, value);
        next();
      });
      app.use(expressCache(cache));
      let runs = 0;
      app.get('/late', (_req, res) => void res.send(`run ${++runs}`));
      assert.equal((await request(app).get('/late')).text, 'run 1');
      assert.equal((await request(app).get('/late')).text, 'run 2', 'the answer was stored');
      assert.equal(cache.stats().l1.entries, 0);
    });
  }
});
