// The security cases of issue 3 ("Checked by"), one test per case in every
// adapter: cache poisoning through an unkeyed header (shown, then fixed with
// `vary`), route-rule bypass through path spellings, query and vary values
// that must not collide, and user-scoped entries that never leak between
// users. Real redis-server behind the cache, so L2 keys are exercised too.
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders, RequestListener } from 'node:http';
import Router from '@koa/router';
import express5 from 'express';
import Koa3 from 'koa';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import type { MiddlewareOptions } from '../../../src/middleware/options.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { rawGet } from '../../support/http-bytes.js';
import { express4, Koa2 } from './apps.js';

const STORED = 'tiercache; fwd=miss; stored';
const HIT_L1 = 'tiercache; hit; detail=L1';
const BYPASS = 'tiercache; fwd=bypass';

// ---------------------------------------------------------------------------
// A small app factory: per-route or app-wide mounting in each framework.

interface HandlerRequest {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** The framework's own parse of the query: Express req.query, Koa ctx.query. */
  readonly query: unknown;
}
interface Reply {
  readonly headers?: Readonly<Record<string, string>>;
  readonly body: string;
}
type Handler = (req: HandlerRequest) => Reply;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
type Options = MiddlewareOptions<Any>;

interface Adapter {
  readonly name: string;
  /** `GET path` with the cache mounted on that route. */
  route(cache: TierCache, path: string, options: Options, handler: Handler): RequestListener;
  /** The cache mounted app-wide, in front of a handler that answers every path. */
  appWide(cache: TierCache, handler: Handler): RequestListener;
}

function expressAdapter(name: string, express: typeof express5): Adapter {
  const h = (handler: Handler) => (req: Any, res: Any) => {
    const reply = handler({ url: req.originalUrl, headers: req.headers, query: req.query });
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v);
    res.send(reply.body);
  };
  return {
    name,
    route(cache, path, options, handler) {
      const app = express();
      app.get(path, expressCache(cache, options), h(handler));
      return app as unknown as RequestListener;
    },
    appWide(cache, handler) {
      const app = express();
      app.use(expressCache(cache));
      app.use(h(handler));
      return app as unknown as RequestListener;
    },
  };
}

function koaAdapter(name: string, Koa: typeof Koa3): Adapter {
  const h = (handler: Handler) => (ctx: Any) => {
    const reply = handler({ url: ctx.originalUrl, headers: ctx.headers, query: ctx.query });
    ctx.type = 'text/plain';
    for (const [k, v] of Object.entries(reply.headers ?? {})) ctx.set(k, v);
    ctx.body = reply.body;
  };
  return {
    name,
    route(cache, path, options, handler) {
      const app = new Koa();
      const router = new Router();
      router.get(path, koaCache(cache, options) as Any, h(handler));
      app.use(router.routes() as Any);
      return app.callback() as RequestListener;
    },
    appWide(cache, handler) {
      const app = new Koa();
      app.use(koaCache(cache) as Any);
      app.use(h(handler));
      return app.callback() as RequestListener;
    },
  };
}

const ADAPTERS: readonly Adapter[] = [
  expressAdapter('Express 5', express5),
  expressAdapter('Express 4', express4),
  koaAdapter('Koa 3', Koa3),
  koaAdapter('Koa 2', Koa2),
];

const header = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
};

// ---------------------------------------------------------------------------

