// Absolute-form request targets (RFC 9112 §3.2.2): `GET http://host/docs` is
// sent by proxies and by attackers. The frameworks build links and redirects
// from its authority, not from Host, so an answer to a target naming another
// authority must never be stored or served from cache; one naming the Host
// itself is the same request as `/docs`. Raw sockets: clients only send
// origin form. Express 5 and 4, Koa 3 and 2, and the front door.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createCache } from '../../../src/index.js';
import { front } from '../../../src/node.js';
import { useCleanup, useRedisCaches } from '../../support/cache-context.js';
import { valuesOf, wireRequest } from '../../support/http-wire.js';
import { adapters, buildApp, type HandlerIO } from './apps.js';

let counter = 0;
const HOST = { Host: 'shop.example' };

/** Redirects to the target as the framework sees it, as express.static's directory redirect and Koa's ctx.href do. */
function redirectToSlash(io: HandlerIO): void {
  io.status(301);
  io.set('Location', io.url + '/');
  io.send('moved');
}

/** The answer to an odd `target` went out unstored ('detail=target'): /docs, asked next, fills with its own. */
async function assertNeverStored(server: Server, app: { runs(path: string): number }, target: string): Promise<void> {
  const odd = await wireRequest(server, target, HOST);
  assert.deepEqual(valuesOf(odd, 'location'), [target + '/']);
  assert.deepEqual(valuesOf(odd, 'cache-status'), ['tiercache; fwd=miss; detail=target']);
  const victim = await wireRequest(server, '/docs', HOST);
  assert.deepEqual(valuesOf(victim, 'location'), ['/docs/'], 'the redirect made for the odd target was served to /docs');
  assert.deepEqual(valuesOf(victim, 'cache-status'), ['tiercache; fwd=miss; stored']);
  assert.equal(app.runs('/docs'), 2);
}

