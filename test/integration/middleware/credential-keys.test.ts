// A response that varies on a credential field (Authorization, Cookie,
// Proxy-Authorization), on a route allowed to store such answers (`shared`,
// `user`, origin mode with `public`), was keyed by the field's value in plain
// text: bearer tokens and session ids sat in Redis key names, readable by
// anyone with SCAN, KEYS or MONITOR, on the status page with showKeys and in
// events (found by a hostile review). They enter keys as a digest now, the
// same on every instance: a variant filled on one is an L2 hit on another,
// and two credentials never share an entry. So does a query carrying an
// OAuth access_token (RFC 6750 §2.3), kept in the key on such routes.
import assert from 'node:assert/strict';
import express from 'express';
import Koa from 'koa';
import request from 'supertest';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { HIT_L1, HIT_L2, MISS_STORED } from '../../../src/middleware/cache-status.js';
import { useRedisCaches } from '../../support/cache-context.js';

type Target = Parameters<typeof request>[0];

const TOKENS = { alice: 'Bearer 9f86d081884c7d659a2feaa0c55ad015-alice', bob: 'Bearer 60303ae22b998861bce3b28f33eec1be-bob' } as const;
const COOKIES = { alice: 'sid=s%3Aalice-6b86b273ff34fce19d6b804eff5a3f57', bob: 'sid=s%3Abob-d4735e3a265e16eee03f59718b9b5d03' } as const;
type Who = keyof typeof TOKENS;

interface Case {
  readonly name: string;
  /** The request header carrying the credential, and its value per user. */
  readonly field: string;
  readonly values: Record<Who, string>;
  /** An app answering GET /api/me with `{ user, run }`, `run` counting the handler's runs. */
  readonly app: (cache: TierCache, runs: { n: number }) => Target;
  readonly cacheOptions?: Parameters<ReturnType<typeof useRedisCaches>['open']>[0];
}

const whoseToken = (value: string | undefined): string => (Object.keys(TOKENS) as Who[]).find((w) => TOKENS[w] === value || COOKIES[w] === value) ?? 'nobody';

const CASES: Case[] = [
  {
    name: 'Express, shared route, response Vary: Authorization',
    field: 'authorization',
    values: TOKENS,
    app: (cache, runs) => {
      const app = express();
      app.get('/api/me', expressCache(cache, { shared: true, ttl: '5m' }), (req, res) => {
        res.set('Vary', 'Authorization').json({ user: whoseToken(req.get('authorization')), run: ++runs.n });
      });
      return app;
    },
  },
  {
    name: 'Express, user-scoped route, vary option [cookie]',
    field: 'cookie',
    values: COOKIES,
    app: (cache, runs) => {
      const app = express();
      app.get('/api/me', expressCache(cache, { user: () => 'tenant-1', vary: ['cookie'], ttl: '5m' }), (req, res) => {
        res.json({ user: whoseToken(req.get('cookie')), run: ++runs.n });
      });
      return app;
    },
  },
  {
    name: 'Express, origin mode, public answer with Vary: Authorization (app-wide)',
    field: 'authorization',
    values: TOKENS,
    cacheOptions: { freshness: 'origin', ttl: '5m' },
    app: (cache, runs) => {
      const app = express();
      app.use(expressCache(cache));
      app.get('/api/me', (req, res) => {
        res.set('Cache-Control', 'public, max-age=300').set('Vary', 'Authorization').json({ user: whoseToken(req.get('authorization')), run: ++runs.n });
      });
      return app;
    },
  },
  {
    name: 'Koa, shared route, vary option [authorization] and response Vary: Proxy-Authorization',
    field: 'authorization',
    values: TOKENS,
    app: (cache, runs) => {
      const app = new Koa();
      app.use(koaCache(cache, { shared: true, vary: ['authorization'], ttl: '5m' }));
      app.use((ctx) => {
        ctx.set('Vary', 'Proxy-Authorization');
        ctx.body = { user: whoseToken(ctx.get('authorization')), run: ++runs.n };
      });
      return app.callback();
    },
  },
];

