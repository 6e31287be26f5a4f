// How a handler writes through node's res, and what the capture makes of it
// (src/middleware/capture.ts): every calling form of write(), end() and
// writeHead() node accepts (callbacks in any position, a reason phrase,
// header arrays flat or in pairs), a second end() while the store is under
// way, writes after a stale-if-error replacement went out, a chunk that is not
// bytes, and Cache-Groups handed to writeHead on an answer the cache leaves
// alone. Checked as the client sees it. Express 5 and 4, Koa 3 and 2.
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { binaryParser } from '../../support/http-bytes.js';
import { valuesOf, wireRequest } from '../../support/http-wire.js';
import { adapters, buildApp, type AnyMiddlewareOptions, type Adapter, type HandlerIO } from './apps.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const HIT_L1 = 'tiercache; hit; detail=L1';
const STALE = /^tiercache; hit; ttl=-\d+; detail=L1$/;

/** node's res, taken over from the framework (Koa: ctx.respond = false, status 200 unless written). */
function rawRes(io: HandlerIO): ServerResponse {
  if (io.native.framework === 'express') return io.native.res;
  const ctx = io.native.ctx;
  ctx.respond = false;
  ctx.status = 200;
  return ctx.res;
}

/** Resolves once node (or the cache, for writes it drops) calls the callback. */
type Called = { write: boolean; end: boolean; writeWithEncoding?: boolean };