describe('middleware: security cases', function () {
  const { open: openCache, serve } = useRedisCaches({ prefix: 'security' });

  /** A page that reflects X-Forwarded-Host into its links, as many apps do behind a proxy. */
  const reflectingHandler: Handler = (req) => ({ body: `<a href="https://${header(req.headers, 'x-forwarded-host') ?? 'shop.example'}/cart">cart</a>` });
  const EVIL = '<a href="https://evil.example/cart">cart</a>';
  const NORMAL = '<a href="https://shop.example/cart">cart</a>';

  for (const adapter of ADAPTERS) {
    describe(adapter.name, () => {
      it('is poisoned by a handler that reflects X-Forwarded-Host when the header is not in vary (documents the risk)', async () => {
        const cache = await openCache();
        const server = await serve(adapter.route(cache, '/home', { ttl: '1m' }, reflectingHandler));

        const attack = await request(server).get('/home').set('X-Forwarded-Host', 'evil.example');
        assert.equal(attack.text, EVIL);
        assert.equal(attack.headers['cache-status'], STORED);

        const victim = await request(server).get('/home');
        assert.equal(victim.headers['cache-status'], HIT_L1);
        assert.equal(victim.text, EVIL, 'expected the poisoned entry: X-Forwarded-Host is not part of the key without vary');
      });

      it('keeps a handler that reflects X-Forwarded-Host safe with vary: [x-forwarded-host]', async () => {
        const cache = await openCache();
        let runs = 0;
        const server = await serve(
          adapter.route(cache, '/home', { ttl: '1m', vary: ['x-forwarded-host'] }, (req) => {
            runs++;
            return reflectingHandler(req);
          }),
        );

        const attack = await request(server).get('/home').set('X-Forwarded-Host', 'evil.example');
        assert.equal(attack.text, EVIL);
        assert.equal(attack.headers['cache-status'], STORED);

        const victim = await request(server).get('/home');
        assert.equal(victim.text, NORMAL, 'the normal request got the attacker’s body');
        assert.equal(victim.headers['cache-status'], STORED);

        const again = await request(server).get('/home');
        assert.equal(again.text, NORMAL);
        assert.equal(again.headers['cache-status'], HIT_L1);
        const attackAgain = await request(server).get('/home').set('X-Forwarded-Host', 'evil.example');
        assert.equal(attackAgain.text, EVIL);
        assert.equal(runs, 2);
      });

      it("lets /ADMIN/, /admin/, /%61dmin and /admin all bypass a '/admin': false rule under app-wide mounting with a cache-wide ttl", async () => {
        const cache = await openCache({ ttl: '1m', routes: { '/admin': false } });
        const runs = new Map<string, number>();
        const server = await serve(
          adapter.appWide(cache, (req) => {
            runs.set(req.url, (runs.get(req.url) ?? 0) + 1);
            return { body: `page ${req.url} run ${runs.get(req.url)}` };
          }),
        );

        // Control: everything else is cached app-wide.
        await request(server).get('/other');
        const control = await request(server).get('/other');
        assert.equal(control.headers['cache-status'], HIT_L1, 'the cache-wide ttl should cache /other');
        assert.equal(runs.get('/other'), 1);

        for (const path of ['/ADMIN/', '/admin/', '/%61dmin', '/admin']) {
          for (let attempt = 1; attempt <= 3; attempt++) {
            const res = await request(server).get(path);
            assert.equal(res.status, 200);
            assert.equal(res.text, `page ${path} run ${attempt}`, `${path}: the handler did not run on attempt ${attempt}`);
            assert.equal(res.headers['cache-status'], undefined, `${path} was handled by the cache: ${res.headers['cache-status']}`);
          }
          assert.equal(runs.get(path), 3, `${path} was served from the cache`);
        }
        assert.equal(cache.stats().fills, 1, 'only /other may have been stored');
      });

      it('keeps ?id=1&id=2, ?id=2&id=1 and ?id=1 as three entries', async () => {
        const cache = await openCache();
        let runs = 0;
        const server = await serve(
          adapter.route(cache, '/items', { ttl: '1m' }, (req) => {
            runs++;
            return { body: `ids ${JSON.stringify(new URL(req.url, 'http://x').searchParams.getAll('id'))}` };
          }),
        );
        const cases: Array<[string, string]> = [
          ['/items?id=1&id=2', 'ids ["1","2"]'],
          ['/items?id=2&id=1', 'ids ["2","1"]'],
          ['/items?id=1', 'ids ["1"]'],
        ];

        for (const [url, body] of cases) {
          const res = await request(server).get(url);
          assert.equal(res.text, body);
          assert.equal(res.headers['cache-status'], STORED, `${url} was answered from another query's entry`);
        }
        for (const [url, body] of cases) {
          const res = await request(server).get(url);
          assert.equal(res.text, body, `${url} got another query's body`);
          assert.equal(res.headers['cache-status'], HIT_L1);
        }
        assert.equal(runs, 3);
        assert.equal(cache.stats().fills, 3);
      });

      // The frameworks cut the target at '#' (a raw one reaches the server when an attacker
      // writes it): the key must too, or '?q=C#' poisons the entry of '?q=C%23'.
      it("keys a raw '#' as the framework parses the target: GET /search?q=C# never answers ?q=C%23", async () => {
        const cache = await openCache();
        let runs = 0;
        const server = await serve(
          adapter.route(cache, '/search', { ttl: '1m' }, (req) => {
            runs++;
            return { body: `results for ${JSON.stringify(req.query)}` };
          }),
        );

        const victim = await request(server).get('/search?q=C%23');
        assert.equal(victim.text, 'results for {"q":"C#"}');
        assert.equal(victim.headers['cache-status'], STORED);

        const same = await request(server).get('/search?q=C');
        assert.equal(same.text, 'results for {"q":"C"}');
        assert.equal(same.headers['cache-status'], STORED);

        const attack = await rawGet(server, '/search?q=C#');
        assert.equal(attack.bytes.toString(), 'results for {"q":"C"}', 'the raw # got the answer for q=C%23');
        assert.equal(attack.headers['cache-status'], HIT_L1, '?q=C# and ?q=C are one request to the app');
        assert.equal(runs, 2);
      });

      // Browsers always send these escaped; the app decodes both spellings alike but reflects the target as sent.
      // Each of the four characters on its own too (a tag needs no '>' to run: <svg/onload=...).
      for (const [raw, escaped] of [['q=<script>alert(1)</script>&page=2', 'page=2&q=%3Cscript%3Ealert(1)%3C/script%3E'], ['q="onfocus=x', 'q=%22onfocus=x'], ["q='x", 'q=%27x'], ['q=<svg/onload=alert(1)//', 'q=%3Csvg/onload=alert(1)//'], ['q=a>b', 'q=a%3Eb']]) {
      it(`never serves the answer to a raw ?${raw} (sent from a socket) to the escaped ?${escaped} browsers send`, async () => {
        const cache = await openCache();
        let runs = 0;
        const server = await serve(
          adapter.route(cache, '/page', { ttl: '1m' }, (req) => {
            runs++;
            return { body: `<link rel="canonical" href="${req.url}">` };
          }),
        );

        const attack = await rawGet(server, `/page?${raw}`);
        assert.equal(attack.bytes.toString(), `<link rel="canonical" href="/page?${raw}">`);
        assert.equal(attack.headers['cache-status'], STORED);

        const victim = await request(server).get(`/page?${escaped}`);
        assert.equal(victim.text, `<link rel="canonical" href="/page?${escaped}">`, "a browser got the answer to the raw spelling");
        assert.equal(victim.headers['cache-status'], STORED);
        const again = await rawGet(server, `/page?${raw}`);
        assert.equal(again.headers['cache-status'], HIT_L1);
        assert.equal(runs, 2);
      });
      }

      it('keeps vary headers (x-a: "a:b", x-b: "c") and (x-a: "a", x-b: "b:c") as two entries', async () => {
        const cache = await openCache();
        let runs = 0;
        const server = await serve(
          adapter.route(cache, '/v', { ttl: '1m', vary: ['x-a', 'x-b'] }, (req) => {
            runs++;
            return { body: `a=${header(req.headers, 'x-a')} b=${header(req.headers, 'x-b')}` };
          }),
        );
        const pairs: Array<[string, string]> = [
          ['a:b', 'c'],
          ['a', 'b:c'],
        ];

        for (const round of [1, 2]) {
          for (const [a, b] of pairs) {
            const res = await request(server).get('/v').set('x-a', a).set('x-b', b);
            assert.equal(res.text, `a=${a} b=${b}`, `(${a}, ${b}) got another entry's body`);
            assert.equal(res.headers['cache-status'], round === 1 ? STORED : HIT_L1);
          }
        }
        assert.equal(runs, 2);
      });

      it('never lets user 1 and user 12 share an entry, and bypasses a cookie-carrying request without a user', async () => {
        const cache = await openCache();
        let runs = 0;
        const server = await serve(
          adapter.route(cache, '/me', { ttl: '1m', user: (r: Any) => header(r.headers, 'x-user') }, (req) => {
            runs++;
            return { headers: { 'cache-control': 'private' }, body: `profile of user ${header(req.headers, 'x-user') ?? '(none)'}` };
          }),
        );
        const get = (user: string | undefined) => {
          const t = request(server).get('/me').set('Cookie', 'sid=s3cret');
          return user === undefined ? t : t.set('X-User', user);
        };

        const first1 = await get('1');
        assert.equal(first1.text, 'profile of user 1');
        assert.equal(first1.headers['cache-status'], STORED);
        const first12 = await get('12');
        assert.equal(first12.text, 'profile of user 12');
        assert.equal(first12.headers['cache-status'], STORED);

        for (let i = 0; i < 3; i++) {
          for (const user of ['1', '12']) {
            const res = await get(user);
            assert.equal(res.text, `profile of user ${user}`, `user ${user} saw another user's entry`);
            assert.equal(res.headers['cache-status'], HIT_L1);
          }
        }
        // Interleaved concurrent requests too.
        const users = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? '1' : '12'));
        const burst = await Promise.all(users.map((u) => get(u).then((r) => r)));
        burst.forEach((res, i) => assert.equal(res.text, `profile of user ${users[i]}`));
        assert.equal(runs, 2, 'each user should have been filled exactly once');

        for (let i = 0; i < 2; i++) {
          const anonymous = await get(undefined);
          assert.equal(anonymous.text, 'profile of user (none)');
          assert.equal(anonymous.headers['cache-status'], `${BYPASS}; detail=cookie`);
        }
        assert.equal(runs, 4, 'a cookie-carrying request without a user was served from the cache');
      });
    });
  }
});

