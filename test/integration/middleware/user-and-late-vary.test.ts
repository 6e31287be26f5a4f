// Two ways one user was served another's answer (found by a hostile review):
// a `user` option returning something other than a string or a number (an
// object, a promise from an async callback, NaN) put every user on one key;
// and a Vary added as the head went out (a hook mounted before the cache)
// reached the client but not the key, so the entry had no variants.
import assert from 'node:assert/strict';
import compression from 'compression';
import express from 'express';
import Koa from 'koa';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup } from '../../support/cache-context.js';

let counter = 0;

/** What on-headers does: a writeHead wrapper, mounted before the cache, that adds Authorization to Vary as the head goes out. */
function varyOnAuthorizationLate(_req: express.Request, res: express.Response, next: express.NextFunction): void {
  const writeHead = res.writeHead;
  res.writeHead = function (this: typeof res, ...args: unknown[]) {
    this.setHeader('Vary', [this.getHeader('vary'), 'Authorization'].filter(Boolean).join(', '));
    return (writeHead as (...a: unknown[]) => typeof res).apply(this, args);
  } as typeof res.writeHead;
  next();
}

describe('middleware: a user option that returns no id, and a Vary added late', () => {
  const cleanup = useCleanup();
  const newCache = () => cleanup.track(createCache({ namespace: `user-vary-${process.pid}-${++counter}`, redis: false }));
  const errorsOf = (cache: TierCache) => {
    const errors: string[] = [];
    cache.on('error', (e: { err: Error }) => errors.push(e.err.message));
    return errors;
  };

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  // What each is called in the error, which says what to return instead.
  const returns: Array<[string, (who: string) => any, string]> = [
    ['an object', (who) => ({ id: who }), 'an object'],
    ['a promise', async (who) => who, 'a promise (user() must not be async)'],
    ['NaN', () => Number.NaN, 'NaN'],
    ['a boolean', () => true, 'a boolean'],
  ];
  for (const [what, userOf, called] of returns) {
    it(`Express: a user() returning ${what} passes every request through uncached (reported), never one user's answer to another`, async () => {
      const cache = newCache();
      const errors = errorsOf(cache);
      const app = express();
      app.get('/api/me', expressCache(cache, { ttl: '1m', user: (req) => userOf(String(req.headers['x-who'])) }), (req, res) => void res.json({ me: req.headers['x-who'] }));
      for (const who of ['alice', 'bob', 'bob']) {
        const res = await request(app).get('/api/me').set('x-who', who).set('cookie', `s=${who}`);
        assert.deepEqual(res.body, { me: who }, `${who} got another user's answer`);
      }
      assert.ok(errors.includes(`tiercache: the user option returned ${called}, not a string or a finite number (return the id, e.g. req.user?.id); the request passed through uncached`), `not reported as it should be: ${errors.join(' | ')}`);
    });

    it(`Koa: a user() returning ${what} passes every request through uncached, never one user's answer to another`, async () => {
      const cache = newCache();
      const app = new Koa();
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      app.use(koaCache(cache, { ttl: '1m', user: (ctx: any) => userOf(String(ctx.get('x-who'))) }) as never);
      app.use((ctx) => {
        ctx.body = { me: ctx.get('x-who') };
      });
      for (const who of ['alice', 'bob', 'bob']) {
        const res = await request(app.callback()).get('/api/me').set('x-who', who).set('cookie', `s=${who}`);
        assert.deepEqual(res.body, { me: who }, `${who} got another user's answer`);
      }
    });
  }

  // `req.session?.userId ?? ''`: an empty id is no id. Taken as one, every anonymous session
  // shared the user-scoped entry of '', and its Cookie no longer kept the answer out of the cache.
  it("Express and Koa: a user() returning '' is no user: anonymous sessions never share an answer", async () => {
    const cache = newCache();
    const exp = express();
    exp.get('/api/cart', expressCache(cache, { ttl: '1m', user: () => '' }), (req, res) => void res.json({ cart: req.headers.cookie ?? 'none' }));
    const koa = new Koa();
    koa.use(koaCache(cache, { ttl: '1m', user: () => '' }) as never);
    koa.use((ctx) => {
      ctx.body = { cart: ctx.get('cookie') || 'none' };
    });
    for (const app of [exp, koa.callback()]) {
      for (const session of ['s=anon-1', 's=anon-2']) {
        const res = await request(app).get('/api/cart').set('cookie', session);
        assert.deepEqual(res.body, { cart: session }, `the session ${session} got another session's cart`);
        assert.match(String(res.headers['cache-status']), /fwd=bypass; detail=cookie/);
      }
    }
  });

  it('Express: a Vary added as the head goes out (a writeHead hook mounted before the cache, as on-headers) keys the entry: each Authorization gets its own answer', async () => {
    const cache = newCache();
    const app = express();
    app.use(varyOnAuthorizationLate);
    let runs = 0;
    app.get('/api/feed', expressCache(cache, { shared: true, ttl: '1m' }), (req, res) => {
      runs++;
      res.json({ feed: `for ${req.headers.authorization}` });
    });
    const alice = await request(app).get('/api/feed').set('authorization', 'Bearer alice');
    assert.equal(alice.body.feed, 'for Bearer alice');
    const bob = await request(app).get('/api/feed').set('authorization', 'Bearer bob');
    assert.equal(bob.body.feed, 'for Bearer bob', "bob got alice's answer");
    const again = await request(app).get('/api/feed').set('authorization', 'Bearer alice');
    assert.equal(again.body.feed, 'for Bearer alice');
    assert.match(String(again.headers['cache-status']), /hit/);
    assert.equal(runs, 2);
    // The entry holds the Vary the fill sent, the late one included: served where no hook adds it again (the
    // same cache and route without that hook), its hit still tells a shared cache further out to key on it.
    const bare = express();
    bare.get('/api/feed', expressCache(cache, { shared: true, ttl: '1m' }), () => assert.fail('the handler ran'));
    const replayed = await request(bare).get('/api/feed').set('authorization', 'Bearer alice');
    assert.match(String(replayed.headers['cache-status']), /hit/);
    assert.equal(replayed.body.feed, 'for Bearer alice');
    assert.equal(replayed.headers.vary, alice.headers.vary);
  });

  it('Express: the same with compression() in front encoding the answer (its own Vary: Accept-Encoding left out of the key)', async () => {
    const cache = newCache();
    const app = express();
    app.use(compression({ threshold: 0 }));
    app.use(varyOnAuthorizationLate);
    let runs = 0;
    app.get('/api/feed', expressCache(cache, { shared: true, ttl: '1m' }), (req, res) => {
      runs++;
      res.json({ feed: `for ${req.headers.authorization}` });
    });
    const get = (who: string, encoding: string) => request(app).get('/api/feed').set('authorization', `Bearer ${who}`).set('accept-encoding', encoding);
    const alice = await get('alice', 'gzip');
    assert.equal(alice.headers['content-encoding'], 'gzip');
    assert.equal(alice.body.feed, 'for Bearer alice');
    assert.equal((await get('bob', 'gzip')).body.feed, 'for Bearer bob', "bob got alice's answer");
    const again = await get('alice', 'identity');
    assert.equal(again.body.feed, 'for Bearer alice');
    assert.match(String(again.headers['cache-status']), /hit/, 'keyed on Accept-Encoding as well');
    assert.equal(runs, 2);
  });
});
