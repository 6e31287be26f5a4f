// Origin mode: an answer already stale when it arrives (max-age=0, an upstream
// Age past its max-age, Expires in the past) with no validator to revalidate
// it by and no stale window is not kept: the store drops an entry whose stale
// window has ended. Its Cache-Status said `fwd=miss; stored` all the same
// (found by helper-88), for every such answer, though the next request runs
// the handler again; it says `detail=expired` now, as a table-mode answer that
// would land expired does (README "Why is this not cached?", RFC 9211 §2.5).
// With a validator or a stale window it is kept, and says `stored`.
import assert from 'node:assert/strict';
import request from 'supertest';
import { useRedisCaches } from '../../support/cache-context.js';
import { adapters, buildApp, type HandlerIO } from './apps.js';

const EXPIRED = 'tiercache; fwd=miss; detail=expired';
const STORED = 'tiercache; fwd=miss; stored';

const cases: ReadonlyArray<readonly [string, (io: HandlerIO) => void]> = [
  ['max-age=0', (io) => io.set('cache-control', 'max-age=0')],
  ['Age 100 past max-age=60', (io) => (io.set('age', '100'), io.set('cache-control', 'max-age=60'))],
  ['Expires in the past', (io) => io.set('expires', new Date(Date.now() - 60_000).toUTCString())],
];

describe('middleware: origin-mode answers stale on arrival', function () {
  const ctx = useRedisCaches({ prefix: 'origin-stale-arrival' });

  for (const adapter of adapters) {
    for (const tiers of ['L1', 'L1+L2'] as const) {
      describe(`${adapter.name}, ${tiers}`, () => {
        const open = () => ctx.open(tiers === 'L1' ? { redis: false, freshness: 'origin', ttl: '1h' } : { freshness: 'origin', ttl: '1h' });

        for (const [name, reply] of cases) {
          it(`${name}, no validator: not stored, and Cache-Status says expired`, async () => {
            const cache = await open();
            // Raw node writes: no ETag of the framework's (Express adds one to res.send).
            const app = buildApp(adapter, cache, { routes: [{ path: '/r', mw: {}, handler: (io) => (reply(io), io.end('body')) }] });
            const first = await request(app.target).get('/r');
            assert.equal(first.text, 'body');
            assert.equal(first.headers['cache-status'], EXPIRED);
            assert.equal((await request(app.target).get('/r')).headers['cache-status'], EXPIRED);
            assert.equal(app.runs('/r'), 2);
          });
        }

        it('stale on arrival with an ETag: kept for revalidation, and says stored', async () => {
          const cache = await open();
          const app = buildApp(adapter, cache, { routes: [{ path: '/r', mw: {}, handler: (io) => (io.set('cache-control', 'max-age=0'), io.set('etag', '"v1"'), io.end('body')) }] });
          assert.equal((await request(app.target).get('/r')).headers['cache-status'], STORED);
          // The handler is asked again, with the stored validator.
          assert.equal((await request(app.target).get('/r')).headers['cache-status'], 'tiercache; fwd=stale; fwd-status=200; stored');
        });

        it('stale on arrival with a stale-while-revalidate window of its own: kept, and says stored', async () => {
          const cache = await open();
          const app = buildApp(adapter, cache, { routes: [{ path: '/r', mw: {}, handler: (io) => (io.set('cache-control', 'max-age=0, stale-while-revalidate=60'), io.end('body')) }] });
          assert.equal((await request(app.target).get('/r')).headers['cache-status'], STORED);
          assert.match(String((await request(app.target).get('/r')).headers['cache-status']), /^tiercache; hit; ttl=-\d+; detail=L[12]$/);
        });
      });
    }
  }
});
