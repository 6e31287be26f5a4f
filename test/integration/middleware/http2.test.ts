// tiercache under HTTP/2 (node's compatibility API: Koa on
// http2.createServer). Its responses have no _storeHeader, which the capture
// used for its last look at a head; found by a hostile review:
// - a header a writeHead hook mounted before the cache adds late (private,
//   no-store, Set-Cookie) did not stop the store: one user's answer was
//   served to another;
// - Cache-Groups reached the client on answers not captured (a bypass, a HEAD);
// - a stale-while-revalidate refresh set off by an HTTP/2 request ran with no
//   Host (HTTP/2 names it in :authority), and its answer was stored.
// And, found by mutation testing: the last look at a head must skip a
// replacement (the cache's own 304 to a revalidated request), which leaves
// out fields the handler's answer had and so read as the handler changing them.
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import Koa from 'koa';
import { createCache, type TierCache } from '../../../src/index.js';
import { koaCache } from '../../../src/koa.js';
import { front } from '../../../src/node.js';
import { Koa2 } from './apps.js';
import { useCleanup } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
let counter = 0;

interface Answer {
  status: number;
  body: string;
  headers: http2.IncomingHttpHeaders;
  /** The trailer fields after the body, if any came. */
  trailers?: http2.IncomingHttpHeaders;
}

