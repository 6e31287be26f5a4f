// Origin mode with Redis: a request that asks for validation (no-cache,
// max-age=0) and arrives while another's lookup is out joins that request's
// fill. When that one is answered stale (stale-while-revalidate), the waiter
// used to be given the same stale answer, never validated (found by helper-67,
// RFC 9111 §5.2.1.4). It runs its own request to the origin now; one that
// accepts staleness (max-stale) still takes it. Redis is reached through a
// proxy that holds every reply 20 ms each way, so the second request always arrives
// while the first one's lookup is out.
import assert from 'node:assert/strict';
import request from 'supertest';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { adapters, buildApp, type RouteSpec } from './apps.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** The adapters each case runs under. */
const ADAPTERS = adapters.filter((a) => a.name === 'express5' || a.name === 'koa3');

/**
 * A redis-server for the describe, and `slowCache()`: a cache that reaches it through a proxy holding every
 * reply 20 ms each way (closed after each test), so a request sent 5 ms after another finds its lookup out.
 */
function useHeldReplies(prefix: string) {
  const redisCaches = useRedisCaches({ prefix });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });
  return {
    redisCaches,
    async slowCache() {
      proxy = await startTcpProxy(redisCaches.redis.port, '127.0.0.1', 20);
      return redisCaches.open({ namespace: redisCaches.ns, redis: proxy.url, l2: { commandTimeout: 2000 } });
    },
  };
}

describe('middleware: a waiter that asks for validation takes no stale answer made for another', function () {
  this.timeout(20_000);
  const { slowCache } = useHeldReplies('stale-needs');

  for (const adapter of ADAPTERS) {
    for (const [directive, expectsOwn] of [
      ['no-cache', true],
      ['max-age=0', true],
      ['max-stale=60', false],
    ] as const) {
      it(`${adapter.name}: Cache-Control: ${directive} ${expectsOwn ? 'runs its own request' : 'takes the stale answer'}`, async () => {
        const cache = await slowCache();
        let version = 0;
        const app = buildApp(adapter, cache, {
          routes: [
            {
              path: '/r',
              mw: { ttl: '1m', freshness: 'origin' },
              handler: (io) => {
                // Stale at once, within its stale-while-revalidate window: no wait for a max-age to run out.
                io.set('Cache-Control', 'max-age=0, stale-while-revalidate=60');
                io.end(`version ${++version}`);
              },
            },
          ],
        });
        assert.equal((await request(app.target).get('/r')).text, 'version 1');
        const plain = request(app.target).get('/r').then((r) => r);
        await sleep(5); // the plain request's lookup is out (each Redis reply is held 20 ms each way)
        const asking = await request(app.target).get('/r').set('Cache-Control', directive);
        const first = await plain;
        assert.equal(first.text, 'version 1', 'the plain request is answered stale');
        assert.match(String(first.headers['cache-status']), /^tiercache; hit; ttl=-\d+; detail=L/);
        if (expectsOwn) {
          assert.notEqual(asking.text, 'version 1', `a ${directive} request was answered stale (${asking.headers['cache-status']})`);
          assert.doesNotMatch(String(asking.headers['cache-status']), /; hit/);
        } else {
          assert.equal(asking.text, 'version 1');
        }
      });
    }
  }
});

// The same waiter, when the lookup it joined finds a fresh entry in L2 that another instance stored (its own L1
// still holding the stale copy it revalidates by): it was handed that entry as a collapsed miss, never validated,
// however old (max-age=0) or short-lived (min-fresh) it was.
describe('middleware: a waiter that asks for validation takes no entry another request found in L2', function () {
  this.timeout(20_000);
  const { redisCaches, slowCache } = useHeldReplies('fresh-needs');

  for (const adapter of ADAPTERS) {
    for (const directive of ['no-cache', 'max-age=0', 'min-fresh=5']) {
      it(`${adapter.name}: Cache-Control: ${directive} runs its own request`, async () => {
        const slow = await slowCache();
        const other = await redisCaches.open({ namespace: redisCaches.ns, l2: { commandTimeout: 2000 } });
        let version = 0;
        const route: RouteSpec = {
          path: '/r',
          mw: { ttl: '1m', freshness: 'origin' },
          handler: (io) => {
            version++;
            // An ETag keeps the stale copy in L1, so the asking request needs no lookup of its own and joins the plain one's.
            io.set('Cache-Control', 'max-age=1');
            io.set('ETag', `"v${version}"`);
            io.end(`version ${version}`);
          },
        };
        const app = buildApp(adapter, slow, { routes: [route] });
        const otherApp = buildApp(adapter, other, { routes: [route] });
        assert.equal((await request(app.target).get('/r')).text, 'version 1');
        await sleep(1_100);
        // The other instance refreshes the entry in L2; this one's L1 keeps version 1, stale.
        assert.equal((await request(otherApp.target).get('/r')).text, 'version 2');
        const plain = request(app.target).get('/r').then((r) => r);
        await sleep(5); // the plain request's lookup is out (each Redis reply is held 20 ms each way)
        const asking = await request(app.target).get('/r').set('Cache-Control', directive);
        const first = await plain;
        assert.equal(first.text, 'version 2', 'the plain request is answered from L2');
        assert.equal(asking.text, 'version 3', `a ${directive} request was answered ${asking.text} (${asking.headers['cache-status']}) without asking the origin`);
        assert.doesNotMatch(String(asking.headers['cache-status']), /collapsed|; hit/);
      });
    }
  }
});

// The other way round: the request whose lookup a plain one joins asks for a stored answer only (only-if-cached:
// a 504 when nothing fits) or takes a stale one (max-stale). Either way it ends its fill without running the
// handler, and the plain request that waited on it ran its own without storing it ('waited'): the stale entry
// stayed stale, and a client sending such requests for a stale key kept every request that came meanwhile from
// refreshing it, each going to the origin.
describe('middleware: a plain waiter on a request that answers without the origin fills in its place', function () {
  this.timeout(20_000);
  const { slowCache } = useHeldReplies('leader-needs');

  for (const adapter of ADAPTERS) {
    for (const [directive, leaderStatus] of [
      ['only-if-cached', 504],
      ['max-stale', 200],
    ] as const) {
      it(`${adapter.name}: after Cache-Control: ${directive}, the plain request refreshes the stale entry and stores it`, async () => {
        const cache = await slowCache();
        let version = 0;
        const app = buildApp(adapter, cache, {
          routes: [
            {
              path: '/r',
              mw: { ttl: '1m', freshness: 'origin' },
              handler: (io) => {
                version++;
                // Stale at once; the ETag keeps it for revalidation (in L1 too: neither request needs a lookup of its own).
                io.set('Cache-Control', version === 1 ? 'max-age=0' : 'max-age=600');
                io.set('ETag', `"v${version}"`);
                io.end(`version ${version}`);
              },
            },
          ],
        });
        assert.equal((await request(app.target).get('/r')).text, 'version 1');
        const leader = request(app.target).get('/r').set('Cache-Control', directive).then((r) => r);
        await sleep(5); // the leader's lookup is out (each Redis reply is held 20 ms each way)
        const plain = await request(app.target).get('/r');
        assert.equal((await leader).status, leaderStatus);
        assert.equal(plain.text, 'version 2');
        assert.match(String(plain.headers['cache-status']), /; stored$/, `the plain request's answer was not stored (${plain.headers['cache-status']})`);
        const next = await request(app.target).get('/r');
        assert.equal(next.text, 'version 2');
        assert.match(String(next.headers['cache-status']), /^tiercache; hit/);
        assert.equal(app.runs('/r'), 2);
      });
    }
  }
});