describe('middleware: absolute-form request targets', function () {
  const cleanup = useCleanup();

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      const setup = async (varyOnHost = false) => {
        const rule = varyOnHost ? { ttl: '5m' as const, vary: ['host'] } : '5m';
        const cache = cleanup.track(createCache({ namespace: `target${process.pid}-${++counter}`, redis: false, routes: { '/docs': rule } }));
        const app = buildApp(adapter, cache, { appLevel: true, routes: [{ path: '/docs', handler: redirectToSlash }] });
        return { app, server: await cleanup.serve(app.target) };
      };

      for (const varyOnHost of [false, true]) {
      it(`never stores or serves the answer to a target naming another authority than Host${varyOnHost ? " (rule with vary: ['host'])" : ''}`, async () => {
        const { app, server } = await setup(varyOnHost);
        const poisoned = await wireRequest(server, 'http://evil.example/docs', HOST);
        assert.equal(poisoned.status, 301);
        assert.deepEqual(valuesOf(poisoned, 'cache-status'), ['tiercache; fwd=bypass; detail=authority']);
        const victim = await wireRequest(server, '/docs', HOST);
        assert.deepEqual(valuesOf(victim, 'location'), ['/docs/'], 'the attacker-chosen redirect was served to /docs');
        assert.deepEqual(valuesOf(victim, 'cache-status'), ['tiercache; fwd=miss; stored']);
        const again = await wireRequest(server, 'http://evil.example/docs', HOST);
        assert.deepEqual(valuesOf(again, 'cache-status'), ['tiercache; fwd=bypass; detail=authority'], 'the entry for /docs was served to a foreign authority');
        assert.equal(app.runs('/docs'), 3);
      });
      }

      it('serves a target naming the Host itself (any case, default port) from the origin-form entry', async () => {
        const { app, server } = await setup();
        const first = await wireRequest(server, '/docs', HOST);
        assert.deepEqual(valuesOf(first, 'cache-status'), ['tiercache; fwd=miss; stored']);
        const second = await wireRequest(server, 'http://SHOP.example:80/docs', HOST);
        assert.deepEqual(valuesOf(second, 'cache-status'), ['tiercache; hit; detail=L1']);
        assert.deepEqual(valuesOf(second, 'location'), ['/docs/']);
        assert.equal(app.runs('/docs'), 1);
      });

      // The apps reflect the target as sent (express.static's directory redirect and Express's
      // req.originalUrl, Koa's ctx.href and ctx.url): stored, one raw request would send every browser
      // asking /docs to `foo://shop.example/docs/`, to https on a server without it, or to a '#' of its choosing.
      for (const target of ['foo://shop.example/docs', 'https://shop.example/docs', 'http://shop.example/docs', '/docs#x']) {
        it(`never stores the answer to ${target}, which no browser sends and the app answers as sent`, async () => {
          const { app, server } = await setup();
          await assertNeverStored(server, app, target);
        });
      }

      // A stale entry's background refresh re-sends the trigger's target: sent with its '#', that refresh is a
      // target no entry may be filled from, so it stored nothing, and each such request kept the entry stale
      // for everyone (the browsers' own requests then only found a refresh under way) until its window ended.
      for (const target of ['/docs#x', 'http://shop.example/docs#x', '/docs#x#y']) {
        it(`refreshes the stale entry of /docs in the background for ${target}, as for the origin form`, async () => {
          const cache = cleanup.track(createCache({ namespace: `target${process.pid}-${++counter}`, redis: false }));
          let runs = 0;
          const app = buildApp(adapter, cache, {
            appLevel: { ttl: 100, staleWhileRevalidate: '10s' },
            routes: [{ path: '/docs', handler: (io) => io.send(`run ${++runs}`) }],
          });
          const server = await cleanup.serve(app.target);
          assert.equal((await wireRequest(server, '/docs', HOST)).body, 'run 1');
          await new Promise((resolve) => setTimeout(resolve, 150));
          const stored = new Promise((resolve) => cache.once('store', resolve));
          const odd = await wireRequest(server, target, HOST);
          assert.equal(odd.body, 'run 1');
          assert.match(valuesOf(odd, 'cache-status')[0] ?? '', /^tiercache; hit; ttl=-\d+; detail=L1$/);
          for (let i = 0; i < 100 && runs < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
          await Promise.race([stored, new Promise((resolve) => setTimeout(resolve, 200))]);
          const browser = await wireRequest(server, '/docs', HOST);
          // The refreshed entry lives 100 ms too: on a loaded machine it may be stale again by now ('run 2' says it was stored).
          assert.equal(browser.body, 'run 2', 'the refresh the odd target started stored nothing: /docs is still stale');
          assert.match(valuesOf(browser, 'cache-status')[0] ?? '', /^tiercache; hit; (ttl=-\d+; )?detail=L1$/);
        });
      }

      it('invalidates the path a write names in absolute form with another authority: the app makes the write there (RFC 9111 §4.4)', async () => {
        const cache = cleanup.track(createCache({ namespace: `target${process.pid}-${++counter}`, redis: false, routes: { '/docs': '5m' } }));
        let version = 0;
        const app = buildApp(adapter, cache, {
          appLevel: true,
          routes: [
            { path: '/docs', handler: (io) => io.send(`version ${version}`) },
            {
              path: '/docs',
              method: 'post',
              handler: (io) => {
                version++;
                io.status(204);
                io.send('');
              },
            },
          ],
        });
        const server = await cleanup.serve(app.target);
        assert.equal((await wireRequest(server, '/docs', HOST)).body, 'version 0');
        for (const target of ['http://shop.example:8080/docs', 'http://other.example/docs', 'http://user@shop.example/docs']) {
          const write = await wireRequest(server, target, { ...HOST, 'Content-Length': '0' }, { method: 'POST' });
          assert.equal(write.status, 204);
          assert.deepEqual(valuesOf(write, 'cache-status'), ['tiercache; fwd=bypass; detail=authority']);
          const read = await wireRequest(server, '/docs', HOST);
          assert.equal(read.body, `version ${version}`, `after POST ${target}, /docs still served the old answer (${valuesOf(read, 'cache-status').join()})`);
        }
        assert.equal(app.runs('/docs', 'post'), 3);
      });

      // The apps read an absolute-form target, and one holding a '#', with url.parse, where a '\' before the
      // query is a '/': `http://host/docs\secret` and `/docs\secret#` are routed as /docs/secret, `/docs\secret` as one segment.
      for (const [form, spell] of [
        ['an absolute-form target', (path: string) => `http://shop.example${path}`],
        ["an origin-form target with a '#'", (path: string) => `${path}#`],
      ] as const) {
      describe(`a '\\' in the path of ${form}`, () => {
        const setupSlashes = async () => {
          const cache = cleanup.track(createCache({ namespace: `target${process.pid}-${++counter}`, redis: false, ttl: '5m', routes: { '/docs/secret': false } }));
          const app = buildApp(adapter, cache, {
            appLevel: true,
            routes: [
              { path: '/docs/:page', handler: (io) => io.send(`docs page ${io.params.page}`) },
              { path: '/:page', handler: (io) => io.send(`top page ${io.params.page}`) },
            ],
          });
          return { cache, app, server: await cleanup.serve(app.target) };
        };

        it("is a '/' to the route table, as to the router: a never-cache rule holds", async () => {
          const { app, server } = await setupSlashes();
          for (let i = 0; i < 2; i++) {
            const answer = await wireRequest(server, spell('/docs\\secret'), HOST);
            assert.equal(answer.body, 'docs page secret');
            assert.ok(!valuesOf(answer, 'cache-status').some((v) => v.includes('hit')), `served from cache: ${valuesOf(answer, 'cache-status').join()}`);
          }
          assert.equal(app.runs('/docs/:page'), 2, "the '/docs/secret': false rule was slipped past");
        });

        it('keys the answer as the path the app answered, not as the origin-form target with the same characters', async () => {
          const { cache, app, server } = await setupSlashes();
          const literal = await wireRequest(server, '/docs\\intro', HOST);
          assert.equal(literal.body, 'top page docs\\intro');
          const same = await wireRequest(server, '/docs/intro', HOST);
          assert.deepEqual(valuesOf(same, 'cache-status'), ['tiercache; fwd=miss; stored']);
          const spelled = await wireRequest(server, spell('/docs\\intro'), HOST);
          assert.deepEqual(valuesOf(spelled, 'cache-status'), ['tiercache; hit; detail=L1']);
          assert.equal(spelled.body, 'docs page intro', "it got the answer to the origin-form /docs\\intro");
          await cache.invalidatePrefix('/docs/intro');
          const after = await wireRequest(server, spell('/docs\\intro'), HOST);
          assert.equal(after.body, 'docs page intro');
          assert.deepEqual(valuesOf(after, 'cache-status'), ['tiercache; fwd=miss; detail=target'], 'invalidatePrefix did not reach its entry');
          assert.equal(app.runs('/docs/:page'), 2);
          assert.equal(app.runs('/:page'), 1);
        });
      });
      }
    });
  }

  it('the front door passes absolute-form targets to the app', async () => {
    const cache = cleanup.track(createCache({ namespace: `target${process.pid}-${++counter}`, redis: false, routes: { '/docs': '5m' } }));
    const app = buildApp(adapters[0]!, cache, { appLevel: true, routes: [{ path: '/docs', handler: redirectToSlash }] });
    const server = cleanup.track(createServer(front(cache, app.target)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    await wireRequest(server, '/docs', HOST);
    const foreign = await wireRequest(server, 'http://evil.example/docs', HOST);
    assert.deepEqual(valuesOf(foreign, 'cache-status'), ['tiercache; fwd=bypass; detail=authority']);
    assert.deepEqual(valuesOf(foreign, 'location'), ['http://evil.example/docs/']);
    assert.equal(app.runs('/docs'), 2);
  });

  it("the front door passes a target with a '#' to the app, which routes it as url.parse reads it", async () => {
    const cache = cleanup.track(createCache({ namespace: `target${process.pid}-${++counter}`, redis: false, ttl: '5m' }));
    const app = buildApp(adapters[0]!, cache, {
      appLevel: true,
      routes: [
        { path: '/docs/:page', handler: (io) => io.send(`docs page ${io.params.page}`) },
        { path: '/:page', handler: (io) => io.send(`top page ${io.params.page}`) },
      ],
    });
    const server = cleanup.track(createServer(front(cache, app.target)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    assert.equal((await wireRequest(server, '/docs\\intro', HOST)).body, 'top page docs\\intro');
    const fragment = await wireRequest(server, '/docs\\intro#', HOST);
    assert.equal(fragment.body, 'docs page intro', "the front door served /docs\\intro's entry to a target the app reads as /docs/intro");
  });
});

// With Redis, a fill's lookup takes the lock and stamp in the same round trip (mayStartFill), and a request
// that did not begin one decides later whether to fill (lookupForFill): both must refuse an odd target too.
describe('middleware: absolute-form and fragment targets with Redis (L2)', function () {
  const ctx = useRedisCaches({ prefix: 'target-l2-' });

  for (const adapter of adapters) {
    for (const target of ['http://shop.example/docs', '/docs#x']) {
      it(`${adapter.name}: never stores the answer to ${target} in L1 or L2`, async () => {
        const cache = await ctx.open({ routes: { '/docs': '5m' }, l2: { commandTimeout: '3s' } });
        const app = buildApp(adapter, cache, { appLevel: true, routes: [{ path: '/docs', handler: redirectToSlash }] });
        const server = await ctx.serve(app.target);
        await assertNeverStored(server, app, target);
      });
    }
  }
});
