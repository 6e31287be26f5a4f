// An Express app (or the front door) that a Koa app hands a request to
// (`ctx.respond = false; legacyExpressApp(ctx.req, ctx.res)`, koa-connect), with
// koaCache app-wide in front and expressCache on the Express route (found by
// helper-95): while the Koa middleware waited on next(), its deferred hit sat
// on the response, and the Express cache's hit took it for its own. The hit was
// left for Koa to write, Koa had been told not to respond, and the request hung
// (the 'hit' was never counted either). Only the adapter that writes hits later
// (Koa) leaves them there; the others write theirs at once.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import Koa from 'koa';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { front } from '../../../src/node.js';
import { useCleanup } from '../../support/cache-context.js';
import { express4, Koa2 } from './apps.js';

/** Generous: an answer that does not come within it never will. */
const DOES_NOT_HANG_MS = 3_000;
let counter = 0;

describe('middleware: an Express app inside a Koa app, each with its cache', () => {
  const cleanup = useCleanup();

  for (const [koaName, KoaFramework] of [
    ['koa3', Koa],
    ['koa2', Koa2],
  ] as const) {
    for (const [expressName, expressFactory] of [
      ['express5', express],
      ['express4', express4],
    ] as const) {
      describe(`${expressName} inside ${koaName}`, () => {
        /** `frontDoor`: the Koa handler hands the request to front(cache, legacyApp) instead of the app itself. */
        function build(frontDoor = false) {
          // No rule for /legacy: the Koa app's cache passes those requests on untouched.
          const cache = cleanup.track(createCache({ namespace: `express-in-koa${process.pid}-${++counter}`, redis: false, routes: { '/koa': '1m' } }));
          let runs = 0;
          const legacy = expressFactory();
          legacy.get('/legacy/items', expressCache(cache, { ttl: '1m' }), (_req, res) => {
            runs++;
            res.json({ legacy: true });
          });
          const legacyHandler = legacy as unknown as (req: IncomingMessage, res: ServerResponse) => void;
          const inner = frontDoor ? front(cache, legacyHandler) : legacyHandler;
          const app = new (KoaFramework as typeof Koa)();
          app.silent = true;
          app.use(koaCache(cache) as Koa.Middleware);
          app.use(async (ctx, next) => {
            if (!ctx.path.startsWith('/legacy/')) return next();
            // The Express app answers: Koa is told not to, and waits until it has.
            ctx.respond = false;
            ctx.res.statusCode = 200;
            await new Promise<void>((resolve) => {
              ctx.res.once('close', resolve);
              inner(ctx.req, ctx.res);
            });
          });
          return { cache, target: app.callback(), runs: () => runs };
        }

        it('the Express cache’s hit is written, and counted', async () => {
          const { cache, target, runs } = build();
          const hits: string[] = [];
          cache.on('hit', (e) => hits.push(e.tier));
          const fill = await request(target).get('/legacy/items').timeout(DOES_NOT_HANG_MS);
          assert.equal(fill.headers['cache-status'], 'tiercache; fwd=miss; stored');
          const hit = await request(target).get('/legacy/items').timeout(DOES_NOT_HANG_MS);
          assert.equal(hit.status, 200);
          assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
          assert.deepEqual(hit.body, { legacy: true });
          assert.equal(runs(), 1);
          assert.deepEqual(hits, ['L1']);
        });

        it('the front door’s hit, in front of that Express app, is written', async () => {
          const { target, runs } = build(true);
          await request(target).get('/legacy/items').timeout(DOES_NOT_HANG_MS).expect(200);
          const hit = await request(target).get('/legacy/items').timeout(DOES_NOT_HANG_MS);
          assert.equal(hit.status, 200);
          assert.deepEqual(hit.body, { legacy: true });
          assert.equal(runs(), 1);
        });
      });
    }
  }
});
