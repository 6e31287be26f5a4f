// The front door (tiercache/node) when something around it fails or ends:
// a bypass(req) or a 'hit' listener that throws, a cache being closed,
// options it does not use. Each of these once crashed the process, served
// from a closed cache, or was silently ignored (found by a hostile review).
import assert from 'node:assert/strict';
import { createServer, ServerResponse, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import compression from 'compression';
import express from 'express';
import { createCache, TierCacheConfigError, type TierCache } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { front } from '../../src/node.js';
import { useCleanup } from '../support/cache-context.js';
import { fetchRaw, rawGet } from '../support/http-bytes.js';

const { track, serve } = useCleanup();

async function listen(handler: RequestListener): Promise<string> {
  const server = await serve(handler);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function newCache(): TierCache {
  return track(createCache({ redis: false, routes: { '/api': '5m' } }));
}

/** Express behind the cache, counting what reaches it; /api/slow waits for `release`. */
function app(cache: TierCache) {
  const reached = { n: 0 };
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const a = express();
  a.use((_req, _res, next) => {
    reached.n++;
    next();
  });
  a.use(expressCache(cache));
  a.get('/api/movies', (_req, res) => {
    res.set('Vary', 'Accept-Language').json({ movies: ['Alien'], language: _req.header('accept-language') ?? null });
  });
  a.get('/api/slow', async (_req, res) => {
    await released;
    res.json({ slow: true });
  });
  return { app: a, reached, release };
}

/** A response class with a hook in writeHead (a server's ServerResponse option, as an APM agent may set) that fails on a hit. */
class FailingOnHits extends ServerResponse {
  override writeHead(...args: unknown[]): this {
    if (String(this.getHeader('cache-status') ?? '').includes('hit')) throw new Error('the hook failed');
    return (super.writeHead as (...a: unknown[]) => this)(...args);
  }
}

/** A response whose end fails once its head is out: a replay writes its head first; Express and a fill end with it unsent. */
class FailingAfterHead extends ServerResponse {
  override end(...args: unknown[]): this {
    if (this.headersSent) throw new Error('the end hook failed');
    return (super.end as (...a: unknown[]) => this)(...args);
  }
}

/** `handler` on a server whose responses are `responses` (FailingOnHits unless said). */
async function listenFailingOnHits(handler: RequestListener, responses: typeof ServerResponse = FailingOnHits as typeof ServerResponse): Promise<string> {
  const server = track(createServer({ ServerResponse: responses }, handler));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('front door: failures around it', () => {
  it('passes the request to the app when its bypass(req) throws, and reports it, instead of ending the process', async () => {
    const cache = newCache();
    const { app: a, reached } = app(cache);
    const errors: string[] = [];
    cache.on('error', (e) => errors.push(e.err.message));
    // A bypass as users write them: decodeURIComponent throws URIError on a broken escape.
    const base = await listen(front(cache, a, { bypass: (req) => decodeURIComponent(req.url ?? '/').includes('preview=1') }));
    await (await fetch(`${base}/api/movies?q=x`)).text();
    assert.equal((await fetch(`${base}/api/movies?q=x`)).headers.get('cache-status'), 'tiercache; hit; detail=L1');
    assert.equal(reached.n, 1);
    const broken = await fetch(`${base}/api/movies?q=%E0%A4%A`);
    assert.equal(broken.status, 200);
    await broken.text();
    assert.equal(reached.n, 2, 'the app answered the request whose bypass threw');
    assert.ok(errors.some((m) => m.includes('URI')), `reported: ${errors.join(' | ')}`);
    // The server is still up, and still answers hits.
    assert.equal((await fetch(`${base}/api/movies?q=x`)).headers.get('cache-status'), 'tiercache; hit; detail=L1');
  });

  it("lets the app answer when a 'hit' listener throws (as without the front door: Express's 500), and keeps serving", async () => {
    const cache = newCache();
    const { app: a, reached } = app(cache);
    const base = await listen(front(cache, a));
    await (await fetch(`${base}/api/movies`)).text();
    let failing = true;
    cache.on('hit', () => {
      if (failing) throw new Error('listener failed');
    });
    const failed = await fetch(`${base}/api/movies`);
    assert.equal(failed.status, 500, 'the middleware met the same listener');
    await failed.text();
    assert.equal(reached.n, 2);
    // The middleware's hit: two lookups (the Vary manifest, then the variant); the front door's gave up counts none.
    assert.equal(cache.stats().l1.hits, 2);
    failing = false;
    const served = await fetch(`${base}/api/movies`);
    assert.equal(served.headers.get('cache-status'), 'tiercache; hit; detail=L1');
    assert.equal(reached.n, 2);
  });

  it('lets the app answer when writing a hit throws before its head is out (a writeHead hook that fails), instead of ending the process', async () => {
    // A response class with a hook in writeHead (a server's ServerResponse option, as an APM agent may set)
    // that fails on an answer the cache replays. Express gives the response a prototype of its own, without the
    // hook: without the front door, the middleware's hit goes out. With it, so must it (the app answers).
    const cache = newCache();
    const errors: string[] = [];
    cache.on('error', ({ err }: { err: Error }) => errors.push(err.message));
    const { app: a, reached } = app(cache);
    const base = await listenFailingOnHits(front(cache, a));
    const filled = await fetch(`${base}/api/movies`);
    assert.equal(filled.status, 200);
    const body = await filled.text();
    const failed = await fetch(`${base}/api/movies`);
    assert.equal(failed.status, 200);
    assert.equal(failed.headers.get('cache-status'), 'tiercache; hit; detail=L1', "the middleware's hit, as without the front door");
    assert.equal(await failed.text(), body);
    assert.equal(reached.n, 2, 'the app had the request');
    assert.ok(errors.some((m) => m.includes('the hook failed')), `the front door reported the failure: ${JSON.stringify(errors)}`);
    // The middleware's hit: two lookups (the Vary manifest, then the variant); the front door's gave up counts none.
    assert.equal(cache.stats().l1.hits, 2);
    // Still alive and serving.
    const again = await fetch(`${base}/api/other`);
    assert.equal(again.status, 404);
    await again.text();
  });

  it('keeps what was set on the response before it (a wrapper around it) when writing a hit throws before its head is out', async () => {
    // A server that propagates the client's request id wraps the front door: the id is set before the front door
    // runs. The fill had none, so the entry has none; a hit (the front door's or the middleware's) keeps it.
    const cache = newCache();
    cache.on('error', () => undefined);
    const { app: a, reached } = app(cache);
    const door = front(cache, a);
    const base = await listenFailingOnHits((req, res) => {
      const id = req.headers['x-request-id'];
      if (typeof id === 'string') res.setHeader('X-Request-Id', id);
      door(req, res);
    });
    await (await fetch(`${base}/api/movies`)).text();
    const failed = await fetch(`${base}/api/movies`, { headers: { 'x-request-id': 'r2' } });
    await failed.text();
    assert.equal(reached.n, 2, 'the app had the request');
    assert.equal(failed.headers.get('cache-status'), 'tiercache; hit; detail=L1', "the middleware's hit");
    assert.equal(failed.headers.get('x-request-id'), 'r2', 'the front door removed a field set on the response before it ran');
  });

  it('cuts the answer when writing a hit throws after its head is out, instead of ending the process', async () => {
    const cache = newCache();
    const errors: string[] = [];
    cache.on('error', ({ err }: { err: Error }) => errors.push(err.message));
    const { app: a, reached } = app(cache);
    const base = await listenFailingOnHits(front(cache, a), FailingAfterHead as typeof ServerResponse);
    assert.equal((await fetch(`${base}/api/movies`)).status, 200);
    await assert.rejects(async () => (await fetch(`${base}/api/movies`)).text(), 'the half-written hit was cut, not left hanging');
    assert.equal(reached.n, 1, 'nothing more reached the app: its head was out');
    assert.ok(errors.includes('the end hook failed'), `the front door reported the failure: ${JSON.stringify(errors)}`);
    const again = await fetch(`${base}/api/other`);
    assert.equal(again.status, 404, 'still alive and serving');
    await again.text();
  });

  it('serves nothing once close() was called, while close() still waits for a fill under way', async () => {
    const cache = newCache();
    const { app: a, reached, release } = app(cache);
    const base = await listen(front(cache, a));
    await (await fetch(`${base}/api/movies`)).text();
    assert.equal((await fetch(`${base}/api/movies`)).headers.get('cache-status'), 'tiercache; hit; detail=L1');
    const slow = fetch(`${base}/api/slow`).then((r) => r.text());
    while (reached.n < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    let closed = false;
    const closing = cache.close().then(() => (closed = true));
    const during = await fetch(`${base}/api/movies`);
    await during.text();
    assert.equal(closed, false, 'close() was still waiting for the fill');
    assert.equal(during.headers.get('cache-status'), null, 'the middleware passed it through unmarked (a quiet bypass)');
    assert.equal(reached.n, 3, 'the app answered');
    release();
    await slow;
    await closing;
  });

  it('names the key of the request in its hit events (cache.keyFor), not the key of the variant it served', async () => {
    const cache = newCache();
    const { app: a } = app(cache);
    const base = await listen(front(cache, a));
    const missed: string[] = [];
    const hits: Array<{ key: string; front?: boolean }> = [];
    cache.on('miss', (e) => missed.push(e.key));
    cache.on('hit', (e) => hits.push({ key: e.key, front: e.front }));
    await (await fetch(`${base}/api/movies`, { headers: { 'accept-language': 'fr' } })).text();
    await (await fetch(`${base}/api/movies`, { headers: { 'accept-language': 'fr' } })).text();
    assert.equal(missed.length, 1);
    assert.deepEqual(hits, [{ key: missed[0], front: true }]);
  });

  it('refuses the options of the middleware, which it would ignore, naming them', () => {
    const cache = newCache();
    const { app: a } = app(cache);
    for (const option of ['ttl', 'user', 'vary', 'key', 'methods']) {
      assert.throws(
        () => front(cache, a, { [option]: undefined } as never),
        (err: unknown) => err instanceof TierCacheConfigError && err.option === `front.${option}`,
        option,
      );
    }
    assert.doesNotThrow(() => front(cache, a, { cacheStatus: false, bypass: () => false }));
    assert.throws(() => front(cache, a, { ttl: '1m' } as never), /option front\.ttl is not an option of the front door/);
    assert.throws(() => front(cache, a, 'fast' as never), (err: unknown) => err instanceof TierCacheConfigError && err.option === 'front' && /must be an object/.test(err.message));
  });

  it('passes an absolute-form request to the app, whatever authority it names: the middleware decides (another host is bypassed)', async () => {
    const cache = newCache();
    const { app: a, reached } = app(cache);
    const server = await serve(front(cache, a));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await (await fetch(`${base}/api/movies`)).text();
    assert.equal((await fetch(`${base}/api/movies`)).headers.get('cache-status'), 'tiercache; hit; detail=L1');
    assert.equal(reached.n, 1);
    const answer = await rawGet(server, 'http://elsewhere.example/api/movies');
    assert.equal(answer.status, 200);
    assert.equal(reached.n, 2, 'the front door answered a request for another authority');
    assert.notEqual(answer.headers['cache-status'], 'tiercache; hit; detail=L1');
  });
});

/** front(cache, app) where compression() is mounted before expressCache; `reached` counts the requests the app saw. */
async function behindCompression(path: string, handler: express.RequestHandler) {
  const cache = newCache();
  const reached = { n: 0 };
  const a = express();
  a.use((_req, _res, next) => {
    reached.n++;
    next();
  });
  a.use(compression({ threshold: 0 }));
  a.use(expressCache(cache));
  a.get(path, handler);
  return { server: await serve(front(cache, a)), reached };
}

describe('front door: entries a layer before the cache encoded', () => {
  it('leaves an answer compression() encoded on the way out to the middleware, which compresses each hit', async () => {
    const { server, reached } = await behindCompression('/api/movies', (_req, res) => {
      res.json({ movies: Array.from({ length: 50 }, (_, i) => `movie ${i}`) });
    });
    const miss = await fetchRaw(server, '/api/movies', 'gzip');
    assert.equal(miss.headers['content-encoding'], 'gzip');
    const hit = await fetchRaw(server, '/api/movies', 'gzip');
    assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
    assert.equal(hit.headers['content-encoding'], 'gzip', 'the hit skipped compression()');
    assert.deepEqual(gunzipSync(hit.bytes), gunzipSync(miss.bytes));
    assert.equal(reached.n, 2, 'the middleware served it, behind compression()');
  });

  it("leaves an answer compression() sent plain to a client that asked for identity to the middleware too: the next gzip client's is compressed, and each hit has compression()'s Vary (found by helper-89)", async () => {
    const { server, reached } = await behindCompression('/api/movies', (_req, res) => {
      res.json({ movies: Array.from({ length: 50 }, (_, i) => `movie ${i}`) });
    });
    const fill = await fetchRaw(server, '/api/movies', 'identity');
    assert.deepEqual([fill.headers['content-encoding'], fill.headers.vary], [undefined, 'Accept-Encoding']);
    const gzip = await fetchRaw(server, '/api/movies', 'gzip');
    assert.equal(gzip.headers['cache-status'], 'tiercache; hit; detail=L1');
    assert.equal(gzip.headers['content-encoding'], 'gzip', "a gzip client got the identity client's plain answer");
    assert.deepEqual(gunzipSync(gzip.bytes), fill.bytes);
    const plain = await fetchRaw(server, '/api/movies', 'identity');
    assert.deepEqual([plain.headers['cache-status'], plain.headers.vary], ['tiercache; hit; detail=L1', 'Accept-Encoding']);
    assert.equal(reached.n, 3, 'the middleware served them, behind compression()');
  });

  it('serves an answer compression() leaves alone (not compressible, no Vary of its own)', async () => {
    const { server, reached } = await behindCompression('/api/image', (_req, res) => {
      res.type('image/png').send(Buffer.alloc(2000, 1));
    });
    await fetchRaw(server, '/api/image', 'gzip');
    const hit = await fetchRaw(server, '/api/image', 'gzip');
    assert.deepEqual([hit.headers['cache-status'], hit.headers['content-encoding']], ['tiercache; hit; detail=L1', undefined]);
    assert.equal(reached.n, 1, 'the front door answered the plain entry');
  });
});

describe('front door: route labels', () => {
  it("labels a hit on a route cached per route (no table rule) with the framework's pattern, as the middleware does", async () => {
    const cache = track(createCache({ redis: false }));
    const a = express();
    a.get('/api/movies/:id', expressCache(cache, { ttl: '1m' }), (req, res) => {
      res.json({ id: req.params.id });
    });
    // x-via-app: 1 sends a request past the front door, to the middleware.
    const base = await listen(front(cache, a, { bypass: (req) => req.headers['x-via-app'] === '1' }));
    const routes: Array<{ route: string; front: boolean }> = [];
    cache.on('hit', (e) => routes.push({ route: e.route, front: e.front === true }));
    await (await fetch(`${base}/api/movies/7`)).text();
    await (await fetch(`${base}/api/movies/7`, { headers: { 'x-via-app': '1' } })).text();
    await (await fetch(`${base}/api/movies/7`)).text();
    assert.deepEqual(routes, [
      { route: '/api/movies/:id', front: false },
      { route: '/api/movies/:id', front: true },
    ]);
  });
});
