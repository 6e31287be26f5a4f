// A fill whose client leaves ends with nothing stored, and its waiters each
// ran the handler themselves, storing nothing either: a client that kept
// starting fills and hanging up defeated coalescing for the key and set off a
// stampede (found by a hostile review). One waiter now fills in its place and
// the others wait on that one.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import express from 'express';
import Koa from 'koa';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { useCleanup } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
let counter = 0;

describe('middleware: a fill whose client leaves', () => {
  const cleanup = useCleanup();
  const newCache = () => cleanup.track(createCache({ namespace: `filler-leaves-${process.pid}-${++counter}`, redis: false, routes: { '/api': '1m' } }));
  const state = { runs: 0 };
  const slow = async () => {
    state.runs++;
    await sleep(200);
    return { at: state.runs };
  };
  const apps: Array<[string, (cache: TierCache) => unknown]> = [
    [
      'Express',
      (cache) => {
        const app = express();
        app.use(expressCache(cache));
        app.get('/api/slow', async (_req, res) => void res.json(await slow()));
        return app;
      },
    ],
    [
      'Koa',
      (cache) => {
        const app = new Koa();
        app.use(koaCache(cache));
        app.use(async (ctx) => {
          ctx.body = await slow();
        });
        return app.callback();
      },
    ],
  ];

  for (const [name, build] of apps) {
    it(`${name}: one waiter fills in its place, the others wait on it: the handler runs twice in all, and the answer is stored`, async () => {
      state.runs = 0;
      const server = await cleanup.serve(build(newCache()) as never);
      const { port } = server.address() as AddressInfo;
      // The first client starts the fill and hangs up before the answer.
      const leaver = connect(port, '127.0.0.1', () => leaver.write('GET /api/slow HTTP/1.1\r\nHost: x\r\n\r\n'));
      leaver.on('error', () => undefined);
      await sleep(50);
      const waiting = Array.from({ length: 5 }, () => request(server).get('/api/slow').then((r) => r));
      await sleep(50);
      leaver.destroy();
      const answers = await Promise.all(waiting);
      const statuses = answers.map((a) => String(a.headers['cache-status'])).sort();
      assert.equal(state.runs, 2, `the handler ran ${state.runs} times; ${statuses.join(' | ')}`);
      assert.equal(statuses.filter((s) => /stored/.test(s)).length, 1, statuses.join(' | '));
      assert.equal(statuses.filter((s) => /collapsed/.test(s)).length, 4, statuses.join(' | '));
      assert.ok(answers.every((a) => a.body.at === 2), 'a waiter got another answer than the fill in place of the one left');
      assert.match(String((await request(server).get('/api/slow')).headers['cache-status']), /hit/);
    });
  }
});
