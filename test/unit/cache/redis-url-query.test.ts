// A Redis URL's query options: ioredis reads each as a client option (a
// string) and lets it win over what tiercache passes to the client it opens.
// Those that set what tiercache sets, or that ioredis calls or reads as a list or an object,
// are refused at construction, naming the option, the parameter and what to
// use instead; the others keep working. A Cluster's startup nodes (URLs or
// objects) are checked for what they would replace on the subscriber
// tiercache opens beside the Cluster.
import assert from 'node:assert/strict';
import { Cluster } from 'ioredis';
import { TierCacheConfigError, createCache } from '../../../src/index.js';
import { resolveOptions } from '../../../src/cache/options.js';

const NO_ENV = Object.freeze({}) as Readonly<Record<string, string | undefined>>;
const BASE = 'redis://127.0.0.1:6379/0';

/** Refused with a TierCacheConfigError for `option` whose message names `parameter` and says what to do (`advice`). */
function assertRefused(fn: () => unknown, option: string, parameter: string, advice: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof TierCacheConfigError, `expected a TierCacheConfigError, got ${String(err)}`);
    assert.equal(err.option, option);
    assert.ok(err.message.includes(`option ${option} `), `message should name ${option}: ${err.message}`);
    assert.ok(err.message.includes(`set ${parameter} `), `message should name the parameter ${parameter}: ${err.message}`);
    assert.match(err.message, advice);
    return true;
  });
}

/** Each parameter tiercache sets on the client it opens, with the advice its message must give. */
const SET_BY_TIERCACHE: ReadonlyArray<readonly [string, RegExp]> = [
  ['commandTimeout', /set l2\.commandTimeout instead/],
  ['connectTimeout', /set l2\.commandTimeout instead/],
  ['maxRetriesPerRequest', /l2\.commandTimeout.*l2\.breakerCooldown/],
  ['enableOfflineQueue', /set l2\.commandTimeout instead/],
  ['autoResendUnfulfilledCommands', /remove it/],
  ['retryStrategy', /remove it/],
  ['lazyConnect', /remove it/],
  ['disconnectTimeout', /remove it/],
  ['enableAutoPipelining', /remove it/],
];
const CALLED_BY_IOREDIS = ['reconnectOnError', 'Connector', 'sentinelRetryStrategy', 'sentinelReconnectStrategy'];