describe('middleware: how the handler writes', function () {
  const redisCaches = useRedisCaches({ prefix: 'handler-writes' });

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      const l1Only = () => redisCaches.track(createCache({ redis: false, namespace: redisCaches.ns }));
      const app = (cache: TierCache, handler: (io: HandlerIO) => void | Promise<void>, mw: AnyMiddlewareOptions = {}) =>
        buildApp(adapter, cache, { routes: [{ path: '/w', mw, handler }] });

      it('write(chunk, cb) and end(chunk, cb): both callbacks run, and the whole body is stored', async () => {
        const called: Called = { write: false, end: false };
        const a = app(l1Only(), (io) => {
          const res = rawRes(io);
          res.write('first ', () => (called.write = true));
          res.end('second', () => (called.end = true));
        });
        const miss = await request(a.target).get('/w');
        assert.equal(miss.text, 'first second');
        await sleep(5);
        assert.deepEqual(called, { write: true, end: true });
        const hit = await request(a.target).get('/w');
        assert.equal(hit.headers['cache-status'], HIT_L1);
        assert.equal(hit.text, 'first second');
        assert.equal(a.runs('/w'), 1);
      });

      it('end(cb) after writes: the callback runs, and what was written is stored', async () => {
        let ended = false;
        const a = app(l1Only(), (io) => {
          const res = rawRes(io);
          res.write('only ');
          res.write(Buffer.from('bytes'));
          res.end(() => (ended = true));
        });
        assert.equal((await request(a.target).get('/w')).text, 'only bytes');
        await sleep(5);
        assert.equal(ended, true);
        const hit = await request(a.target).get('/w');
        assert.equal(hit.headers['cache-status'], HIT_L1);
        assert.equal(hit.text, 'only bytes');
      });

      it('end(null) after writes (node reads null as no chunk): what was written is stored', async () => {
        const a = app(l1Only(), (io) => {
          const res = rawRes(io);
          res.write('written ');
          res.write('before');
          res.end(null);
        });
        assert.equal((await request(a.target).get('/w')).text, 'written before');
        const hit = await request(a.target).get('/w');
        assert.equal(hit.headers['cache-status'], HIT_L1);
        assert.equal(hit.text, 'written before');
      });

      it('a Content-Length that is not a number (on a one-byte body): nothing is stored', async () => {
        const a = app(l1Only(), (io) => {
          const res = rawRes(io);
          res.setHeader('content-length', 'one');
          res.end('x');
        });
        const server = await redisCaches.serve(a.target);
        for (let i = 1; i <= 2; i++) {
          const answer = await wireRequest(server, '/w');
          assert.deepEqual(valuesOf(answer, 'content-length'), ['one']);
          assert.notEqual(valuesOf(answer, 'cache-status')[0], HIT_L1);
          assert.equal(a.runs('/w'), i);
        }
      });

      it('maxBodyBytes is inclusive: a body written in parts up to exactly the limit is stored, one byte more is not', async () => {
        for (const [body, stored] of [['0123456789', true], ['0123456789a', false]] as const) {
          const a = app(l1Only(), (io) => {
            const res = rawRes(io);
            res.write(body.slice(0, 4));
            res.write(body.slice(4, 8));
            res.end(body.slice(8));
          }, { maxBodyBytes: 10 });
          assert.equal((await request(a.target).get('/w')).text, body);
          const second = await request(a.target).get('/w');
          assert.equal(second.text, body);
          assert.equal(second.headers['cache-status'] === HIT_L1, stored, `${body}: ${second.headers['cache-status']}`);
          assert.equal(a.runs('/w'), stored ? 1 : 2, body);
        }
      });

      for (const encoding of ['base64', 'hex'] as const) {
        it(`${encoding} strings, written in parts or given whole to end(): up to maxBodyBytes (decoded) stored, one byte more goes out exact and is not stored`, async () => {
          for (const [size, stored] of [[10, true], [11, false]] as const) {
            const bytes = Buffer.from(Array.from({ length: size }, (_, i) => (i * 37 + 200) % 256));
            for (const form of ['write', 'end'] as const) {
              const a = app(l1Only(), (io) => {
                const res = rawRes(io);
                if (form === 'end') return void res.end(bytes.toString(encoding), encoding);
                res.write(bytes.subarray(0, 4).toString(encoding), encoding);
                res.write(bytes.subarray(4, 8).toString(encoding), encoding);
                res.end(bytes.subarray(8).toString(encoding), encoding);
              }, { maxBodyBytes: 10 });
              const first = await request(a.target).get('/w').buffer(true).parse(binaryParser);
              assert.deepEqual(first.body, bytes, `${form} ${size}`);
              const second = await request(a.target).get('/w').buffer(true).parse(binaryParser);
              assert.deepEqual(second.body, bytes, `${form} ${size}`);
              assert.equal(second.headers['cache-status'] === HIT_L1, stored, `${form} ${size}: ${second.headers['cache-status']}`);
              assert.equal(a.runs('/w'), stored ? 1 : 2, `${form} ${size}`);
            }
          }
        });

        if (encoding === 'base64') {
          it('base64 with line breaks given whole to end(): reckoned from its length it would pass maxBodyBytes, its bytes fit, and it is stored', async () => {
            const bytes = Buffer.from('0123456789');
            const text = bytes.toString('base64').replace(/(.{4})/g, '$1\r\n');
            assert.ok(Buffer.byteLength(text, 'base64') > 10);
            const a = app(l1Only(), (io) => void rawRes(io).end(text, 'base64'), { maxBodyBytes: 10 });
            assert.deepEqual((await request(a.target).get('/w').buffer(true).parse(binaryParser)).body, bytes);
            const hit = await request(a.target).get('/w').buffer(true).parse(binaryParser);
            assert.equal(hit.headers['cache-status'], HIT_L1);
            assert.deepEqual(hit.body, bytes);
          });
        }

        it(`${encoding} strings past maxBodyBytes are not decoded by the capture (their length is reckoned), and go out exact`, async () => {
          // A chunk past the limit cannot be kept: decoding it only to learn its length cost a copy as big as the chunk.
          const part = Buffer.alloc(64 * 1024, 0xa5);
          const text = part.toString(encoding);
          const decoded: string[] = [];
          const from = Buffer.from;
          for (const form of ['write', 'end'] as const) {
            const a = app(l1Only(), (io) => {
              const res = rawRes(io);
              Buffer.from = function (this: unknown, value: unknown, ...rest: unknown[]) {
                if (value === text) decoded.push(form);
                return (from as (...a: unknown[]) => Buffer).call(this, value, ...rest);
              } as typeof Buffer.from;
              try {
                // write(): the chunk that crosses the limit, then one past it; end(): the whole body at once.
                if (form === 'write') res.write(text, encoding);
                res.end(text, encoding);
              } finally {
                Buffer.from = from;
              }
            }, { maxBodyBytes: 1024 });
            const miss = await request(a.target).get('/w').buffer(true).parse(binaryParser);
            assert.deepEqual(miss.body, form === 'write' ? Buffer.concat([part, part]) : part, form);
            assert.equal(miss.headers['cache-status'], form === 'write' ? 'tiercache; fwd=miss' : 'tiercache; fwd=miss; detail=too-large', form);
            const again = await request(a.target).get('/w').buffer(true).parse(binaryParser);
            assert.notEqual(again.headers['cache-status'], HIT_L1, form);
          }
          assert.deepEqual(decoded, [], 'the capture decoded a chunk it could not keep');
        });
      }

      it('end(cb) with no body: an empty 200 is stored and replayed empty', async () => {
        let ended = false;
        const a = app(l1Only(), (io) => void rawRes(io).end(() => (ended = true)));
        const miss = await request(a.target).get('/w');
        assert.equal(miss.status, 200);
        assert.equal(miss.text, '');
        await sleep(5);
        assert.equal(ended, true);
        const hit = await request(a.target).get('/w');
        assert.equal(hit.headers['cache-status'], HIT_L1);
        assert.equal(hit.headers['content-length'], '0');
      });

      it('a second end() while the store waits on Redis neither cuts the body short nor breaks the store', async () => {
        const cache = await redisCaches.open({});
        const a = app(cache, (io) => {
          const res = rawRes(io);
          res.end('the whole body');
          res.end(); // an error handler or a careless send-then-end, before the store is done
        });
        const miss = await request(a.target).get('/w');
        assert.equal(miss.text, 'the whole body');
        assert.equal(miss.headers['content-length'], '14');
        const hit = await request(a.target).get('/w');
        assert.equal(hit.headers['cache-status'], HIT_L1);
        assert.equal(hit.text, 'the whole body');
        assert.equal(a.runs('/w'), 1);
      });

      // end(cb), end(chunk, cb), end(chunk, encoding, cb): node calls back in each form, and so must the
      // cache where it drops the call (a second end() while the store waits; writes after a stale answer went out).
      const endForms: ReadonlyArray<readonly [string, (res: ServerResponse, cb: () => void) => void]> = [
        ['end(cb)', (res, cb) => void res.end(cb)],
        ['end(chunk, cb)', (res, cb) => void res.end('more', cb)],
        ['end(chunk, encoding, cb)', (res, cb) => void res.end('more', 'utf8', cb)],
      ];

      it('a second end() while the store waits, in each calling form: its callback runs', async () => {
        const cache = await redisCaches.open({});
        for (const [form, endWith] of endForms) {
          let called = false;
          const a = app(cache, (io) => {
            const res = rawRes(io);
            res.end(form);
            endWith(res, () => (called = true));
          });
          await cache.clear();
          assert.equal((await request(a.target).get('/w')).text, form);
          await sleep(5);
          assert.equal(called, true, form);
        }
      });

      it('an end() that meets or brings a stale-if-error answer, in each calling form: its callback runs', async () => {
        for (const [form, endWith] of endForms) for (const headFirst of [true, false]) {
          let fail = false;
          let called = false;
          const a = app(
            l1Only(),
            (io) => {
              if (!fail) return io.send('good');
              const res = rawRes(io);
              // With writeHead first the stale answer went out before end(); without, end() brings it.
              if (headFirst) res.writeHead(500);
              else res.statusCode = 500;
              endWith(res, () => (called = true));
            },
            { ttl: 100, staleIfError: '1m' },
          );
          assert.equal((await request(a.target).get('/w')).text, 'good');
          await sleep(150);
          fail = true;
          const stale = await request(a.target).get('/w');
          assert.equal(stale.text, 'good', form);
          await sleep(5);
          assert.equal(called, true, `${form}, head first: ${headFirst}`);
        }
      });

      for (const call of ['write', 'end'] as const) {
        it(`${call}() of a chunk that is not bytes: the handler gets node's own error, and nothing is stored`, async () => {
          const a = app(l1Only(), (io) => {
            const res = rawRes(io);
            try {
              res[call](42 as unknown as string);
              res.end('written');
            } catch (err) {
              res.end(`caught ${(err as { code?: string }).code}`);
            }
          });
          const first = await request(a.target).get('/w');
          assert.equal(first.text, 'caught ERR_INVALID_ARG_TYPE');
          const second = await request(a.target).get('/w');
          assert.equal(second.text, 'caught ERR_INVALID_ARG_TYPE');
          assert.notEqual(second.headers['cache-status'], HIT_L1, 'an answer whose body could not be captured was stored');
          assert.equal(a.runs('/w'), 2);
        });
      }

      it('a 5xx written with writeHead, write and end within stale-if-error: the client gets the stale body alone, every callback runs', async () => {
        let fail = false;
        const called: Called = { write: false, end: false, writeWithEncoding: false };
        const a = app(
          l1Only(),
          (io) => {
            if (!fail) return io.send('good');
            const res = rawRes(io);
            res.writeHead(500, { 'content-type': 'text/plain' });
            res.writeHead(502); // a second head after the replacement went out: dropped
            res.write('partial ', () => (called.write = true));
            res.write('more ', 'utf8', () => (called.writeWithEncoding = true));
            res.end('failure', () => (called.end = true));
          },
          { ttl: 100, staleIfError: '1m' },
        );
        assert.equal((await request(a.target).get('/w')).text, 'good');
        await sleep(150);
        fail = true;
        const stale = await request(a.target).get('/w');
        assert.equal(stale.status, 200);
        assert.equal(stale.text, 'good', 'bytes the failing handler wrote reached the client');
        assert.match(String(stale.headers['cache-status']), STALE);
        await sleep(5);
        assert.deepEqual(called, { write: true, end: true, writeWithEncoding: true }, 'the dropped writes still call back');
      });

      it('a 5xx set as statusCode and written with write() alone, within stale-if-error: the client gets the stale body alone', async () => {
        let fail = false;
        const a = app(
          l1Only(),
          (io) => {
            if (!fail) return io.send('good');
            const res = rawRes(io);
            res.statusCode = 503;
            res.write('partial');
            res.end();
          },
          { ttl: 100, staleIfError: '1m' },
        );
        assert.equal((await request(a.target).get('/w')).text, 'good');
        await sleep(150);
        fail = true;
        const stale = await request(a.target).get('/w');
        assert.deepEqual([stale.status, stale.text], [200, 'good']);
        assert.match(String(stale.headers['cache-status']), STALE);
      });

      it('writeHead(status, reason, headers): the reason reaches the client and the headers are stored', async () => {
        const a = app(l1Only(), (io) => {
          const res = rawRes(io);
          res.writeHead(200, 'Fine Indeed', { 'x-kind': 'reasoned' });
          res.end('body');
        });
        const server = await redisCaches.serve(a.target);
        const miss = await wireRequest(server, '/w');
        assert.equal(miss.status, 200);
        assert.equal(miss.reason, 'Fine Indeed');
        assert.deepEqual(valuesOf(miss, 'x-kind'), ['reasoned']);
        const hit = await wireRequest(server, '/w');
        assert.deepEqual(valuesOf(hit, 'cache-status'), [HIT_L1]);
        assert.deepEqual(valuesOf(hit, 'x-kind'), ['reasoned']);
        assert.ok(hit.body.endsWith('body'));
      });

      it('writeHead(status, null): node reads it as no headers, and the answer is stored', async () => {
        const a = app(l1Only(), (io) => {
          const res = rawRes(io);
          res.setHeader('x-set', 'before');
          res.writeHead(200, null as unknown as string[]);
          res.end('body');
        });
        assert.equal((await request(a.target).get('/w')).text, 'body');
        const hit = await request(a.target).get('/w');
        assert.equal(hit.headers['cache-status'], HIT_L1);
        assert.equal(hit.headers['x-set'], 'before');
        assert.equal(hit.text, 'body');
      });

      // What node's writeHead() refuses, the handler hears about from node as it would without the cache.
      for (const [form, headers, code] of [
        ['an object with an undefined value', { 'x-fine': 'yes', 'x-missing': undefined }, 'ERR_HTTP_INVALID_HEADER_VALUE'],
        ['a flat array of odd length', ['x-fine', 'yes', 'x-alone'], 'ERR_INVALID_ARG_VALUE'],
      ] as const) {
        it(`writeHead(status, ${form}) throws node's own ${code} to the handler, and nothing is stored`, async () => {
          const answer = (io: HandlerIO) => {
            const res = rawRes(io);
            try {
              res.writeHead(200, headers as unknown as string[]);
              res.end('sent');
            } catch (err) {
              res.statusCode = 500;
              res.end(String((err as { code?: string }).code));
            }
          };
          const bare = adapter.build(l1Only(), { routes: [{ path: '/w', handler: answer }] });
          const withoutCache = await request(bare.target).get('/w');
          assert.deepEqual([withoutCache.status, withoutCache.text], [500, code], 'the premise: node refuses it');
          const a = app(l1Only(), answer);
          for (let i = 1; i <= 2; i++) {
            const res = await request(a.target).get('/w');
            assert.deepEqual([res.status, res.text], [500, code]);
            assert.equal(a.runs('/w'), i);
          }
        });
      }

      for (const [form, headers] of [
        ['a flat array', ['x-rep', 'one', 'x-rep', 'two', 'x-single', 'alone']],
        ['an array of pairs', [['x-rep', 'one'], ['x-rep', 'two'], ['x-single', 'alone']]],
      ] as const) {
        it(`writeHead(status, ${form}) with a repeated field: the miss and the hit carry every value, in order`, async () => {
          const a = app(l1Only(), (io) => {
            const res = rawRes(io);
            res.writeHead(200, headers as unknown as string[]);
            res.end('body');
          });
          const server = await redisCaches.serve(a.target);
          const miss = await wireRequest(server, '/w');
          assert.equal(miss.status, 200);
          assert.deepEqual(valuesOf(miss, 'x-rep'), ['one', 'two']);
          assert.deepEqual(valuesOf(miss, 'x-single'), ['alone']);
          assert.deepEqual(valuesOf(miss, 'undefined'), [], 'a field read past the end of the list');
          const hit = await wireRequest(server, '/w');
          assert.deepEqual(valuesOf(hit, 'cache-status'), [HIT_L1]);
          assert.deepEqual(valuesOf(hit, 'x-rep'), ['one', 'two']);
          assert.deepEqual(valuesOf(hit, 'x-single'), ['alone']);
          assert.equal(a.runs('/w'), 1);
        });
      }

      // Without a cache, node sends a raw array as given when nothing was set before (Koa); Express sets
      // X-Powered-By first, and node then keeps only the last value of a name, in any case.
      if (adapter.framework === 'koa') {
        it('writeHead(status, flat array) repeating a field in different letter case: the miss and the hit carry every value', async () => {
          const a = app(l1Only(), (io) => {
            const res = rawRes(io);
            res.writeHead(200, ['Link', '</a.css>; rel=preload', 'link', '</b.js>; rel=preload']);
            res.end('body');
          });
          const server = await redisCaches.serve(a.target);
          const miss = await wireRequest(server, '/w');
          assert.deepEqual(valuesOf(miss, 'link'), ['</a.css>; rel=preload', '</b.js>; rel=preload'], 'the miss lost a value');
          const hit = await wireRequest(server, '/w');
          assert.deepEqual(valuesOf(hit, 'cache-status'), [HIT_L1]);
          assert.deepEqual(valuesOf(hit, 'link'), ['</a.css>; rel=preload', '</b.js>; rel=preload'], 'the hit lost a value');
        });
      }

      for (const [form, headers] of [
        ['an object', { 'Cache-Groups': '"secret"', 'x-kept': 'yes' }],
        ['a flat array', ['Cache-Groups', '"secret"', 'x-kept', 'yes']],
        ['an array of pairs', [['cache-groups', '"secret"'], ['x-kept', 'yes']]],
      ] as const) {
        // Node itself rejects pairs once a header is set (Express sets X-Powered-By first).
        if (form === 'an array of pairs' && adapter.framework === 'express') continue;
        it(`Cache-Groups given to writeHead as ${form}, on an answer the cache bypasses, never reaches the client`, async () => {
          // cacheStatus: false, so nothing is set on res before the handler's writeHead (node then takes its argument as is).
          const a = app(
            l1Only(),
            (io) => {
              const res = rawRes(io);
              res.writeHead(200, headers as unknown as string[]);
              res.end('private');
            },
            { cacheStatus: false },
          );
          const server = await redisCaches.serve(a.target);
          const answer = await wireRequest(server, '/w', { Authorization: 'Bearer x' });
          assert.equal(answer.status, 200);
          assert.deepEqual(valuesOf(answer, 'cache-groups'), [], 'Cache-Groups leaked');
          assert.deepEqual(valuesOf(answer, 'x-kept'), ['yes'], 'the other fields went missing with it');
          assert.match(answer.body, /private/);
        });
      }

      for (const [form, headers] of [
        ['a flat array', ['Content-Type', 'text/plain', 'Set-Cookie', 'a=1', 'Cache-Status', 'Upstream; hit', 'Set-Cookie', 'b=2']],
        ['an array of pairs', [['Content-Type', 'text/plain'], ['Set-Cookie', 'a=1'], ['Cache-Status', 'Upstream; hit'], ['Set-Cookie', 'b=2']]],
      ] as const) {
        it(`writeHead(status, ${form}) on answers the cache passes through (a bypass, a HEAD): every line of a repeated field, ours after the upstream's Cache-Status`, async () => {
          const a = app(l1Only(), (io) => {
            const res = rawRes(io);
            res.writeHead(200, headers as unknown as string[]);
            res.end('proxied');
          });
          // Nothing set before the list, so the app alone sends it as given (Express sets X-Powered-By unless told not to).
          if (adapter.framework === 'express') (a.target as unknown as { disable(setting: string): void }).disable('x-powered-by');
          const server = await redisCaches.serve(a.target);
          const bypassed = await wireRequest(server, '/w', { Authorization: 'Bearer x' });
          assert.equal(bypassed.status, 200, 'the handler met an error');
          assert.deepEqual(valuesOf(bypassed, 'set-cookie'), ['a=1', 'b=2']);
          assert.deepEqual(valuesOf(bypassed, 'cache-status'), ['Upstream; hit', 'tiercache; fwd=bypass; detail=authorization']);
          assert.match(bypassed.body, /proxied/);
          const head = await wireRequest(server, '/w', {}, { method: 'HEAD' });
          assert.equal(head.status, 200, 'the handler met an error');
          assert.deepEqual(valuesOf(head, 'set-cookie'), ['a=1', 'b=2']);
          assert.deepEqual(valuesOf(head, 'cache-status'), ['Upstream; hit', 'tiercache; fwd=miss; detail=head']);
        });
      }
    });
  }
});

export type { Adapter };
