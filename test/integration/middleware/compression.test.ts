// The cache next to response compression (issue 3, Deliver 2): the stored
// body is the bytes as sent, after any compression in front of the handler,
// so a compressed variant must be keyed by the negotiated encoding and never
// replayed to a client that does not accept it. Express with `compression`
// on either side of the cache, Koa with `koa-compress` in front of it; Express
// 5 and 4, Koa 3 and 2; a real redis-server behind the cache.
import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import { gunzipSync } from 'node:zlib';
import compression from 'compression';
import express5 from 'express';
import Koa3 from 'koa';
import compress from 'koa-compress';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { fetchRaw, GZIP_MAGIC, type RawResponse } from '../../support/http-bytes.js';
import { express4, Koa2 } from './apps.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

const HIT_L1 = 'tiercache; hit; detail=L1';
/** A fill: `tiercache; fwd=miss` plus `; stored` when the cache could tell before the headers left. */
const FILL = /^tiercache; fwd=miss(; stored)?$/;

/** A compressible body well above any threshold, distinct per run. */
function documentBody(run: number): string {
  return `run ${run}\n` + 'All the movies, every showtime, all week long. '.repeat(200);
}

function assertGzip(res: RawResponse, expected: string, what: string): void {
  assert.equal(res.status, 200, what);
  assert.equal(res.headers['content-encoding'], 'gzip', `${what}: Content-Encoding`);
  assert.ok(res.bytes.subarray(0, 2).equals(GZIP_MAGIC), `${what}: the body is not gzip bytes`);
  assert.equal(gunzipSync(res.bytes).toString('utf8'), expected, `${what}: the body does not gunzip to the original`);
}

function assertIdentity(res: RawResponse, expected: string, what: string): void {
  assert.equal(res.status, 200, what);
  const encoding = res.headers['content-encoding'];
  assert.ok(encoding === undefined || encoding === 'identity', `${what}: Content-Encoding ${encoding} sent to a client that accepts only identity`);
  assert.ok(!res.bytes.subarray(0, 2).equals(GZIP_MAGIC), `${what}: gzip bytes sent to a client that accepts only identity`);
  assert.equal(res.bytes.toString('utf8'), expected, `${what}: body`);
}

// ---------------------------------------------------------------------------