// ---------------------------------------------------------------------------
// Query keys against the app's own query parser: two requests that the parser
// reads differently must never share an entry.

interface QueryApp {
  readonly name: string;
  /** The app answering GET /search with its parse of the query, behind the cache when one is given. */
  build(cache: TierCache | undefined): RequestListener;
}

function expressQueryApp(name: string, express: typeof express5, parser?: 'simple' | 'extended'): QueryApp {
  return {
    name,
    build(cache) {
      const app = express();
      if (parser !== undefined) app.set('query parser', parser);
      const answer = (req: Any, res: Any) => res.type('text/plain').send(JSON.stringify(req.query));
      if (cache === undefined) app.get('/search', answer);
      else app.get('/search', expressCache(cache, { ttl: '1m' }), answer);
      return app as unknown as RequestListener;
    },
  };
}

function koaQueryApp(name: string, Koa: typeof Koa3): QueryApp {
  return {
    name,
    build(cache) {
      const app = new Koa();
      const router = new Router();
      const answer = (ctx: Any) => {
        ctx.type = 'text/plain';
        ctx.body = JSON.stringify(ctx.query);
      };
      if (cache === undefined) router.get('/search', answer);
      else router.get('/search', koaCache(cache, { ttl: '1m' }) as Any, answer);
      app.use(router.routes() as Any);
      return app.callback() as RequestListener;
    },
  };
}

