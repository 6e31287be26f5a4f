// A fill the handler streams (a pipe into res) ends only as fast as its client
// reads: a client that stops reading held every request waiting on the fill for
// the whole coalescing wait (3 s), after which each ran the handler itself,
// storing nothing, where the app alone answers them at once (found by a hostile
// review, h178 O2). Such a fill now gives up once its response stays
// backpressured (capture.ts STALL_MS): one waiter fills in its place and the
// others wait on that one, as for a client that left. The slow client's own
// answer still goes out whole; nothing of it is stored.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { RequestListener } from 'node:http';
import express from 'express';
import Koa from 'koa';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { front } from '../../../src/node.js';
import { startRedisServer, type RedisServerHandle } from '../../support/redis-server.js';
import { useCleanup } from '../../support/cache-context.js';
import { binaryParser } from '../../support/http-bytes.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const SLICE = 64 * 1024;
/** Past what the loopback socket buffers take (send and receive) while the client reads nothing. */
const SIZE = 8 * 1024 * 1024;
/** Each slice its own byte, so a slice lost, doubled or moved shows. */
const BODY = Buffer.alloc(SIZE);
for (let i = 0; i < SIZE / SLICE; i++) BODY.fill(i % 251, i * SLICE, (i + 1) * SLICE);
const stream = () => Readable.from((function* () {
  for (let at = 0; at < SIZE; at += SLICE) yield BODY.subarray(at, at + SLICE);
})());
const bodyOpts = { maxBodyBytes: 2 * SIZE };
let counter = 0;

interface Case {
  readonly name: string;
  readonly build: (cache: TierCache, runs: { n: number }) => RequestListener;
}

/** An Express app whose route sends /big's 8 MiB as `send` does, counting its runs. */
const expressWith =
  (send: (res: express.Response) => unknown) =>
  (cache: TierCache, runs: { n: number }): express.Express => {
    const app = express();
    app.use(expressCache(cache, bodyOpts));
    app.get('/big', (_req, res) => {
      runs.n++;
      res.type('application/octet-stream').setHeader('content-length', SIZE);
      void send(res);
    });
    return app;
  };

const expressApp = expressWith((res) => stream().pipe(res));

const koaApp = (cache: TierCache, runs: { n: number }): Koa => {
  const app = new Koa();
  app.silent = true;
  app.use(koaCache(cache, bodyOpts) as Koa.Middleware);
  app.use((ctx) => {
    runs.n++;
    ctx.type = 'application/octet-stream';
    ctx.length = SIZE;
    ctx.body = stream();
  });
  return app;
};

/**
 * Writes its slices a few ms apart, all it has, ignoring write()'s false (no
 * pipe, no 'drain' awaited), then ends: its end and the store come at its own
 * pace, whatever its client reads. `ended` is called once it has called end().
 */
const heedlessApp = (cache: TierCache, runs: { n: number }, ended?: () => void): express.Express =>
  expressWith((res) => {
    let at = 0;
    const timer = setInterval(() => {
      res.write(BODY.subarray(at, at + SLICE));
      at += SLICE;
      if (at < SIZE) return;
      clearInterval(timer);
      res.end();
      ended?.();
    }, 6);
  })(cache, runs);

/** Writes its whole answer in one write (false: past the buffers), then ends ~800 ms later, at its own pace (a query, say): nothing waits for 'drain'. */
const writeThenEndApp = expressWith((res) => {
  res.write(BODY);
  setTimeout(() => res.end(), 800);
});

/** Writes slice by slice, waiting for 'drain' after a false (no pipe): its end comes as fast as its client reads, as a pipe's. */
const awaitingDrainApp = expressWith(async (res) => {
  for (let at = 0; at < SIZE; at += SLICE) if (!res.write(BODY.subarray(at, at + SLICE))) await once(res, 'drain');
  res.end();
});

