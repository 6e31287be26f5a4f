// createCache options and TIERCACHE_* variables: every invalid value throws a
// TierCacheConfigError that names the option (or variable) and shows the
// value; valid variables fill in options not given in code; the caller's
// object is never mutated.
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { TierCacheConfigError, TierCacheError, createCache } from '../../../src/index.js';
import { resolveOptions, type CacheOptions } from '../../../src/cache/options.js';

const NO_ENV = Object.freeze({}) as Readonly<Record<string, string | undefined>>;

/**
 * Asserts that `fn` throws a TierCacheConfigError for `option`, with the
 * stable code, and a message that names the option and shows the value.
 */
function assertConfigError(fn: () => unknown, option: string, shown: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof TierCacheConfigError, `expected a TierCacheConfigError, got ${String(err)}`);
    assert.ok(err instanceof TierCacheError);
    assert.equal(err.code, 'TIERCACHE_CONFIG');
    assert.equal((err.constructor as typeof TierCacheConfigError).code, 'TIERCACHE_CONFIG');
    assert.equal(err.option, option);
    assert.ok(err.message.includes(option), `message should name ${option}: ${err.message}`);
    assert.ok(err.message.includes(shown), `message should show the value ${shown}: ${err.message}`);
    return true;
  });
}

/** Both entry points: resolveOptions with an empty env, and createCache (which reads process.env). */
function assertRejected(options: unknown, option: string, shown: string): void {
  assertConfigError(() => resolveOptions(options as CacheOptions, NO_ENV), option, shown);
  assertConfigError(() => createCache(options as CacheOptions), option, shown);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const key of Reflect.ownKeys(value)) deepFreeze((value as Record<PropertyKey, unknown>)[key]);
    Object.freeze(value);
  }
  return value;
}