describe("a Redis URL's query options", () => {
  it('each one tiercache sets on the client it opens is refused, naming redis, the parameter and the tiercache option to use', () => {
    for (const [name, advice] of SET_BY_TIERCACHE) {
      for (const value of ['true', '5000', '']) {
        const url = `${BASE}?family=4&${name}=${value}`;
        assertRefused(() => resolveOptions({ redis: url }, NO_ENV), 'redis', name, advice);
        assertRefused(() => createCache({ redis: url }), 'redis', name, advice);
        assertRefused(() => resolveOptions({}, { TIERCACHE_REDIS_URL: url }), 'TIERCACHE_REDIS_URL', name, advice);
      }
    }
  });

  it('one ioredis calls as a function is refused: a URL can only give it a string', () => {
    for (const name of CALLED_BY_IOREDIS) {
      assertRefused(() => resolveOptions({ redis: `${BASE}?${name}=1` }, NO_ENV), 'redis', name, /ioredis calls it/);
    }
  });

  it('one ioredis reads as a list or an object is refused: a URL can only give it a string', () => {
    for (const [name, reads] of [['sentinels', /list of sentinels/], ['scripts', /object of Lua scripts/], ['himportFieldsets', /reads it as a list/]] as const) {
      assertRefused(() => resolveOptions({ redis: `${BASE}?${name}=x` }, NO_ENV), 'redis', name, reads);
      assertRefused(() => createCache({ redis: `${BASE}?${name}=x&name=m` }), 'redis', name, /remove it/);
      assertRefused(() => resolveOptions({}, { TIERCACHE_REDIS_URL: `${BASE}?${name}=` }), 'TIERCACHE_REDIS_URL', name, reads);
    }
  });

  it('monitor is refused: the connection would refuse every command tiercache sends', () => {
    assertRefused(() => resolveOptions({ redis: `${BASE}?monitor=true` }, NO_ENV), 'redis', 'monitor', /MONITOR stream.*remove it/);
  });

  it('tls with a value meaning off is refused: ioredis reads any tls value as a TLS profile and turns TLS on', () => {
    for (const value of ['false', 'FALSE', '0', 'no', 'off', '']) {
      assertRefused(() => resolveOptions({ redis: `${BASE}?tls=${value}` }, NO_ENV), 'redis', `tls=${value}`, /TLS is on whatever the value says.*remove it for plain text/);
      assertRefused(() => resolveOptions({}, { TIERCACHE_REDIS_URL: `${BASE}?family=4&tls=${value}` }), 'TIERCACHE_REDIS_URL', `tls=${value}`, /rediss:\/\//);
    }
  });

  it('names are read as ioredis reads them: decoded, on rediss:// and in any scheme case', () => {
    assertRefused(() => resolveOptions({ redis: `${BASE}?enable%4FfflineQueue=true` }, NO_ENV), 'redis', 'enableOfflineQueue', /l2\.commandTimeout/);
    assertRefused(() => resolveOptions({ redis: 'rediss://h:6380?commandTimeout=9' }, NO_ENV), 'redis', 'commandTimeout', /l2\.commandTimeout/);
    assertRefused(() => resolveOptions({ redis: 'REDIS://h:6379/?lazyConnect=true' }, NO_ENV), 'redis', 'lazyConnect', /remove it/);
  });

  it("the message shows the URL without its password", () => {
    assert.throws(
      () => resolveOptions({ redis: 'redis://app:s3cret@127.0.0.1:6379/0?password=an0ther&commandTimeout=1' }, NO_ENV),
      (err: Error) => !err.message.includes('s3cret') && !err.message.includes('an0ther') && err.message.includes('commandTimeout'),
    );
  });

  it('the message masks a password parameter however its name is written (escaped, + for space, case): as ioredis decodes it', () => {
    for (const query of ['pass%77ord=an0ther', 'PASSWORD=an0ther', 'pass%2Bword=keep&password=an0ther', '%70assword=an0ther&commandTimeout=1']) {
      assert.throws(
        () => resolveOptions({ redis: `redis://127.0.0.1:6379/0?commandTimeout=1&${query}` }, NO_ENV),
        (err: Error) => !err.message.includes('an0ther') && err.message.includes('commandTimeout'),
        query,
      );
    }
  });

  it("others are kept: what tiercache does not set (ioredis reads a name only as written, so 'commandtimeout' sets nothing)", () => {
    for (const query of ['family=6', 'connectionName=api', 'keyPrefix=app:', 'db=3', 'username=u&password=p', 'tls=RedisCloudFixed', 'tls=true', 'stringNumbers=true', 'readOnly=true', 'enableReadyCheck=false', 'autoResubscribe=false', 'keepAlive=1000', 'noDelay=false', 'commandtimeout=5000', 'maxLoadingRetryTime=100']) {
      const url = `${BASE}?${query}`;
      assert.equal(resolveOptions({ redis: url }, NO_ENV).redis, url, query);
      assert.equal(resolveOptions({}, { TIERCACHE_REDIS_URL: url }).redis, url, query);
    }
  });
});

describe("a Cluster's startup nodes", () => {
  const clusters: Cluster[] = [];
  const cluster = (nodes: ConstructorParameters<typeof Cluster>[0]): Cluster => {
    const c = new Cluster(nodes, { lazyConnect: true });
    clusters.push(c);
    return c;
  };
  after(() => {
    for (const c of clusters) c.disconnect();
  });

  it('a node URL that sets what ioredis reads as a list or an object is refused', () => {
    for (const name of ['sentinels', 'scripts', 'himportFieldsets']) {
      assertRefused(() => resolveOptions({ redis: cluster([`redis://127.0.0.1:7000?${name}=x`]) }, NO_ENV), 'redis', name, /leave it out/);
    }
  });

  it('a node URL or node object that sets what tiercache sets on its subscriber is refused, naming the option', () => {
    for (const name of ['stringNumbers', 'disconnectTimeout']) {
      assertRefused(() => resolveOptions({ redis: cluster([`redis://127.0.0.1:7000?${name}=true`]) }, NO_ENV), 'redis', name, /redisOptions instead/);
      assertRefused(() => resolveOptions({ redis: cluster([{ host: '127.0.0.1', port: 7000 }, { host: '127.0.0.1', port: 7001, [name]: true }]) }, NO_ENV), 'redis', name, /redisOptions instead/);
      // The forms ioredis reads a node's query from: with no scheme, protocol-relative, a unix socket path.
      for (const node of [`127.0.0.1:7000?${name}=1`, `//127.0.0.1:7000?${name}=1`, `/tmp/redis.sock?${name}=1`]) {
        assertRefused(() => resolveOptions({ redis: cluster([node]) }, NO_ENV), 'redis', name, /redisOptions instead/);
      }
    }
    assertRefused(() => createCache({ redis: cluster(['redis://127.0.0.1:7000?stringNumbers=true']) }), 'redis', 'stringNumbers', /CLUSTER SLOTS/);
  });

  it('a node URL that sets what ioredis calls is refused; the message shows the node without its password', () => {
    assertRefused(() => resolveOptions({ redis: cluster(['redis://:s3cret@127.0.0.1:7000?reconnectOnError=1']) }, NO_ENV), 'redis', 'reconnectOnError', /ioredis calls it/);
    assert.throws(() => resolveOptions({ redis: cluster(['app:s3cret@127.0.0.1:7000?stringNumbers=1']) }, NO_ENV), (err: Error) => !err.message.includes('s3cret') && err.message.includes('***@'));
  });

  it("other nodes are kept (a node object's function is a function), as are the caller's own settings in redisOptions", () => {
    const nodes = [7000, '7001', '127.0.0.1:7002', 'redis://:pw@127.0.0.1:7003?family=4', { host: '127.0.0.1', port: 7004, connectionName: 'x' }, { host: '127.0.0.1', port: 7005, reconnectOnError: () => false }];
    const c = new Cluster(nodes, { lazyConnect: true, redisOptions: { disconnectTimeout: 50, stringNumbers: true } });
    clusters.push(c);
    assert.equal(resolveOptions({ redis: c }, NO_ENV).redis, c);
  });
});
