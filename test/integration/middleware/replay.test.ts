// What a hit sends (DESIGN.md section 3, "A hit replays every header field the
// handler sent, repetitions and order included, and the origin's Date"):
// checked on the wire, from raw sockets, because HTTP clients fold repeated
// fields into one. Express 5 and 4, Koa 3 and 2, the front door, L1 and L2
// hits and the 304 answer.
import assert from 'node:assert/strict';
import { createServer, type RequestListener, type Server } from 'node:http';
import express from 'express';
import { expressCache } from '../../../src/express.js';
import type { TierCache } from '../../../src/index.js';
import { front } from '../../../src/node.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { valuesOf, wireRequest, type WireAnswer } from '../../support/http-wire.js';
import { adapters, buildApp, type HandlerIO } from './apps.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** GET `path` on a raw socket: the answer as it came over the wire. */
const wireGet = (server: Server, path: string, headers: Record<string, string> = {}) => wireRequest(server, path, headers);
const statusOf = (answer: WireAnswer) => valuesOf(answer, 'cache-status')[0];
/** Every field but the ones the cache owns (and the connection's own), in order. */
const handlerFields = (answer: WireAnswer) => answer.fields.filter(([n]) => !['age', 'cache-status', 'connection', 'keep-alive', 'transfer-encoding'].includes(n));

const CSP = ["default-src 'self'", "script-src 'none'"];
const LINKS = ['</a.css>; rel=preload', '</b.js>; rel=preload'];
const ORIGIN_DATE = 'Tue, 01 Dec 2026 10:00:00 GMT';

/** A handler that sends repeated fields of three kinds and a Date of its own. */
function repeatedFields(io: HandlerIO): void {
  io.set('Content-Security-Policy', CSP);
  io.set('Link', LINKS);
  io.set('Vary', ['Accept-Language', 'Accept-Encoding']);
  io.set('Date', ORIGIN_DATE);
  io.send('body');
}

function assertRepeats(answer: WireAnswer, what: string): void {
  assert.deepEqual(valuesOf(answer, 'content-security-policy'), CSP, `${what}: Content-Security-Policy`);
  assert.deepEqual(valuesOf(answer, 'link'), LINKS, `${what}: Link`);
  assert.deepEqual(valuesOf(answer, 'vary').join(', ').split(/\s*,\s*/), ['Accept-Language', 'Accept-Encoding'], `${what}: Vary`);
  assert.deepEqual(valuesOf(answer, 'date'), [ORIGIN_DATE], `${what}: Date`);
}

