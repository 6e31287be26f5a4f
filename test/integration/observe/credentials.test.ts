// A wrong Redis password: what the logger and 'error' listeners get carries
// no password (found by helper-70: ioredis's error holds the AUTH command it
// answered, password included, and a logger's error serializer writes it out).
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { createCache, type Logger, type TierCache } from '../../../src/index.js';
import { startRedisServer, type RedisServerHandle } from '../../support/redis-server.js';

describe('Redis credentials in what is reported', function () {
  this.timeout(20_000);
  let redis: RedisServerHandle;
  let cache: TierCache | undefined;
  afterEach(async () => {
    await cache?.close();
    await redis.stop();
  });

  it('a wrong password reaches the logger and error listeners without the password', async () => {
    redis = await startRedisServer({ args: ['--requirepass', 'right-one'] });
    const logged: unknown[] = [];
    const none = () => undefined;
    const logger = { debug: none, info: none, error: none, warn: (obj: object) => void logged.push(obj) } as unknown as Logger;
    const secret = 'wrong-s3cret';
    cache = createCache({ namespace: `cred${process.pid}`, redis: `redis://default:${secret}@127.0.0.1:${redis.port}`, logger, l2: { commandTimeout: 300 } });
    const errors: unknown[] = [];
    cache.on('error', (e) => errors.push(e));
    await cache.ready();
    await cache.get('k');
    assert.ok(logged.length > 0 && errors.length > 0, 'nothing was reported');
    const text = inspect([logged, errors], { depth: 10, showHidden: true });
    assert.ok(!text.includes(secret), `the password was reported: ${text.slice(0, 2000)}`);
  });
});