describe('middleware: compression in front of and behind the cache', function () {
  const { open: openCache, serve } = useRedisCaches({ prefix: 'compress', defaults: { ttl: '1m' } });

  for (const [name, express] of [
    ['Express 5', express5],
    ['Express 4', express4],
  ] as const) {
    describe(name, () => {
      function app(cache: TierCache, order: 'cache-outer' | 'compression-outer', onRun: () => number): RequestListener {
        const a = express();
        if (order === 'cache-outer') {
          a.use(expressCache(cache));
          a.use(compression({ threshold: 0 }));
        } else {
          a.use(compression({ threshold: 0 }));
          a.use(expressCache(cache));
        }
        a.get('/doc', (_req: Any, res: Any) => {
          res.type('text/plain').send(documentBody(onRun()));
        });
        return a as unknown as RequestListener;
      }

      it('with compression() behind the cache: stores the gzip variant for gzip clients and never serves it to an identity client', async () => {
        const cache = await openCache();
        let runs = 0;
        const server = await serve(app(cache, 'cache-outer', () => ++runs));

        const gzipMiss = await fetchRaw(server, '/doc', 'gzip');
        assertGzip(gzipMiss, documentBody(1), 'gzip client, miss');
        assert.match(String(gzipMiss.headers['cache-status']), FILL);

        const gzipHit = await fetchRaw(server, '/doc', 'gzip');
        assertGzip(gzipHit, documentBody(1), 'gzip client, hit');
        assert.equal(gzipHit.headers['cache-status'], HIT_L1);
        assert.ok(gzipHit.bytes.equals(gzipMiss.bytes), 'the hit should replay the stored gzip bytes as sent');
        assert.equal(runs, 1);

        const identityMiss = await fetchRaw(server, '/doc', 'identity');
        assertIdentity(identityMiss, documentBody(2), 'identity client after the gzip variant was stored');
        assert.match(String(identityMiss.headers['cache-status']), FILL);
        assert.equal(runs, 2, 'the identity client must get its own variant, not the gzip one');

        const identityHit = await fetchRaw(server, '/doc', 'identity');
        assertIdentity(identityHit, documentBody(2), 'identity client, hit');
        assert.equal(identityHit.headers['cache-status'], HIT_L1);

        const gzipAgain = await fetchRaw(server, '/doc', 'gzip');
        assertGzip(gzipAgain, documentBody(1), 'gzip client after the identity variant was stored');
        assert.equal(gzipAgain.headers['cache-status'], HIT_L1);
        assert.equal(runs, 2);
      });

      it('with compression() in front of the cache: gzip and identity clients both get correct bodies on miss and hit', async () => {
        const cache = await openCache();
        let runs = 0;
        const server = await serve(app(cache, 'compression-outer', () => ++runs));

        const gzipMiss = await fetchRaw(server, '/doc', 'gzip');
        assertGzip(gzipMiss, documentBody(1), 'gzip client, miss');
        assert.match(String(gzipMiss.headers['cache-status']), FILL);

        const gzipHit = await fetchRaw(server, '/doc', 'gzip');
        assertGzip(gzipHit, documentBody(1), 'gzip client, hit');
        assert.equal(gzipHit.headers['cache-status'], HIT_L1);

        const identityHit = await fetchRaw(server, '/doc', 'identity');
        assertIdentity(identityHit, documentBody(1), 'identity client, hit');
        assert.equal(identityHit.headers['cache-status'], HIT_L1);
        assert.equal(runs, 1, 'compression in front re-encodes per client, so one stored body serves both');

        // Identity first on a fresh cache, then gzip.
        await cache.clear();
        const identityMiss = await fetchRaw(server, '/doc', 'identity');
        assertIdentity(identityMiss, documentBody(2), 'identity client, miss');
        assert.match(String(identityMiss.headers['cache-status']), FILL);
        const gzipAfter = await fetchRaw(server, '/doc', 'gzip');
        assertGzip(gzipAfter, documentBody(2), 'gzip client, hit on the identity-filled entry');
        assert.equal(gzipAfter.headers['cache-status'], HIT_L1);
        assert.equal(runs, 2);
      });
    });
  }

  for (const [name, Koa] of [
    ['Koa 3', Koa3],
    ['Koa 2', Koa2],
  ] as const) {
    describe(name, () => {
      it('with koa-compress in front of the cache: gzip client gets gzip bytes on miss and hit, identity client gets identity', async () => {
        const cache = await openCache();
        let runs = 0;
        const app = new Koa();
        app.use(compress({ threshold: 0 }) as Any);
        app.use(koaCache(cache) as Any);
        app.use((ctx: Any) => {
          if (ctx.path !== '/doc') return;
          ctx.type = 'text/plain';
          ctx.body = documentBody(++runs);
        });
        const server = await serve(app.callback() as RequestListener);

        const gzipMiss = await fetchRaw(server, '/doc', 'gzip');
        assertGzip(gzipMiss, documentBody(1), 'gzip client, miss');
        assert.match(String(gzipMiss.headers['cache-status']), FILL);

        const gzipHit = await fetchRaw(server, '/doc', 'gzip');
        assertGzip(gzipHit, documentBody(1), 'gzip client, hit');
        assert.equal(gzipHit.headers['cache-status'], HIT_L1);
        assert.ok(gzipHit.bytes.equals(gzipMiss.bytes), 'the hit should replay the stored gzip bytes as sent');
        assert.equal(runs, 1);

        const identityMiss = await fetchRaw(server, '/doc', 'identity');
        assertIdentity(identityMiss, documentBody(2), 'identity client after the gzip variant was stored');
        assert.match(String(identityMiss.headers['cache-status']), FILL);
        assert.equal(runs, 2);

        const identityHit = await fetchRaw(server, '/doc', 'identity');
        assertIdentity(identityHit, documentBody(2), 'identity client, hit');
        assert.equal(identityHit.headers['cache-status'], HIT_L1);

        const gzipAgain = await fetchRaw(server, '/doc', 'gzip');
        assertGzip(gzipAgain, documentBody(1), 'gzip client after the identity variant was stored');
        assert.equal(gzipAgain.headers['cache-status'], HIT_L1);
        assert.equal(runs, 2);
      });
    });
  }
});