describe('middleware: credentials a response varies on stay out of key names', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'cred-keys-' });

  async function keysInRedis(): Promise<string[]> {
    const out: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await ctx.admin.scan(cursor, 'MATCH', `${ctx.ns}*`, 'COUNT', 1000);
      cursor = next;
      out.push(...keys);
    } while (cursor !== '0');
    return out;
  }

  for (const c of CASES) {
    it(`${c.name}: no key holds the credential; another instance hits the variant from L2; two credentials never share one`, async () => {
      const a = await ctx.open(c.cacheOptions);
      const b = await ctx.open(c.cacheOptions);
      const seen: string[] = [];
      for (const cache of [a, b]) for (const event of ['store', 'hit', 'miss'] as const) cache.on(event, (e: { key: string }) => seen.push(e.key));
      const runsA = { n: 0 };
      const runsB = { n: 0 };
      const appA = c.app(a, runsA);
      const appB = c.app(b, runsB);
      const me = async (target: Target, who: Who) => {
        const res = await request(target).get('/api/me').set(c.field, c.values[who]).set('proxy-authorization', `Basic ${who}-proxy-secret`);
        assert.equal(res.status, 200);
        return { body: res.body as { user: string; run: number }, status: res.headers['cache-status'] as string };
      };

      const filled = await me(appA, 'alice');
      assert.deepEqual(filled.body, { user: 'alice', run: 1 });
      assert.equal(filled.status, MISS_STORED);

      const keys = await keysInRedis();
      assert.ok(keys.length > 0, 'the fill stored something in Redis');
      for (const text of [...Object.values(c.values), 'proxy-secret', '9f86d081884c7d659a2feaa0c55ad015', '6b86b273ff34fce19d6b804eff5a3f57']) {
        assert.deepEqual(keys.filter((k) => k.includes(text)), [], `a Redis key holds ${text}`);
        assert.deepEqual(seen.filter((k) => k.includes(text)), [], `an event's key holds ${text}`);
      }

      // The other instance: alice's variant from L2, without running its handler.
      const shared = await me(appB, 'alice');
      assert.deepEqual(shared.body, { user: 'alice', run: 1 });
      assert.equal(shared.status, HIT_L2);
      assert.equal(runsB.n, 0);

      // bob never gets alice's entry, on either instance.
      const bob = await me(appB, 'bob');
      assert.deepEqual(bob.body, { user: 'bob', run: 1 });
      assert.equal(runsB.n, 1);
      assert.deepEqual((await me(appA, 'bob')).body, { user: 'bob', run: 1 }, "instance a: bob's variant, filled on b");
      const again = await me(appA, 'alice');
      assert.deepEqual(again.body, { user: 'alice', run: 1 });
      assert.equal(again.status, HIT_L1);
      assert.equal(runsA.n, 1);
      for (const text of Object.values(c.values)) assert.deepEqual((await keysInRedis()).filter((k) => k.includes(text)), []);
    });
  }
});

describe('middleware: an access_token in the query stays out of key names', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'cred-query-' });

  for (const framework of ['express', 'koa'] as const) {
    it(`${framework}, shared route: no key holds the token; another instance hits from L2; another token gets its own answer`, async () => {
      const build = (cache: TierCache, runs: { n: number }): Target => {
        if (framework === 'express') {
          const app = express();
          app.get('/api/feed', expressCache(cache, { shared: true, ttl: '5m', query: ['page'] }), (req, res) => {
            res.json({ user: whoseToken(`Bearer ${String(req.query.access_token)}`), run: ++runs.n });
          });
          return app;
        }
        const app = new Koa();
        app.use(koaCache(cache, { shared: true, ttl: '5m' }));
        app.use((c) => {
          c.body = { user: whoseToken(`Bearer ${String(c.query.access_token)}`), run: ++runs.n };
        });
        return app.callback();
      };
      const a = await ctx.open();
      const b = await ctx.open();
      const keysSeen: string[] = [];
      for (const cache of [a, b]) cache.on('store', (e: { key: string }) => keysSeen.push(e.key));
      const runsA = { n: 0 };
      const runsB = { n: 0 };
      const appA = build(a, runsA);
      const appB = build(b, runsB);
      const token = (who: Who) => TOKENS[who].slice('Bearer '.length);
      const feed = async (target: Target, who: Who, page = 1) => {
        const res = await request(target).get(`/api/feed?page=${page}&access_token=${token(who)}`);
        assert.equal(res.status, 200);
        return { body: res.body as { user: string; run: number }, status: res.headers['cache-status'] as string };
      };

      assert.deepEqual((await feed(appA, 'alice')).body, { user: 'alice', run: 1 });
      const keys = await ctx.admin.keys(`${ctx.ns}*`);
      assert.ok(keys.length > 0);
      for (const who of ['alice', 'bob'] as const) {
        assert.deepEqual(keys.filter((k) => k.includes(token(who).slice(0, 16))), [], 'a Redis key holds the token');
        assert.deepEqual(keysSeen.filter((k) => k.includes(token(who).slice(0, 16))), [], "an event's key holds the token");
      }
      const shared = await feed(appB, 'alice');
      assert.deepEqual(shared.body, { user: 'alice', run: 1 });
      assert.equal(shared.status, HIT_L2);
      assert.deepEqual((await feed(appB, 'bob')).body, { user: 'bob', run: 1 });
      assert.deepEqual((await feed(appA, 'alice', 2)).body, { user: 'alice', run: 2 }, 'page 2 is another entry');
      assert.equal((await feed(appA, 'alice')).status, HIT_L1);
    });
  }
});
