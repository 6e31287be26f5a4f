// Why this exists: a writeHead hook mounted before the cache (express-session,
// a security-headers middleware) changes the head after the cache has judged
// it. The cache judges the head again as it goes out (http-cache.ts sent()),
// but only when Set-Cookie, Cache-Control or Vary changed, and in origin mode
// by RFC 9111's rules rather than the table's. Mutation testing showed that
// only a late Set-Cookie was tested: a late Cache-Control: no-store, a late
// Vary: *, or an origin-mode head that loses the `public` an authorized
// request needs could all have been stored unnoticed.
import assert from 'node:assert/strict';
import type { RequestListener, ServerResponse } from 'node:http';
import Router from '@koa/router';
import express5 from 'express';
import Koa3 from 'koa';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup } from '../../support/cache-context.js';
import { onWriteHead } from '../../support/head-hook.js';
import { express4, Koa2, type AnyMiddlewareOptions } from './apps.js';

let counter = 0;

interface Route {
  readonly mw: AnyMiddlewareOptions;
  /** Headers the handler sets before it sends `body`. */
  readonly headers: Readonly<Record<string, string>>;
  readonly change: (res: ServerResponse) => void;
}

type Build = (cache: TierCache, route: Route, runs: { n: number }) => RequestListener;

function expressBuild(factory: typeof express5): Build {
  return (cache, route, runs) => {
    const app = factory();
    app.use((_req, res, next) => (onWriteHead(res, route.change), next()));
    app.get('/p', expressCache(cache, route.mw), (_req, res) => {
      runs.n++;
      res.set(route.headers).send('body');
    });
    return app as unknown as RequestListener;
  };
}

function koaBuild(K: typeof Koa3): Build {
  return (cache, route, runs) => {
    const app = new K();
    app.use(async (ctx, next) => {
      onWriteHead(ctx.res, route.change);
      await next();
    });
    const router = new Router();
    router.get('/p', koaCache(cache, route.mw), (ctx) => {
      runs.n++;
      ctx.set(route.headers);
      ctx.body = 'body';
    });
    app.use(router.routes());
    return app.callback() as unknown as RequestListener;
  };
}

const builds: ReadonlyArray<[string, Build]> = [
  ['express5', expressBuild(express5)],
  ['express4', expressBuild(express4)],
  ['koa3', koaBuild(Koa3)],
  ['koa2', koaBuild(Koa2 as unknown as typeof Koa3)],
];

describe('middleware: a head changed by a writeHead hook after the cache looked at it', () => {
  const cleanup = useCleanup();

  for (const [name, build] of builds) {
    describe(name, () => {
      function app(route: Route) {
        const cache = cleanup.track(createCache({ namespace: `late-head${process.pid}-${++counter}`, redis: false }));
        const runs = { n: 0 };
        return { target: build(cache, route, runs), runs };
      }

      it('table mode: a Cache-Control: no-store added late is not stored, and the answer says so', async () => {
        const { target, runs } = app({ mw: { ttl: '1m' }, headers: {}, change: (res) => res.setHeader('Cache-Control', 'no-store') });
        const first = await request(target).get('/p');
        assert.equal(first.headers['cache-control'], 'no-store', 'the hook ran');
        assert.equal(first.headers['cache-status'], 'tiercache; fwd=miss; detail=no-store');
        const second = await request(target).get('/p');
        assert.equal(second.text, 'body');
        assert.equal(runs.n, 2, 'an answer sent with Cache-Control: no-store was stored');
      });

      it('table mode: a Vary: * added late is not stored, and the answer says so', async () => {
        const { target, runs } = app({ mw: { ttl: '1m' }, headers: {}, change: (res) => res.setHeader('Vary', '*') });
        const first = await request(target).get('/p');
        assert.equal(first.headers['vary'], '*', 'the hook ran');
        assert.equal(first.headers['cache-status'], 'tiercache; fwd=miss; detail=vary-star');
        await request(target).get('/p');
        assert.equal(runs.n, 2, 'an answer sent with Vary: * was stored');
      });

      it('origin mode: an answer to an authorized request that loses its Cache-Control late is judged by RFC 9111 (§3.5) and not stored', async () => {
        const { target, runs } = app({
          mw: { freshness: 'origin' },
          headers: { 'Cache-Control': 'public, max-age=60' },
          change: (res) => res.removeHeader('Cache-Control'),
        });
        const auth = { Authorization: 'Bearer one' };
        const first = await request(target).get('/p').set(auth);
        assert.equal(first.headers['cache-control'], undefined, 'the hook ran');
        assert.equal(first.headers['cache-status'], 'tiercache; fwd=miss; detail=authorization');
        await request(target).get('/p').set(auth);
        assert.equal(runs.n, 2, 'an answer to an authorized request without public was stored');
      });

      it('origin mode: the same answer keeping its Cache-Control: public is stored (the hook alone changes nothing)', async () => {
        const { target, runs } = app({ mw: { freshness: 'origin' }, headers: { 'Cache-Control': 'public, max-age=60' }, change: () => undefined });
        const auth = { Authorization: 'Bearer one' };
        assert.equal((await request(target).get('/p').set(auth)).headers['cache-status'], 'tiercache; fwd=miss; stored');
        assert.equal((await request(target).get('/p').set(auth)).headers['cache-status'], 'tiercache; hit; detail=L1');
        assert.equal(runs.n, 1);
      });
    });
  }
});