const cases: Case[] = [
  { name: 'Express, a handler that pipes', build: (cache, runs) => expressApp(cache, runs) as unknown as RequestListener },
  { name: 'Koa, a stream as the body', build: (cache, runs) => koaApp(cache, runs).callback() },
  { name: "Express, a handler that awaits once(res, 'drain')", build: (cache, runs) => awaitingDrainApp(cache, runs) as unknown as RequestListener },
  { name: 'the front door in front of Express', build: (cache, runs) => front(cache, expressApp(cache, runs) as unknown as RequestListener) },
];

/** A client that sends its request and reads nothing until told to: then it reads the whole answer (Connection: close). */
function stoppedReader(port: number): { socket: Socket; readAll: () => Promise<Buffer> } {
  const socket = connect(port, '127.0.0.1', () => socket.write('GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
  socket.pause();
  socket.on('error', () => undefined);
  return {
    socket,
    readAll: () =>
      new Promise((resolve) => {
        const parts: Buffer[] = [];
        socket.on('data', (b: Buffer) => parts.push(b));
        socket.on('close', () => resolve(Buffer.concat(parts)));
        socket.resume();
      }),
  };
}

function bodyOf(raw: Buffer): Buffer {
  return raw.subarray(raw.indexOf('\r\n\r\n') + 4);
}

/** Waits for the handler's first run, then a little for its writes to fill the buffers. */
async function filling(runs: { n: number }, settle = 300): Promise<void> {
  for (let i = 0; i < 200 && runs.n === 0; i++) await sleep(10);
  await sleep(settle);
}

function judge(statuses: string[], runs: number): void {
  const all = statuses.join(' | ');
  assert.equal(statuses.filter((s) => /detail=waited/.test(s)).length, 0, `a waiter waited out the fill of the client that stopped reading: ${all}`);
  assert.equal(runs, 2, `the handler ran ${runs} times (the stopped fill and one in its place): ${all}`);
  // A streamed fill says no more than fwd=miss (its head leaves before it is stored); the hit after it shows the store.
  assert.equal(statuses.filter((s) => s === 'tiercache; fwd=miss').length, 1, all);
  assert.equal(statuses.filter((s) => /collapsed/.test(s)).length, statuses.length - 1, all);
}

describe('middleware: a streamed fill whose client stops reading', function () {
  this.timeout(20_000);
  const cleanup = useCleanup();
  const newCache = (extra: object = {}) => cleanup.track(createCache({ namespace: `filler-stops-${process.pid}-${++counter}`, redis: false, routes: { '/big': '1m' }, l1: { maxBytes: 8 * SIZE }, ...extra }));

  for (const { name, build } of cases) {
    it(`${name}: the requests waiting on it are not held by that client; one fills in its place and stores, the others get its answer; the stopped client still gets its whole answer`, async () => {
      const runs = { n: 0 };
      const server = await cleanup.serve(build(newCache(), runs));
      const { port } = server.address() as AddressInfo;
      const filler = stoppedReader(port);
      await filling(runs);
      const answers = await Promise.all([1, 2, 3].map(() => request(server).get('/big').buffer(true).parse(binaryParser)));
      judge(answers.map((a) => String(a.headers['cache-status'])), runs.n);
      for (const a of answers) assert.ok(BODY.equals(a.body as Buffer), `a waiter's body: ${(a.body as Buffer).length} bytes`);
      const next = await request(server).get('/big').buffer(true).parse(binaryParser);
      assert.match(String(next.headers['cache-status']), /hit/);
      assert.ok(BODY.equals(next.body as Buffer));
      const own = await filler.readAll();
      assert.match(own.subarray(0, 200).toString('latin1'), /^HTTP\/1\.1 200 /);
      assert.ok(BODY.equals(bodyOf(own)), `the stopped client's body: ${bodyOf(own).length} bytes`);
      assert.equal(runs.n, 2);
    });
  }

  it('a HEAD that comes while such a fill holds on is answered by the app at once, and does not end that fill', async () => {
    const runs = { n: 0 };
    const server = await cleanup.serve(build0(newCache(), runs));
    const { port } = server.address() as AddressInfo;
    const filler = stoppedReader(port);
    await filling(runs);
    await sleep(700); // past STALL_MS: the fill has said its client stopped
    const head = await request(server).head('/big');
    assert.equal(head.status, 200);
    assert.match(String(head.headers['cache-status']), /detail=head/, String(head.headers['cache-status']));
    // Nobody waited on it: the slow client alone still stores its answer once it reads.
    const own = await filler.readAll();
    assert.ok(BODY.equals(bodyOf(own)));
    const next = await request(server).get('/big').buffer(true).parse(binaryParser);
    assert.match(String(next.headers['cache-status']), /hit/, String(next.headers['cache-status']));
  });

  it('a HEAD waiting on such a fill, nothing else waiting, is let go to the app as the fill stalls, and does not end that fill: the slow client\'s answer is still stored', async () => {
    const runs = { n: 0 };
    const server = await cleanup.serve(build0(newCache(), runs));
    const filler = stoppedReader((server.address() as AddressInfo).port);
    // Well before STALL_MS: the HEAD waits on the fill (a HEAD cannot fill in its place).
    await filling(runs, 20);
    const head = await request(server).head('/big');
    assert.equal(head.status, 200);
    // Not held for the whole wait (detail=waited): answered by the app, as one that came after the stall.
    assert.match(String(head.headers['cache-status']), /detail=head/, String(head.headers['cache-status']));
    assert.ok(BODY.equals(bodyOf(await filler.readAll())), 'the stopped client got its whole answer');
    const next = await request(server).get('/big').buffer(true).parse(binaryParser);
    assert.match(String(next.headers['cache-status']), /^tiercache; hit\b/, `the fill gave up its store for a HEAD, which cannot fill in its place: ${String(next.headers['cache-status'])}`);
    assert.ok(BODY.equals(next.body as Buffer));
    // The fill, and the app answering the HEAD.
    assert.equal(runs.n, 2);
  });

  it('a fill given up for its client teaches nothing about its size: a conditional request after it is filled with its conditionals set aside, stored, and answered by the cache (h187)', async () => {
    const runs = { n: 0 };
    const app = express();
    app.use(expressCache(newCache(), bodyOpts));
    app.get('/big', (req, res) => {
      runs.n++;
      res.type('application/octet-stream').set('ETag', '"big"');
      // Answers conditionals itself, as express.static does: had the stall taught "too large", it would answer this one.
      if (req.fresh) return void res.status(304).end();
      res.setHeader('content-length', SIZE);
      stream().pipe(res);
    });
    const server = await cleanup.serve(app as unknown as RequestListener);
    const filler = stoppedReader((server.address() as AddressInfo).port);
    await filling(runs);
    await sleep(700); // past STALL_MS: the fill has said its client stopped, and gives up as the next request comes
    const conditional = await request(server).get('/big').set('If-None-Match', '"big"');
    assert.deepEqual([conditional.status, conditional.headers['cache-status'], runs.n], [304, 'tiercache; fwd=miss', 2]);
    const next = await request(server).get('/big').buffer(true).parse(binaryParser);
    assert.match(String(next.headers['cache-status']), /hit/, String(next.headers['cache-status']));
    assert.ok(BODY.equals(bodyOf(await filler.readAll())));
  });

  for (const [how, app] of [
    ['writes all it has, ignoring write()\'s false,', heedlessApp],
    ['writes its answer at once and ends later, nothing waiting for \'drain\',', writeThenEndApp],
  ] as const) {
    it(`a handler that ${how} is not held by that client: its waiters get its answer, it runs once`, async () => {
    const runs = { n: 0 };
    const server = await cleanup.serve(app(newCache(), runs) as unknown as RequestListener);
    const filler = stoppedReader((server.address() as AddressInfo).port);
    await filling(runs);
    const answers = await Promise.all([1, 2, 3].map(() => request(server).get('/big').buffer(true).parse(binaryParser)));
    const statuses = answers.map((a) => String(a.headers['cache-status']));
    // Its writes go on past STALL_MS of backpressure (~800 ms of them): the client stopped, the handler did not.
    assert.deepEqual([runs.n, ...statuses], [1, ...statuses.map(() => 'tiercache; fwd=miss; collapsed')], 'the fill gave up though its handler never waited on its client');
    for (const a of answers) assert.ok(BODY.equals(a.body as Buffer), `a waiter's body: ${(a.body as Buffer).length} bytes`);
    assert.ok(BODY.equals(bodyOf(await filler.readAll())));
    });
  }

  it('a client that reads slowly but steadily keeps its waiters: they get its answer, the handler runs once', async () => {
    const runs = { n: 0 };
    const server = await cleanup.serve(build0(newCache(), runs));
    const { port } = server.address() as AddressInfo;
    const filler = stoppedReader(port);
    const parts: Buffer[] = [];
    filler.socket.on('data', (b: Buffer) => {
      parts.push(b);
      filler.socket.pause();
      // About 10 MB/s, the body taking longer than STALL_MS: a 'drain' comes every few ms, at worst every ~200 (capture.ts).
      setTimeout(() => filler.socket.resume(), 4);
    });
    filler.socket.resume();
    await filling(runs, 20);
    const answers = await Promise.all([1, 2].map(() => request(server).get('/big').buffer(true).parse(binaryParser)));
    const statuses = answers.map((a) => String(a.headers['cache-status']));
    assert.equal(runs.n, 1, statuses.join(' | '));
    assert.deepEqual(statuses, ['tiercache; fwd=miss; collapsed', 'tiercache; fwd=miss; collapsed']);
    await new Promise((resolve) => filler.socket.on('close', resolve));
    assert.ok(BODY.equals(bodyOf(Buffer.concat(parts))));
  });

  describe('with L2 (a real redis-server)', () => {
    let redis: RedisServerHandle | undefined;
    before(async function () {
      this.timeout(20_000);
      redis = await startRedisServer();
    });
    after(async () => redis?.stop());
    /** Two instances on one namespace of the describe's redis-server, ready. */
    const twoInstances = async (): Promise<[TierCache, TierCache]> => {
      const namespace = `filler-stops-l2-${process.pid}-${++counter}`;
      const options = { namespace, redis: `redis://127.0.0.1:${redis!.port}`, l2: { commandTimeout: '3s' } };
      const both: [TierCache, TierCache] = [newCache(options), newCache(options)];
      await Promise.all(both.map((c) => c.ready()));
      return both;
    };

    it('the fill in its place takes the lock and stores in both tiers: another instance hits L2', async () => {
      const [one, two] = await twoInstances();
      const runs = { n: 0 };
      const server = await cleanup.serve(build0(one, runs));
      const other = await cleanup.serve(build0(two, runs));
      const filler = stoppedReader((server.address() as AddressInfo).port);
      await filling(runs);
      const answers = await Promise.all([1, 2, 3].map(() => request(server).get('/big').buffer(true).parse(binaryParser)));
      judge(answers.map((a) => String(a.headers['cache-status'])), runs.n);
      const there = await request(other).get('/big').buffer(true).parse(binaryParser);
      assert.match(String(there.headers['cache-status']), /hit; detail=L2/, String(there.headers['cache-status']));
      assert.ok(BODY.equals(there.body as Buffer));
      assert.ok(BODY.equals(bodyOf(await filler.readAll())));
      assert.equal(runs.n, 2);
    });

    it('with nobody waiting on this instance, it gives up its lock at once: requests on another instance, which wait on that lock, are not held by it', async () => {
      const [one, two] = await twoInstances();
      const runs = { n: 0 };
      let key = '';
      const app = express();
      app.use((req, _res, next) => {
        key ||= one.keyFor(req);
        next();
      });
      app.use(build0(one, runs) as unknown as express.RequestHandler);
      const server = await cleanup.serve(app as unknown as RequestListener);
      const other = await cleanup.serve(build0(two, runs));
      const filler = stoppedReader((server.address() as AddressInfo).port);
      await filling(runs);
      await sleep(700); // past STALL_MS
      assert.equal(await one.fillLock!.held(key), false, `the fill of the client that stopped reading still holds the lock on ${key}`);
      const there = await request(other).get('/big').buffer(true).parse(binaryParser);
      assert.equal(String(there.headers['cache-status']), 'tiercache; fwd=miss');
      assert.ok(BODY.equals(there.body as Buffer));
      assert.ok(BODY.equals(bodyOf(await filler.readAll())), 'the stopped client got its whole answer');
      assert.equal(runs.n, 2);
    });

    it('a handler that writes all it has, ignoring write()\'s false, still stores its answer while holding the lock, its client stopped and nobody waiting', async () => {
      const [one, two] = await twoInstances();
      const runs = { n: 0 };
      let ended = false;
      const server = await cleanup.serve(heedlessApp(one, runs, () => (ended = true)) as unknown as RequestListener);
      const filler = stoppedReader((server.address() as AddressInfo).port);
      // The handler writes for ~800 ms, past STALL_MS of backpressure, its client reading nothing till it has ended.
      for (let i = 0; i < 500 && !ended; i++) await sleep(10);
      assert.ok(ended);
      // The real end waits for the store (capture.ts finishEnd): once the client has it all, the store is done.
      assert.ok(BODY.equals(bodyOf(await filler.readAll())), 'the stopped client got its whole answer');
      const other = await cleanup.serve(build0(two, runs));
      const there = await request(other).get('/big').buffer(true).parse(binaryParser);
      assert.equal(String(there.headers['cache-status']), 'tiercache; hit; detail=L2', 'the fill gave up its store though its handler never waited on its client');
      assert.ok(BODY.equals(there.body as Buffer));
      assert.equal(runs.n, 1);
    });
  });

  for (const steady of [false, true]) {
    const title = steady
      ? 'HTTP/2 (Koa): a client that reads its stream steadily keeps its waiters (node\'s drain heard): they get its answer, the handler runs once'
      : 'HTTP/2 (Koa): a client whose stream stops reading does not hold the requests waiting on its fill';
    it(title, async () => {
      const runs = { n: 0 };
      const server = http2.createServer(koaApp(newCache(), runs).callback() as never);
      const sessions = new Set<http2.ServerHttp2Session>();
      server.on('session', (s) => sessions.add(s));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const slow = http2.connect(url);
      slow.on('error', () => undefined);
      const others = [1, 2, 3].map(() => http2.connect(url));
      const get = (session: http2.ClientHttp2Session, pace?: 'stop' | 'steady') => {
        const s = session.request({ ':path': '/big' });
        s.on('error', () => undefined);
        const parts: Buffer[] = [];
        let status = '';
        s.on('response', (h) => (status = String(h['cache-status'])));
        s.on('data', (b: Buffer) => {
          parts.push(b);
          if (pace !== 'steady') return;
          s.pause();
          setTimeout(() => s.resume(), 2);
        });
        if (pace === 'stop') s.pause();
        const done = new Promise<{ status: string; body: Buffer }>((resolve) => s.on('close', () => resolve({ status, body: Buffer.concat(parts) })));
        return { s, done };
      };
      try {
        const filler = get(slow, steady ? 'steady' : 'stop');
        await filling(runs, steady ? 20 : 300);
        const answers = await Promise.all(others.map((o) => get(o).done));
        const statuses = answers.map((a) => a.status);
        if (steady) assert.deepEqual([runs.n, ...statuses], [1, ...statuses.map(() => 'tiercache; fwd=miss; collapsed')]);
        else judge(statuses, runs.n);
        for (const a of answers) assert.ok(BODY.equals(a.body), `a waiter's body: ${a.body.length} bytes`);
        filler.s.resume();
        const own = await filler.done;
        assert.ok(BODY.equals(own.body), `the filling client's body: ${own.body.length} bytes`);
      } finally {
        slow.destroy();
        for (const o of others) o.close();
        for (const s of sessions) s.destroy();
        await new Promise((resolve) => server.close(resolve));
      }
    });
  }
});

function build0(cache: TierCache, runs: { n: number }): RequestListener {
  return cases[0]!.build(cache, runs);
}

