// Cache-Status is a list, one member per cache that handled the request, the
// one closest to the origin first (RFC 9211 §2: caches SHOULD keep the value
// they find). An app proxying an origin behind a CDN or Varnish (examples/proxy)
// forwards that origin's Cache-Status; tiercache replaced it on the fill and
// dropped it from what it stored, so hits had none of it (found by a hostile
// review). The upstream's members are now stored as the origin sent them and
// ours follows them on fills, hits from L1 and L2, 304s and the front door's
// hits; with `cacheStatus: false` the upstream's is left as it is.
import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Koa from 'koa';
import Router from '@koa/router';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { front } from '../../../src/node.js';
import { bypassStatus, HIT_L1, HIT_L2, MISS_STORED, missStatus } from '../../../src/middleware/cache-status.js';
import type { MiddlewareOptions } from '../../../src/middleware/options.js';
import { useCleanup, useRedisCaches } from '../../support/cache-context.js';
import { setAsHeadGoesOut } from '../../support/head-hook.js';
import { Koa2 } from './apps.js';

/** Two caches upstream of the app, as a proxied origin's answer carries them (two field lines). */
const UPSTREAM = ['OriginShield; fwd=uri-miss; stored', 'ExampleCDN; hit; ttl=30'];
const UPSTREAM_TEXT = UPSTREAM.join(', ');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Options = MiddlewareOptions<any>;

interface Built {
  readonly target: RequestListener;
  readonly runs: { n: number };
}

const APPS: Record<'express' | 'koa', (cache: TierCache, options: Options, upstream?: string[]) => Built> = {
  express(cache, options, upstream = UPSTREAM) {
    const runs = { n: 0 };
    const app = express();
    app.get('/api/page', expressCache(cache, options), (_req, res) => {
      runs.n++;
      if (upstream.length > 0) res.setHeader('Cache-Status', upstream);
      res.send('page');
    });
    return { target: app as unknown as RequestListener, runs };
  },
  koa(cache, options, upstream = UPSTREAM) {
    const runs = { n: 0 };
    const app = new Koa();
    let served = 0;
    // A middleware in front that sets a header only after the first answer: hits are then written
    // over a header the entry lacks (the field-by-field path of replay, not the raw array).
    app.use(async (ctx, next) => {
      await next();
      if (++served > 1) ctx.set('X-Served', String(served));
    });
    app.use(koaCache(cache, options));
    app.use((ctx) => {
      runs.n++;
      if (upstream.length > 0) ctx.set('Cache-Status', upstream);
      ctx.body = 'page';
    });
    return { target: app.callback(), runs };
  },
};