describe('middleware: what a hit sends on the wire', function () {
  const redisCaches = useRedisCaches({ prefix: 'replay' });
  const serve = async (listener: RequestListener) => redisCaches.serve(listener);

  /** An Express app on a fresh cache (TTL 1 min): `before` mounted ahead of expressCache(cache, options), then GET `path` answered by `handler`. */
  async function expressBehind(before: express.RequestHandler, path: string, handler: express.RequestHandler, options: Parameters<typeof expressCache>[1] = {}): Promise<Server> {
    const cache = await redisCaches.open({ ttl: '1m' });
    const app = express();
    app.use(before);
    app.use(expressCache(cache, options));
    app.get(path, handler);
    return serve(app as unknown as RequestListener);
  }

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      it('a hit replays every value of repeated header fields, in order, and the origin Date, from L1 and from L2', async () => {
        const cache = await redisCaches.open({ ttl: '1m' });
        const app = buildApp(adapter, cache, { routes: [{ path: '/r', mw: {}, handler: repeatedFields }] });
        const server = await serve(app.target);
        const miss = await wireGet(server, '/r');
        assertRepeats(miss, 'the miss');
        const hit = await wireGet(server, '/r');
        assert.equal(statusOf(hit), 'tiercache; hit; detail=L1');
        assertRepeats(hit, 'an L1 hit');
        assert.deepEqual(handlerFields(hit), handlerFields(miss), 'an L1 hit sends the fields of the miss, in the same order');

        const other = await redisCaches.open({ ttl: '1m', namespace: redisCaches.ns });
        const fromL2 = await wireGet(await serve(buildApp(adapter, other, { routes: [{ path: '/r', mw: {}, handler: repeatedFields }] }).target), '/r');
        assert.equal(statusOf(fromL2), 'tiercache; hit; detail=L2');
        assertRepeats(fromL2, 'an L2 hit');
      });

      it('a 304 from the cache keeps every Vary value and the origin Date', async () => {
        const cache = await redisCaches.open({ ttl: '1m' });
        const app = buildApp(adapter, cache, { routes: [{ path: '/r', mw: {}, handler: repeatedFields }] });
        const server = await serve(app.target);
        const etag = valuesOf(await wireGet(server, '/r'), 'etag')[0]!;
        const notModified = await wireGet(server, '/r', { 'If-None-Match': etag });
        assert.equal(notModified.status, 304);
        assert.equal(statusOf(notModified), 'tiercache; hit; detail=L1');
        assert.deepEqual(valuesOf(notModified, 'vary').join(', ').split(/\s*,\s*/), ['Accept-Language', 'Accept-Encoding']);
        assert.deepEqual(valuesOf(notModified, 'date'), [ORIGIN_DATE]);
        assert.deepEqual(valuesOf(notModified, 'link'), [], 'a 304 carries only the fields RFC 9110 §15.4.5 names');
      });
    });
  }

  it('a hit answers If-Modified-Since alone with a 304 when the stored Last-Modified is not later (never from a Date), and a stored 404 never with a 304', async () => {
    const cache = await redisCaches.open({ ttl: '1m' });
    const app = express();
    app.use(expressCache(cache, { negativeTtl: '1m' }));
    app.get('/dated', (_req, res) => {
      res.set('Last-Modified', ORIGIN_DATE).send('dated');
    });
    app.get('/undated', (_req, res) => {
      res.set('Date', ORIGIN_DATE).send('no validator');
    });
    app.get('/gone', (_req, res) => {
      res.status(404).set('ETag', '"g"').set('Last-Modified', ORIGIN_DATE).send('gone');
    });
    const server = await serve(app as unknown as RequestListener);
    assert.equal((await wireGet(server, '/dated')).status, 200);
    const since = await wireGet(server, '/dated', { 'If-Modified-Since': 'Wed, 02 Dec 2026 10:00:00 GMT' });
    assert.equal(statusOf(since), 'tiercache; hit; detail=L1');
    assert.equal(since.status, 304, 'If-Modified-Since alone was not evaluated on a hit');
    assert.equal((await wireGet(server, '/dated', { 'If-Modified-Since': 'Mon, 30 Nov 2026 10:00:00 GMT' })).status, 200);

    // Without Last-Modified there is nothing to compare If-Modified-Since with (the Date is no validator here).
    assert.equal((await wireGet(server, '/undated')).status, 200);
    const undated = await wireGet(server, '/undated', { 'If-Modified-Since': 'Wed, 02 Dec 2026 10:00:00 GMT' });
    assert.equal(statusOf(undated), 'tiercache; hit; detail=L1');
    assert.equal(undated.status, 200, 'a Date taken for Last-Modified');

    assert.equal((await wireGet(server, '/gone')).status, 404);
    for (const conditions of [{ 'If-None-Match': '"g"' }, { 'If-Modified-Since': 'Wed, 02 Dec 2026 10:00:00 GMT' }] as Array<Record<string, string>>) {
      const hit = await wireGet(server, '/gone', conditions);
      assert.equal(statusOf(hit), 'tiercache; hit; detail=L1');
      assert.equal(hit.status, 404, `a stored 404 answered ${JSON.stringify(conditions)} with ${hit.status}`);
    }
  });

  it('the front door replays every value of repeated header fields, in order, and the origin Date', async () => {
    const cache: TierCache = await redisCaches.open({ ttl: '1m' });
    const app = buildApp(adapters[0]!, cache, { appLevel: true, routes: [{ path: '/r', handler: repeatedFields }] });
    const server = redisCaches.track(createServer(front(cache, app.target)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const miss = await wireGet(server, '/r');
    const hit = await wireGet(server, '/r');
    assert.equal(app.runs('/r'), 1);
    assertRepeats(hit, 'a front-door hit');
    assert.deepEqual(handlerFields(hit), handlerFields(miss));
  });

  it('headers set before the cache: one the entry also has gets the stored value, one it lacks is kept, repeats and all (Express)', async () => {
    let n = 0;
    // Before the cache, on every request: X-Seen (so the fill stores it) and, when asked, X-Probe (never stored).
    const server = await expressBehind(
      (req, res, next) => {
        res.setHeader('X-Seen', String(++n));
        if (req.headers['x-probe'] !== undefined) res.setHeader('X-Probe', ['p1', 'p2']);
        next();
      },
      '/api/r',
      (_req, res) => {
        res.set('Link', LINKS);
        res.send('body');
      },
    );
    const miss = await wireGet(server, '/api/r');
    assert.deepEqual(valuesOf(miss, 'x-seen'), ['1']);
    const plain = await wireGet(server, '/api/r');
    assert.equal(statusOf(plain), 'tiercache; hit; detail=L1');
    assert.deepEqual(valuesOf(plain, 'x-seen'), ['1'], 'the stored value replaces the one set before the cache');
    assert.deepEqual(valuesOf(plain, 'x-powered-by'), ['Express']);
    assert.deepEqual(valuesOf(plain, 'link'), LINKS);
    assert.deepEqual(valuesOf(plain, 'x-probe'), []);
    const probed = await wireGet(server, '/api/r', { 'X-Probe': '1' });
    assert.equal(statusOf(probed), 'tiercache; hit; detail=L1');
    assert.deepEqual(valuesOf(probed, 'x-probe'), ['p1', 'p2'], 'a header the entry does not have survives the hit');
    assert.deepEqual(valuesOf(probed, 'x-seen'), ['1']);
    assert.deepEqual(valuesOf(probed, 'link'), LINKS);
    assert.deepEqual(valuesOf(probed, 'x-powered-by'), ['Express']);
    assert.equal(valuesOf(probed, 'content-length')[0], '4');
  });

  it("a Content-Type set before the cache reaches a 200 hit whose entry has none (only a 204's or 304's is dropped, having no body) (Express)", async () => {
    const server = await expressBehind(
      (req, res, next) => {
        if (req.headers['x-typed'] !== undefined) res.setHeader('Content-Type', 'text/plain; charset=utf-8');
        next();
      },
      '/api/untyped',
      (_req, res) => {
        res.setHeader('Cache-Control', 'public, max-age=60');
        res.end('body');
      },
    );
    const miss = await wireGet(server, '/api/untyped');
    assert.deepEqual(valuesOf(miss, 'content-type'), []);
    const typed = await wireGet(server, '/api/untyped', { 'X-Typed': '1' });
    assert.equal(statusOf(typed), 'tiercache; hit; detail=L1');
    assert.deepEqual(valuesOf(typed, 'content-type'), ['text/plain; charset=utf-8'], 'the Content-Type set before the cache was dropped from the hit');
    assert.equal(valuesOf(typed, 'content-length')[0], '4');
    assert.equal(typed.body, 'body');
  });

  it('a hit through a writeHead wrapper that copies the headers it is given with setHeader (on-headers before 1.1 did) still sends every value of a repeated field', async () => {
    const server = await expressBehind(
      (_req, res, next) => {
        const writeHead = res.writeHead;
        // The older on-headers: headers given to writeHead are set by name, one pair at a time (repetitions lost), then the head is written.
        res.writeHead = function (this: typeof res, status: number, ...rest: unknown[]) {
          const given = rest.find((a) => typeof a === 'object' && a !== null);
          if (Array.isArray(given)) for (let i = 0; i + 1 < given.length; i += 2) this.setHeader(String(given[i]), String(given[i + 1]));
          return writeHead.call(this, status);
        } as typeof res.writeHead;
        next();
      },
      '/api/w',
      (_req, res) => {
        res.set('Link', LINKS);
        res.send('body');
      },
    );
    await wireGet(server, '/api/w');
    const hit = await wireGet(server, '/api/w');
    assert.equal(statusOf(hit), 'tiercache; hit; detail=L1');
    assert.deepEqual(valuesOf(hit, 'link'), LINKS);
    assert.equal(hit.body, 'body');
  });

  it("with cacheStatus: false, a Cache-Status set before the cache (another cache's, in front) reaches the client on a hit", async () => {
    const server = await expressBehind(
      (_req, res, next) => {
        res.setHeader('Cache-Status', 'edge; fwd=uri-miss');
        next();
      },
      '/api/s',
      (_req, res) => {
        res.removeHeader('Cache-Status'); // the stored answer has none of its own
        res.send('s');
      },
      { cacheStatus: false },
    );
    await wireGet(server, '/api/s');
    const hit = await wireGet(server, '/api/s');
    assert.equal(hit.body, 's');
    assert.deepEqual(valuesOf(hit, 'cache-status'), ['edge; fwd=uri-miss']);
  });

  it('a hit carries the Date its filling answer carried, not the time of the hit', async function () {
    const cache = await redisCaches.open({ ttl: '1m' });
    const app = buildApp(adapters[0]!, cache, { routes: [{ path: '/d', mw: {}, handler: (io) => io.send('d') }] });
    const server = await serve(app.target);
    const miss = await wireGet(server, '/d');
    await sleep(1_100);
    const hit = await wireGet(server, '/d');
    assert.equal(statusOf(hit), 'tiercache; hit; detail=L1');
    assert.deepEqual(valuesOf(hit, 'date'), valuesOf(miss, 'date'));
    assert.equal(valuesOf(hit, 'age')[0], '1');
  });
});
