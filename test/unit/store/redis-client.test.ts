// The clients tiercache talks to (src/store/redis-client.ts): which values the
// `redis` option takes as a client, who owns a client and who bounds its
// commands, and how a client tiercache opens for a URL behaves — no offline
// queue, a connection attempt of commandTimeout × 5 (at least 1 s), quick
// reconnects, connected at once and commands of one tick in one write. No
// server is needed: nothing here connects anywhere but a closed loopback port.
import assert from 'node:assert/strict';
import { Cluster, Redis } from 'ioredis';
import { freePort } from '../../support/redis-server.js';
import { getFromMaster, isCluster, isRedisClient, openRedis, readsReplicas, type RedisClient } from '../../../src/store/redis-client.js';

describe('Redis clients: what counts as one, who owns it, how tiercache opens one', () => {
  const made: RedisClient[] = [];
  afterEach(() => {
    for (const client of made.splice(0)) client.disconnect();
  });
  const keep = <T extends RedisClient>(client: T): T => {
    made.push(client);
    client.on('error', () => undefined);
    return client;
  };

  describe('isRedisClient()', () => {
    it('takes anything with a getBuffer method and a string status (a client of another copy of ioredis too)', () => {
      assert.equal(isRedisClient({ getBuffer() {}, status: 'ready' }), true);
      assert.equal(isRedisClient(keep(new Redis({ lazyConnect: true }))), true);
    });

    it('refuses null, primitives and objects missing either part', () => {
      for (const value of [null, undefined, 'redis://127.0.0.1:6379', 6379, () => undefined]) {
        assert.equal(isRedisClient(value), false, `took ${String(value)}`);
      }
      assert.equal(isRedisClient({}), false);
      assert.equal(isRedisClient({ getBuffer() {} }), false, 'took an object without a status');
      assert.equal(isRedisClient({ getBuffer() {}, status: 1 }), false, 'took a status that is not a string');
      assert.equal(isRedisClient({ getBuffer: 'no', status: 'ready' }), false, 'took a getBuffer that is not a function');
      assert.equal(isRedisClient({ status: 'ready' }), false, 'took an object without getBuffer');
    });
  });

  describe("openRedis() with the caller's client", () => {
    it("a Redis client is used as is, never owned; it bounds its commands only when it has a commandTimeout no longer than tiercache's and does not auto-pipeline", () => {
      const bounded = keep(new Redis({ lazyConnect: true, commandTimeout: 50 }));
      assert.deepEqual(openRedis(bounded, 100), { client: bounded, owned: false, boundsCommands: true });
      // Its batches start their commands' timers when written, which may be a whole timeout after the call.
      const pipelined = keep(new Redis({ lazyConnect: true, commandTimeout: 50, enableAutoPipelining: true }));
      assert.deepEqual(openRedis(pipelined, 100), { client: pipelined, owned: false, boundsCommands: false });
      // A URL's query gives the option as a string, which ioredis takes as on.
      const fromUrl = keep(new Redis('redis://127.0.0.1:1?enableAutoPipelining=true', { lazyConnect: true, commandTimeout: 50 }));
      assert.equal(fromUrl.options.enableAutoPipelining as unknown, 'true', 'the premise: a URL gives a string');
      assert.deepEqual(openRedis(fromUrl, 100), { client: fromUrl, owned: false, boundsCommands: false });
      // A longer timeout than tiercache's is no bound on the wait tiercache promises.
      const slower = keep(new Redis({ lazyConnect: true, commandTimeout: 150 }));
      assert.deepEqual(openRedis(slower, 100), { client: slower, owned: false, boundsCommands: false });
      const asLong = keep(new Redis({ lazyConnect: true, commandTimeout: 100 }));
      assert.deepEqual(openRedis(asLong, 100), { client: asLong, owned: false, boundsCommands: true });
      const unbounded = keep(new Redis({ lazyConnect: true }));
      assert.deepEqual(openRedis(unbounded, 100), { client: unbounded, owned: false, boundsCommands: false });
      // isRedisClient() takes a look-alike without ioredis's `options`: it is not trusted to bound commands.
      const lookAlike = { getBuffer() {}, status: 'ready' } as unknown as RedisClient;
      assert.deepEqual(openRedis(lookAlike, 100), { client: lookAlike, owned: false, boundsCommands: false });
    });

    it('a Cluster is never owned and never trusted to bound commands (redirections retry past commandTimeout)', () => {
      const cluster = keep(new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true, redisOptions: { commandTimeout: 50 } }));
      assert.equal(isCluster(cluster), true);
      assert.deepEqual(openRedis(cluster, 100), { client: cluster, owned: false, boundsCommands: false });
    });
  });

  describe('openRedis() with a URL', () => {
    it("opens a client it owns (no auto-pipelining), its commandTimeout bounding the handshake only: tiercache bounds its commands; it starts connecting at once", async () => {
      const port = await freePort();
      const opened = openRedis(`redis://127.0.0.1:${port}`, 100);
      keep(opened.client);
      assert.equal(opened.owned, true);
      assert.equal((opened.client as Redis).options.enableAutoPipelining, false);
      assert.equal(opened.boundsCommands, false);
      assert.notEqual(opened.client.status, 'wait', 'the client waits for a first command to connect');
      assert.equal((opened.client as Redis).options.commandTimeout, 100);
    });

    it('a command while there is no connection fails at once instead of waiting in a queue', async () => {
      const port = await freePort(); // nothing listens there
      const { client } = openRedis(`redis://127.0.0.1:${port}`, 5_000);
      keep(client);
      const started = performance.now();
      await assert.rejects(client.get('k'), /Stream isn't writeable|offline queue/i);
      assert.ok(performance.now() - started < 1_000, 'the command waited for a connection');
    });

    it('gives a connection attempt commandTimeout × 5, and at least 1 s', async () => {
      const port = await freePort();
      const slow = keep(openRedis(`redis://127.0.0.1:${port}`, 400).client) as Redis;
      const fast = keep(openRedis(`redis://127.0.0.1:${port}`, 20).client) as Redis;
      assert.equal(slow.options.connectTimeout, 2_000);
      assert.equal(fast.options.connectTimeout, 1_000);
    });

    it('reconnects after 50 ms per attempt so far, never waiting more than 1 s, and never gives up', async () => {
      const port = await freePort();
      const client = keep(openRedis(`redis://127.0.0.1:${port}`, 100).client) as Redis;
      const delay = client.options.retryStrategy!;
      assert.deepEqual([1, 2, 3, 19, 20, 21, 1_000].map((times) => delay(times)), [50, 100, 150, 950, 1_000, 1_000, 1_000]);
    });

    it('is set to retry a command once (one write per turn: write-batching.test.ts)', async () => {
      const port = await freePort();
      const client = keep(openRedis(`redis://127.0.0.1:${port}`, 100).client) as Redis;
      assert.equal(client.options.maxRetriesPerRequest, 1);
    });

    it('never sends a command again after a cut (data-api-set-resend.test.ts shows what that did)', async () => {
      const port = await freePort();
      const client = keep(openRedis(`redis://127.0.0.1:${port}`, 100).client) as Redis;
      assert.equal(client.options.autoResendUnfulfilledCommands, false);
    });
  });

  // A Cluster client that reads replicas (scaleReads) reads entries with GETEX, which ioredis sends to the master
  // (cluster-replica-reads.test.ts); where Redis refuses GETEX (before 6.2, or an ACL without it) it reads with GET,
  // and stops asking for GETEX. Other failures are the read's own. Fake clients: no Redis 6.0 or ACL needed.
  describe('getFromMaster', () => {
    function fake(getex: () => Promise<Buffer | null>) {
      const calls = { getex: 0, get: 0 };
      const client = {
        getexBuffer: async () => {
          calls.getex++;
          return getex();
        },
        getBuffer: async () => {
          calls.get++;
          return Buffer.from('from GET');
        },
      } as unknown as RedisClient;
      return { client, calls };
    }

    it('reads with GETEX while Redis takes it', async () => {
      const { client, calls } = fake(async () => Buffer.from('from GETEX'));
      assert.equal(String(await getFromMaster(client, 'k')), 'from GETEX');
      assert.equal(String(await getFromMaster(client, 'k')), 'from GETEX');
      assert.deepEqual(calls, { getex: 2, get: 0 });
    });

    for (const refusal of ["ERR unknown command 'getex', with args beginning with: 'k'", "NOPERM User tc has no permissions to run the 'getex' command"]) {
      it(`reads with GET where Redis refuses GETEX (${refusal.split(' ')[0]}), and asks GETEX no more`, async () => {
        const { client, calls } = fake(async () => {
          throw new Error(refusal);
        });
        assert.equal(String(await getFromMaster(client, 'k')), 'from GET');
        assert.equal(String(await getFromMaster(client, 'k')), 'from GET');
        assert.deepEqual(calls, { getex: 1, get: 2 });
      });
    }

    it('passes any other failure on (a read that failed is not answered by a GET that may go to a replica)', async () => {
      for (const failure of [new Error('Connection is closed.'), new Error('READONLY You can\'t write against a read only replica.'), new Error('oops ERR unknown command')]) {
        const { client, calls } = fake(async () => {
          throw failure;
        });
        await assert.rejects(getFromMaster(client, 'k'), failure);
        assert.equal(calls.get, 0);
      }
    });

    it('readsReplicas: only a Cluster made with scaleReads other than master', () => {
      const cluster = (scaleReads: unknown) => ({ isCluster: true, options: scaleReads === undefined ? {} : { scaleReads } }) as unknown as RedisClient;
      assert.equal(readsReplicas(cluster('slave')), true);
      assert.equal(readsReplicas(cluster('all')), true);
      assert.equal(readsReplicas(cluster('master')), false);
      assert.equal(readsReplicas(cluster(undefined)), false);
    });
  });
});
