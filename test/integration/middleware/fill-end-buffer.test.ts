// A fill whose handler ends with bytes (Express's res.send and res.json hand
// node a Buffer). The bytes kept must be exactly those of the chunk, whatever
// it is: a Buffer, a view into a larger buffer (an offset), a Uint8Array that
// is not a Buffer, the last chunk after earlier writes; the handler's answer
// must leave as without the cache, also when the handler reuses its buffer
// once end() returned.
import assert from 'node:assert/strict';
import express from 'express';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useCleanup } from '../../support/cache-context.js';
import { startRedisServer, type RedisServerHandle } from '../../support/redis-server.js';
import { wireRequest, valuesOf } from '../../support/http-wire.js';

/** Every byte value, twice, after a few bytes that must not be taken: binary-safe and offset-sensitive. */
const BACKING = Buffer.concat([Buffer.from('skip'), Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256)), Buffer.from('tail')]);
const BYTES = BACKING.subarray(4, 4 + 512);

const handlers: Record<string, { body: Buffer; send: (res: express.Response) => void }> = {
  'res.send(Buffer)': { body: Buffer.from(BYTES), send: (res) => res.send(Buffer.from(BYTES)) },
  'res.end() of a Buffer view with an offset': {
    body: Buffer.from(BYTES),
    send: (res) => {
      res.type('bin');
      res.end(BYTES);
    },
  },
  'res.end() of a Uint8Array (not a Buffer) with an offset': {
    body: Buffer.from(BYTES),
    send: (res) => {
      res.type('bin');
      res.end(new Uint8Array(BACKING.buffer, BACKING.byteOffset + 4, 512));
    },
  },
  'res.write(string) then res.end(Buffer view)': {
    body: Buffer.concat([Buffer.from('first '), BYTES]),
    send: (res) => {
      res.type('bin');
      res.setHeader('content-length', 6 + 512);
      res.write('first ');
      res.end(BYTES);
    },
  },
  'res.json(value)': { body: Buffer.from(JSON.stringify({ list: [1, 2, 3], name: 'café' })), send: (res) => res.json({ list: [1, 2, 3], name: 'café' }) },
};

describe('middleware: a fill ended with bytes stores exactly those bytes', () => {
  const cleanup = useCleanup();

  for (const [name, { body, send }] of Object.entries(handlers)) {
    it(`${name}: the fill and its hit send the handler's bytes`, async () => {
      const cache = cleanup.track(createCache({ redis: false, namespace: 'fill-end-buffer', routes: { '/v': '1m' } }));
      await cache.ready();
      const app = express();
      app.use(expressCache(cache));
      app.get('/v', (_req, res) => send(res));
      const server = await cleanup.serve(app);
      const fill = await wireRequest(server, '/v');
      // (A head that left with a write() before the end says no more than the miss.)
      assert.match(valuesOf(fill, 'cache-status')[0] ?? '', /fwd=miss/);
      assert.equal(fill.body, body.toString('latin1'), 'the fill sent other bytes');
      const hit = await wireRequest(server, '/v');
      assert.match(valuesOf(hit, 'cache-status')[0] ?? '', /hit/);
      assert.equal(hit.body, body.toString('latin1'), 'the hit sent other bytes than the handler gave');
      // The handler's buffers are untouched by the cache.
      assert.ok(BACKING.subarray(0, 4).equals(Buffer.from('skip')) && BYTES[1] === 1 && BYTES[511] === 255);
    });
  }

  it('a Buffer past maxBodyBytes is not copied: the layer in front is handed the handler\'s own (found by h190: each was copied whole, and since 3dfb1bf sent as the copy, for nothing kept)', async () => {
    const cache = cleanup.track(createCache({ redis: false, namespace: 'fill-end-large', routes: { '/big': '1m' } }));
    await cache.ready();
    const big = Buffer.alloc(64 * 1024, 'b');
    let handed: unknown;
    const app = express();
    // In front of the cache, as compression() or on-finished's wrappers are: it sees what the capture hands on.
    app.use((_req, res, next) => {
      const end = res.end;
      res.end = function (this: express.Response, ...args: unknown[]) {
        handed = args[0];
        return (end as (...a: unknown[]) => express.Response).apply(this, args);
      } as express.Response['end'];
      next();
    });
    app.use(expressCache(cache, { maxBodyBytes: 1024 }));
    app.get('/big', (_req, res) => {
      res.type('bin');
      res.end(big);
    });
    const server = await cleanup.serve(app);
    const fill = await wireRequest(server, '/big');
    assert.match(valuesOf(fill, 'cache-status')[0] ?? '', /detail=too-large/);
    assert.equal(fill.body.length, big.length);
    assert.equal(handed === big, true, 'the bytes handed on are a copy of the handler\'s Buffer');
  });

  describe('a handler that reuses its buffer once end() returned (a pool): the fill and its hits send the bytes it ended with, as the app alone', () => {
    let redis: RedisServerHandle;
    before(async () => {
      redis = await startRedisServer();
    });
    after(async () => {
      await redis?.stop();
    });

    const cases: Array<[string, () => string | false, Record<string, string>]> = [
      ['L1 alone, tags from Cache-Groups (the store waits for their versions)', () => false, { 'cache-groups': 'pool' }],
      ['L1 and L2 (the real end waits for the store in Redis)', () => redis.url, {}],
    ];
    for (const [name, url, fields] of cases) {
      it(name, async () => {
        const cache = cleanup.track(createCache({ redis: url(), namespace: `fill-end-reused${process.pid}`, routes: { '/p': '1m' }, l2: { commandTimeout: '3s' } }));
        await cache.ready();
        const app = express();
        app.use(expressCache(cache));
        app.get('/p', (_req, res) => {
          const pooled = Buffer.from(BYTES);
          res.type('bin');
          for (const [k, v] of Object.entries(fields)) res.setHeader(k, v);
          res.end(pooled);
          // Reused at once, and again a moment later: the app alone has handed node its bytes by then.
          pooled.fill(0x5a);
          setImmediate(() => pooled.fill(0x59));
        });
        const server = await cleanup.serve(app);
        const fill = await wireRequest(server, '/p');
        assert.match(valuesOf(fill, 'cache-status')[0] ?? '', /fwd=miss; stored/);
        assert.equal(fill.body, BYTES.toString('latin1'), 'the fill sent what the handler wrote into its buffer after end()');
        const hit = await wireRequest(server, '/p');
        assert.match(valuesOf(hit, 'cache-status')[0] ?? '', /hit/);
        assert.equal(hit.body, BYTES.toString('latin1'), 'the hit sent what the handler wrote into its buffer after end()');
      });
    }
  });
});
