// A stale hit's Cache-Status carries ttl=-N, N the whole seconds (rounded up)
// since the entry stopped being fresh (RFC 9211 §2.5: how stale it is). The
// stale tests matched `ttl=-\d+` only, so a ttl off by a factor of 1000 (ms
// for s) or counted from the wrong end passed them. Found by mutation testing
// (http-cache.ts, the stale hit's Cache-Status), with and without Redis; the
// same for a stale-if-error answer, whose Cache-Status is built apart.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { adapters, buildApp, type HandlerIO } from './apps.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
let counter = 0;

describe('middleware: how stale a stale hit is, in Cache-Status', () => {
  const ctx = useRedisCaches({ prefix: 'staleage' });

  for (const adapter of adapters) {
    for (const withRedis of [false, true]) {
      it(`${adapter.name}${withRedis ? ', L1 + L2' : ', L1 only'}: about 1.2 s past fresh reads ttl=-2`, async () => {
        const namespace = `${ctx.ns}-${++counter}`;
        const cache = withRedis ? await ctx.open({ namespace }) : ctx.track(createCache({ namespace, redis: false }));
        const handler = (io: HandlerIO) => io.send('movies');
        const app = buildApp(adapter, cache, { routes: [{ path: '/s', mw: { ttl: 100, staleWhileRevalidate: '10s' }, handler }] });
        assert.equal((await request(app.target).get('/s')).text, 'movies');
        await sleep(1_300); // fresh for 100 ms, then 1.2 s stale
        const stale = await request(app.target).get('/s');
        const ttl = /; ttl=(-?\d+);/.exec(String(stale.headers['cache-status']))?.[1];
        assert.ok(ttl !== undefined, `no ttl in ${String(stale.headers['cache-status'])}`);
        // 1.2 s rounds up to 2; a slow machine may add a second.
        assert.ok(Number(ttl) === -2 || Number(ttl) === -3, `ttl=${ttl}`);
      });
    }
  }

  it('L1 only: a stale-if-error answer about 1.2 s past fresh reads ttl=-2 too', async () => {
    const cache = ctx.track(createCache({ namespace: `${ctx.ns}-${++counter}`, redis: false }));
    let failing = false;
    const handler = (io: HandlerIO) => {
      if (failing) {
        io.status(503);
        io.send('down');
      } else io.send('movies');
    };
    const app = buildApp(adapters[0]!, cache, { routes: [{ path: '/s', mw: { ttl: 100, staleIfError: '10s' }, handler }] });
    assert.equal((await request(app.target).get('/s')).text, 'movies');
    await sleep(1_300);
    failing = true;
    const stale = await request(app.target).get('/s');
    assert.equal(stale.text, 'movies');
    const ttl = /; ttl=(-?\d+);/.exec(String(stale.headers['cache-status']))?.[1];
    assert.ok(Number(ttl) === -2 || Number(ttl) === -3, `ttl=${ttl} in ${String(stale.headers['cache-status'])}`);
  });
});