/** Serves `app` over HTTP/2 (cleartext) and returns a request function on one session; close() ends both. */
async function overHttp2(app: Koa, handler: (req: http.IncomingMessage, res: http.ServerResponse) => void = app.callback()) {
  const server = http2.createServer(handler as never);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => sessions.add(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = http2.connect(url);
  /**
   * `payload`: sent in DATA frames after the headers (no Content-Length), as HTTP/2 allows on any method;
   * '': no byte, the stream ended by an empty DATA frame (END_STREAM on it, not on the headers).
   */
  const send = (path: string, headers: Record<string, string> = {}, method = 'GET', payload?: string) =>
    new Promise<Answer>((resolve, reject) => {
      const stream = client.request({ ':path': path, ':method': method, ...headers }, { endStream: payload === undefined });
      if (payload === '') stream.end();
      else if (payload !== undefined) stream.end(payload);
      let body = '';
      let head: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders | undefined;
      stream.on('response', (h) => (head = h));
      stream.on('trailers', (t) => (trailers = t));
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => (body += chunk));
      stream.on('end', () => resolve({ status: Number(head[':status']), body, headers: head, trailers }));
      stream.on('error', reject);
    });
  const close = async () => {
    client.destroy();
    for (const s of sessions) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { send, close, client, url };
}

/** Collects uncaught exceptions in place of mocha's handlers (a front door's throw ends the process) until restore(). */
function catchUncaught(): { uncaught: Error[]; restore: () => void } {
  const uncaught: Error[] = [];
  const onUncaught = (err: Error) => uncaught.push(err);
  const mochaHandlers = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  process.on('uncaughtException', onUncaught);
  return {
    uncaught,
    restore: () => {
      process.off('uncaughtException', onUncaught);
      for (const h of mochaHandlers) process.on('uncaughtException', h);
    },
  };
}

describe('middleware: Koa over HTTP/2', () => {
  const cleanup = useCleanup();
  const newCache = (options: Parameters<typeof createCache>[0] = {}): TierCache => cleanup.track(createCache({ namespace: `h2-${process.pid}-${++counter}`, redis: false, ...options }));

  it('a GET with a body in DATA frames (no Content-Length) bypasses the cache: nobody gets the answer to another body (found by helper-68)', async () => {
    const app = new Koa();
    app.use(koaCache(newCache(), { ttl: '1m' }));
    app.use(async (ctx) => {
      let query = '';
      for await (const chunk of ctx.req) query += String(chunk);
      ctx.body = `results for ${query || 'nothing'}`;
    });
    const h2 = await overHttp2(app);
    try {
      const alice = await h2.send('/search', {}, 'GET', 'alice-secret-query');
      assert.equal(alice.body, 'results for alice-secret-query');
      assert.equal(alice.headers['cache-status'], 'tiercache; fwd=bypass; detail=body');
      const bob = await h2.send('/search', {}, 'GET', 'bob-query');
      assert.equal(bob.body, 'results for bob-query');
      const none = await h2.send('/search');
      assert.equal(none.body, 'results for nothing');
      assert.equal(none.headers['cache-status'], 'tiercache; fwd=miss; stored');
      const carol = await h2.send('/search', {}, 'GET', 'carol-query');
      assert.equal(carol.body, 'results for carol-query', 'a GET with a body got the stored answer to none');
    } finally {
      await h2.close();
    }
  });

  for (const [name, Framework] of [['koa3', Koa], ['koa2', Koa2]] as const) {
    it(`${name}: a GET or HEAD whose stream an empty DATA frame ends has no body: it is stored and served like one that ends with its headers, while a GET with bytes still bypasses`, async () => {
      const app = new Framework();
      app.use(koaCache(newCache(), { ttl: '1m' }));
      let runs = 0;
      app.use(async (ctx) => {
        runs++;
        let query = '';
        for await (const chunk of ctx.req) query += String(chunk);
        ctx.body = `results for ${query || 'nothing'}`;
      });
      const h2 = await overHttp2(app as Koa);
      try {
        const first = await h2.send('/search', {}, 'GET', '');
        assert.equal(first.body, 'results for nothing');
        assert.equal(first.headers['cache-status'], 'tiercache; fwd=miss; stored');
        const again = await h2.send('/search', {}, 'GET', '');
        assert.deepEqual([again.body, again.headers['cache-status']], ['results for nothing', 'tiercache; hit; detail=L1']);
        const head = await h2.send('/search', {}, 'HEAD', '');
        assert.deepEqual([head.status, head.headers['cache-status']], [200, 'tiercache; hit; detail=L1']);
        assert.equal((await h2.send('/search')).headers['cache-status'], 'tiercache; hit; detail=L1');
        const carol = await h2.send('/search', {}, 'GET', 'carol-query');
        assert.deepEqual([carol.body, carol.headers['cache-status']], ['results for carol-query', 'tiercache; fwd=bypass; detail=body']);
        assert.equal(runs, 2);
      } finally {
        await h2.close();
      }
    });
  }

  it('a GET whose stream stays open with nothing sent (its body may come later) is not held: it bypasses, and its handler answers', async () => {
    const app = new Koa();
    app.use(koaCache(newCache(), { ttl: '1m' }));
    app.use((ctx) => {
      ctx.body = 'answered';
    });
    const h2 = await overHttp2(app);
    try {
      const stream = h2.client.request({ ':path': '/open', ':method': 'GET' }, { endStream: false });
      const head = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        stream.on('response', resolve);
        stream.on('error', reject);
      });
      assert.equal(head['cache-status'], 'tiercache; fwd=bypass; detail=body');
      stream.end('late');
      stream.resume();
      await new Promise((resolve) => stream.on('close', resolve));
    } finally {
      await h2.close();
    }
  });

  it("a conditional fill over HTTP/2: one answered in one piece gets its 304, a streamed one goes whole and is stored (HTTP/2's head leaves as it is built, and a 304 ends the stream)", async () => {
    const app = new Koa();
    app.use(koaCache(newCache(), { ttl: '1m' }));
    app.use((ctx) => {
      ctx.set('ETag', '"e1"');
      ctx.type = 'text/plain';
      ctx.body = ctx.path === '/streamed' ? Readable.from(['part one, ', 'part two']) : 'one piece';
    });
    const h2 = await overHttp2(app);
    try {
      const whole = await h2.send('/whole', { 'if-none-match': '"e1"' });
      assert.deepEqual([whole.status, whole.body], [304, '']);
      const streamed = await h2.send('/streamed', { 'if-none-match': '"e1"' });
      assert.deepEqual([streamed.status, streamed.body], [200, 'part one, part two']);
      const hit = await h2.send('/streamed', { 'if-none-match': '"e1"' });
      assert.deepEqual([hit.status, hit.headers['cache-status']], [304, 'tiercache; hit; detail=L1']);
    } finally {
      await h2.close();
    }
  });

  for (const [name, Factory] of [['koa3', Koa], ['koa2', Koa2]] as const) {
    it(`${name}: a conditional fill streamed past maxBodyBytes goes whole once; the next conditional request reaches the app with its conditionals, which answers 304 without reading the body (found by h178)`, async () => {
      const app = new Factory();
      app.use(koaCache(newCache(), { ttl: '1m', maxBodyBytes: 1024 }));
      let read = 0;
      app.use((ctx) => {
        ctx.set('ETag', '"e1"');
        ctx.type = 'text/plain';
        ctx.status = 200;
        // What koa-conditional-get does in front of koa-static.
        if (ctx.fresh) return void (ctx.status = 304);
        ctx.body = Readable.from(
          (function* () {
            for (let i = 0; i < 64; i++) yield ((read += 1024), 'x'.repeat(1024));
          })(),
        );
      });
      const h2 = await overHttp2(app as Koa);
      try {
        const first = await h2.send('/big', { 'if-none-match': '"e1"' });
        assert.deepEqual([first.status, first.body.length, read], [200, 64 * 1024, 64 * 1024]);
        read = 0;
        const second = await h2.send('/big', { 'if-none-match': '"e1"' });
        assert.deepEqual([second.status, second.body.length, read], [304, 0, 0]);
        assert.equal(second.headers['cache-status'], 'tiercache; fwd=miss; detail=too-large');
      } finally {
        await h2.close();
      }
    });
  }

  for (const [name, Factory] of [['koa3', Koa], ['koa2', Koa2]] as const) {
    it(`${name}: an answer sent whole that changed and is still too large is learned again from the 200 to the kept conditionals: the next revalidation, of its new tag, reaches the app with it, nothing made (h190's fea2454 over HTTP/2)`, async () => {
      const app = new Factory();
      app.use(koaCache(newCache(), { ttl: '1m', maxBodyBytes: 1024 }));
      const file = { etag: '"w1"', made: 0 };
      app.use((ctx) => {
        ctx.set('ETag', file.etag);
        ctx.type = 'text/plain';
        ctx.status = 200;
        if (ctx.fresh) return void (ctx.status = 304);
        file.made++;
        ctx.body = Buffer.alloc(4096, 'w');
      });
      const h2 = await overHttp2(app as Koa);
      try {
        const first = await h2.send('/whole', { 'if-none-match': '"w1"' });
        assert.deepEqual([first.status, first.body.length, file.made], [304, 0, 1], 'the first revalidation: made whole, learned, the cache\'s 304');
        file.etag = '"w2"';
        const changed = await h2.send('/whole', { 'if-none-match': '"w1"' });
        assert.deepEqual([changed.status, changed.body.length, changed.headers['etag'], changed.headers['cache-status']], [200, 4096, '"w2"', 'tiercache; fwd=miss; detail=too-large']);
        const made = file.made;
        const next = await h2.send('/whole', { 'if-none-match': '"w2"' });
        assert.deepEqual([next.status, next.body.length], [304, 0]);
        assert.equal(file.made, made, 'the body made for the revalidation of the new tag');
        assert.equal(next.headers['cache-status'], 'tiercache; fwd=miss; detail=too-large');
      } finally {
        await h2.close();
      }
    });
  }

  it('a body read by middleware before the cache: no byte in it, the GET is stored; bytes, it bypasses', async () => {
    const app = new Koa();
    const read = new Map<string, string>();
    app.use(async (ctx, next) => {
      let body = '';
      for await (const chunk of ctx.req) body += String(chunk);
      read.set(ctx.path, body);
      await next();
    });
    app.use(koaCache(newCache(), { ttl: '1m' }));
    app.use((ctx) => {
      ctx.body = `read ${read.get(ctx.path) || 'nothing'}`;
    });
    const h2 = await overHttp2(app);
    try {
      assert.equal((await h2.send('/empty', {}, 'GET', '')).headers['cache-status'], 'tiercache; fwd=miss; stored');
      const full = await h2.send('/full', {}, 'GET', 'query');
      assert.deepEqual([full.body, full.headers['cache-status']], ['read query', 'tiercache; fwd=bypass; detail=body']);
    } finally {
      await h2.close();
    }
  });

  for (const [what, late] of [
    ['Cache-Control: private, no-store', (res: http2.Http2ServerResponse) => res.setHeader('cache-control', 'private, no-store')],
    ['Set-Cookie', (res: http2.Http2ServerResponse) => res.setHeader('set-cookie', 'sid=alice')],
  ] as const) {
    it(`a ${what} added by a writeHead hook mounted before the cache stops the store: the next user gets their own answer`, async () => {
      const app = new Koa();
      app.use(async (ctx, next) => {
        const res = ctx.res as unknown as http2.Http2ServerResponse;
        const writeHead = res.writeHead;
        res.writeHead = function (this: http2.Http2ServerResponse, ...args: unknown[]) {
          if (ctx.get('x-user') !== '') late(this);
          return (writeHead as (...a: unknown[]) => http2.Http2ServerResponse).apply(this, args);
        } as typeof res.writeHead;
        await next();
      });
      app.use(koaCache(newCache(), { ttl: '1m' }));
      app.use((ctx) => {
        ctx.body = `for:${ctx.get('x-user') || 'anonymous'}`;
      });
      const h2 = await overHttp2(app);
      try {
        const alice = await h2.send('/me', { 'x-user': 'alice' });
        assert.equal(alice.body, 'for:alice');
        assert.doesNotMatch(String(alice.headers['cache-status']), /stored/, 'said stored');
        const anonymous = await h2.send('/me');
        assert.equal(anonymous.body, 'for:anonymous', "alice's answer was served to another user");
      } finally {
        await h2.close();
      }
    });
  }

  it('Cache-Groups never reaches the client: not on a bypassed request, a HEAD, or a stored answer', async () => {
    const app = new Koa();
    app.use(koaCache(newCache(), { ttl: '1m' }));
    app.use((ctx) => {
      ctx.set('Cache-Groups', '"movies"');
      ctx.body = 'body';
    });
    const h2 = await overHttp2(app);
    try {
      for (const [label, answer] of [
        ['bypassed (Authorization)', await h2.send('/a', { authorization: 'Bearer x' })],
        ['HEAD', await h2.send('/b', {}, 'HEAD')],
        ['stored', await h2.send('/c')],
      ] as const) {
        assert.equal(answer.status, 200, label);
        assert.equal(answer.headers['cache-groups'], undefined, `${label}: Cache-Groups reached the client`);
      }
    } finally {
      await h2.close();
    }
  });

  it("origin mode: a stale entry revalidated for a client whose condition matches gets the cache's own 304 saying fwd=stale, fwd-status=304 and stored, though that 304 leaves out the entry's CDN-Cache-Control", async () => {
    const app = new Koa();
    app.use(koaCache(newCache(), { ttl: '1m', freshness: 'origin' }));
    let runs = 0;
    app.use((ctx) => {
      runs++;
      ctx.set('Cache-Control', 'max-age=0');
      ctx.set('CDN-Cache-Control', 'max-age=0');
      ctx.set('ETag', '"v1"');
      if (ctx.get('if-none-match') === '"v1"') ctx.status = 304;
      else ctx.body = 'the body';
    });
    const h2 = await overHttp2(app);
    try {
      assert.match(String((await h2.send('/v')).headers['cache-status']), /fwd=miss; stored/);
      const own304 = await h2.send('/v', { 'if-none-match': '"v1"' });
      assert.equal(own304.status, 304);
      assert.equal(own304.headers['cdn-cache-control'], undefined, "not a field of a 304's (RFC 9110 §15.4.5)");
      assert.equal(own304.headers['cache-status'], 'tiercache; fwd=stale; fwd-status=304; stored');
      const refreshed = await h2.send('/v');
      assert.deepEqual([refreshed.status, refreshed.body, refreshed.headers['cdn-cache-control']], [200, 'the body', 'max-age=0']);
      assert.equal(runs, 3, 'every request revalidated (max-age=0)');
    } finally {
      await h2.close();
    }
  });

  for (const [name, Framework] of [['koa3', Koa], ['koa2', Koa2]] as const) {
    it(`${name}: a request whose Host differs from its :authority is keyed by :authority, which Koa reads (ctx.host): one client cannot store its authority in the entry another client of that Host gets (found by helper-89)`, async () => {
      const app = new Framework();
      app.use(koaCache(newCache(), { ttl: '1m', vary: ['host'] }));
      app.use((ctx) => {
        ctx.body = `link to https://${ctx.host}/x`;
      });
      const h2 = await overHttp2(app as Koa);
      try {
        const attacker = await h2.send('/v', { ':authority': 'evil.example', host: 'shop.example' });
        assert.equal(attacker.body, 'link to https://evil.example/x');
        const victim = await h2.send('/v', { ':authority': 'shop.example' });
        assert.equal(victim.body, 'link to https://shop.example/x', 'a client of shop.example got the answer made for evil.example');
        const again = await h2.send('/v', { ':authority': 'evil.example' });
        assert.deepEqual([again.body, again.headers['cache-status']], ['link to https://evil.example/x', 'tiercache; hit; detail=L1']);
      } finally {
        await h2.close();
      }
    });
  }

  for (const [name, Framework] of [['koa3', Koa], ['koa2', Koa2]] as const) {
    it(`${name}: an answer whose head node refuses over HTTP/2 (a connection-specific field) is Koa's 500, as without the cache, and is not stored (found by helper-89)`, async () => {
      const app = new Framework();
      app.silent = true;
      app.use(koaCache(newCache(), { ttl: '1m' }));
      let runs = 0;
      app.use((ctx) => {
        runs++;
        ctx.set('Keep-Alive', 'timeout=5');
        ctx.body = 'answer';
      });
      const h2 = await overHttp2(app as Koa);
      try {
        for (let i = 0; i < 2; i++) {
          const answer = await h2.send('/k');
          assert.deepEqual([answer.status, answer.body, answer.headers['cache-status']], [500, 'Internal Server Error', undefined], 'the answer node refused was stored, or the client got no answer');
        }
        assert.equal(runs, 2);
      } finally {
        await h2.close();
      }
    });
  }

  it('an answer filled over HTTP/1.1 with an HTTP2-Settings field (connection-specific, RFC 7540 §3.2.1) is stored without it: its hits over HTTP/2, front door and middleware, do not throw node\'s refusal (the front door\'s ended the process) (found by helper-89)', async () => {
    const cache = newCache({ routes: { '/k': '1m' } });
    const app = new Koa();
    app.use(koaCache(cache));
    app.use((ctx) => {
      ctx.set('HTTP2-Settings', 'AAMAAABkAAQCAAAAAAIAAAAA');
      ctx.body = 'answer';
    });
    const server = http.createServer(front(cache, app.callback()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const get = (path: string) =>
      new Promise<http.IncomingMessage>((resolve, reject) => http.get({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path }, (res) => res.resume().on('end', () => resolve(res))).on('error', reject));
    const { uncaught, restore } = catchUncaught();
    const fronted = await overHttp2(app, front(cache, app.callback()));
    const bare = await overHttp2(app);
    try {
      for (const path of ['/k/front', '/k/koa']) {
        const filled = await get(path);
        assert.equal(filled.headers['cache-status'], 'tiercache; fwd=miss; stored');
      }
      // A does-not-hang bound: a hit that threw never answers.
      const within = (answer: Promise<Answer>) => Promise.race([answer, sleep(5_000).then(() => ({ status: 0, body: 'no answer', headers: {} }) as Answer)]);
      const viaFront = await within(fronted.send('/k/front'));
      assert.deepEqual(uncaught.map(String), []);
      assert.deepEqual([viaFront.status, viaFront.body, viaFront.headers['cache-status']], [200, 'answer', 'tiercache; hit; detail=L1']);
      const viaKoa = await within(bare.send('/k/koa'));
      assert.deepEqual([viaKoa.status, viaKoa.body, viaKoa.headers['cache-status']], [200, 'answer', 'tiercache; hit; detail=L1']);
    } finally {
      restore();
      await fronted.close();
      await bare.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('a stored 204 served over HTTP/2, by the middleware and by the front door: no write after the end node gives a 204 (found by helper-96)', async () => {
    // node ends an HTTP/2 stream with the head of a 204 (or 304): a body written after it, even an empty one, is
    // ERR_STREAM_WRITE_AFTER_END (Koa reported it on every such hit).
    const cache = newCache({ routes: { '/k': '1m' } });
    const app = new Koa();
    const errors: Error[] = [];
    app.silent = true;
    app.on('error', (err: Error) => errors.push(err));
    app.use(koaCache(cache));
    app.use((ctx) => {
      ctx.set('cache-control', 'public, max-age=60');
      ctx.status = 204;
    });
    const { uncaught, restore } = catchUncaught();
    const fronted = await overHttp2(app, front(cache, app.callback()));
    const bare = await overHttp2(app);
    try {
      const within = (answer: Promise<Answer>) => Promise.race([answer, sleep(5_000).then(() => ({ status: 0, body: 'no answer', headers: {} }) as Answer)]);
      for (const [via, path] of [
        [bare, '/k/koa'],
        [fronted, '/k/front'],
      ] as const) {
        assert.equal((await within(via.send(path))).headers['cache-status'], 'tiercache; fwd=miss; stored');
        const hit = await within(via.send(path));
        assert.deepEqual([hit.status, hit.body, hit.headers['cache-status']], [204, '', 'tiercache; hit; detail=L1']);
      }
      await sleep(20);
      assert.deepEqual(uncaught.map(String), []);
      assert.deepEqual(errors.map(String), []);
    } finally {
      restore();
      await fronted.close();
      await bare.close();
    }
  });

  // A layer in front that puts node's own writeHead back after next() (or calls it on ctx.res) and flushes: over
  // HTTP/2 too its head went out past the cache's writeHead, with none of the stored fields, and the hit was not counted.
  for (const [name, Framework] of [['koa3', Koa], ['koa2', Koa2]] as const) {
    for (const how of ["node's writeHead put back, ctx.flushHeaders()", "node's writeHead called on ctx.res"] as const) {
      it(`${name}: a middleware in front that sends the head after next() past the cache's writeHead (${how}) sends the stored head and body, counted`, async () => {
        const cache = newCache({ routes: { '/w': '1m' } });
        const app = new (Framework as typeof Koa)();
        const nodeWriteHead = http2.Http2ServerResponse.prototype.writeHead as unknown as (...a: unknown[]) => unknown;
        app.use(async (ctx, next) => {
          await next();
          if (ctx.get('x-flush') === '') return;
          ctx.set('x-front', '1');
          if (how === "node's writeHead called on ctx.res") nodeWriteHead.call(ctx.res, ctx.status);
          else {
            ctx.res.writeHead = nodeWriteHead as typeof ctx.res.writeHead;
            ctx.flushHeaders();
          }
        });
        app.use(koaCache(cache));
        let runs = 0;
        app.use((ctx) => {
          ctx.body = { n: ++runs };
        });
        const hits: string[] = [];
        cache.on('hit', (e) => hits.push(e.tier));
        const h2 = await overHttp2(app);
        try {
          const fill = await h2.send('/w');
          const plain = await h2.send('/w');
          assert.equal(plain.headers['cache-status'], 'tiercache; hit; detail=L1');
          const hit = await h2.send('/w', { 'x-flush': '1' });
          assert.equal(hit.body, '{"n":1}');
          for (const field of ['content-type', 'etag', 'cache-status']) assert.equal(hit.headers[field], plain.headers[field], field);
          assert.equal(hit.headers['content-type'], fill.headers['content-type']);
          assert.equal(hit.headers['x-front'], '1');
          assert.equal(runs, 1);
          assert.deepEqual(hits, ['L1', 'L1']);
        } finally {
          await h2.close();
        }
      });
    }
  }

  /** A Koa app over HTTP/2 answering { n: 1 }, whose middleware in front answers requests with X-Busy after next() its own way. */
  async function busyApp(Framework: typeof Koa, answer: (ctx: Koa.Context) => void, early?: string) {
    const cache = newCache({ routes: { '/busy': '1m' } });
    const app = new Framework();
    app.use(async (ctx, next) => {
      if (early !== undefined) ctx.body = early;
      await next();
      if (ctx.get('x-busy') !== '') answer(ctx);
    });
    app.use(koaCache(cache));
    app.use((ctx) => {
      ctx.body = { n: 1 };
    });
    const hits: string[] = [];
    cache.on('hit', (e) => hits.push(e.tier));
    return { h2: await overHttp2(app), hits };
  }

  // A head of another status sent in front with a body set on ctx, the end left to Koa: Koa sends that body, as without
  // the cache. The stored body went after that head, past the Content-Length it said: node reset the stream.
  for (const [name, Framework] of [['koa3', Koa], ['koa2', Koa2]] as const) {
    it(`${name}: a middleware in front that answers a hit with a head of another status after next() and a body on ctx (ctx.status = 503, ctx.body, ctx.flushHeaders()) sends that body`, async () => {
      const { h2, hits } = await busyApp(Framework as typeof Koa, (ctx) => {
        ctx.status = 503;
        ctx.body = 'down';
        ctx.flushHeaders();
      });
      try {
        await h2.send('/busy');
        const busy = await h2.send('/busy', { 'x-busy': '1' });
        assert.deepEqual([busy.status, busy.body, busy.headers['cache-status']], [503, 'down', undefined]);
        assert.equal((await h2.send('/busy')).body, '{"n":1}');
        assert.deepEqual(hits, ['L1']);
      } finally {
        await h2.close();
      }
    });
  }

  // The app alone's handler replaces that early body, and Koa ends with the handler's: the early one went instead.
  for (const [name, Framework] of [['koa3', Koa], ['koa2', Koa2]] as const) {
    it(`${name}: a middleware in front that sets ctx.body before next(), then sends a head of another status after it (ctx.status = 503, ctx.flushHeaders()), sends the stored body, as the app alone sends its handler's`, async () => {
      const { h2, hits } = await busyApp(Framework as typeof Koa, (ctx) => {
        ctx.status = 503;
        ctx.flushHeaders();
      }, 'early');
      try {
        await h2.send('/busy');
        const busy = await h2.send('/busy', { 'x-busy': '1' });
        assert.deepEqual([busy.status, busy.body, busy.headers['content-length']], [503, '{"n":1}', '7']);
        assert.equal((await h2.send('/busy')).body, '{"n":1}');
        assert.deepEqual(hits, ['L1']);
      } finally {
        await h2.close();
      }
    });
  }

  it('koa: a middleware in front that answers with a head of another status after next() (writeHead(503), its own end) sends its own answer, not the hit', async () => {
    const { h2, hits } = await busyApp(Koa, (ctx) => {
      ctx.res.writeHead(503, { 'content-type': 'text/plain' });
      ctx.res.end('busy');
    });
    try {
      assert.equal((await h2.send('/busy')).body, '{"n":1}');
      const busy = await h2.send('/busy', { 'x-busy': '1' });
      assert.deepEqual([busy.status, busy.body, busy.headers['etag'], busy.headers['cache-status']], [503, 'busy', undefined, undefined]);
      assert.equal((await h2.send('/busy')).body, '{"n":1}');
      assert.deepEqual(hits, ['L1']);
    } finally {
      await h2.close();
    }
  });

  // Over HTTP/1 an answer that adds trailer fields without a Trailer field is not stored (fd26111, sendsTrailers); the
  // compatibility API keeps them elsewhere and sends them after the body whatever its framing (Content-Length too):
  // such answers were stored, and every hit came without them (an integrity checksum, a gRPC-Web status).
  for (const [name, via] of [['koa3', 'koa'], ['koa2', 'koa'], ['front door', 'front']] as const) {
    for (const how of ['addTrailers, whole body', 'setTrailer, streamed body', 'addTrailers just after end()', "addTrailers in a 'wantTrailers' listener"] as const) {
      it(`${name}: an answer that adds trailer fields without declaring them (${how}) is not stored: each answer has its trailers, as from the app alone`, async () => {
        const cache = newCache({ routes: { '/t': '1m' } });
        const app = new (name === 'koa2' ? (Koa2 as typeof Koa) : Koa)();
        // The front door serves hits the middleware stored.
        app.use(koaCache(cache));
        let runs = 0;
        app.use((ctx) => {
          runs++;
          if (how === 'addTrailers, whole body') {
            ctx.res.addTrailers({ 'X-Checksum': `c${runs}` });
            ctx.body = `body ${runs}`;
            return;
          }
          ctx.respond = false;
          ctx.res.statusCode = 200;
          ctx.res.setHeader('content-type', 'text/plain');
          if (how === 'addTrailers just after end()') {
            // node sends them all the same: at the stream's 'wantTrailers', once the body has gone.
            ctx.res.end(`body ${runs}`);
            ctx.res.addTrailers({ 'X-Checksum': `c${runs}` });
            return;
          }
          if (how === "addTrailers in a 'wantTrailers' listener") {
            // Given as node asks for them, once the body has left: past the turn after end() it was judged in.
            const n = runs;
            (ctx.res as unknown as http2.Http2ServerResponse).stream.prependListener('wantTrailers', () => ctx.res.addTrailers({ 'X-Checksum': `c${n}` }));
            ctx.res.end(`body ${runs}`);
            return;
          }
          ctx.res.write('part;');
          // node's Http2ServerResponse has it (addTrailers calls it); @types/node does not name it.
          (ctx.res as unknown as { setTrailer(name: string, value: string): void }).setTrailer('x-checksum', `c${runs}`);
          ctx.res.end(`body ${runs}`);
        });
        const h2 = await overHttp2(app, via === 'front' ? front(cache, app.callback()) : undefined);
        try {
          for (const n of [1, 2]) {
            const answer = await h2.send('/t');
            const expected = how === 'setTrailer, streamed body' ? `part;body ${n}` : `body ${n}`;
            assert.deepEqual([answer.body, answer.trailers?.['x-checksum']], [expected, `c${n}`], `answer ${n} (${String(answer.headers['cache-status'])})`);
            // Trailers given before the head are known to it: it does not say stored.
            if (how === 'addTrailers, whole body') assert.equal(answer.headers['cache-status'], 'tiercache; fwd=miss; detail=trailer', `answer ${n}`);
          }
          assert.equal(runs, 2);
        } finally {
          await h2.close();
        }
      });
    }
  }

  // A large body within the client's window leaves over several turns, and node asks for the trailers only once it
  // has: judged a turn after end(), such an answer was stored before its trailers were given, every hit without them.
  it("koa3: an answer of a body over the default window (within the client's window) that adds trailer fields in a 'wantTrailers' listener is not stored", async () => {
    const cache = newCache({ routes: { '/t': '1m' } });
    const app = new Koa();
    app.use(koaCache(cache, { maxBodyBytes: 16 * 1024 * 1024 }));
    let runs = 0;
    app.use((ctx) => {
      const n = ++runs;
      ctx.respond = false;
      ctx.res.statusCode = 200;
      (ctx.res as unknown as http2.Http2ServerResponse).stream.prependListener('wantTrailers', () => ctx.res.addTrailers({ 'X-Checksum': `c${n}` }));
      ctx.res.end(Buffer.alloc(512 * 1024, 'a'));
    });
    const h2 = await overHttp2(app);
    const wide = http2.connect(h2.url, { settings: { initialWindowSize: 16 * 1024 * 1024 } });
    wide.once('connect', () => wide.setLocalWindowSize(32 * 1024 * 1024));
    try {
      await new Promise((resolve) => wide.once('connect', resolve));
      for (const n of [1, 2]) {
        const answer = await new Promise<string>((resolve, reject) => {
          const stream = wide.request({ ':path': '/t' });
          let length = 0;
          let trailer: unknown;
          let status: unknown;
          stream.on('response', (h) => (status = h['cache-status']));
          stream.on('trailers', (t) => (trailer = t['x-checksum']));
          stream.on('data', (chunk: Buffer) => (length += chunk.length));
          stream.on('end', () => resolve(`${length} ${String(trailer)} (${String(status)})`));
          stream.on('error', reject);
        });
        assert.equal(answer.split(' (')[0], `${512 * 1024} c${n}`, `answer ${n}: ${answer}`);
      }
      assert.equal(runs, 2);
    } finally {
      wide.destroy();
      await h2.close();
    }
  });

  // Such an answer is judged when node asks for its trailers, once the client has taken the body: one larger than the
  // client's flow-control window is judged a turn after end() as before, or a client that does not read would hold the
  // store and every request waiting on the fill (a waiter waits 3 s, then runs the handler itself).
  // The window is the smaller of the stream's and the session's: a client may raise either alone (its SETTINGS, a
  // session WINDOW_UPDATE), and the other one still holds the body back until it reads.
  for (const raised of ['', 'stream', 'session'] as const) {
    it(`koa3: a fill larger than the client’s window${raised === '' ? '' : ` (its ${raised} window raised, the ${raised === 'stream' ? 'session' : 'stream'}’s not)`}, whose client does not read, is stored at once: a request on another connection hits`, async () => {
      const cache = newCache({ routes: { '/large': '1m' } });
      const app = new Koa();
      app.use(koaCache(cache, { maxBodyBytes: 4 * 1024 * 1024 }));
      let runs = 0;
      app.use((ctx) => {
        runs++;
        ctx.body = Buffer.alloc(512 * 1024, 'a');
      });
      const h2 = await overHttp2(app);
      const paused = http2.connect(h2.url, raised === 'stream' ? { settings: { initialWindowSize: 2 * 1024 * 1024 } } : {});
      if (raised === 'session') paused.once('connect', () => paused.setLocalWindowSize(8 * 1024 * 1024));
      try {
        if (raised === 'session') await new Promise((resolve) => paused.once('connect', resolve));
        const fill = paused.request({ ':path': '/large' });
        fill.pause();
        const filled = new Promise<number>((resolve) => {
          let length = 0;
          fill.on('data', (chunk: Buffer) => (length += chunk.length));
          fill.on('close', () => resolve(length));
        });
        await new Promise((resolve) => fill.once('response', resolve));
        const other = await h2.send('/large');
        fill.resume();
        assert.deepEqual([other.body.length, other.headers['cache-status'], await filled, runs], [512 * 1024, 'tiercache; hit; detail=L1', 512 * 1024, 1]);
      } finally {
        paused.destroy();
        await h2.close();
      }
    });
  }

  // Its end is held a turn (for trailers given just after it): a second end() in that turn, as from a handler that
  // ends twice (res.end(body) then res.end()), is dropped as while a store is under way, not let through to end it short.
  it('koa3: an answer ended twice in one turn (res.end(body), res.end()) goes whole, and is stored', async () => {
    const cache = newCache({ routes: { '/twice': '1m' } });
    const app = new Koa();
    app.use(koaCache(cache));
    let runs = 0;
    app.use((ctx) => {
      runs++;
      ctx.respond = false;
      ctx.res.statusCode = 200;
      ctx.res.setHeader('content-type', 'text/plain');
      ctx.res.end(`body ${runs}`);
      ctx.res.end();
    });
    const h2 = await overHttp2(app);
    try {
      for (const n of [1, 2]) {
        const answer = await h2.send('/twice');
        assert.equal(answer.body, 'body 1', `answer ${n} (${String(answer.headers['cache-status'])})`);
      }
      assert.equal(runs, 1);
    } finally {
      await h2.close();
    }
  });

  for (const vary of [[], ['host']]) {
    it(`a stale-while-revalidate refresh set off by an HTTP/2 request sees the Host it came with${vary.length > 0 ? ', and refreshes the entry that varies on it' : ''}`, async () => {
      let version = 0;
      const app = new Koa();
      app.use(koaCache(newCache(), { ttl: 100, staleWhileRevalidate: '1m', vary }));
      app.use((ctx) => {
        ctx.body = `v${version++} host=${ctx.host}`;
      });
      const h2 = await overHttp2(app);
      try {
        const first = await h2.send('/s');
        const host = /host=(.*)$/.exec(first.body)![1]!;
        assert.notEqual(host, '');
        await sleep(150);
        assert.equal((await h2.send('/s')).body, first.body, 'the stale answer');
        let refreshed = first.body;
        for (let i = 0; i < 50 && refreshed === first.body; i++) {
          await sleep(10);
          refreshed = (await h2.send('/s')).body;
        }
        assert.equal(refreshed, `v1 host=${host}`, 'the refresh ran without the Host of its request, or stored its answer elsewhere');
      } finally {
        await h2.close();
      }
    });
  }
});
