// The ioredis clients an app makes itself and passes as `redis`, used as they
// are: the settings tiercache works with (a keyPrefix, another database, RESP2
// or RESP3 replies, auto-pipelining), proved against one real redis-server,
// and those it refuses at createCache because nothing could be cached through
// them (a Sentinel client made to connect to a replica, a Cluster client with
// a keyPrefix).
import assert from 'node:assert/strict';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { createCache, TierCacheConfigError, type TierCache } from '../../src/index.js';
import { useRedisCaches } from '../support/cache-context.js';
import { eventually } from '../support/eventually.js';
import { REDIS_HOST, startRedisServer } from '../support/redis-server.js';

/** createCache(options), which must throw; a cache it made all the same is closed. */
function refused(options: Parameters<typeof createCache>[0]): unknown {
  try {
    void createCache(options).close();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe("the app's own ioredis client", () => {
  describe('refused at createCache, naming redis', () => {
    it("refuses a Sentinel client made to connect to a replica (role: 'slave'): every script would fail READONLY", () => {
      const replica = new Redis({ sentinels: [{ host: REDIS_HOST, port: 1 }], name: 'mymaster', role: 'slave', lazyConnect: true });
      try {
        const err = refused({ redis: replica });
        assert.ok(err instanceof TierCacheConfigError && err.option === 'redis' && /role/.test(err.message), String(err));
        assert.equal(replica.status, 'wait', 'nothing was sent on it');
      } finally {
        replica.disconnect();
      }
    });

    it("accepts a standalone client made with role: 'slave', which ioredis reads only with sentinels", () => {
      const standalone = new Redis({ port: 1, role: 'slave', lazyConnect: true });
      try {
        assert.equal(refused({ redis: standalone }), undefined);
      } finally {
        standalone.disconnect();
      }
    });

    it('refuses a Cluster client with a keyPrefix: its keys would hash to other slots than tiercache groups them by (CROSSSLOT)', () => {
      const cluster = new Cluster([{ host: REDIS_HOST, port: 1 }], { keyPrefix: 'app:', lazyConnect: true });
      try {
        const err = refused({ redis: cluster });
        assert.ok(err instanceof TierCacheConfigError && err.option === 'redis' && /keyPrefix/.test(err.message) && /namespace/.test(err.message), String(err));
      } finally {
        cluster.disconnect();
      }
    });
  });

  describe('works with', () => {
    const ctx = useRedisCaches({ prefix: 'own', flush: true });
    const clients: Redis[] = [];
    afterEach(() => {
      for (const c of clients.splice(0)) c.disconnect();
    });
    const client = (options: RedisOptions, port = ctx.redis.port) => {
      const c = new Redis(port, REDIS_HOST, options);
      // A server a test stops before afterEach: its reconnect attempts are no news.
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    };
    /** Two instances of one app, each on a client made with `options`. */
    const pair = async (options: RedisOptions): Promise<[TierCache, TierCache]> => [await ctx.open({ redis: client(options) }), await ctx.open({ redis: client(options) })];

    /** Values (a large one too), a getOrSet across instances, an invalidation and a pull, from A to B. */
    async function crossInstance(a: TierCache, b: TierCache): Promise<void> {
      await a.set('small', { n: 1 }, { tags: ['t'] });
      const large = 'x'.repeat(100 * 1024);
      await a.set('large', large);
      assert.deepStrictEqual(await b.get('small'), { n: 1 });
      assert.equal(await b.get('large'), large);
      let runs = 0;
      assert.equal(await a.getOrSet('loaded', () => (runs++, 'v')), 'v');
      assert.equal(await b.getOrSet('loaded', () => (runs++, 'other')), 'v');
      assert.equal(runs, 1);
      assert.deepStrictEqual(await a.invalidateTags(['t']), { delivered: true });
      await eventually(async () => (await b.get('small')) === undefined, "A's invalidation reached B");
      // A pull's claim key, taken by the lookup script, and its second step.
      await a.set('once', 'taken');
      assert.equal(await b.pull('once'), 'taken');
      assert.equal(await a.pull('once'), undefined);
      assert.equal(a.stats().l2.errors + b.stats().l2.errors, 0);
    }

    it("a keyPrefix: every key tiercache writes, those its scripts derive included, carries it", async () => {
      const [a, b] = await pair({ keyPrefix: 'app:' });
      await crossInstance(a, b);
      const keys = await ctx.admin.keys('*');
      assert.ok(keys.length > 0);
      assert.deepStrictEqual(keys.filter((k) => !k.startsWith('app:')), []);
    });

    it('another database (db: 3): the subscriber it duplicates needs none, and nothing lands in db 0', async () => {
      const [a, b] = await pair({ db: 3 });
      await crossInstance(a, b);
      assert.equal(await ctx.admin.dbsize(), 0);
    });

    for (const [what, options] of [
      ['RESP2 (protocol: 2)', { protocol: 2 }],
      ["RESP3 with replyMapping 'resp3' and stringNumbers", { replyMapping: 'resp3', stringNumbers: true }],
      ['enableAutoPipelining', { enableAutoPipelining: true }],
    ] as const) {
      it(what, async () => {
        const [a, b] = await pair(options as RedisOptions);
        await crossInstance(a, b);
      });
    }

    it('a client pointed at a replica (replica-read-only) is Redis down, said once, until the server is a master: not a refusal per call', async () => {
      const replica = await startRedisServer({ args: ['--replicaof', REDIS_HOST, String(ctx.redis.port)] });
      try {
        const cache = ctx.track(createCache({ namespace: ctx.ns, redis: client({}, replica.port), l2: { commandTimeout: '3s', breakerCooldown: 20 } }));
        const errors: Error[] = [];
        cache.on('error', ({ err }) => errors.push(err));
        await cache.ready();
        assert.equal(cache.health().l2, 'down');
        for (let i = 0; i < 10; i++) {
          await cache.set(`k${i}`, i);
          assert.equal(await cache.get(`missing${i}`), undefined);
        }
        assert.deepStrictEqual(await cache.invalidateTags(['t']), { delivered: false });
        // Each set() is reported queued, as in any outage; the replica's refusal once, as L2 going down.
        const refusals = errors.filter((e) => e.message.startsWith('READONLY'));
        assert.equal(refusals.length, 1, refusals.map((e) => e.message).join(' | '));
        // Promoted (a failover behind a DNS name or proxy that kept the connection): as after an outage.
        const direct = client({}, replica.port);
        await direct.replicaof('NO', 'ONE');
        await eventually(() => cache.health().l2 === 'ok', 'L2 up once the server is a master');
        await cache.set('after', 'promoted');
        assert.equal(await direct.exists(`${ctx.ns}:d:after`), 1);
        // Demoted again while in use: the refusal of the first write takes L2 down, said once; the next ones skip it.
        const before = errors.length;
        await direct.replicaof(REDIS_HOST, String(ctx.redis.port));
        for (let i = 0; i < 10; i++) await cache.set(`demoted${i}`, i);
        assert.equal(cache.health().l2, 'down');
        const again = errors.slice(before).filter((e) => e.message.startsWith('READONLY'));
        assert.equal(again.length, 1, again.map((e) => e.message).join(' | '));
      } finally {
        await replica.stop();
      }
    });

    it('a master demoted while it still holds what it recorded as master (its new master not reached yet) stays Redis down: the probe is refused as the writes are, L2 does not come up in between', async () => {
      const server = await startRedisServer();
      try {
        const cache = ctx.track(createCache({ namespace: ctx.ns, redis: client({}, server.port), l2: { commandTimeout: '3s', breakerCooldown: 20 } }));
        const errors: Error[] = [];
        const states: string[] = [];
        cache.on('error', ({ err }) => errors.push(err));
        cache.on('l2', ({ state }) => states.push(state));
        await cache.ready();
        await cache.set('before', 1);
        // Server checks answered from here on: the probes (and the bus's epoch checks), each refused or passed.
        const versions = cache.store.versions;
        const ask = versions.serverEpoch;
        let answered = 0;
        versions.serverEpoch = (...args) => {
          const answer = ask.apply(versions, args);
          const count = () => void answered++;
          answer.then(count, count);
          return answer;
        };
        // Nothing listens on port 1: no sync ever replaces the data, so the namespace's epoch and the record of
        // this very process stay what the check wrote while the server was a master.
        await client({}, server.port).replicaof(REDIS_HOST, '1');
        await cache.set('demoted', 1);
        assert.equal(cache.health().l2, 'down');
        const from = answered;
        await eventually(() => answered >= from + 3 || cache.health().l2 === 'ok', 'three server checks answered after the refusal');
        assert.deepStrictEqual(states, ['down'], `L2 came up while the server was a read-only replica (${answered - from} checks)`);
        const refusals = errors.filter((e) => e.message.startsWith('READONLY'));
        assert.equal(refusals.length, 1, refusals.map((e) => e.message).join(' | '));
      } finally {
        await server.stop();
      }
    });

    for (const [what, apart] of [
      ['databases', [{ db: 0 }, { db: 3 }]],
      ['keyPrefix', [{ keyPrefix: 'one:' }, { keyPrefix: 'two:' }]],
    ] as const) {
      it(`two apps kept apart by ${what} under one namespace: one's clear() and invalidations leave the other's values (pub/sub knows neither)`, async () => {
        const [one, two] = apart as readonly [RedisOptions, RedisOptions];
        const first = await ctx.open({ redis: client(one) });
        const second = await ctx.open({ redis: client(two) });
        const secondAgain = await ctx.open({ redis: client(two) });
        await second.set('kept', 'second app', { tags: ['t'] });
        await first.set('kept', 'first app', { tags: ['t'] });
        assert.equal(await second.get('kept'), 'second app');
        await first.invalidateTags(['t']);
        await first.clear();
        // Published after the first app's messages, on the same server: once it reaches `second`, they have too.
        const heard = new Promise<void>((resolve) => second.on('invalidate', (e) => e.tags.some((t) => t.endsWith('mark')) && resolve()));
        await secondAgain.invalidateTags(['mark']);
        await heard;
        assert.equal(await second.get('kept'), 'second app', 'from L1');
        assert.equal(await secondAgain.get('kept'), 'second app', 'from Redis');
      });
    }
  });
});
