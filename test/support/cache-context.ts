// Per-describe setup for integration tests: start a real redis-server, give
// each test a fresh namespace, close the caches and HTTP servers it opened.
// Most integration files need exactly these hooks, so they live here once.
import { createServer, Server, type RequestListener } from 'node:http';
import { Redis } from 'ioredis';
import { createCache, type CacheOptions, type TierCache } from '../../src/index.js';
import { startRedisServer, type RedisServerHandle } from './redis-server.js';

/** How long the hook that starts redis-server may take at the least: a loaded machine can be slow to start one. */
const START_TIMEOUT_MS = 20_000;

export interface Cleanup {
  /** Closes `thing` after the test: every HTTP server first (its open connections dropped), then every cache. */
  track<T extends Server | TierCache>(thing: T): T;
  /** An HTTP server for `listener` on a free loopback port, closed after the test. */
  serve(listener: RequestListener): Promise<Server>;
}

/**
 * Registers an afterEach hook (in the calling describe, or for the whole run
 * when called at a file's top level) that closes what the test handed to
 * `track` or opened with `serve`. For tests whose caches need no redis-server.
 */
export function useCleanup(): Cleanup {
  const servers: Server[] = [];
  const caches: TierCache[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await Promise.all(caches.splice(0).map((c) => c.close()));
  });
  const track = <T extends Server | TierCache>(thing: T): T => {
    if (thing instanceof Server) servers.push(thing);
    else caches.push(thing as TierCache);
    return thing;
  };
  return {
    track,
    async serve(listener) {
      const server = track(createServer(listener));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
      return server;
    },
  };
}

export interface RedisCachesOptions {
  /** Start of every namespace: `${prefix}${pid}-${n}`. */
  readonly prefix: string;
  /** Options every `open()` starts from; its own options win. */
  readonly defaults?: CacheOptions;
  /** A fresh redis-server for every test (for tests that stop, kill or restart it) instead of one for the describe. */
  readonly serverPerTest?: boolean;
  /** FLUSHALL (through `admin`) before each test. */
  readonly flush?: boolean;
}

export interface RedisCaches extends Cleanup {
  /** The describe's redis-server (the test's, with `serverPerTest`); set once the hooks have run. */
  readonly redis: RedisServerHandle;
  /** A raw client on `redis`, for looking at and writing into Redis behind the caches' back; made on first use. */
  readonly admin: Redis;
  /** This test's namespace, fresh for every test. */
  readonly ns: string;
  /** A cache on `redis` in this test's namespace (both overridable), ready when returned, closed after the test. */
  open(options?: CacheOptions): Promise<TierCache>;
}

/**
 * One redis-server for the enclosing describe (or one per test), a fresh
 * namespace per test, optionally FLUSHALL before each test, and every cache
 * and HTTP server the test opened closed after it.
 */
export function useRedisCaches(options: RedisCachesOptions): RedisCaches {
  let redis: RedisServerHandle | undefined;
  let admin: Redis | undefined;
  let ns: string | undefined;
  let counter = 0;

  /** Starts the server; the hook gets START_TIMEOUT_MS at the least, never less than its describe gives it. */
  const start = async (hook: Mocha.Context) => {
    if (hook.timeout() !== 0 && hook.timeout() < START_TIMEOUT_MS) hook.timeout(START_TIMEOUT_MS);
    redis = await startRedisServer();
  };
  const stop = async () => {
    admin?.disconnect();
    admin = undefined;
    await redis?.stop();
  };
  if (!options.serverPerTest) {
    before(async function () {
      await start(this);
    });
    after(stop);
  }
  beforeEach(async function () {
    if (options.serverPerTest) await start(this);
    ns = `${options.prefix}${process.pid}-${++counter}`;
    if (options.flush) await ctx.admin.flushall();
  });
  // A test that killed its server and left invalidations queued would have each cache's close() wait its
  // whole bound (CLOSE_WAIT_MS, 2 s) for a Redis that never comes back; the server is thrown away after the
  // test, so a killed one (not one the test stopped) is started again first, before the caches close (hooks
  // run in order), and they deliver.
  if (options.serverPerTest) {
    afterEach(async () => {
      if (redis !== undefined && !redis.stopped && !redis.running) await redis.restart();
    });
  }
  const cleanup = useCleanup();
  if (options.serverPerTest) afterEach(stop);

  const ctx: RedisCaches = {
    ...cleanup,
    get redis() {
      if (redis === undefined) throw new Error('useRedisCaches: the redis-server is not started yet (use it inside a test or hook)');
      return redis;
    },
    get admin() {
      if (admin === undefined) {
        admin = new Redis(ctx.redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
        // Tests stop and restart the server under it: its reconnect errors are expected.
        admin.on('error', () => undefined);
      }
      return admin;
    },
    get ns() {
      if (ns === undefined) throw new Error('useRedisCaches: no namespace outside a test');
      return ns;
    },
    async open(cacheOptions = {}) {
      const cache = cleanup.track(createCache({ namespace: ctx.ns, redis: ctx.redis.url, ...options.defaults, ...cacheOptions }));
      await cache.ready();
      return cache;
    },
  };
  return ctx;
}
