// Origin mode inside an app (Express 4/5, Koa 2/3), not a proxy: the
// handler's own headers decide lifetimes, and a stale entry is revalidated by
// running the handler with the entry's validators (§4.3.1), which the
// framework's freshness check answers with 304 (§4.3.4).
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache } from '../../src/index.js';
import { adapters, buildApp, type HandlerIO } from '../integration/middleware/apps.js';

/** A 304 naming "v2", whatever was asked: it selects no stored response but one whose ETag is "v2" (§4.3.4). */
function mismatched304(io: HandlerIO): void {
  io.set('ETag', '"v2"');
  io.set('Cache-Control', 'max-age=3600');
  io.status(304);
  io.end();
}

describe('RFC 9111 origin mode in app middleware (every framework major)', function () {
  for (const adapter of adapters) {
    it(`${adapter.name}: §4.2.1 max-age from the handler, §4.3.1 revalidation runs the handler with If-None-Match, its 304 refreshes the entry`, async () => {
      const cache = createCache({ redis: false, freshness: 'origin', namespace: `rfc9111-mw-${adapter.name}` });
      try {
        const seen: Array<string | undefined> = [];
        const app = buildApp(adapter, cache, {
          routes: [
            {
              path: '/fresh',
              mw: {},
              handler: (io) => {
                io.set('Cache-Control', 'max-age=3600');
                io.send('fresh');
              },
            },
            {
              path: '/validated',
              mw: {},
              handler: (io) => {
                seen.push(io.header('if-none-match'));
                io.set('Cache-Control', 'max-age=0');
                io.set('ETag', '"v1"');
                if (io.header('if-none-match') === '"v1"') {
                  io.status(304);
                  io.end();
                } else io.send('the body');
              },
            },
          ],
        });
        await request(app.target).get('/fresh');
        const hit = await request(app.target).get('/fresh');
        assert.match(String(hit.headers['cache-status']), /hit/);
        assert.equal(app.runs('/fresh'), 1);

        await request(app.target).get('/validated');
        const refreshed = await request(app.target).get('/validated');
        assert.equal(refreshed.status, 200);
        assert.equal(refreshed.text, 'the body');
        assert.match(String(refreshed.headers['cache-status']), /fwd=stale; fwd-status=304/);
        assert.deepEqual(seen, [undefined, '"v1"']);
        const own304 = await request(app.target).get('/validated').set('If-None-Match', '"v1"');
        assert.equal(own304.status, 304);
      } finally {
        await cache.close();
      }
    });
  }

  for (const adapter of adapters) {
    it(`${adapter.name}: §4.3.4 the entry a 304 refreshed takes the 304's Date (node sends one), so it is fresh again for its max-age`, async () => {
      const cache = createCache({ redis: false, freshness: 'origin', namespace: `rfc9111-mw-date-${adapter.name}` });
      try {
        const app = buildApp(adapter, cache, {
          routes: [
            {
              path: '/dated',
              mw: {},
              handler: (io) => {
                io.set('Cache-Control', 'max-age=20');
                io.set('ETag', '"v1"');
                if (io.header('if-none-match') === '"v1"') {
                  io.status(304);
                  io.end();
                  return;
                }
                // Generated 30 s ago (say, behind another cache): already stale, kept for its validator.
                io.set('Date', new Date(Date.now() - 30_000).toUTCString());
                io.send('the body');
              },
            },
          ],
        });
        await request(app.target).get('/dated');
        const refreshed = await request(app.target).get('/dated');
        assert.match(String(refreshed.headers['cache-status']), /fwd=stale; fwd-status=304/);
        assert.equal(app.runs('/dated'), 2);
        const next = await request(app.target).get('/dated');
        assert.equal(next.text, 'the body');
        assert.match(String(next.headers['cache-status']), /^tiercache; hit/, 'the refreshed entry kept the old Date and was stale at once');
        assert.equal(app.runs('/dated'), 2, 'the handler revalidated again right after its 304');
        assert.ok(Math.abs(Date.parse(String(next.headers['date'])) - Date.now()) < 10_000, `the refreshed entry replays the old Date ${next.headers['date']}`);
      } finally {
        await cache.close();
      }
    });
  }

  for (const adapter of adapters) {
    it(`${adapter.name}: §4.3.4 a 304 with another strong ETag refreshes nothing: the handler runs again unconditionally and the client gets its answer, streamed or stored`, async () => {
      const cache = createCache({ redis: false, freshness: 'origin', namespace: `rfc9111-mw-mismatch-${adapter.name}` });
      try {
        const full: Record<string, number> = {};
        const seen: Array<string | undefined> = [];
        // A 304 naming "v2" to anything conditional; full answers: "v1" (stale at once), then "v2".
        const handler = (streamed: boolean) => (io: HandlerIO) => {
          seen.push(io.header('if-none-match'));
          if (io.header('if-none-match') !== undefined) {
            mismatched304(io);
            return;
          }
          const n = (full[io.url] = (full[io.url] ?? 0) + 1);
          io.set('ETag', n === 1 ? '"v1"' : '"v2"');
          io.set('Cache-Control', n === 1 ? 'max-age=0' : streamed ? 'no-store' : 'max-age=3600');
          io.set('Content-Type', 'text/plain');
          if (n > 1 && streamed) io.stream(['version ', '2']);
          else io.send(`version ${n === 1 ? 1 : 2}`);
        };
        const app = buildApp(adapter, cache, { routes: [{ path: '/stored', mw: {}, handler: handler(false) }, { path: '/streamed', mw: {}, handler: handler(true) }, { path: '/head', mw: {}, handler: handler(false) }] });

        assert.equal((await request(app.target).get('/stored')).text, 'version 1');
        const retried = await request(app.target).get('/stored');
        assert.equal(retried.status, 200);
        assert.equal(retried.text, 'version 2');
        assert.equal(retried.headers.etag, '"v2"');
        assert.deepEqual(seen, [undefined, '"v1"', undefined]);
        const hit = await request(app.target).get('/stored');
        assert.equal(hit.text, 'version 2');
        assert.match(String(hit.headers['cache-status']), /hit/);
        assert.equal(app.runs('/stored'), 3);

        // HEAD: the retry's head, no body (node drops the bytes a HEAD answer writes).
        await request(app.target).get('/head');
        const head = await request(app.target).head('/head');
        assert.equal(head.status, 200);
        assert.equal(head.headers.etag, '"v2"');
        assert.equal(head.text, undefined);

        seen.length = 0;
        await request(app.target).get('/streamed');
        const streamed = await request(app.target).get('/streamed');
        assert.equal(streamed.status, 200);
        assert.equal(streamed.text, 'version 2');
        assert.deepEqual(seen, [undefined, '"v1"', undefined]);
      } finally {
        await cache.close();
      }
    });
  }

  for (const adapter of adapters) {
    it(`${adapter.name}: §4.3.4 requests waiting on a revalidation whose 304 refreshes nothing wait for its retry: the handler answers in full once`, async () => {
      const cache = createCache({ redis: false, freshness: 'origin', namespace: `rfc9111-mw-mismatch-wait-${adapter.name}` });
      try {
        let conditional = 0;
        let full = 0;
        const app = buildApp(adapter, cache, {
          routes: [
            {
              path: '/slow',
              mw: {},
              handler: async (io) => {
                await new Promise((resolve) => setTimeout(resolve, 200));
                if (io.header('if-none-match') !== undefined) {
                  conditional++;
                  mismatched304(io);
                  return;
                }
                full++;
                io.set('ETag', full === 1 ? '"v1"' : '"v2"');
                io.set('Cache-Control', full === 1 ? 'max-age=0' : 'max-age=3600');
                io.set('Content-Type', 'text/plain');
                io.send(`version ${full === 1 ? 1 : 2}`);
              },
            },
          ],
        });
        assert.equal((await request(app.target).get('/slow')).text, 'version 1');
        const answers = await Promise.all(Array.from({ length: 20 }, () => request(app.target).get('/slow')));
        assert.deepEqual(new Set(answers.map((a) => `${a.status} ${a.text}`)), new Set(['200 version 2']));
        assert.equal(conditional, 1);
        assert.equal(full, 2, 'waiters ran the handler themselves instead of waiting for the retry');
        assert.equal(answers.filter((a) => /collapsed/.test(String(a.headers['cache-status']))).length, 19);
      } finally {
        await cache.close();
      }
    });
  }

  for (const adapter of adapters) {
    it(`${adapter.name}: §4.3.4 / RFC 5861 §4 a 5xx to the retry of a 304 that refreshes nothing is answered stale within stale-if-error`, async () => {
      const cache = createCache({ redis: false, freshness: 'origin', namespace: `rfc9111-mw-mismatch-sie-${adapter.name}` });
      try {
        let full = 0;
        let failWith = 503;
        const app = buildApp(adapter, cache, {
          routes: [
            {
              path: '/failing',
              mw: { staleIfError: '1h' },
              handler: (io) => {
                if (io.header('if-none-match') !== undefined) {
                  mismatched304(io);
                  return;
                }
                if (++full > 1) {
                  io.status(failWith);
                  io.send(failWith === 404 ? 'gone' : 'origin down');
                  return;
                }
                io.set('ETag', '"v1"');
                io.set('Cache-Control', 'max-age=0, stale-if-error=3600');
                io.set('Content-Type', 'text/plain');
                io.send('version 1');
              },
            },
          ],
        });
        assert.equal((await request(app.target).get('/failing')).text, 'version 1');
        const stale = await request(app.target).get('/failing');
        assert.equal(full, 2, 'the retry ran');
        assert.equal(stale.status, 200);
        assert.equal(stale.text, 'version 1');
        assert.equal(stale.headers.etag, '"v1"');
        assert.match(String(stale.headers['cache-status']), /^tiercache; hit; ttl=-\d+/);
        // A 500 is an error too; a 404 is the origin's answer, never replaced by the stale entry.
        failWith = 500;
        assert.equal((await request(app.target).get('/failing')).text, 'version 1');
        failWith = 404;
        const gone = await request(app.target).get('/failing');
        assert.equal(gone.status, 404);
        assert.equal(gone.text, 'gone');
      } finally {
        await cache.close();
      }
    });
  }

  for (const adapter of adapters) {
    it(`${adapter.name}: §4.2.4 / §5.2.2.4 a no-cache response is never served unvalidated: not for a request's max-stale, not for its own stale-if-error`, async () => {
      const cache = createCache({ redis: false, freshness: 'origin', namespace: `rfc9111-mw-nocache-${adapter.name}` });
      try {
        let failing = false;
        const app = buildApp(adapter, cache, {
          routes: [
            {
              path: '/nc',
              mw: {},
              handler: (io) => {
                if (failing) {
                  io.status(500);
                  io.send('boom');
                  return;
                }
                io.set('Cache-Control', 'no-cache, stale-if-error=600, stale-while-revalidate=600');
                io.set('ETag', '"v1"');
                io.send('the body');
              },
            },
          ],
        });
        await request(app.target).get('/nc');
        const stale = await request(app.target).get('/nc').set('Cache-Control', 'max-stale');
        assert.equal(stale.text, 'the body');
        assert.equal(app.runs('/nc'), 2, 'a max-stale request got the no-cache entry without the handler');
        failing = true;
        const failed = await request(app.target).get('/nc');
        assert.equal(failed.status, 500, `stale-if-error answered for a no-cache entry (${String(failed.headers['cache-status'])})`);
      } finally {
        await cache.close();
      }
    });
  }

  for (const adapter of adapters) {
    it(`${adapter.name}: §4.3.4 what a 304 says that is not stored still counts: its Age ages the refreshed copy, its Set-Cookie reaches the client (and keeps the copy from being stored)`, async () => {
      const cache = createCache({ redis: false, freshness: 'origin', namespace: `rfc9111-mw-304-${adapter.name}` });
      try {
        const revalidation = (extra: (io: HandlerIO) => void) => (io: HandlerIO) => {
          io.set('ETag', '"v1"');
          if (io.header('if-none-match') === '"v1"') {
            io.set('Cache-Control', 'max-age=600');
            extra(io);
            io.status(304);
            io.end();
            return;
          }
          io.set('Cache-Control', 'max-age=0');
          io.send('stored v1');
        };
        const app = buildApp(adapter, cache, {
          routes: [
            { path: '/aged', mw: {}, handler: revalidation((io) => io.set('Age', '590')) },
            { path: '/cookie', mw: {}, handler: revalidation((io) => io.set('Set-Cookie', 'sid=abc')) },
          ],
        });
        await request(app.target).get('/aged');
        const agedRefresh = await request(app.target).get('/aged');
        assert.match(String(agedRefresh.headers['cache-status']), /fwd=stale; fwd-status=304; stored/);
        assert.equal(agedRefresh.headers['set-cookie'], undefined, 'a 304 without Set-Cookie gave its client one');
        const aged = await request(app.target).get('/aged');
        assert.match(String(aged.headers['cache-status']), /^tiercache; hit/);
        assert.ok(Number(aged.headers['age']) >= 590, `the refreshed copy replays Age ${String(aged.headers['age'])}: the 304's Age 590 was dropped`);

        await request(app.target).get('/cookie');
        const refreshed = await request(app.target).get('/cookie');
        assert.equal(refreshed.text, 'stored v1');
        assert.deepEqual(refreshed.headers['set-cookie'], ['sid=abc'], "the 304's cookie did not reach its client");
        assert.equal(refreshed.headers['cache-status'], 'tiercache; fwd=stale; fwd-status=304; detail=set-cookie');
        // Not stored: the next request revalidates the stale copy again (and gets the cookie of its own 304).
        const next = await request(app.target).get('/cookie');
        assert.equal(next.headers['cache-status'], 'tiercache; fwd=stale; fwd-status=304; detail=set-cookie');
        assert.equal(app.runs('/cookie'), 3, 'the copy refreshed by a 304 with Set-Cookie was stored');
        // A client whose own condition matches gets its cookie too (the whole answer: our 304 would drop it).
        const conditional = await request(app.target).get('/cookie').set('If-None-Match', '"v1"');
        assert.deepEqual(conditional.headers['set-cookie'], ['sid=abc'], 'a conditional client lost the cookie of the 304');
      } finally {
        await cache.close();
      }
    });
  }

  it('RFC 9211: a revalidation says why it went to the handler: fwd=request for a fresh entry the request asked to revalidate, fwd=stale for a stale one, with the status it got', async () => {
    const cache = createCache({ redis: false, freshness: 'origin', namespace: 'rfc9111-mw-fwd' });
    try {
      let version = 'v1';
      const app = buildApp(adapters[0]!, cache, {
        routes: [
          {
            path: '/fresh',
            mw: {},
            handler: (io) => {
              io.set('Cache-Control', 'max-age=600');
              io.set('ETag', '"f1"');
              if (io.header('if-none-match') === '"f1"') {
                io.status(304);
                io.end();
              } else io.send('fresh body');
            },
          },
          {
            path: '/failing',
            // Every no-cache request forces a revalidation: the second one below waits on the first's.
            mw: { requestDirectives: { forcedRefreshInterval: 0 } },
            handler: async (io) => {
              if (version === 'down') {
                await new Promise((resolve) => setTimeout(resolve, 300));
                io.status(500);
                io.send('boom');
                return;
              }
              io.set('Cache-Control', 'max-age=600');
              io.send('kept body');
            },
          },
          {
            path: '/stale',
            mw: {},
            handler: (io) => {
              io.set('Cache-Control', 'max-age=0');
              io.set('ETag', `"${version}"`);
              if (io.header('if-none-match') === `"${version}"`) {
                io.status(304);
                io.end();
              } else io.send(`body ${version}`);
            },
          },
          {
            path: '/streamed',
            mw: {},
            handler: (io) => {
              io.set('Cache-Control', 'max-age=0');
              io.set('ETag', `"${version}"`);
              io.stream(['body ', version]);
            },
          },
        ],
      });
      await request(app.target).get('/fresh');
      const forced = await request(app.target).get('/fresh').set('Cache-Control', 'no-cache');
      assert.equal(forced.headers['cache-status'], 'tiercache; fwd=request; fwd-status=304; stored');
      // A fresh entry answered in place of the 5xx its forced revalidation got: forwarded, and not stale (ttl=-1 said both wrong).
      await request(app.target).get('/failing');
      version = 'down';
      const failing = request(app.target).get('/failing').set('Cache-Control', 'no-cache').then((r) => r);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const waiter = await request(app.target).get('/failing').set('Cache-Control', 'no-cache');
      const failed = await failing;
      assert.equal(app.runs('/failing'), 2, 'the second forced request did not wait on the first');
      for (const [who, res] of [['the forced request', failed], ['its waiter', waiter]] as const) {
        assert.equal(res.text, 'kept body', who);
        assert.match(String(res.headers['cache-status']), /^tiercache; fwd=request; fwd-status=500; ttl=(59[89]|600); detail=L1$/, who);
      }
      version = 'v1';
      await request(app.target).get('/stale');
      version = 'v2';
      const replaced = await request(app.target).get('/stale');
      assert.equal(replaced.text, 'body v2');
      assert.equal(replaced.headers['cache-status'], 'tiercache; fwd=stale; fwd-status=200; stored');
      // A streamed answer: whether it will be stored is known only after its head went out, so the head does not say so.
      await request(app.target).get('/streamed');
      version = 'v3';
      const streamed = await request(app.target).get('/streamed');
      assert.equal(streamed.text, 'body v3');
      assert.equal(streamed.headers['cache-status'], 'tiercache; fwd=stale; fwd-status=200');
    } finally {
      await cache.close();
    }
  });

  it('table mode is untouched: max-age=0 from the handler is still served for the table TTL', async () => {
    const cache = createCache({ redis: false, ttl: '1m', namespace: 'rfc9111-mw-table' });
    try {
      const app = buildApp(adapters[0]!, cache, {
        routes: [{ path: '/t', mw: {}, handler: (io) => (io.set('Cache-Control', 'max-age=0'), io.send('t')) }],
      });
      await request(app.target).get('/t');
      assert.match(String((await request(app.target).get('/t')).headers['cache-status']), /hit/);
      assert.equal(app.runs('/t'), 1);
    } finally {
      await cache.close();
    }
  });
});
