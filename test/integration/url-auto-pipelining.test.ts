// A client tiercache opens from a URL whose query turns auto-pipelining on
// (?enableAutoPipelining=true: ioredis copies the query into its options, as
// the string 'true'). flat-command.ts sends scripts past ioredis's own
// evalshaBuffer only when auto-pipelining is off; it tested `=== true`, so
// with the string its scripts went straight to the socket while every other
// command waited for the pipeline: a script overtook the commands called
// before it in the same turn. Found by a hostile review (h165).
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { openRedis } from '../../src/store/redis-client.js';
import { readCounters } from '../../src/store/redis-scripts.js';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';

describe("a URL's ?enableAutoPipelining=true (a string to ioredis)", () => {
  let server: RedisServerHandle;
  before(async () => {
    server = await startRedisServer();
  });
  after(async () => {
    await server?.stop();
  });

  it('a script is sent in call order with the commands called before it, as ioredis sends it', async () => {
    const monitor = new Redis(server.url);
    const { client } = openRedis(`${server.url}/0?enableAutoPipelining=true`, 3_000);
    let m: Redis | undefined;
    try {
      assert.equal((client as Redis).options.enableAutoPipelining, 'true');
      await new Promise<void>((resolve) => (client as Redis).once('ready', () => resolve()));
      const seen: string[] = [];
      m = await monitor.monitor();
      m.on('monitor', (_time: string, args: string[]) => {
        if (args[0] === 'set' || args[0] === 'evalsha' || args[0] === 'eval') seen.push(args[0]);
      });
      await Promise.all([client.set('first', '1'), readCounters.raw(client, ['c1'], ['60000', '0'])]);
      await client.ping();
      // MONITOR's own connection reports later than the client's reply: read until both are there.
      for (let i = 0; i < 50 && seen.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(seen[0], 'set', `Redis got ${JSON.stringify(seen)}: the script overtook the SET called before it`);
    } finally {
      m?.disconnect();
      client.disconnect();
      monitor.disconnect();
    }
  });
});
