// Why this exists: a writeHead hook mounted after the cache (on-headers as
// response-time uses it, a security-headers middleware further in) runs, in
// node, when end() writes the head. The capture's end() wrote the head through
// the writeHead it had wrapped, below that hook, so the hook never ran on a
// fill: its fields were missing from the miss and from the stored entry (and
// so from every hit), and a Cache-Control it set was never judged (found by
// hand mutation, s35). The hook now runs before the head is judged and stored.
import assert from 'node:assert/strict';
import type { RequestListener, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import express5 from 'express';
import Koa3 from 'koa';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup } from '../../support/cache-context.js';
import { onWriteHead } from '../../support/head-hook.js';
import { valuesOf, wireRequest } from '../../support/http-wire.js';
import { express4, Koa2 } from './apps.js';

type Build = (cache: TierCache, change: (res: ServerResponse) => void, runs: { n: number }, streamed?: boolean) => RequestListener;

function expressBuild(factory: typeof express5): Build {
  return (cache, change, runs, streamed = false) => {
    const app = factory();
    app.use(expressCache(cache, { ttl: '1m' }));
    app.use((_req, res, next) => (onWriteHead(res, change), next()));
    app.get('/p', (_req, res) => {
      runs.n++;
      if (!streamed) return void res.json({ n: runs.n });
      res.type('json').write('{"n":');
      res.end(`${runs.n}}`);
    });
    return app as unknown as RequestListener;
  };
}

function koaBuild(K: typeof Koa3): Build {
  return (cache, change, runs, streamed = false) => {
    const app = new K();
    app.use(koaCache(cache, { ttl: '1m' }));
    app.use(async (ctx, next) => {
      onWriteHead(ctx.res, change);
      await next();
    });
    app.use((ctx) => {
      runs.n++;
      if (!streamed) ctx.body = { n: runs.n };
      else {
        ctx.type = 'json';
        ctx.body = Readable.from([Buffer.from('{"n":'), Buffer.from(`${runs.n}}`)]);
      }
    });
    return app.callback() as unknown as RequestListener;
  };
}

const builds: ReadonlyArray<[string, Build]> = [
  ['express5', expressBuild(express5)],
  ['express4', expressBuild(express4)],
  ['koa3', koaBuild(Koa3)],
  ['koa2', koaBuild(Koa2 as unknown as typeof Koa3)],
];