const QUERY_APPS: readonly QueryApp[] = [
  expressQueryApp("Express 5, query parser 'simple' (its default)", express5),
  expressQueryApp("Express 5, query parser 'extended'", express5, 'extended'),
  expressQueryApp("Express 4 (default parser, 'extended')", express4),
  koaQueryApp('Koa 3 (ctx.query)', Koa3),
  koaQueryApp('Koa 2 (ctx.query)', Koa2),
];

/** Pairs of targets that used to share a key; some parser reads each pair differently. */
const QUERY_PAIRS: ReadonlyArray<readonly [string, string]> = [
  ['/search?sort[]=price&sort=name', '/search?sort=name&sort[]=price'],
  ['/search?sort%5B%5D=price&sort=name', '/search?sort=name&sort%5B%5D=price'],
  ['/search?[q]=1&q=2', '/search?q=2&[q]=1'],
  ['/search?a=b[]=1&a%3Db[]=2', '/search?a%3Db[]=2&a=b[]=1'],
  ['/search??q=1&', '/search?&?q=1'],
  ['/search?%FF=1&%FE=2', '/search?%FE=2&%FF=1'],
];

describe("middleware: query keys follow the app's query parser", function () {
  const { open: openCache, serve } = useRedisCaches({ prefix: 'qparse' });

  for (const app of QUERY_APPS) {
    it(`${app.name}: never answers a query with the entry of one its parser reads differently`, async () => {
      const cache = await openCache();
      const cached = await serve(app.build(cache));
      const plain = await serve(app.build(undefined));
      for (const pair of QUERY_PAIRS) {
        await cache.clear(); // some pairs are spellings of others: each starts from an empty cache
        // Both orders of each pair, twice: the second round is answered from the cache.
        for (const round of [1, 2]) {
          for (const target of pair) {
            const expected = (await rawGet(plain, target)).bytes.toString();
            const res = await rawGet(cached, target);
            assert.equal(res.bytes.toString(), expected, `${target} (round ${round}) got the answer of another query`);
            assert.equal(res.headers['cache-status'], round === 1 ? STORED : HIT_L1, target);
          }
        }
      }
    });
  }
});