describe('cache: options', () => {
  // createCache reads process.env; keep the TIERCACHE_* variables of the
  // environment running the tests out of these assertions.
  const saved: Record<string, string | undefined> = {};
  before(() => {
    for (const name of Object.keys(process.env)) {
      if (name.startsWith('TIERCACHE_')) {
        saved[name] = process.env[name];
        delete process.env[name];
      }
    }
  });
  after(() => {
    Object.assign(process.env, saved);
  });

  describe('invalid options throw TierCacheConfigError', () => {
    it('rejects an unknown top-level key', () => {
      assertRejected({ nameSpace: 'x' }, 'nameSpace', '"x"');
      assertRejected({ l1: {}, maxBytes: 12345 }, 'maxBytes', '12345');
    });

    it('rejects options that are not an object', () => {
      assertRejected('redis://x', 'options', '"redis://x"');
      assertRejected(42, 'options', '42');
    });

    it('rejects an unknown l1 key', () => {
      assertRejected({ l1: { maxSize: 777 } }, 'l1.maxSize', '777');
    });

    it('rejects an unknown l2 key', () => {
      assertRejected({ l2: { timeout: 555 } }, 'l2.timeout', '555');
    });

    it('rejects l1 / l2 values that are not objects', () => {
      assertRejected({ l1: 'big' }, 'l1', '"big"');
      assertRejected({ l1: true }, 'l1', 'true');
      assertRejected({ l2: 'fast' }, 'l2', '"fast"');
    });

    it('rejects unparsable and negative durations: ttl', () => {
      assertRejected({ ttl: 'abc' }, 'ttl', '"abc"');
      assertRejected({ ttl: -1 }, 'ttl', '-1');
      assertRejected({ ttl: '-5s' }, 'ttl', '"-5s"');
      assertRejected({ ttl: NaN }, 'ttl', 'NaN');
      assertRejected({ ttl: Infinity }, 'ttl', 'Infinity');
      assertRejected({ ttl: '' }, 'ttl', '""');
      assertRejected({ ttl: true }, 'ttl', 'true');
    });

    it('rejects a ttl of 0 (entries stored and never served), from code and from TIERCACHE_TTL, saying what to write instead', () => {
      assertRejected({ ttl: 0 }, 'ttl', '0');
      assertRejected({ ttl: '0s' }, 'ttl', '"0s"');
      assertConfigError(() => resolveOptions({}, { TIERCACHE_TTL: '0' }), 'TIERCACHE_TTL', '"0"');
      assert.throws(() => resolveOptions({ ttl: 0 }, NO_ENV), /leave ttl out .* false in the table/);
    });

    it('rejects a route prefix written as a router pattern, naming the literal prefix to write', () => {
      assertRejected({ routes: { '/api/movies/:id': '5m' } }, "routes['/api/movies/:id']", '"/api/movies/:id"');
      assertRejected({ routes: { '/api/*': '5m' } }, "routes['/api/*']", '"/api/*"');
      assert.throws(() => createCache({ redis: false, routes: { '/api/movies/:id': '5m' } }), /write the literal prefix instead: '\/api\/movies'/);
    });

    it('rejects unparsable and negative durations: l1.ttl', () => {
      assertRejected({ l1: { ttl: 'ten seconds' } }, 'l1.ttl', '"ten seconds"');
      assertRejected({ l1: { ttl: -30 } }, 'l1.ttl', '-30');
    });

    it('rejects unparsable, negative and zero durations: l2.commandTimeout', () => {
      assertRejected({ l2: { commandTimeout: 'soon' } }, 'l2.commandTimeout', '"soon"');
      assertRejected({ l2: { commandTimeout: -100 } }, 'l2.commandTimeout', '-100');
      assertRejected({ l2: { commandTimeout: 0 } }, 'l2.commandTimeout', '0');
      assertRejected({ l2: { breakerCooldown: 'later' } }, 'l2.breakerCooldown', '"later"');
    });

    it("rejects a command timeout or breaker cooldown past node's longest timer (it would fire after 1 ms), and takes one just within it", () => {
      assertRejected({ l2: { commandTimeout: '30d' } }, 'l2.commandTimeout', '"30d"');
      assertRejected({ l2: { breakerCooldown: 2 ** 31 } }, 'l2.breakerCooldown', String(2 ** 31));
      assert.throws(() => createCache({ redis: false, l2: { commandTimeout: '25d' } }), /at most 2147483647 ms/);
      const cache = createCache({ redis: false, l2: { commandTimeout: 2 ** 31 - 1, breakerCooldown: '24d' } });
      void cache.close();
    });

    it('rejects maxBytes < 1', () => {
      assertRejected({ l1: { maxBytes: 0 } }, 'l1.maxBytes', '0');
      assertRejected({ l1: { maxBytes: -1024 } }, 'l1.maxBytes', '-1024');
      assertRejected({ l1: { maxBytes: 0.5 } }, 'l1.maxBytes', '0.5');
    });

    it('rejects maxEntries 0 and 1.5', () => {
      assertRejected({ l1: { maxEntries: 0 } }, 'l1.maxEntries', '0');
      assertRejected({ l1: { maxEntries: 1.5 } }, 'l1.maxEntries', '1.5');
      assertRejected({ l1: { maxEntries: 'many' } }, 'l1.maxEntries', '"many"');
    });

    it("rejects a route prefix that does not start with '/'", () => {
      assertRejected({ routes: { 'api/movies': '5m' } }, "routes['api/movies']", 'api/movies');
      assertRejected({ routes: { '/ok': '1m', '*': '1m' } }, "routes['*']", '*');
    });

    it('rejects a bad route rule', () => {
      assertRejected({ routes: { '/api': 'forever' } }, "routes['/api']", '"forever"');
      assertRejected({ routes: { '/api': true } }, "routes['/api']", 'true');
      assertRejected({ routes: { '/api': -5 } }, "routes['/api']", '-5');
      assertRejected({ routes: { '/api': { ttl: 'never' } } }, "routes['/api'].ttl", '"never"');
      assertRejected({ routes: { '/api': { ttl: '1m', maxAge: 99 } } }, "routes['/api'].maxAge", '99');
      assertRejected({ routes: { '/api': { vary: 'accept' } } }, "routes['/api'].vary", '"accept"');
      assertRejected({ routes: [['/api', '1m']] }, 'routes', 'an array');
    });

    it('rejects { l1: false, redis: false }: the cache could store nothing', () => {
      assertConfigError(() => resolveOptions({ l1: false, redis: false }, NO_ENV), 'l1', 'false');
      assertConfigError(() => createCache({ l1: false, redis: false }), 'l1', 'false');
      // L1 off and no Redis from the environment either.
      assertConfigError(() => resolveOptions({ l1: false }, NO_ENV), 'l1', 'false');
    });

    it("rejects a namespace containing ':' or '{' (or empty, or not a string)", () => {
      assertRejected({ namespace: 'shop:eu' }, 'namespace', '"shop:eu"');
      assertRejected({ namespace: 'shop{1}' }, 'namespace', '"shop{1}"');
      assertRejected({ namespace: '' }, 'namespace', '""');
      assertRejected({ namespace: 7 }, 'namespace', '7');
    });

    it("rejects a redis value that is a number or not a redis:// URL", () => {
      assertRejected({ redis: 6379 }, 'redis', '6379');
      assertRejected({ redis: 'http://x' }, 'redis', '"http://x"');
      assertRejected({ redis: true }, 'redis', 'true');
      assertRejected({ redis: { host: 'localhost' } }, 'redis', 'localhost');
    });

    it('rejects a Redis URL node cannot read, naming the option, never showing its password (found by helper-70)', () => {
      for (const url of ['redis://127.0.0.1:notaport', 'redis://127.0.0.1:99999', 'redis://[', 'rediss://h:70000/0']) assertRejected({ redis: url }, 'redis', JSON.stringify(url));
      assertConfigError(() => resolveOptions({}, { TIERCACHE_REDIS_URL: 'redis://app:s3cret@127.0.0.1:notaport' }), 'TIERCACHE_REDIS_URL', '"redis://***@127.0.0.1:notaport"');
      for (const [input, env] of [
        [{ redis: 'http://app:s3cret@127.0.0.1:6379' }, NO_ENV],
        [{ redis: 'redis://app:s3cret@127.0.0.1:notaport' }, NO_ENV],
        [{}, { TIERCACHE_REDIS_URL: 'http://:s3cret@host' }],
        // Found by helper-71: a password holding '/', '#' or '@', or given as ?password=.
        [{ redis: 'redis://:Zx9/Q#s3cret@host:99999' }, NO_ENV],
        [{ redis: 'redis://app:p@s3cret@host:99999' }, NO_ENV],
        [{ redis: 'redis://host:70000/0?db=1&password=s3cret' }, NO_ENV],
      ] as const) {
        assert.throws(
          () => resolveOptions(input as never, env),
          (err: unknown) => err instanceof TierCacheConfigError && !err.message.includes('s3cret') && err.message.includes('***'),
        );
      }
    });

    it('rejects a Redis URL whose database is not a whole number: ioredis would select another one, or send SELECT NaN and end the process', () => {
      for (const url of ['redis://127.0.0.1:6379/abc', 'redis://127.0.0.1:6379/1.5', 'redis://127.0.0.1:6379/2x', 'redis://127.0.0.1:6379/%31', 'redis://127.0.0.1:6379/2147483648', 'redis://127.0.0.1:6379?db=abc', 'redis://127.0.0.1:6379/0?db=1&db=x']) {
        assertRejected({ redis: url }, 'redis', JSON.stringify(url));
      }
      assertConfigError(() => resolveOptions({}, { TIERCACHE_REDIS_URL: 'redis://:s3cret@127.0.0.1:6379/one' }), 'TIERCACHE_REDIS_URL', '"redis://***@127.0.0.1:6379/one"');
      for (const url of ['redis://127.0.0.1:6379', 'redis://127.0.0.1:6379/', 'redis://127.0.0.1:6379/0', 'redis://127.0.0.1:6379/15', 'redis://127.0.0.1:6379?db=3', 'rediss://h:6380/2147483647']) {
        assert.equal(resolveOptions({ redis: url }, NO_ENV).redis, url);
      }
    });

    it('rejects an ioredis client that was closed: it never connects again, and the cache would run on L1 alone, saying nothing', () => {
      const client = new Redis({ lazyConnect: true });
      client.disconnect();
      assert.equal(client.status, 'end', 'premise');
      assertConfigError(() => createCache({ redis: client, namespace: 'closed-client' }), 'redis', 'end');
    });

    it('treats null as a value, not as "not given": refused, whatever the environment says (found by helper-70)', () => {
      assertConfigError(() => resolveOptions({ namespace: null } as never, { TIERCACHE_NAMESPACE: 'other-app' }), 'namespace', 'null');
      assertRejected({ freshness: null }, 'freshness', 'null');
    });

    it('refuses an l1.ttl that rounds to 0: nothing would be served from L1 (found by helper-70)', () => {
      assertRejected({ l1: { ttl: 0 } }, 'l1.ttl', '0');
      assertRejected({ l1: { ttl: 0.4 } }, 'l1.ttl', '0.4');
      assertConfigError(() => resolveOptions({}, { TIERCACHE_L1_TTL: '0' }), 'TIERCACHE_L1_TTL', '"0"');
      assert.equal(resolveOptions({ l1: { ttl: '30s' } }, NO_ENV).l1?.ttl, 30_000);
    });

    it('rejects a logger without the pino methods', () => {
      assertRejected({ logger: 42 }, 'logger', '42');
      assertRejected({ logger: 'console' }, 'logger', '"console"');
      assertConfigError(
        () => resolveOptions({ logger: { debug() {}, info() {}, warn() {} } as never }, NO_ENV),
        'logger',
        'error is missing',
      );
    });

    it('rejects a bad enabled or freshness value', () => {
      assertRejected({ enabled: 'yes' }, 'enabled', '"yes"');
      assertRejected({ freshness: 'always' }, 'freshness', '"always"');
    });
  });

  describe('jitter and serializer', () => {
    it("takes jitter as a percentage below 100% ('10%', '2.5 %') and refuses anything else, naming the option", () => {
      assert.equal(resolveOptions({ redis: false, jitter: '10%' }, NO_ENV).jitter, 0.1);
      assert.equal(resolveOptions({ redis: false, jitter: '2.5 %' as never }, NO_ENV).jitter, 0.025);
      assert.equal(resolveOptions({ redis: false }, NO_ENV).jitter, 0);
      for (const [bad, shown] of [['10', '"10"'], ['100%', '"100%"'], ['-5%', '"-5%"'], [0.1, '0.1']] as const) assertRejected({ redis: false, jitter: bad }, 'jitter', shown);
      assertRejected({ redis: false, routes: { '/a': { ttl: '1m', jitter: 'lots' } } }, "routes['/a'].jitter", '"lots"');
    });

    it("takes serializer 'json' (the default), 'v8' or an object with serialize and deserialize, naming the option otherwise", () => {
      assert.equal(resolveOptions({ redis: false }, NO_ENV).serializer, undefined);
      assert.equal(resolveOptions({ redis: false, serializer: 'json' }, NO_ENV).serializer, undefined);
      assert.equal(resolveOptions({ redis: false, serializer: 'v8' }, NO_ENV).serializer?.name, 'v8');
      const custom = resolveOptions({ redis: false, serializer: { serialize: String, deserialize: String } }, NO_ENV).serializer;
      assert.equal(custom?.name, 'custom');
      assertRejected({ redis: false, serializer: 'yaml' }, 'serializer', '"yaml"');
      assertRejected({ redis: false, serializer: { name: 'json', serialize: String, deserialize: String } }, 'serializer.name', '"json"');
    });
  });

  describe('environment variables', () => {
    it('TIERCACHE_ENABLED=maybe throws naming TIERCACHE_ENABLED', () => {
      assertConfigError(() => resolveOptions({}, { TIERCACHE_ENABLED: 'maybe' }), 'TIERCACHE_ENABLED', '"maybe"');
    });

    it('TIERCACHE_TTL=abc throws naming TIERCACHE_TTL', () => {
      assertConfigError(() => resolveOptions({}, { TIERCACHE_TTL: 'abc' }), 'TIERCACHE_TTL', '"abc"');
    });

    it('TIERCACHE_L1_MAX_BYTES=0 throws naming TIERCACHE_L1_MAX_BYTES', () => {
      assertConfigError(() => resolveOptions({}, { TIERCACHE_L1_MAX_BYTES: '0' }), 'TIERCACHE_L1_MAX_BYTES', '0');
    });

    it('TIERCACHE_REDIS_URL=notaurl throws naming TIERCACHE_REDIS_URL', () => {
      assertConfigError(() => resolveOptions({}, { TIERCACHE_REDIS_URL: 'notaurl' }), 'TIERCACHE_REDIS_URL', '"notaurl"');
    });

    it('other invalid variables throw naming the variable', () => {
      assertConfigError(() => resolveOptions({}, { TIERCACHE_NAMESPACE: 'a:b' }), 'TIERCACHE_NAMESPACE', '"a:b"');
      assertConfigError(() => resolveOptions({}, { TIERCACHE_L1_MAX_ENTRIES: '1.5' }), 'TIERCACHE_L1_MAX_ENTRIES', '1.5');
      assertConfigError(() => resolveOptions({}, { TIERCACHE_L1_TTL: 'soon' }), 'TIERCACHE_L1_TTL', '"soon"');
      assertConfigError(() => resolveOptions({}, { TIERCACHE_L1_ENABLED: 'perhaps' }), 'TIERCACHE_L1_ENABLED', '"perhaps"');
      assertConfigError(() => resolveOptions({}, { TIERCACHE_L2_ENABLED: 'perhaps' }), 'TIERCACHE_L2_ENABLED', '"perhaps"');
    });

    it('uses valid variables when the options are absent', () => {
      const env = {
        TIERCACHE_ENABLED: 'false',
        TIERCACHE_REDIS_URL: 'redis://127.0.0.1:6390',
        TIERCACHE_NAMESPACE: 'from-env',
        TIERCACHE_TTL: '5m',
        TIERCACHE_L1_MAX_ENTRIES: '123',
        TIERCACHE_L1_MAX_BYTES: '4567',
        TIERCACHE_L1_TTL: '10s',
      };
      const r = resolveOptions({}, env);
      assert.equal(r.enabled, false);
      assert.equal(r.redis, 'redis://127.0.0.1:6390');
      assert.equal(r.namespace, 'from-env');
      assert.equal(r.ttl, 300_000);
      assert.deepStrictEqual({ ...r.l1 }, { maxEntries: 123, maxBytes: 4567, ttl: 10_000 });
      // Undefined options count as absent too.
      assert.equal(resolveOptions({ ttl: undefined, namespace: undefined }, env).ttl, 300_000);
    });

    it('TIERCACHE_L1_ENABLED=false gives an L2-only cache; TIERCACHE_L2_ENABLED=false ignores the URL', () => {
      const l2Only = resolveOptions({}, { TIERCACHE_L1_ENABLED: 'false', TIERCACHE_REDIS_URL: 'redis://127.0.0.1:6390' });
      assert.equal(l2Only.l1, undefined);
      assert.equal(l2Only.redis, 'redis://127.0.0.1:6390');
      const l1Only = resolveOptions({}, { TIERCACHE_L2_ENABLED: 'false', TIERCACHE_REDIS_URL: 'redis://127.0.0.1:6390' });
      assert.equal(l1Only.redis, undefined);
      assert.notEqual(l1Only.l1, undefined);
      assertConfigError(() => resolveOptions({}, { TIERCACHE_L1_ENABLED: '0' }), 'TIERCACHE_L1_ENABLED', 'false');
    });

    it('ignores valid variables when the options are given', () => {
      const env = {
        TIERCACHE_ENABLED: 'false',
        TIERCACHE_REDIS_URL: 'redis://127.0.0.1:6390',
        TIERCACHE_NAMESPACE: 'from-env',
        TIERCACHE_TTL: '5m',
        TIERCACHE_L1_ENABLED: 'false',
        TIERCACHE_L1_MAX_ENTRIES: '123',
        TIERCACHE_L1_MAX_BYTES: '4567',
        TIERCACHE_L1_TTL: '10s',
      };
      const r = resolveOptions(
        { enabled: true, redis: false, namespace: 'from-code', ttl: 2000, l1: { maxEntries: 9, maxBytes: 99_999, ttl: '1s' } },
        env,
      );
      assert.equal(r.enabled, true);
      assert.equal(r.redis, undefined);
      assert.equal(r.namespace, 'from-code');
      assert.equal(r.ttl, 2000);
      assert.deepStrictEqual({ ...r.l1 }, { maxEntries: 9, maxBytes: 99_999, ttl: 1000 });
      assert.equal(resolveOptions({ redis: 'redis://10.0.0.1:7000' }, env).redis, 'redis://10.0.0.1:7000');
    });

    it('does not even read an invalid variable when the option is given', () => {
      const env = {
        TIERCACHE_ENABLED: 'maybe',
        TIERCACHE_REDIS_URL: 'notaurl',
        TIERCACHE_NAMESPACE: 'bad:ns',
        TIERCACHE_TTL: 'abc',
        TIERCACHE_L1_MAX_ENTRIES: '0',
        TIERCACHE_L1_MAX_BYTES: '0',
        TIERCACHE_L1_TTL: 'soon',
      };
      const r = resolveOptions({ enabled: true, redis: false, namespace: 'ok', ttl: 1, l1: { maxEntries: 1, maxBytes: 1, ttl: 1 } }, env);
      assert.equal(r.namespace, 'ok');
    });

    it('treats an empty variable as unset', () => {
      const r = resolveOptions({}, { TIERCACHE_ENABLED: '', TIERCACHE_TTL: '', TIERCACHE_REDIS_URL: '', TIERCACHE_L1_MAX_BYTES: '' });
      assert.equal(r.enabled, true);
      assert.equal(r.ttl, undefined);
      assert.equal(r.redis, undefined);
    });
  });

  describe('the resolved options', () => {
    it("never mutates the caller's (deep-frozen) options object", () => {
      const logger = { debug() {}, info() {}, warn() {}, error() {} };
      const input = {
        namespace: 'shop',
        redis: false as const,
        l1: { maxEntries: 100, maxBytes: 1_000_000, ttl: '30s' },
        l2: { commandTimeout: '150ms', breakerCooldown: 500 },
        ttl: '1m',
        routes: {
          '/api/session': '30s',
          '/api/movies/meta': { ttl: '10m', staleWhileRevalidate: '1m', staleIfError: '1h' },
          '/api/search': { ttl: '30s', vary: ['Accept-Language'], query: ['q'] },
          '/api/admin': false as const,
        },
        enabled: true,
        freshness: 'table' as const,
        logger,
      } satisfies CacheOptions;
      const snapshot = JSON.stringify(input);
      deepFreeze(input);
      const r = resolveOptions(input, { TIERCACHE_TTL: '5m', TIERCACHE_NAMESPACE: 'env' });
      assert.equal(JSON.stringify(input), snapshot);
      assert.equal(input.logger, logger);
      assert.equal(r.namespace, 'shop');
      assert.equal(r.ttl, 60_000);
      assert.equal(r.commandTimeout, 150);
      assert.equal(r.breakerCooldown, 500);
      assert.equal(r.routes.size, 4);
      // Also through createCache.
      createCache(input).close();
      assert.equal(JSON.stringify(input), snapshot);
    });

    it('is frozen', () => {
      const r = resolveOptions({ l1: { maxEntries: 5 } }, NO_ENV);
      assert.ok(Object.isFrozen(r));
      assert.ok(Object.isFrozen(r.l1));
    });

    it('has the documented defaults', () => {
      const r = resolveOptions(undefined, NO_ENV);
      assert.equal(r.namespace, 'tiercache');
      assert.equal(r.redis, undefined);
      assert.equal(r.enabled, true);
      assert.equal(r.commandTimeout, 200);
      assert.deepStrictEqual({ ...r.l1 }, { maxEntries: 10_000, maxBytes: 64 * 1024 * 1024, ttl: undefined });
    });
  });
});
