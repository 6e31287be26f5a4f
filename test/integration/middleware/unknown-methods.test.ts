// Methods the cache does not know (RFC 9111 §4.4: "including methods whose
// safety is unknown"): in origin mode a 2xx answer to one (PURGE, say)
// invalidates its target path, as POST does; in table mode it is passed
// through and invalidates nothing. Which mode applies is read from the
// middleware's `freshness`, else the route rule's, else the cache's.
// Express 5 and Koa 3 (the rule lives in the shared core), L1 only.
import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import express from 'express';
import Koa from 'koa';
import Router from '@koa/router';
import request from 'supertest';
import { createCache, type CacheOptions, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import type { MiddlewareOptions } from '../../../src/middleware/options.js';
import { useCleanup } from '../../support/cache-context.js';

const HIT_L1 = 'tiercache; hit; detail=L1';
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Counted {
  readonly target: RequestListener;
  /** How often the GET handler ran. */
  readonly runs: () => number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Options = MiddlewareOptions<any> | undefined;

/** GET /doc answers with a 60 s lifetime (table and origin alike); PURGE /doc answers 200. */
const builders: ReadonlyArray<readonly [string, (cache: TierCache, options: Options) => Counted]> = [
  [
    'express5',
    (cache, options) => {
      let runs = 0;
      const app = express();
      app.use(expressCache(cache, options));
      app.get('/doc', (_req, res) => void res.set('Cache-Control', 'max-age=60').send(`doc ${++runs}`));
      app.purge('/doc', (_req, res) => void res.send('purged'));
      return { target: app, runs: () => runs };
    },
  ],
  [
    'koa3',
    (cache, options) => {
      let runs = 0;
      const app = new Koa();
      const router = new Router();
      app.use(koaCache(cache, options));
      router.get('/doc', (ctx) => {
        ctx.set('Cache-Control', 'max-age=60');
        ctx.body = `doc ${++runs}`;
      });
      router.all('/doc', (ctx) => {
        ctx.body = 'purged';
      });
      app.use(router.routes());
      return { target: app.callback(), runs: () => runs };
    },
  ],
];

/** Resolves true on the cache's next 'invalidate' event, false after `ms`. */
function invalidation(cache: TierCache, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const heard = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      cache.off('invalidate', heard);
      resolve(false);
    }, ms);
    cache.once('invalidate', heard);
  });
}

describe('middleware: methods whose safety is unknown', function () {
  const { track } = useCleanup();
  const open = (options: Partial<CacheOptions>) => track(createCache({ redis: false, ...options } as CacheOptions));

  for (const [name, build] of builders) {
    describe(name, () => {
      /** Fills /doc, checks the next GET hits, sends PURGE; resolves whether it invalidated and what GET says then. */
      async function purgeAfterFill(cache: TierCache, options: Options) {
        const app = build(cache, options);
        assert.equal((await request(app.target).get('/doc')).text, 'doc 1');
        assert.equal((await request(app.target).get('/doc')).headers['cache-status'], HIT_L1);
        const heard = invalidation(cache, 300);
        const purge = await request(app.target).purge('/doc');
        assert.equal(purge.status, 200);
        assert.equal(purge.text, 'purged', 'the unknown method reached its handler');
        const invalidated = await heard;
        await sleep(10);
        const after = await request(app.target).get('/doc');
        return { invalidated, after, runs: app.runs() };
      }

      it('origin mode (cache-wide): a 2xx answer to PURGE invalidates its target path', async () => {
        const { invalidated, after, runs } = await purgeAfterFill(open({ ttl: '1m', freshness: 'origin' }), undefined);
        assert.equal(invalidated, true, 'no invalidation followed the PURGE');
        assert.equal(after.text, 'doc 2', 'the GET after PURGE was served from the cache');
        assert.equal(runs, 2);
      });

      it("origin mode from the route rule: a PURGE to the rule's path invalidates it", async () => {
        const cache = open({ routes: { '/doc': { ttl: '1m', freshness: 'origin' } } });
        const { invalidated, after } = await purgeAfterFill(cache, undefined);
        assert.equal(invalidated, true);
        assert.equal(after.text, 'doc 2');
      });

      it("origin mode from the middleware's own freshness option, over a table-mode cache", async () => {
        const { invalidated, after } = await purgeAfterFill(open({ ttl: '1m' }), { freshness: 'origin' });
        assert.equal(invalidated, true);
        assert.equal(after.text, 'doc 2');
      });

      it('table mode: PURGE passes through and invalidates nothing', async () => {
        const { invalidated, after, runs } = await purgeAfterFill(open({ ttl: '1m' }), undefined);
        assert.equal(invalidated, false, 'a table-mode cache treated an unknown method as a write');
        assert.equal(after.headers['cache-status'], HIT_L1);
        assert.equal(after.text, 'doc 1');
        assert.equal(runs, 1);
      });

      it("the middleware's freshness: 'table' wins over an origin-mode cache: PURGE invalidates nothing", async () => {
        const { invalidated, after } = await purgeAfterFill(open({ ttl: '1m', freshness: 'origin' }), { freshness: 'table' });
        assert.equal(invalidated, false);
        assert.equal(after.text, 'doc 1');
      });
    });
  }
});
