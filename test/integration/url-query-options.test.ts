// A Redis URL's query against a real redis-server. ioredis lets the query's
// options win over those tiercache passes to the client it opens: such a URL
// is refused (unit/cache/redis-url-query), and here is what it did when it was
// not. The options tiercache does not set keep working end to end, and the
// scheme's case does not turn TLS off.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { TierCacheConfigError, createCache } from '../../src/index.js';
import { openRedis } from '../../src/store/redis-client.js';
import { eventually } from '../support/eventually.js';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';
import { startTcpProxy } from '../support/tcp-proxy.js';

describe("a Redis URL's query options, on a real Redis", () => {
  let server: RedisServerHandle;
  let direct: Redis;
  before(async () => {
    server = await startRedisServer();
    direct = new Redis(server.url);
  });
  after(async () => {
    direct?.disconnect();
    await server?.stop();
  });

  it('a URL with options tiercache does not set works end to end: values, tags across two instances, the name and the prefix it gives', async () => {
    const url = `${server.url}/2?connectionName=h167-app&keyPrefix=app:&family=4`;
    const a = createCache({ redis: url, namespace: 'urlq', l2: { commandTimeout: '3s' } });
    const b = createCache({ redis: url, namespace: 'urlq', l2: { commandTimeout: '3s' } });
    try {
      await Promise.all([a.ready(), b.ready()]);
      await a.set('movie:7', { title: 'Alien' }, { ttl: '1m', tags: ['movie:7'] });
      assert.deepEqual(await b.get('movie:7'), { title: 'Alien' });
      await a.invalidateTags(['movie:7']);
      await eventually(async () => (await b.get('movie:7')) === undefined, "b still serves the entry a's tag invalidated");
      assert.equal(await b.getOrSet('n', async () => 1, { ttl: '1m' }), 1);
      assert.equal(await a.getOrSet('n', async () => 2, { ttl: '1m' }), 1);
      assert.match(await direct.call('CLIENT', 'LIST') as string, /name=h167-app .*db=2/);
      await direct.select(2);
      const keys = await direct.keys('*');
      assert.ok(keys.length > 0 && keys.every((k) => /^app:\{?urlq/.test(k)), `keys without the URL's keyPrefix: ${JSON.stringify(keys)}`);
    } finally {
      await direct.select(0);
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("?retryStrategy=x cannot leave L2 down once Redis is back: refused (ioredis, given a string, never reconnected)", async () => {
    const proxy = await startTcpProxy(server.port);
    proxy.cut('refuse');
    let cache: ReturnType<typeof createCache> | undefined;
    try {
      try {
        cache = createCache({ redis: `${proxy.url}/0?retryStrategy=x`, namespace: 'urlq-retry', l1: false, l2: { commandTimeout: '3s' } });
      } catch (err) {
        assert.ok(err instanceof TierCacheConfigError && err.option === 'redis' && err.message.includes('retryStrategy'), String(err));
        return;
      }
      cache.on('error', () => undefined);
      await cache.get('k');
      proxy.heal();
      await eventually(() => cache!.health().l2 === 'ok', "L2 stays down with ?retryStrategy=x in the URL though Redis is back: the client never reconnects", 3000);
    } finally {
      await cache?.close();
      await proxy.close();
    }
  });

  it('?connectTimeout=N cannot end the process: refused (ioredis gave the string to socket.setTimeout, which threw out of its connect)', async () => {
    let cache: ReturnType<typeof createCache> | undefined;
    try {
      try {
        cache = createCache({ redis: `${server.url}/0?connectTimeout=60000`, namespace: 'urlq-connect', l2: { commandTimeout: '3s' } });
      } catch (err) {
        assert.ok(err instanceof TierCacheConfigError && err.option === 'redis' && /connectTimeout.*l2\.commandTimeout/.test(err.message), String(err));
        return;
      }
      cache.on('error', () => undefined);
      await cache.ready();
      await cache.set('k', 1, { ttl: '1m' });
      assert.equal(await cache.get('k'), 1);
    } finally {
      await cache?.close();
    }
  });

  it('?sentinels=x&name=m cannot leave L2 down for good with Redis up: refused (ioredis asked each character for a master)', async () => {
    let cache: ReturnType<typeof createCache> | undefined;
    try {
      try {
        cache = createCache({ redis: `${server.url}/0?sentinels=x&name=m`, namespace: 'urlq-sentinels', l2: { commandTimeout: '3s' } });
      } catch (err) {
        assert.ok(err instanceof TierCacheConfigError && err.option === 'redis' && /sentinels.*list of sentinels/.test(err.message), String(err));
        return;
      }
      cache.on('error', () => undefined);
      await eventually(() => cache!.health().l2 === 'ok', `L2 stays ${cache.health().l2} with ?sentinels=x in the URL though Redis answers at its host`, 3000);
    } finally {
      await cache?.close();
    }
  });

  it("'REDISS://' (the scheme in capitals) still speaks TLS: ioredis turned TLS on only for 'rediss://' as written", async () => {
    const firstBytes: Buffer[] = [];
    const sockets = new Set<Socket>();
    const listener = createServer((socket) => {
      sockets.add(socket);
      socket.once('data', (chunk) => firstBytes.push(chunk));
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const { port } = listener.address() as AddressInfo;
    const { client } = openRedis(`REDISS://app:s3cret@127.0.0.1:${port}`, 3_000);
    client.on('error', () => undefined);
    try {
      await eventually(() => firstBytes.length > 0, 'the client sent nothing');
      // 0x16: a TLS handshake record. In plain text the first bytes were `*3 HELLO 3 AUTH app s3cret`.
      assert.equal(firstBytes[0]![0], 0x16, `the client spoke plain text: ${JSON.stringify(firstBytes[0]!.subarray(0, 40).toString('latin1'))}`);
    } finally {
      client.disconnect();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => listener.close(resolve));
    }
  });
});
