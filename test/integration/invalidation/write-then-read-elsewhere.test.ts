// Why this test exists: a 2xx answer to a write through the middleware
// invalidates its target path on every instance (DESIGN §3, RFC 9111 §4.4).
// The invalidation started only once the answer had gone out ('finish'), so a
// client that sent its next request to another instance as soon as it had the
// answer got the entry the write replaced there (40 of 40 in a hostile
// review's run). The answer's end now waits for the invalidation to be
// delivered. Deterministic: A's Redis replies are held 30 ms by a TCP proxy,
// so A's invalidation is slow to arrive, while B hears Redis at once.
import assert from 'node:assert/strict';
import express from 'express';
import Koa from 'koa';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

const ROUTES = { '/api/items': '1h' } as const;

function expressApp(cache: TierCache, db: Map<string, number>): (req: never, res: never) => void {
  const app = express();
  app.use('/api', expressCache(cache));
  app.get('/api/items/:id', (req, res) => void res.json({ v: db.get(req.params.id) ?? 0 }));
  app.post('/api/items/:id', (req, res) => {
    db.set(req.params.id, (db.get(req.params.id) ?? 0) + 1);
    res.status(201).json({ v: db.get(req.params.id) });
  });
  return app as never;
}

function koaApp(cache: TierCache, db: Map<string, number>): (req: never, res: never) => void {
  const app = new Koa();
  app.use(koaCache(cache));
  app.use((ctx) => {
    const id = ctx.path.split('/').pop()!;
    if (ctx.method === 'POST') {
      db.set(id, (db.get(id) ?? 0) + 1);
      ctx.status = 201;
    }
    ctx.body = { v: db.get(id) ?? 0 };
  });
  return app.callback() as never;
}

describe("a write answered on one instance, then the client's next read on another", function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'w-then-r', flush: true });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  for (const [name, build] of [
    ['Express', expressApp],
    ['Koa', koaApp],
  ] as const) {
    it(`${name}: the read on B never gets the entry the write on A replaced`, async () => {
      proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 30);
      const a = await ctx.open({ redis: proxy.url, routes: ROUTES });
      const b = await ctx.open({ routes: ROUTES });
      const db = new Map<string, number>();
      const [onA, onB] = [build(a, db), build(b, db)];
      for (let i = 0; i < 3; i++) {
        const path = `/api/items/${i}`;
        await request(onA).get(path);
        assert.equal((await request(onB).get(path)).body.v, 0);
        assert.match(String((await request(onB).get(path)).headers['cache-status']), /hit; detail=L1/, 'the premise: B holds the entry in L1');
        const wrote = await request(onA).post(path);
        assert.equal(wrote.status, 201);
        const read = await request(onB).get(path);
        assert.equal(read.body.v, 1, `B answered ${JSON.stringify(read.body)} [${read.headers['cache-status']}] right after the write's answer`);
      }
    });
  }
});
