// Why this exists: in table mode a stale entry that a request finds within its
// stale-if-error window answers for a failing handler, even when the handler
// takes so long that the failure arrives after the window ended (the window is
// judged when the request arrives, http-cache.ts headers(); origin mode judges
// it again when the failure arrives). Mutation testing showed that no test had
// a handler slow enough to tell the two apart.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp, type HandlerIO } from './apps.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const STALE = /^tiercache; hit; ttl=-\d+; detail=L1$/;
let counter = 0;

describe('middleware: table-mode stale-if-error and a slow failing handler', () => {
  const cleanup = useCleanup();

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      it('a request that found the entry within its window gets it for a 5xx that arrives after the window ended', async () => {
        const cache = cleanup.track(createCache({ namespace: `sie-slow${process.pid}-${++counter}`, redis: false }));
        let failing = false;
        const handler = async (io: HandlerIO) => {
          if (failing) {
            await sleep(250); // the window (ttl 100 ms + staleIfError 150 ms) ends while this runs
            io.status(503);
            io.send('unavailable');
            return;
          }
          io.send('stored once');
        };
        const app = buildApp(adapter, cache, { routes: [{ path: '/s', mw: { ttl: 100, staleIfError: 150 }, handler }] });
        assert.equal((await request(app.target).get('/s')).text, 'stored once');
        await sleep(150); // stale, 100 ms left of the stale-if-error window
        failing = true;
        const res = await request(app.target).get('/s');
        assert.equal(res.status, 200, 'the 5xx went out: the window was judged again when it arrived');
        assert.equal(res.text, 'stored once');
        assert.match(String(res.headers['cache-status']), STALE);
      });
    });
  }
});
