// How a request's plan reads its inputs: a safe method the middleware was not
// given (OPTIONS beside the default ['GET']) passes through uncached; a `user`
// function answering null means "no user" as undefined does (a request with a
// Cookie is then not cached); a route rule's `vary` keys the entry by those
// request headers; `jitter` shortens negativeTtl lifetimes as it does TTLs.
// Express 5, L1 only.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { createCache, type CacheOptions, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import type { MiddlewareOptions } from '../../../src/middleware/options.js';
import { useCleanup } from '../../support/cache-context.js';

const STORED = 'tiercache; fwd=miss; stored';
const HIT_L1 = 'tiercache; hit; detail=L1';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Options = MiddlewareOptions<any>;

describe('middleware: plan inputs', function () {
  const { track } = useCleanup();

  function open(options: CacheOptions = {}): TierCache {
    return track(createCache({ redis: false, ...options }));
  }

  it('passes OPTIONS through uncached when methods is the default GET', async () => {
    const cache = open({ ttl: '1m' });
    let runs = 0;
    const app = express();
    app.use(expressCache(cache));
    app.options('/doc', (_req, res) => void res.set('Allow', 'GET, OPTIONS').send(`options ${++runs}`));
    for (const n of [1, 2]) {
      const r = await request(app).options('/doc');
      assert.equal(r.status, 200);
      assert.equal(r.text, `options ${n}`, 'an OPTIONS answer was served from the cache');
      assert.equal(r.headers['cache-status'], undefined);
    }
    assert.equal(runs, 2);
  });

  it('a user function answering null is no user: a request with a Cookie is passed through, not stored for a user "null"', async () => {
    const cache = open();
    let runs = 0;
    const app = express();
    app.get('/me', expressCache(cache, { ttl: '1m', user: () => null } as Options), (_req, res) => void res.send(`me ${++runs}`));
    for (const n of [1, 2]) {
      const r = await request(app).get('/me').set('Cookie', 'sid=1');
      assert.equal(r.text, `me ${n}`);
      assert.equal(r.headers['cache-status'], 'tiercache; fwd=bypass; detail=cookie');
    }
    // Without a Cookie the same route is cached as a public one.
    assert.equal((await request(app).get('/me')).headers['cache-status'], STORED);
    assert.equal((await request(app).get('/me')).headers['cache-status'], HIT_L1);
  });

  it("a route rule's vary keys the entry by those request headers (with the middleware's own vary)", async () => {
    const cache = open({ routes: { '/v': { ttl: '1m', vary: ['accept-language'] } } });
    let runs = 0;
    const app = express();
    app.use(expressCache(cache, { vary: ['x-tenant'] }));
    app.get('/v', (req, res) => void res.send(`${req.get('accept-language')} ${req.get('x-tenant')} ${++runs}`));
    const get = (lang: string, tenant: string) => request(app).get('/v').set('Accept-Language', lang).set('X-Tenant', tenant);
    assert.equal((await get('en', 'a')).text, 'en a 1');
    assert.equal((await get('de', 'a')).text, 'de a 2', 'a request in another language got the English entry');
    assert.equal((await get('en', 'b')).text, 'en b 3', "the middleware's own vary was dropped");
    const again = await get('en', 'a');
    assert.equal(again.headers['cache-status'], HIT_L1);
    assert.equal(again.text, 'en a 1');
    assert.equal(runs, 3);
  });

  it('jitter spreads the lifetimes of 404s stored for negativeTtl below it, never above it', async () => {
    const cache = open();
    const keys: string[] = [];
    const app = express();
    app.get('/n/:i', expressCache(cache, { ttl: '5m', negativeTtl: '30s', jitter: '50%' }), (req, res) => {
      keys.push(cache.keyFor(req));
      res.status(404).send('none');
    });
    for (let i = 0; i < 20; i++) assert.equal((await request(app).get(`/n/${i}`)).headers['cache-status'], STORED);
    const lifetimes = keys.map((k) => {
      const entry = cache.store.l1!.peek(k)!;
      return entry.freshUntil - entry.createdAt;
    });
    for (const ms of lifetimes) assert.ok(ms > 15_000 && ms <= 30_000, `a lifetime of ${ms} ms is outside (15 s, 30 s]`);
    assert.ok(new Set(lifetimes).size >= 10, `20 negative entries filled together got ${new Set(lifetimes).size} distinct lifetimes`);
  });
});
