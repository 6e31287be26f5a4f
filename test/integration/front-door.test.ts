// The front door (tiercache/node): public L1 hits are answered before the
// framework runs; everything else reaches the app untouched.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Koa from 'koa';
import { createCache, type CacheOptions, type TierCache } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { koaCache } from '../../src/koa.js';
import { front } from '../../src/node.js';
import { useCleanup } from '../support/cache-context.js';
import { rawGet } from '../support/http-bytes.js';

const { track, serve } = useCleanup();

async function listen(handler: RequestListener): Promise<string> {
  const server = await serve(handler);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function newCache(options: CacheOptions = {}): TierCache {
  return track(createCache({ redis: false, routes: { '/api/movies': '5m', '/api/admin': false }, ...options }));
}

describe('front door (tiercache/node) with Express', () => {
  function expressApp(cache: TierCache) {
    const counts = { framework: 0, movies: 0, me: 0 };
    const app = express();
    app.use((_req, _res, next) => {
      counts.framework++;
      next();
    });
    app.use(expressCache(cache));
    app.get('/api/movies', (_req, res) => {
      counts.movies++;
      res.json({ run: counts.movies });
    });
    app.get('/api/me', expressCache(cache, { ttl: '1m', user: (req) => req.header('x-user') }), (req, res) => {
      counts.me++;
      res.json({ user: req.header('x-user') ?? null, run: counts.me });
    });
    return { app, counts };
  }

  it('answers a repeat GET from L1 without running Express at all', async () => {
    const cache = newCache();
    const { app, counts } = expressApp(cache);
    const base = await listen(front(cache, app));
    const first = await fetch(`${base}/api/movies`);
    assert.equal(first.headers.get('cache-status'), 'tiercache; fwd=miss; stored');
    const body = await first.text();
    assert.equal(counts.framework, 1);
    const second = await fetch(`${base}/api/movies`);
    assert.equal(second.headers.get('cache-status'), 'tiercache; hit; detail=L1');
    assert.equal(await second.text(), body);
    assert.ok(second.headers.get('age') !== null);
    assert.equal(second.headers.get('etag'), first.headers.get('etag'));
    assert.equal(counts.framework, 1, 'Express ran for the hit');
    const conditional = await fetch(`${base}/api/movies`, { headers: { 'if-none-match': first.headers.get('etag')! } });
    assert.equal(conditional.status, 304);
    const head = await fetch(`${base}/api/movies`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(body)));
    assert.equal(counts.framework, 1);
  });

  it('passes requests with Cookie or Authorization to the app', async () => {
    const cache = newCache();
    const { app, counts } = expressApp(cache);
    const base = await listen(front(cache, app));
    await fetch(`${base}/api/movies`);
    const withCookie = await fetch(`${base}/api/movies`, { headers: { cookie: 'sid=1' } });
    assert.equal(withCookie.headers.get('cache-status'), 'tiercache; fwd=bypass; detail=cookie');
    const withAuth = await fetch(`${base}/api/movies`, { headers: { authorization: 'Bearer x' } });
    assert.equal(withAuth.headers.get('cache-status'), 'tiercache; fwd=bypass; detail=authorization');
    assert.equal(counts.framework, 3);
  });

  it('passes a request its bypass(req) option returns true for to the app, although a public entry is in L1', async () => {
    const cache = newCache();
    const { app, counts } = expressApp(cache);
    const base = await listen(front(cache, app, { bypass: (req) => req.headers['x-preview'] === '1' }));
    await fetch(`${base}/api/movies`);
    assert.equal((await fetch(`${base}/api/movies`)).headers.get('cache-status'), 'tiercache; hit; detail=L1');
    assert.equal(counts.framework, 1);
    const preview = await fetch(`${base}/api/movies`, { headers: { 'x-preview': '1' } });
    assert.equal(preview.headers.get('cache-status'), 'tiercache; hit; detail=L1', 'the middleware, whose own bypass was not set, served it');
    assert.equal(counts.framework, 2, 'the app ran for the bypassed request');
  });

  it('passes a request with access_token in its query to the app, even where a shared route stored its answer', async () => {
    const cache = newCache({ routes: { '/api/feed': { ttl: '5m', shared: true } } });
    let framework = 0;
    const app = express();
    app.use((_req, _res, next) => {
      framework++;
      next();
    });
    app.use(expressCache(cache));
    app.get('/api/feed', (req, res) => res.send(`feed for ${String(req.query.access_token)}`));
    const base = await listen(front(cache, app));
    const fill = await fetch(`${base}/api/feed?access_token=A`);
    assert.equal(fill.headers.get('cache-status'), 'tiercache; fwd=miss; stored');
    const again = await fetch(`${base}/api/feed?access_token=A`);
    assert.equal(again.headers.get('cache-status'), 'tiercache; hit; detail=L1');
    assert.equal(await again.text(), 'feed for A');
    assert.equal(framework, 2, 'the front door answered a request carrying a credential');
  });

  it("keys a raw '#' as the app parses the target: /api/search?q=C# never answers ?q=C%23", async () => {
    const cache = newCache({ routes: { '/api/search': '5m' } });
    const app = express();
    app.use(expressCache(cache));
    app.get('/api/search', (req, res) => res.send(`results for ${JSON.stringify(req.query)}`));
    const server = await serve(front(cache, app));
    const attack = await rawGet(server, '/api/search?q=C#');
    assert.equal(attack.bytes.toString(), 'results for {"q":"C"}');
    const filled = await rawGet(server, '/api/search?q=C%23');
    assert.equal(filled.bytes.toString(), 'results for {"q":"C#"}', 'the front door served the entry of ?q=C');
    const victim = await rawGet(server, '/api/search?q=C%23');
    assert.deepEqual([victim.headers['cache-status'], victim.bytes.toString()], ['tiercache; hit; detail=L1', 'results for {"q":"C#"}']);
  });

  it('never serves a user-scoped entry, even to a request that would compute the same key', async () => {
    const cache = newCache();
    const { app, counts } = expressApp(cache);
    const base = await listen(front(cache, app));
    // Anonymous fill of a user-scoped route: its key has no user part.
    await fetch(`${base}/api/me`);
    const again = await fetch(`${base}/api/me`);
    assert.equal(again.headers.get('cache-status'), 'tiercache; hit; detail=L1');
    assert.equal(counts.framework, 2, 'the middleware, not the front door, served it');
    // A user identified by a header (no cookie) must not get the anonymous answer from the front door.
    const user = await fetch(`${base}/api/me`, { headers: { 'x-user': 'u1' } });
    assert.deepEqual(await user.json(), { user: 'u1', run: 2 });
  });

  it('stops serving an entry as soon as it is invalidated, and passes through when disabled', async () => {
    const cache = newCache();
    const { app, counts } = expressApp(cache);
    const base = await listen(front(cache, app));
    await fetch(`${base}/api/movies`);
    await fetch(`${base}/api/movies`);
    assert.equal(counts.movies, 1);
    await cache.invalidatePrefix('/api/movies');
    const after = await fetch(`${base}/api/movies`);
    assert.equal(after.headers.get('cache-status'), 'tiercache; fwd=miss; stored');
    assert.equal(counts.movies, 2);

    const off = newCache({ enabled: false });
    const disabled = expressApp(off);
    const offBase = await listen(front(off, disabled.app));
    await fetch(`${offBase}/api/movies`);
    const r = await fetch(`${offBase}/api/movies`);
    assert.equal(r.headers.get('cache-status'), null);
    assert.equal(disabled.counts.movies, 2);
  });

  it('counts a miss once: the front door looks without counting, the middleware behind it counts', async () => {
    const cache = newCache();
    const { app } = expressApp(cache);
    const base = await listen(front(cache, app));
    await (await fetch(`${base}/api/movies`)).text();
    assert.deepEqual([cache.stats().l1.hits, cache.stats().l1.misses], [0, 1]);
    await (await fetch(`${base}/api/movies`)).text();
    assert.deepEqual([cache.stats().l1.hits, cache.stats().l1.misses], [1, 1]);
  });

  /** An app behind the front door: a layer counting what reaches Express, the cache app-wide, then `handler` on /api/movies. */
  async function countedApp(cache: TierCache, handler: express.RequestHandler, options: Parameters<typeof expressCache>[1] = {}) {
    const reached = { n: 0 };
    const app = express();
    app.use((_req, _res, next) => {
      reached.n++;
      next();
    });
    app.use(expressCache(cache, options));
    app.get('/api/movies', handler);
    return { reached, base: await listen(front(cache, app)) };
  }

  it('answers a response that varies on a request header, from the variant the request selects', async () => {
    const cache = newCache();
    const { reached, base } = await countedApp(cache, (req, res) => {
      res.set('Vary', 'Accept-Language').send(`movies in ${req.header('accept-language')}`);
    });
    const fronted: boolean[] = [];
    cache.on('hit', (event: { front?: boolean }) => fronted.push(event.front === true));
    const get = async (language: string) => (await fetch(`${base}/api/movies`, { headers: { 'accept-language': language } })).text();
    assert.equal(await get('fr'), 'movies in fr');
    assert.equal(await get('de'), 'movies in de');
    assert.equal(reached.n, 2);
    assert.equal(await get('fr'), 'movies in fr');
    assert.equal(await get('de'), 'movies in de');
    assert.equal(reached.n, 2, 'a hit on a varied entry reached Express');
    assert.deepEqual(fronted, [true, true]);
  });

  // The front door remembers the key of a URL it answered (node.ts FrontKeys): only where the key is the URL's alone.
  // A route whose table rule varies on a header keys each request by its value, hit after hit, and a URL the front
  // door answered once is looked up again after an invalidation, not served from what it remembered.
  it('keys every request of a route whose rule varies on a header by its own value, however often the URL was answered', async () => {
    const cache = newCache({ routes: { '/api/movies': { ttl: '5m', vary: ['accept-language'] } } });
    const { reached, base } = await countedApp(cache, (req, res) => void res.send(`movies in ${req.header('accept-language')}`));
    const get = async (language: string) => {
      const answer = await fetch(`${base}/api/movies?page=1`, { headers: { 'accept-language': language } });
      return `${await answer.text()} (${answer.headers.get('cache-status')})`;
    };
    assert.equal(await get('fr'), 'movies in fr (tiercache; fwd=miss; stored)');
    assert.equal(await get('de'), 'movies in de (tiercache; fwd=miss; stored)');
    for (let round = 0; round < 3; round++) {
      assert.equal(await get('fr'), 'movies in fr (tiercache; hit; detail=L1)', `round ${round}`);
      assert.equal(await get('de'), 'movies in de (tiercache; hit; detail=L1)', `round ${round}`);
    }
    assert.equal(reached.n, 2, 'a hit reached Express');
    await cache.invalidatePrefix('/api/movies');
    assert.equal(await get('fr'), 'movies in fr (tiercache; fwd=miss; stored)', 'served after the invalidation');
    assert.equal(reached.n, 3);
  });

  it('never serves a varied entry of a user-scoped route, and leaves an entry past its freshness to the middleware', async () => {
    const { reached, base } = await countedApp(
      newCache(),
      (req, res) => {
        res.set('Vary', 'Accept-Language').send(`for ${req.header('x-user')} in ${req.header('accept-language')}`);
      },
      { user: (req) => req.headers['x-user'] as string | undefined },
    );
    const get = async () => (await fetch(`${base}/api/movies`, { headers: { 'accept-language': 'fr', 'x-user': 'u1' } })).text();
    assert.equal(await get(), 'for u1 in fr');
    assert.equal(await get(), 'for u1 in fr');
    assert.equal(reached.n, 2, 'the front door served a user-scoped varied entry');

    // Stale but still usable (stale-while-revalidate): the middleware's to serve, with its background refresh.
    const { reached: plain, base: plainBase } = await countedApp(newCache({ routes: { '/api/movies': 100 } }), (_req, res) => void res.send('plain'), { staleWhileRevalidate: '10s' });
    await (await fetch(`${plainBase}/api/movies`)).text();
    await new Promise((resolve) => setTimeout(resolve, 150));
    const stale = await fetch(`${plainBase}/api/movies`);
    assert.equal(await stale.text(), 'plain');
    assert.match(stale.headers.get('cache-status') ?? '', /^tiercache; hit; ttl=-\d+; detail=L1$/, 'the front door served an entry past its freshness as fresh');
    assert.ok(plain.n >= 2, 'the stale request did not reach the app');
  });

  it("leaves an origin-mode entry to the middleware when the request says something about it (Cache-Control, Pragma, Range)", async () => {
    let runs = 0;
    const { reached, base } = await countedApp(newCache({ freshness: 'origin', ttl: '1m' }), (_req, res) => {
      runs++;
      res.set('Cache-Control', 'max-age=60').send(`run ${runs}`);
    });
    assert.equal(await (await fetch(`${base}/api/movies`)).text(), 'run 1');
    assert.equal(await (await fetch(`${base}/api/movies`)).text(), 'run 1');
    assert.equal(reached.n, 1, 'a plain repeat did not come from the front door');
    for (const headers of [{ 'cache-control': 'no-cache' }, { pragma: 'no-cache' }, { range: 'bytes=0-2' }] as Array<Record<string, string>>) {
      const before: number = reached.n;
      await (await fetch(`${base}/api/movies`, { headers })).arrayBuffer();
      assert.equal(reached.n, before + 1, `the front door answered a request with ${JSON.stringify(headers)}`);
    }
    assert.equal(runs, 3, 'Cache-Control: no-cache and Pragma: no-cache made the middleware fetch again, Range did not');
  });

  it('leaves Range, If-Match and If-Unmodified-Since to the app, with or without the front door: a stored whole 200 answers none of them', async () => {
    // express.static answers these itself (206, 416, 412); a hit would answer each with the whole 200
    // (a media player that asks bytes=0-1 and needs a 206 gets the file, an If-Match that fails gets it too).
    const dir = mkdtempSync(join(tmpdir(), 'tiercache-range-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'clip.txt'), '0123456789abcdef');
    for (const fronted of [true, false]) {
      const cache = newCache({ routes: { '/media': '5m' } });
      const app = express();
      app.set('env', 'test'); // finalhandler logs the 416 / 412 errors otherwise
      app.use(expressCache(cache));
      app.use('/media', express.static(dir));
      const base = await listen(fronted ? front(cache, app) : app);
      const whole = await fetch(`${base}/media/clip.txt`);
      assert.equal(await whole.text(), '0123456789abcdef');
      // A streamed fill says fwd=miss (its head leaves before the store); the next GET shows it stored.
      assert.equal((await fetch(`${base}/media/clip.txt`)).headers.get('cache-status'), 'tiercache; hit; detail=L1');
      const cases: Array<[Record<string, string>, number, string]> = [
        [{ range: 'bytes=0-3' }, 206, '0123'],
        [{ range: 'bytes=100-' }, 416, ''],
        [{ 'if-match': '"not-this-one"' }, 412, ''],
        [{ 'if-unmodified-since': 'Mon, 07 Dec 2020 00:00:00 GMT' }, 412, ''],
      ];
      for (const [headers, status, body] of cases) {
        const answer = await fetch(`${base}/media/clip.txt`, { headers });
        const text = await answer.text();
        assert.equal(answer.status, status, `${fronted ? 'front door' : 'middleware'}, ${JSON.stringify(headers)}: ${answer.status} (${String(answer.headers.get('cache-status'))})`);
        if (status === 206) assert.equal(text, body);
      }
      assert.equal((await fetch(`${base}/media/clip.txt`)).headers.get('cache-status'), 'tiercache; hit; detail=L1', 'the whole answer is still served to a plain GET');
    }
  });

  it('keeps away from never-cache rules and unknown paths', async () => {
    const cache = newCache();
    let runs = 0;
    const app = express();
    app.use(expressCache(cache));
    app.get('/api/admin', (_req, res) => {
      runs++;
      res.send('admin');
    });
    const base = await listen(front(cache, app));
    await fetch(`${base}/api/admin`);
    await fetch(`${base}/API/ADMIN/`);
    assert.equal(runs, 2);
  });
});

describe('front door (tiercache/node) with Koa', () => {
  it('answers a repeat GET from L1 before Koa runs', async () => {
    const cache = newCache();
    let koaRuns = 0;
    const app = new Koa();
    app.use(async (_ctx, next) => {
      koaRuns++;
      await next();
    });
    app.use(koaCache(cache));
    app.use((ctx) => {
      ctx.body = { movies: [1, 2] };
    });
    const base = await listen(front(cache, app.callback()));
    const first = await fetch(`${base}/api/movies?b=2&a=1`);
    assert.equal(first.headers.get('cache-status'), 'tiercache; fwd=miss; stored');
    const second = await fetch(`${base}/api/movies?a=1&b=2`);
    assert.equal(second.headers.get('cache-status'), 'tiercache; hit; detail=L1');
    assert.deepEqual(await second.json(), { movies: [1, 2] });
    assert.equal(koaRuns, 1);
  });
});