describe('middleware: an upstream cache’s Cache-Status is kept, and ours follows it', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'cs-upstream-' });
  const cleanup = useCleanup();

  const status = (res: request.Response) => res.headers['cache-status'] as string | undefined;

  for (const framework of ['express', 'koa'] as const) {
    it(`${framework}: fill, L1 hit, L2 hit on another instance and a 304 say the upstream's members, then ours`, async () => {
      const a = await ctx.open();
      const b = await ctx.open();
      const appA = APPS[framework](a, { ttl: '5m' });
      const appB = APPS[framework](b, { ttl: '5m' });

      const fill = await request(appA.target).get('/api/page');
      assert.equal(fill.text, 'page');
      assert.equal(status(fill), `${UPSTREAM_TEXT}, ${MISS_STORED}`);

      const l1 = await request(appA.target).get('/api/page');
      assert.equal(status(l1), `${UPSTREAM_TEXT}, ${HIT_L1}`);
      const l2 = await request(appB.target).get('/api/page');
      assert.equal(status(l2), `${UPSTREAM_TEXT}, ${HIT_L2}`);
      assert.equal(appA.runs.n + appB.runs.n, 1);

      const etag = fill.headers.etag as string;
      const notModified = await request(appA.target).get('/api/page').set('If-None-Match', etag);
      assert.equal(notModified.status, 304);
      assert.equal(status(notModified), `${UPSTREAM_TEXT}, ${HIT_L1}`);
      // The fill's own 304 (a conditional request that misses) says the same as its 200 would.
      const fresh = APPS[framework](await ctx.open({ namespace: `${ctx.ns}-c` }), { ttl: '5m' });
      const filling304 = await request(fresh.target).get('/api/page').set('If-None-Match', etag);
      assert.equal(filling304.status, 304);
      assert.equal(status(filling304), `${UPSTREAM_TEXT}, ${MISS_STORED}`);

      // What is stored is the upstream's value alone: ours is said afresh on every answer.
      const keys = await ctx.admin.keys(`${ctx.ns}:GET:*`);
      assert.equal(keys.length, 1, keys.join(' '));
      const stored = (await ctx.admin.getBuffer(keys[0]!))!.toString('latin1');
      for (const member of UPSTREAM) assert.ok(stored.includes(member), `stored: ${member}`);
      assert.ok(!stored.includes('tiercache;'), 'a member of ours was stored');
    });

    it(`${framework}: with cacheStatus: false the upstream's value goes out as it came, on the fill and on hits`, async () => {
      const a = await ctx.open();
      const b = await ctx.open();
      const appA = APPS[framework](a, { ttl: '5m', cacheStatus: false });
      const appB = APPS[framework](b, { ttl: '5m', cacheStatus: false });
      assert.equal(status(await request(appA.target).get('/api/page')), UPSTREAM_TEXT);
      assert.equal(status(await request(appA.target).get('/api/page')), UPSTREAM_TEXT);
      assert.equal(status(await request(appB.target).get('/api/page')), UPSTREAM_TEXT);
      assert.equal(appA.runs.n + appB.runs.n, 1);
    });

    it(`${framework}: an answer with no upstream Cache-Status says ours alone, as before`, async () => {
      const a = await ctx.open();
      const app = APPS[framework](a, { ttl: '5m' }, []);
      assert.equal(status(await request(app.target).get('/api/page')), MISS_STORED);
      assert.equal(status(await request(app.target).get('/api/page')), HIT_L1);
    });
  }

  it('an answer not stored (no-store, an error status, too large for L1) says the upstream’s members, then why not', async () => {
    const cache = cleanup.track(createCache({ namespace: `cs-upstream-l1-${process.pid}`, redis: false, l1: { maxBytes: 64 * 1024 } }));
    const app = express();
    const route = expressCache(cache, { ttl: '5m' });
    app.get('/api/no-store', route, (_req, res) => void res.setHeader('Cache-Status', UPSTREAM).set('Cache-Control', 'no-store').send('page'));
    app.get('/api/error', route, (_req, res) => void res.setHeader('Cache-Status', UPSTREAM).status(502).send('bad gateway'));
    app.get('/api/big', route, (_req, res) => void res.setHeader('Cache-Status', UPSTREAM).send(Buffer.alloc(100 * 1024, 'b')));
    // Within the body bound, but over L1's once its head and bookkeeping are counted.
    app.get('/api/near', route, (_req, res) => void res.setHeader('Cache-Status', UPSTREAM).send(Buffer.alloc(64 * 1024 - 200, 'n')));
    assert.equal(status(await request(app).get('/api/no-store')), `${UPSTREAM_TEXT}, ${missStatus('no-store')}`);
    assert.equal(status(await request(app).get('/api/error')), `${UPSTREAM_TEXT}, ${missStatus('status')}`);
    assert.equal(status(await request(app).get('/api/big')), `${UPSTREAM_TEXT}, ${missStatus('too-large')}`);
    assert.equal(status(await request(app).get('/api/near')), `${UPSTREAM_TEXT}, ${missStatus('too-large')}`);
  });

  it('a stale-if-error answer says the stored upstream’s members, then ours; a hook that keeps the answer from the cache as its head goes out too', async () => {
    const cache = cleanup.track(createCache({ namespace: `cs-upstream-sie-${process.pid}`, redis: false }));
    const app = express();
    app.use((req, res, next) => {
      if (req.path !== '/api/late') return next();
      setAsHeadGoesOut(res, 'Tiercache-Cache-Control', 'no-store');
      next();
    });
    let failing = false;
    app.get('/api/doc', expressCache(cache, { ttl: 100, staleIfError: '10s' }), (_req, res) => {
      if (failing) return void res.status(503).send('down');
      res.setHeader('Cache-Status', UPSTREAM).send('doc');
    });
    app.get('/api/late', expressCache(cache, { ttl: '5m' }), (_req, res) => void res.setHeader('Cache-Status', UPSTREAM).send('late'));
    assert.equal(status(await request(app).get('/api/doc')), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    await new Promise((resolve) => setTimeout(resolve, 150));
    failing = true;
    const stale = await request(app).get('/api/doc');
    assert.equal(stale.text, 'doc');
    assert.match(String(status(stale)), /^OriginShield; fwd=uri-miss; stored, ExampleCDN; hit; ttl=30, tiercache; hit; ttl=-\d+; detail=L1$/);
    assert.equal(status(await request(app).get('/api/late')), `${UPSTREAM_TEXT}, ${missStatus('no-store')}`);
  });

  for (const framework of ['express', 'koa'] as const) {
    it(`${framework}: answers passed through (a bypass, a HEAD miss) keep the upstream's members, and the reason we said follows them`, async () => {
      const cache = await ctx.open();
      const app = APPS[framework](cache, { ttl: '5m' });
      const bypassed = await request(app.target).get('/api/page').set('Authorization', 'Bearer t');
      assert.equal(status(bypassed), `${UPSTREAM_TEXT}, ${bypassStatus('authorization')}`);
      const head = await request(app.target).head('/api/page');
      assert.equal(status(head), `${UPSTREAM_TEXT}, ${missStatus('head')}`);
      // Without an upstream's, ours alone, as before.
      const plain = APPS[framework](await ctx.open({ namespace: `${ctx.ns}-plain` }), { ttl: '5m' }, []);
      assert.equal(status(await request(plain.target).get('/api/page').set('Authorization', 'Bearer t')), bypassStatus('authorization'));
      assert.equal(app.runs.n, 2);
    });
  }

  it('the front door replays the upstream’s members, then ours, on its hits (and with cacheStatus: false, theirs alone)', async () => {
    const cache = await ctx.open();
    const app = APPS.express(cache, { ttl: '5m' });
    const door = front(cache, app.target);
    const quiet = front(cache, app.target, { cacheStatus: false });
    assert.equal(status(await request(door).get('/api/page')), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    const hit = await request(door).get('/api/page');
    assert.equal(status(hit), `${UPSTREAM_TEXT}, ${HIT_L1}`);
    const notModified = await request(door).get('/api/page').set('If-None-Match', hit.headers.etag as string);
    assert.equal(notModified.status, 304);
    assert.equal(status(notModified), `${UPSTREAM_TEXT}, ${HIT_L1}`);
    assert.equal(status(await request(quiet).get('/api/page')), UPSTREAM_TEXT);
    assert.equal(app.runs.n, 1, 'every hit above came from the front door or the middleware, the handler ran once');
  });

  it('a Cache-Status a middleware in front of the cache set before the app ran is no upstream’s: not stored, not replayed', async () => {
    const a = await ctx.open();
    const app = express();
    let n = 0;
    app.use((_req, res, next) => void (res.setHeader('Cache-Status', `edge; fwd=uri-miss; req=${++n}`), next()));
    app.get('/api/page', expressCache(a, { ttl: '5m' }), (_req, res) => void res.send('page'));
    app.get('/api/proxied', expressCache(a, { ttl: '5m' }), (_req, res) => void res.setHeader('Cache-Status', UPSTREAM).send('page'));
    assert.equal(status(await request(app).get('/api/page')), MISS_STORED);
    assert.equal(status(await request(app).get('/api/page')), HIT_L1);
    // The handler's own (an upstream's) is, as everywhere else.
    assert.equal(status(await request(app).get('/api/proxied')), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    assert.equal(status(await request(app).get('/api/proxied')), `${UPSTREAM_TEXT}, ${HIT_L1}`);
    for (const key of await ctx.admin.keys(`${ctx.ns}:GET:*`)) assert.ok(!(await ctx.admin.getBuffer(key))!.toString('latin1').includes('edge;'), `${key} stored the front layer's member`);
  });

  // A proxying handler that appends the origin's members (res.append) to a value a layer in front set
  // before the app ran: only what it appended is the upstream's. The front layer's member of the
  // filling request (req=1) was stored with them and replayed, before ours, to every later client.
  it('members the handler appends to a Cache-Status a middleware in front set are the upstream’s; the front layer’s is not stored, not replayed', async () => {
    const a = await ctx.open();
    const app = express();
    let n = 0;
    app.use((_req, res, next) => void (res.setHeader('Cache-Status', `edge; fwd=uri-miss; req=${++n}`), next()));
    app.get('/api/proxied', expressCache(a, { ttl: '5m' }), (_req, res) => void res.append('Cache-Status', UPSTREAM).send('page'));
    assert.equal(status(await request(app).get('/api/proxied')), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    assert.equal(status(await request(app).get('/api/proxied')), `${UPSTREAM_TEXT}, ${HIT_L1}`, "the first request's front member was replayed");
    // A front layer's value of two field lines: each is taken off.
    const two = express();
    two.use((_req, res, next) => void (res.setHeader('Cache-Status', ['lb; fwd=uri-miss', `edge; fwd=uri-miss; req=${++n}`]), next()));
    two.get('/api/two', expressCache(a, { ttl: '5m' }), (_req, res) => void res.append('Cache-Status', UPSTREAM).send('page'));
    assert.equal(status(await request(two).get('/api/two')), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    assert.equal(status(await request(two).get('/api/two')), `${UPSTREAM_TEXT}, ${HIT_L1}`, "the first request's front members were replayed");
    for (const key of await ctx.admin.keys(`${ctx.ns}:GET:*`)) assert.ok(!(await ctx.admin.getBuffer(key))!.toString('latin1').includes('edge;'), `${key} stored the front layer's member`);
  });

  // The same, joined by hand into one field line (`res.getHeader(...) + ', ' + theirs`): only arrays were read as
  // appended to, so the front layer's member of the filling request was stored and replayed with the upstream's.
  it('members the handler joins by hand to a Cache-Status a middleware in front set are the upstream’s; the front layer’s is not stored, not replayed', async () => {
    const a = await ctx.open();
    const app = express();
    let n = 0;
    app.use((_req, res, next) => void (res.setHeader('Cache-Status', `edge; fwd=uri-miss; req=${++n}`), next()));
    app.get('/api/joined', expressCache(a, { ttl: '5m' }), (_req, res) => void res.set('Cache-Status', `${String(res.getHeader('Cache-Status'))}, ${UPSTREAM_TEXT}`).send('page'));
    assert.equal(status(await request(app).get('/api/joined')), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    assert.equal(status(await request(app).get('/api/joined')), `${UPSTREAM_TEXT}, ${HIT_L1}`, "the first request's front member was replayed");
    // Koa, a front value of two field lines (ctx.response.get joins them with a comma and no space).
    const koa = new Koa();
    koa.use(async (c, next) => {
      c.set('Cache-Status', ['lb; fwd=uri-miss', `edge; fwd=uri-miss; req=${++n}`]);
      await next();
    });
    koa.use(koaCache(a, { ttl: '5m' }));
    koa.use((c) => {
      c.set('Cache-Status', `${c.response.get('Cache-Status')},${UPSTREAM_TEXT}`);
      c.body = 'page';
    });
    const target = koa.callback();
    assert.equal(status(await request(target).get('/api/koa')), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    assert.equal(status(await request(target).get('/api/koa')), `${UPSTREAM_TEXT}, ${HIT_L1}`, "the first request's front members were replayed");
    for (const key of await ctx.admin.keys(`${ctx.ns}:GET:*`)) assert.ok(!(await ctx.admin.getBuffer(key))!.toString('latin1').includes('edge;'), `${key} stored the front layer's member`);
  });

  // Joined by hand, then one more member appended (res.append / ctx.append): an array whose first line holds the
  // front layer's member and the upstream's first. Arrays were matched line by line only, so the whole value was
  // the upstream's: the filling request's front member stored and replayed.
  it('members joined by hand to the front layer’s value and then appended: the front layer’s is not stored, not replayed', async () => {
    const a = await ctx.open();
    const app = express();
    let n = 0;
    app.use((_req, res, next) => void (res.setHeader('Cache-Status', `edge; fwd=uri-miss; req=${++n}`), next()));
    app.get('/api/joined-appended', expressCache(a, { ttl: '5m' }), (_req, res) => {
      res.set('Cache-Status', `${String(res.getHeader('Cache-Status'))}, ${UPSTREAM_TEXT}`);
      res.append('Cache-Status', 'shield; hit');
      res.send('page');
    });
    assert.equal(status(await request(app).get('/api/joined-appended')), `${UPSTREAM_TEXT}, shield; hit, ${MISS_STORED}`);
    assert.equal(status(await request(app).get('/api/joined-appended')), `${UPSTREAM_TEXT}, shield; hit, ${HIT_L1}`, "the first request's front member was replayed");
  });

  // Koa writes the head once every middleware has run: a middleware in front that adds a member after
  // next() (its own word on this answer) did so before our fill read the field, and was taken for an
  // upstream cache. Its member from the filling request was stored, and replayed before ours to every
  // later client (a per-request detail included), in place of the one it added to theirs.
  it('Koa: a member a middleware in front adds after next() is no upstream’s: not stored, not replayed to later clients', async () => {
    const a = await ctx.open();
    const app = new Koa();
    let n = 0;
    app.use(async (c, next) => {
      await next();
      c.append('Cache-Status', `edge; req=${++n}`);
    });
    app.use(koaCache(a, { ttl: '5m' }));
    app.use((c) => {
      if (c.path === '/api/page') c.set('Cache-Status', UPSTREAM);
      c.body = 'page';
    });
    const target = app.callback();
    assert.equal(status(await request(target).get('/api/page')), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    assert.equal(status(await request(target).get('/api/page')), `${UPSTREAM_TEXT}, ${HIT_L1}`, "the first request's member was replayed");
    // An answer with no upstream member: the one added in front is all the field holds when the fill reads it.
    assert.equal(status(await request(target).get('/api/own')), MISS_STORED);
    assert.equal(status(await request(target).get('/api/own')), HIT_L1, "the first request's member was replayed");
    for (const key of await ctx.admin.keys(`${ctx.ns}:GET:*`)) assert.ok(!(await ctx.admin.getBuffer(key))!.toString('latin1').includes('edge;'), `${key} stored the front layer's member`);
  });

  // The same under an app that answers by itself (ctx.respond = false) after its middleware are done: the field then
  // goes out later, with what the app adds, and the member added in front was stored as an upstream's and replayed
  // before ours to every later client. What a layer in front changes once the app is done, until Koa reads
  // ctx.respond, is that layer's; what the app set before, or adds to it after, is the upstream's.
  for (const [name, KoaFramework] of [
    ['koa3', Koa],
    ['koa2', Koa2],
  ] as const) {
    for (const said of ['on ctx', 'on app.context'] as const) {
      it(`${name}: a member a middleware in front adds after next() under an app that answers by itself later (${said}) is no upstream’s: not stored, not replayed`, async () => {
        const a = await ctx.open();
        const app = new KoaFramework();
        if (said === 'on app.context') app.context.respond = false;
        let n = 0;
        app.use(async (c, next) => {
          await next();
          // node's appendHeader adds to a list in place (Koa's append makes a new one).
          if (c.path === '/api/both') c.res.appendHeader('Cache-Status', `edge; req=${++n}`);
          else c.append('Cache-Status', `edge; req=${++n}`);
        });
        app.use(koaCache(a, { ttl: '5m' }));
        app.use((c) => {
          c.respond = false;
          // The upstream's members set as the app returns (its answer to come), or added once it answers, or both.
          if (c.path === '/api/early' || c.path === '/api/both' || c.path === '/api/replaces') c.res.setHeader('Cache-Status', [...UPSTREAM]);
          setImmediate(() => {
            c.res.statusCode = 200;
            if (c.path === '/api/appends') c.res.appendHeader('Cache-Status', UPSTREAM);
            if (c.path === '/api/both') c.res.appendHeader('Cache-Status', 'LateCDN; hit');
            // Its answer's own, set over everything said before.
            if (c.path === '/api/replaces') c.res.setHeader('Cache-Status', 'LateCDN; hit');
            c.res.end('page');
          });
        });
        const target = app.callback();
        for (const [path, upstream] of [
          ['/api/none', ''],
          ['/api/early', `${UPSTREAM_TEXT}, `],
          ['/api/appends', `${UPSTREAM_TEXT}, `],
          ['/api/both', `${UPSTREAM_TEXT}, LateCDN; hit, `],
          ['/api/replaces', 'LateCDN; hit, '],
        ] as const) {
          assert.equal(status(await request(target).get(path)), `${upstream}${MISS_STORED}`, path);
          const hit = await request(target).get(path);
          assert.equal(status(hit), `${upstream}${HIT_L1}`, `${path}: the first request's member was replayed`);
          assert.equal(hit.text, 'page');
        }
        for (const key of await ctx.admin.keys(`${ctx.ns}:GET:*`)) assert.ok(!(await ctx.admin.getBuffer(key))!.toString('latin1').includes('edge;'), `${key} stored the front layer's member`);
      });
    }
  }

  // An app that says on app.context that it answers by itself, where the middleware in front is the one that does
  // (a serializer of ctx.body, in its code after next()): the head leaves before Koa reads ctx.respond, and what that
  // middleware added is its own, as for one that says so per request before next().
  for (const [name, KoaFramework] of [
    ['koa3', Koa],
    ['koa2', Koa2],
  ] as const) {
    it(`${name}: under app.context.respond = false, a member the middleware in front that writes the answer adds after next() is no upstream’s`, async () => {
      const a = await ctx.open();
      const app = new KoaFramework();
      app.context.respond = false;
      let n = 0;
      app.use(async (c, next) => {
        await next();
        c.append('Cache-Status', `edge; req=${++n}`);
        if (c.res.headersSent) return; // a hit, written at once (app.context has a respond of its own)
        c.res.statusCode = c.status;
        c.res.end(String(c.body));
      });
      app.use(koaCache(a, { ttl: '5m' }));
      app.use((c) => {
        if (c.path === '/api/page') c.set('Cache-Status', UPSTREAM);
        c.body = 'page';
      });
      const target = app.callback();
      for (const [path, upstream] of [
        ['/api/own', ''],
        ['/api/page', `${UPSTREAM_TEXT}, `],
      ] as const) {
        assert.equal(status(await request(target).get(path)), `${upstream}${MISS_STORED}`, path);
        assert.equal(status(await request(target).get(path)), `${upstream}${HIT_L1}`, `${path}: the first request's member was replayed`);
      }
      for (const key of await ctx.admin.keys(`${ctx.ns}:GET:*`)) assert.ok(!(await ctx.admin.getBuffer(key))!.toString('latin1').includes('edge;'), `${key} stored the front layer's member`);
    });
  }

  // Only Koa's next() returns a promise (its layers in front may still change the head); an Express handler that
  // answers after an await sets the upstream's members after next() returned, and they are kept.
  it('Express: a handler that answers after an await keeps the upstream’s members', async () => {
    const a = await ctx.open();
    const app = express();
    app.get('/api/later', expressCache(a, { ttl: '5m' }), async (_req, res) => {
      await new Promise<void>((resolve) => setImmediate(resolve));
      res.setHeader('Cache-Status', UPSTREAM).send('page');
    });
    assert.equal(status(await request(app).get('/api/later')), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    assert.equal(status(await request(app).get('/api/later')), `${UPSTREAM_TEXT}, ${HIT_L1}`);
  });

  it('Koa: a middleware in front that removes Cache-Status after next() (internals hidden from clients) keeps it out: not stored, not replayed', async () => {
    const a = await ctx.open();
    const app = new Koa();
    app.use(async (c, next) => {
      await next();
      c.remove('Cache-Status');
    });
    app.use(koaCache(a, { ttl: '5m' }));
    app.use((c) => {
      c.set('Cache-Status', UPSTREAM);
      c.body = 'page';
    });
    const target = app.callback();
    assert.equal(status(await request(target).get('/api/page')), MISS_STORED);
    assert.equal(status(await request(target).get('/api/page')), HIT_L1);
    for (const key of await ctx.admin.keys(`${ctx.ns}:GET:*`)) assert.ok(!(await ctx.admin.getBuffer(key))!.toString('latin1').includes('ExampleCDN'), `${key} stored the member the layer in front removed`);
  });

  // A Koa app that answers by itself (ctx.respond = false: an Express app or a proxy handed the request, README)
  // writes its head after its middleware are done: the Cache-Status it sets then is the upstream's it proxies. The
  // fill read the field as the middleware left it (none yet) and took the upstream's members off at the head.
  for (const [name, KoaFramework] of [
    ['koa3', Koa],
    ['koa2', Koa2],
  ] as const) {
    it(`${name}: an app that answers by itself (ctx.respond = false) after its middleware are done keeps the upstream’s members, stored and replayed`, async () => {
      const a = await ctx.open();
      const legacy = express();
      legacy.get('/api/legacy', (_req, res) => {
        setTimeout(() => res.status(200).set('Cache-Status', UPSTREAM).send('legacy'), 5);
      });
      const app = new KoaFramework();
      app.use(koaCache(a, { ttl: '5m' }));
      app.use((c) => {
        c.respond = false;
        if (c.path === '/api/legacy') return (legacy as unknown as RequestListener)(c.req, c.res);
        setImmediate(() => {
          c.res.statusCode = 200;
          c.res.setHeader('Cache-Status', UPSTREAM);
          c.res.end('page');
        });
      });
      const target = app.callback();
      for (const path of ['/api/page', '/api/legacy']) {
        assert.equal(status(await request(target).get(path)), `${UPSTREAM_TEXT}, ${MISS_STORED}`, path);
        assert.equal(status(await request(target).get(path)), `${UPSTREAM_TEXT}, ${HIT_L1}`, path);
      }

      // A middleware in front that answers by itself (said before next()) adds its member after next(), before it writes:
      // still no upstream's.
      const b = await ctx.open({ namespace: `${ctx.ns}-framed` });
      const framed = new KoaFramework();
      let n = 0;
      framed.use(async (c, next) => {
        c.respond = false;
        await next();
        c.append('Cache-Status', `edge; req=${++n}`);
        c.res.statusCode = c.status;
        c.res.end(String(c.body));
      });
      framed.use(koaCache(b, { ttl: '5m' }));
      framed.use((c) => {
        c.set('Cache-Status', UPSTREAM);
        c.body = 'page';
      });
      const framedTarget = framed.callback();
      assert.equal(status(await request(framedTarget).get('/api/page')), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
      assert.equal(n, 1);
      for (const key of await ctx.admin.keys(`${ctx.ns}-framed:GET:*`)) assert.ok(!(await ctx.admin.getBuffer(key))!.toString('latin1').includes('edge;'), `${key} stored the front layer's member`);
    });
  }

  // Koa reads ctx.respond wherever it is set: an app that answers every request by itself may say so once, on its
  // context prototype (app.context.respond = false), before its first request (a property of app.context's own: the
  // cache's accessor is never put there) or after (through that accessor). Only a respond of ctx's own was read.
  for (const [name, KoaFramework] of [
    ['koa3', Koa],
    ['koa2', Koa2],
  ] as const) {
    for (const when of ['before', 'after'] as const) {
      it(`${name}: an app that says on app.context that it answers by itself (${when} its first request) keeps the upstream’s members, stored and replayed`, async () => {
        const a = await ctx.open();
        const app = new KoaFramework();
        if (when === 'before') app.context.respond = false;
        app.use(koaCache(a, { ttl: '5m' }));
        app.use((c) => {
          if (when === 'after' && c.path === '/api/first') {
            c.body = 'first';
            return;
          }
          setImmediate(() => {
            c.res.statusCode = 200;
            c.res.setHeader('Cache-Status', UPSTREAM);
            c.res.end('page');
          });
        });
        const target = app.callback();
        if (when === 'after') {
          assert.equal(status(await request(target).get('/api/first')), MISS_STORED);
          assert.equal(status(await request(target).get('/api/first')), HIT_L1);
          app.context.respond = false;
        }
        assert.equal(status(await request(target).get('/api/page')), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
        const hit = await request(target).get('/api/page');
        assert.equal(status(hit), `${UPSTREAM_TEXT}, ${HIT_L1}`);
        assert.equal(hit.text, 'page');
      });
    }
  }

  it('origin mode: a revalidation the upstream answers with 304 keeps its new Cache-Status, and ours follows it', async () => {
    const cache = await ctx.open({ freshness: 'origin' });
    const app = express();
    let runs = 0;
    app.get('/api/doc', expressCache(cache), (req, res) => {
      runs++;
      res.set('Cache-Control', 'max-age=1').set('ETag', '"v1"');
      if (req.get('if-none-match') === '"v1"') return void res.set('Cache-Status', 'ExampleCDN; hit').status(304).end();
      res.set('Cache-Status', 'ExampleCDN; fwd=uri-miss; stored').send('doc');
    });
    assert.equal(status(await request(app).get('/api/doc')), `ExampleCDN; fwd=uri-miss; stored, ${MISS_STORED}`);
    assert.equal(status(await request(app).get('/api/doc')), `ExampleCDN; fwd=uri-miss; stored, ${HIT_L1}`);
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    const revalidated = await request(app).get('/api/doc');
    assert.equal(revalidated.text, 'doc');
    assert.equal(status(revalidated), 'ExampleCDN; hit, tiercache; fwd=stale; fwd-status=304; stored');
    assert.equal(status(await request(app).get('/api/doc')), `ExampleCDN; hit, ${HIT_L1}`);
    assert.equal(runs, 2);
  });

  it('origin mode: a stale-if-error answer to a revalidation retried unconditionally says the stored upstream’s members, then ours', async () => {
    const cache = await ctx.open({ freshness: 'origin' });
    const app = express();
    const seen: string[] = [];
    app.get('/api/doc', expressCache(cache), (req, res) => {
      seen.push(req.get('if-none-match') ?? 'unconditional');
      // Stale at once: the next request revalidates.
      if (seen.length === 1) return void res.set('Cache-Control', 'max-age=0, stale-if-error=60').set('ETag', '"v1"').set('Cache-Status', UPSTREAM).send('doc');
      // A 304 that selects nothing stored (another validator): the cache asks again unconditionally, and that fails.
      if (req.get('if-none-match') !== undefined) return void res.set('ETag', '"v2"').status(304).end();
      res.status(503).send('down');
    });
    assert.equal(status(await request(app).get('/api/doc')), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    const stale = await request(app).get('/api/doc');
    assert.deepEqual(seen, ['unconditional', '"v1"', 'unconditional']);
    assert.equal(stale.text, 'doc');
    assert.match(String(status(stale)), /^OriginShield; fwd=uri-miss; stored, ExampleCDN; hit; ttl=30, tiercache; /);
  });

  it('a Cache-Status said by an outer layer of ours before the app ran is not taken for an upstream’s by the layer that fills', async () => {
    const cache = await ctx.open({ routes: { '/api': '5m' } });
    const app = express();
    // The app-wide layer turns a request with Authorization away (said before the app runs); the route's own, shared, fills it.
    app.use(expressCache(cache));
    let runs = 0;
    app.get('/api/page', expressCache(cache, { shared: true }), (_req, res) => void (runs++, res.send('page')));
    const first = await request(app).get('/api/page').set('Authorization', 'Bearer t');
    assert.equal(status(first), MISS_STORED);
    const hit = await request(app).get('/api/page').set('Authorization', 'Bearer t');
    assert.equal(status(hit), HIT_L1);
    assert.equal(runs, 1);
    assert.notEqual(status(hit), `${bypassStatus('authorization')}, ${HIT_L1}`);
  });

  it('under an outer layer’s bypass, a handler that appends the upstream’s members to ours, or takes ours off, gets the upstream’s then the filling layer’s, or that one’s alone', async () => {
    const cache = await ctx.open({ routes: { '/api': '5m' } });
    const app = express();
    app.use(expressCache(cache));
    app.get('/api/appended', expressCache(cache, { shared: true }), (_req, res) => void res.append('Cache-Status', UPSTREAM).send('page'));
    app.get('/api/cleared', expressCache(cache, { shared: true }), (_req, res) => void (res.removeHeader('Cache-Status'), res.send('page')));
    const get = async (path: string) => status(await request(app).get(path).set('Authorization', 'Bearer t'));
    assert.equal(await get('/api/appended'), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    assert.equal(await get('/api/appended'), `${UPSTREAM_TEXT}, ${HIT_L1}`);
    assert.equal(await get('/api/cleared'), MISS_STORED);
    assert.equal(await get('/api/cleared'), HIT_L1);
  });

  // The handler joins the upstream's members by hand to the one our outer layer said (`prev + ', ' + theirs`): only
  // arrays were read member by member, so ours was taken for an upstream's, stored and replayed on every hit, and on a
  // bypassed answer said twice.
  it('under an outer layer’s bypass, a handler that joins the upstream’s members to ours by hand: ours is not stored, not replayed, not said twice', async () => {
    const cache = await ctx.open({ routes: { '/api': '5m' } });
    const app = express();
    const join = (res: express.Response) => res.set('Cache-Status', `${String(res.getHeader('Cache-Status'))}, ${UPSTREAM_TEXT}`);
    app.use(expressCache(cache));
    app.get('/api/joined', expressCache(cache, { shared: true }), (_req, res) => void join(res).send('page'));
    app.get('/api/passed', (_req, res) => void join(res).send('page'));
    const get = async (path: string) => status(await request(app).get(path).set('Authorization', 'Bearer t'));
    assert.equal(await get('/api/joined'), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    assert.equal(await get('/api/joined'), `${UPSTREAM_TEXT}, ${HIT_L1}`, 'our bypass member was replayed as an upstream’s');
    assert.equal(await get('/api/passed'), `${UPSTREAM_TEXT}, ${bypassStatus('authorization')}`);
  });

  // Joined in RFC 9211's order (the upstream's members first, nearer the origin: `theirs + ', ' + prev`): only the
  // head of a joined line was matched, so the front layer's member, or our outer layer's bypass member, at its tail
  // was taken for an upstream's: stored and replayed on every hit, and on a bypassed answer ours said twice.
  it('a handler that joins the upstream’s members before the value set in front (theirs, then prev): the front layer’s member and ours are not stored, not replayed, not said twice', async () => {
    const cache = await ctx.open({ routes: { '/api': '5m' } });
    const app = express();
    let n = 0;
    const join = (res: express.Response) => res.set('Cache-Status', `${UPSTREAM_TEXT}, ${String(res.getHeader('Cache-Status'))}`);
    app.use((req, res, next) => void (req.path === '/api/front' && res.setHeader('Cache-Status', `edge; fwd=uri-miss; req=${++n}`), next()));
    app.use(expressCache(cache));
    app.get('/api/front', expressCache(cache, { ttl: '5m' }), (_req, res) => void join(res).send('page'));
    app.get('/api/joined', expressCache(cache, { shared: true }), (_req, res) => void join(res).send('page'));
    app.get('/api/passed', (_req, res) => void join(res).send('page'));
    assert.equal(status(await request(app).get('/api/front')), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    assert.equal(status(await request(app).get('/api/front')), `${UPSTREAM_TEXT}, ${HIT_L1}`, "the first request's front member was replayed");
    const get = async (path: string) => status(await request(app).get(path).set('Authorization', 'Bearer t'));
    assert.equal(await get('/api/joined'), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    assert.equal(await get('/api/joined'), `${UPSTREAM_TEXT}, ${HIT_L1}`, 'our bypass member was replayed as an upstream’s');
    assert.equal(await get('/api/passed'), `${UPSTREAM_TEXT}, ${bypassStatus('authorization')}`);
  });

  it('a bypassed answer whose handler takes ours off goes out without one; an upstream’s single field line is kept as a list’s, passed through or filled under an outer bypass', async () => {
    const cache = await ctx.open({ routes: { '/api': '5m' } });
    const app = express();
    app.use(expressCache(cache));
    app.get('/api/cleared', (_req, res) => void (res.removeHeader('Cache-Status'), res.send('page')));
    app.get('/api/single', (_req, res) => void res.setHeader('Cache-Status', 'ExampleCDN; hit').send('page'));
    app.get('/api/single-filled', expressCache(cache, { shared: true }), (_req, res) => void res.setHeader('Cache-Status', 'ExampleCDN; hit').send('page'));
    const get = async (path: string) => status(await request(app).get(path).set('Authorization', 'Bearer t'));
    assert.equal(await get('/api/cleared'), undefined);
    assert.equal(await get('/api/single'), `ExampleCDN; hit, ${bypassStatus('authorization')}`);
    assert.equal(await get('/api/single-filled'), `ExampleCDN; hit, ${MISS_STORED}`);
    assert.equal(await get('/api/single-filled'), `ExampleCDN; hit, ${HIT_L1}`);
  });

  it('origin mode: a revalidation answered 304 under a middleware in front that sets Cache-Status stores none of it', async () => {
    const cache = await ctx.open({ freshness: 'origin' });
    const app = express();
    let n = 0;
    app.use((_req, res, next) => void (res.setHeader('Cache-Status', `edge; fwd=uri-miss; req=${++n}`), next()));
    app.get('/api/doc', expressCache(cache), (req, res) => {
      // Stale at once, so the next request revalidates; fresh for a minute once its 304 refreshed it, so the one after is a hit.
      const revalidating = req.get('if-none-match') === '"v1"';
      res.set('Cache-Control', revalidating ? 'max-age=60' : 'max-age=0').set('ETag', '"v1"');
      if (revalidating) return void res.status(304).end();
      res.send('doc');
    });
    assert.equal(status(await request(app).get('/api/doc')), MISS_STORED);
    assert.equal(status(await request(app).get('/api/doc')), 'tiercache; fwd=stale; fwd-status=304; stored');
    assert.equal(status(await request(app).get('/api/doc')), HIT_L1);
    for (const key of await ctx.admin.keys(`${ctx.ns}:GET:*`)) assert.ok(!(await ctx.admin.getBuffer(key))!.toString('latin1').includes('edge;'), `${key} stored the front layer's member`);
  });

  it('an only-if-cached request the route’s layer answers 504 under an outer layer’s bypass says that layer’s miss alone', async () => {
    const cache = await ctx.open({ routes: { '/api': '5m' } });
    const app = express();
    app.use(expressCache(cache));
    app.get('/api/page', expressCache(cache, { shared: true, freshness: 'origin' }), (_req, res) => void res.set('Cache-Control', 'max-age=60').send('page'));
    const res = await request(app).get('/api/page').set('Authorization', 'Bearer t').set('Cache-Control', 'only-if-cached');
    assert.equal(res.status, 504);
    assert.equal(status(res), 'tiercache; detail=only-if-cached');
  });

  it('the route’s layer that fills under an outer layer’s bypass says the upstream’s members, then its own, not the outer one’s', async () => {
    const cache = await ctx.open({ routes: { '/api': '5m' } });
    const app = express();
    app.use(expressCache(cache));
    app.get('/api/page', expressCache(cache, { shared: true }), (_req, res) => void res.setHeader('Cache-Status', UPSTREAM).send('page'));
    assert.equal(status(await request(app).get('/api/page').set('Authorization', 'Bearer t')), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    assert.equal(status(await request(app).get('/api/page').set('Authorization', 'Bearer t')), `${UPSTREAM_TEXT}, ${HIT_L1}`);
  });

  it('Koa, the same, with a middleware in front so hits are written field by field', async () => {
    const cache = await ctx.open({ routes: { '/api': '5m' } });
    const app = new Koa();
    const router = new Router();
    let served = 0;
    app.use(async (c, next) => {
      await next();
      if (++served > 1) c.set('X-Served', String(served));
    });
    app.use(koaCache(cache));
    router.get('/api/page', koaCache(cache, { shared: true }), (c) => {
      c.set('Cache-Status', UPSTREAM);
      c.body = 'page';
    });
    app.use(router.routes());
    const target = app.callback();
    assert.equal(status(await request(target).get('/api/page').set('Authorization', 'Bearer t')), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
    assert.equal(status(await request(target).get('/api/page').set('Authorization', 'Bearer t')), `${UPSTREAM_TEXT}, ${HIT_L1}`);
    assert.equal(status(await request(target).get('/api/page')), `${UPSTREAM_TEXT}, ${HIT_L1}`, 'without credentials, the app-wide layer serves it');
  });

  it('Koa over HTTP/2: the fill, hits and a bypassed answer say the upstream’s members, then ours', async () => {
    const cache = await ctx.open();
    const app = APPS.koa(cache, { ttl: '5m' });
    const server = http2.createServer(app.target as never);
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on('session', (session) => sessions.add(session));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const get = (headers: Record<string, string> = {}) =>
      new Promise<string | undefined>((resolve, reject) => {
        const stream = client.request({ ':path': '/api/page', ...headers });
        let value: string | undefined;
        stream.on('response', (h) => (value = [h['cache-status']].flat().join(', ') || undefined));
        stream.resume();
        stream.on('end', () => resolve(value));
        stream.on('error', reject);
      });
    try {
      assert.equal(await get(), `${UPSTREAM_TEXT}, ${MISS_STORED}`);
      assert.equal(await get(), `${UPSTREAM_TEXT}, ${HIT_L1}`);
      assert.equal(await get({ authorization: 'Bearer t' }), `${UPSTREAM_TEXT}, ${bypassStatus('authorization')}`);
      assert.equal(app.runs.n, 2);
    } finally {
      client.destroy();
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