describe('middleware: a writeHead hook mounted after the cache (on-headers further in)', () => {
  const { track, serve } = useCleanup();
  let counter = 0;
  const open = () => track(createCache({ namespace: `hook-in-${process.pid}-${++counter}`, redis: false }));

  for (const [name, build] of builds) {
    it(`${name}: the fields it sets are in the fill's answer and in every hit's`, async () => {
      const runs = { n: 0 };
      const app = build(open(), (res) => res.setHeader('x-later', 'yes'), runs);
      const fill = await request(app).get('/p');
      assert.equal(fill.headers['x-later'], 'yes', "the hook's field is missing from the fill");
      assert.match(String(fill.headers['cache-status']), /stored/);
      const hit = await request(app).get('/p');
      assert.match(String(hit.headers['cache-status']), /hit/);
      assert.equal(hit.headers['x-later'], 'yes', "the hook's field is missing from the hit");
      assert.deepEqual([fill.body, hit.body, runs.n], [{ n: 1 }, { n: 1 }, 1]);
    });

    it(`${name}: a Cache-Control: no-store it sets is judged: not stored, and the answer says so`, async () => {
      const runs = { n: 0 };
      const app = build(open(), (res) => res.setHeader('cache-control', 'no-store'), runs);
      const first = await request(app).get('/p');
      assert.equal(first.headers['cache-control'], 'no-store');
      assert.match(String(first.headers['cache-status']), /detail=no-store/);
      const second = await request(app).get('/p');
      assert.deepEqual([second.body, runs.n], [{ n: 2 }, 2], 'an answer the hook marked no-store was stored');
    });

    // The head of a streamed answer leaves with its first write(): node's write() runs the hook then, after the
    // capture had judged (and kept for the store) a head without its fields.
    it(`${name}: streamed, the fields it sets are in the fill's answer and in every hit's`, async () => {
      const runs = { n: 0 };
      const app = build(open(), (res) => res.setHeader('x-later', 'yes'), runs, true);
      const fill = await request(app).get('/p');
      assert.equal(fill.headers['x-later'], 'yes', "the hook's field is missing from the fill");
      // (A streamed fill's head leaves before its end: it cannot say stored.)
      assert.match(String(fill.headers['cache-status']), /fwd=miss/);
      const hit = await request(app).get('/p');
      assert.match(String(hit.headers['cache-status']), /hit/);
      assert.equal(hit.headers['x-later'], 'yes', "the hook's field is missing from the hit");
      assert.deepEqual([fill.body, hit.body, runs.n], [{ n: 1 }, { n: 1 }, 1]);
    });
  }

  // A hook may hand the writeHead under it a reason and fields of its own (node's writeHead(status, reason, fields)
  // or writeHead(status, fields)): on a fill they reach the capture, which takes them for the head it judges and stores.
  const handsOn = (args: (status: number) => unknown[]) => (res: ServerResponse) => {
    const inner = res.writeHead as (...a: unknown[]) => ServerResponse;
    res.writeHead = function (this: ServerResponse, status: number) {
      return inner.apply(this, args(status));
    } as ServerResponse['writeHead'];
  };
  type HookedBuild = (cache: TierCache, hook: (res: ServerResponse) => void, runs: { n: number }, answer?: { status?: number; streamed?: boolean }) => RequestListener;
  const hookedApps: ReadonlyArray<[string, HookedBuild]> = [
    [
      'express5',
      (cache, hook, runs, { status = 200, streamed = false } = {}) => {
        const app = express5();
        app.use(expressCache(cache, { ttl: '1m' }));
        app.use((_req, res, next) => (hook(res), next()));
        app.get('/p', (_req, res) => {
          res.status(status).type('text');
          if (streamed) res.write('n=');
          res.end(String(++runs.n));
        });
        return app as unknown as RequestListener;
      },
    ],
    [
      'koa3',
      (cache, hook, runs, { status = 200, streamed = false } = {}) => {
        const app = new Koa3();
        app.use(koaCache(cache, { ttl: '1m' }));
        app.use(async (ctx, next) => {
          hook(ctx.res);
          await next();
        });
        app.use((ctx) => {
          ctx.status = status;
          ctx.type = 'text';
          const n = String(++runs.n);
          ctx.body = streamed ? Readable.from([Buffer.from('n='), Buffer.from(n)]) : n;
        });
        return app.callback() as unknown as RequestListener;
      },
    ],
  ];
  // node's end() and write() call the response's writeHead with the status the handler set: the hook passes it on.
  const laterField = (res: ServerResponse) => onWriteHead(res, (r) => r.setHeader('x-hook', 'a'));
  const hooking: ReadonlyArray<[string, (res: ServerResponse) => void, { status?: number; streamed?: boolean }, [number, string]]> = [
    ['a reason and fields it hands to the writeHead under it are', handsOn((s) => [s, 'Hooked Fine', { 'x-hook': 'a' }]), {}, [200, 'Hooked Fine']],
    ["fields in the reason's place it hands to the writeHead under it are", handsOn((s) => [s, { 'x-hook': 'a' }]), {}, [200, 'OK']],
    ["the handler's status (203) reaches it and its field is", laterField, { status: 203 }, [203, 'Non-Authoritative Information']],
    ["streamed, the handler's status (203) reaches it and its field is", laterField, { status: 203, streamed: true }, [203, 'Non-Authoritative Information']],
  ];
  for (const [name, build] of hookedApps) {
    for (const [what, hook, answer, [status, reason]] of hooking) {
      it(`${name}: ${what} in the fill's answer and in every hit's`, async () => {
        const runs = { n: 0 };
        const server = await serve(build(open(), hook, runs, answer));
        const fill = await wireRequest(server, '/p');
        const hit = await wireRequest(server, '/p');
        assert.match(valuesOf(hit, 'cache-status')[0] ?? '', /hit/);
        assert.equal(runs.n, 1);
        for (const [which, sent] of [['fill', fill], ['hit', hit]] as const) {
          assert.deepEqual([sent.status, sent.reason, valuesOf(sent, 'x-hook')], [status, reason, ['a']], `the ${which}'s head`);
        }
      });
    }
  }

  // A head the handler flushed (res.flushHeaders(): node runs the response's writeHead then) has gone with the
  // hook's fields: end() must not run the hook a second time (it would set a field on a head already sent).
  it("express5: a head the handler flushed before end() ran the hook once; end() sends the body", async () => {
    let calls = 0;
    let runs = 0;
    const app = express5();
    app.use(expressCache(open(), { ttl: '1m' }));
    app.use((_req, res, next) => (onWriteHead(res, (r) => (calls++, r.setHeader('x-later', 'yes'))), next()));
    app.get('/p', (_req, res) => {
      res.type('text');
      res.flushHeaders();
      res.end(`run ${++runs}`);
    });
    const server = await serve(app as unknown as RequestListener);
    const first = await wireRequest(server, '/p');
    assert.deepEqual([first.status, valuesOf(first, 'x-later'), calls], [200, ['yes'], 1]);
    assert.match(first.body, /run 1/);
  });

  // A hook's status settles how node sends the head: with no body (204), alone, as latin1, not joined to the
  // string end() was given, as UTF-8. The capture read that from the status before the hook ran: hits sent
  // a field beyond ASCII as other bytes than the fill did (café: c3 a9 where the fill said e9).
  const to204 = (res: ServerResponse) => {
    const inner = res.writeHead;
    res.writeHead = function (this: ServerResponse) {
      this.setHeader('x-name', 'caf\u00e9');
      return inner.call(this, 204);
    } as ServerResponse['writeHead'];
  };
  const apps: ReadonlyArray<[string, (cache: TierCache, runs: { n: number }) => RequestListener]> = [
    [
      'express5',
      (cache, runs) => {
        const app = express5();
        app.use(expressCache(cache, { ttl: '1m' }));
        app.get('/p', (_req, res) => {
          runs.n++;
          to204(res);
          res.end('hello');
        });
        return app as unknown as RequestListener;
      },
    ],
    [
      'koa3',
      (cache, runs) => {
        const app = new Koa3();
        app.use(koaCache(cache, { ttl: '1m' }));
        app.use((ctx) => {
          runs.n++;
          to204(ctx.res);
          ctx.body = 'hello';
        });
        return app.callback() as unknown as RequestListener;
      },
    ],
  ];
  for (const [name, build] of apps) {
    it(`${name}: a 204 it makes sends a field beyond ASCII in the same bytes on the fill and on a hit`, async () => {
      const runs = { n: 0 };
      const server = await serve(build(open(), runs));
      const fill = await wireRequest(server, '/p');
      const hit = await wireRequest(server, '/p');
      assert.deepEqual([fill.status, hit.status, runs.n], [204, 204, 1]);
      assert.match(valuesOf(hit, 'cache-status')[0] ?? '', /hit/);
      assert.deepEqual(valuesOf(fill, 'x-name'), ['caf\u00e9'], 'the fill (node alone) sends latin1');
      assert.deepEqual(valuesOf(hit, 'x-name'), valuesOf(fill, 'x-name'), 'the hit sends other bytes than the fill');
    });
  }
});
