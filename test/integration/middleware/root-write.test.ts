// Invalidation by writes never reaches '/' (DESIGN.md section 3): a POST to the
// root, or a login answered with a redirect to it, would otherwise empty the
// home page's entries on every instance at every sign-in. Writes elsewhere
// still invalidate their own path, by a tag of their own that no tag an app
// names can equal. Express 5 and 4, Koa 3 and 2.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp } from './apps.js';

const HIT_L1 = 'tiercache; hit; detail=L1';

describe("middleware: writes leave '/' alone", () => {
  const cleanup = useCleanup();

  for (const adapter of adapters) {
    it(`${adapter.name}: a POST to '/' and a login redirected to '/' leave the root's entry; a POST to /login still invalidates /login`, async () => {
      const cache = cleanup.track(createCache({ redis: false, ttl: '1m' }));
      let invalidations = 0;
      cache.on('invalidate', () => invalidations++);
      let n = 0;
      const app = buildApp(adapter, cache, {
        appLevel: true,
        routes: [
          { path: '/', handler: (io) => io.send(`home ${++n}`) },
          { path: '/login', handler: (io) => io.send(`login ${++n}`) },
          { path: '/', method: 'post', handler: (io) => io.send('posted') },
          { path: '/login', method: 'post', handler: (io) => (io.status(303), io.set('Location', '/'), io.send('')) },
        ],
      });
      const home = (await request(app.target).get('/')).text;
      const login = (await request(app.target).get('/login')).text;

      assert.equal((await request(app.target).post('/')).status, 200);
      const afterPost = await request(app.target).get('/');
      assert.equal(afterPost.headers['cache-status'], HIT_L1, "a POST to '/' invalidated the root");
      assert.equal(afterPost.text, home);

      assert.equal((await request(app.target).post('/login')).status, 303);
      // The write to /login itself is invalidated (a sign that writes were looked at at all).
      for (let i = 0; i < 100 && invalidations === 0; i++) await new Promise((r) => setTimeout(r, 5));
      assert.notEqual((await request(app.target).get('/login')).text, login, 'the POST to /login did not invalidate /login');
      const afterLogin = await request(app.target).get('/');
      assert.equal(afterLogin.headers['cache-status'], HIT_L1, "a redirect to '/' invalidated the root");
      assert.equal(afterLogin.text, home);
      assert.equal(invalidations, 1, 'only the write to /login invalidated anything');
    });

    it(`${adapter.name}: a write invalidates its path's own tag, not an app's tag spelled like that path`, async () => {
      const cache = cleanup.track(createCache({ redis: false, ttl: '1m' }));
      let n = 0;
      const app = buildApp(adapter, cache, {
        routes: [
          { path: '/home', mw: { tags: () => ['/promo'] }, handler: (io) => io.send(`home ${++n}`) },
          { path: '/promo', mw: {}, handler: (io) => io.send(`promo ${++n}`) },
          { path: '/promo', method: 'post', mw: {}, handler: (io) => io.send('posted') },
        ],
      });
      const home = (await request(app.target).get('/home')).text;
      const promo = (await request(app.target).get('/promo')).text;
      const invalidated = new Promise<void>((resolve) => cache.once('invalidate', () => resolve()));
      assert.equal((await request(app.target).post('/promo')).status, 200);
      await invalidated;
      assert.notEqual((await request(app.target).get('/promo')).text, promo, 'the POST did not invalidate /promo');
      const after = await request(app.target).get('/home');
      assert.equal(after.headers['cache-status'], HIT_L1, "the write to /promo invalidated the entry tagged '/promo' by the app");
      assert.equal(after.text, home);
    });
  }
});
