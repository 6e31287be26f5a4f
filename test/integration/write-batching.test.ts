// The client tiercache opens from a URL sends the commands of one event-loop
// turn in one write to its socket (write-batching.ts), and a turn's write does
// not wait for the replies to the one before (ioredis's auto-pipelining keeps
// one batch in flight: under load the instance idled while Redis worked).
// Writes are counted at the client's socket, not timed.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { packedWritable } from '../../src/store/command-bytes.js';
import { openRedis } from '../../src/store/redis-client.js';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Counts the writes that reach `client`'s socket (one writev for corked chunks, one write otherwise). */
function countWrites(client: Redis): { readonly count: number } {
  const socket = (client as unknown as { stream: Socket & { _write: Function; _writev: Function } }).stream;
  const counter = { count: 0 };
  const write = socket._write;
  const writev = socket._writev;
  socket._write = function (...args: unknown[]) {
    counter.count++;
    return write.apply(this, args);
  };
  socket._writev = function (...args: unknown[]) {
    counter.count++;
    return writev.apply(this, args);
  };
  return counter;
}

async function ready(client: Redis): Promise<void> {
  if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve));
}

describe('commands of one event-loop turn share one write (clients tiercache opens)', function () {
  let redis: RedisServerHandle;
  let proxy: TcpProxy | undefined;
  let client: Redis | undefined;
  before(async function () {
    this.timeout(20_000);
    redis = await startRedisServer();
  });
  after(() => redis.stop());
  afterEach(async () => {
    client?.disconnect();
    client = undefined;
    await proxy?.close();
    proxy = undefined;
  });

  it('twenty commands sent in one turn go out in one write, and each gets its own reply', async () => {
    client = openRedis(redis.url, 1000).client as Redis;
    await ready(client);
    await client.set('batch:k', 'v');
    const writes = countWrites(client);
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? client!.get('batch:k') : client!.exists('batch:none'))));
    assert.deepEqual(replies, Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? 'v' : 0)));
    assert.equal(writes.count, 1);
  });

  it("a turn's commands are written before the replies to the turn before have come", async () => {
    // Each way takes 60 ms: no reply can come back within 120 ms of its command.
    proxy = await startTcpProxy(redis.port, '127.0.0.1', 60);
    client = openRedis(proxy.url, 2000).client as Redis;
    await ready(client);
    const writes = countWrites(client);
    const first = client.get('batch:a');
    await sleep(10);
    const second = client.get('batch:b');
    await sleep(20);
    // Auto-pipelining held the second command back until the first one's reply.
    assert.equal(writes.count, 2);
    assert.deepEqual(await Promise.all([first, second]), [null, null]);
  });

  it('a connection lost with commands corked: they fail or are answered, and the client works once it is back', async () => {
    client = openRedis(redis.url, 1000).client as Redis;
    await ready(client);
    const doomed = Array.from({ length: 5 }, () => client!.get('batch:k').then(
      () => 'answered',
      () => 'failed',
    ));
    // Lost in the same turn, before the corked write goes out.
    (client as unknown as { stream: Socket }).stream.destroy();
    const outcomes = await Promise.all(doomed);
    assert.ok(outcomes.every((o) => o === 'answered' || o === 'failed'), outcomes.join(' '));
    await ready(client);
    const writes = countWrites(client);
    assert.deepEqual(await Promise.all([client.set('batch:k', 'w'), client.get('batch:k')]), ['OK', 'w']);
    assert.equal(writes.count, 1);
  });
  it('a command carrying Buffers is encoded by packedWritable, and Redis reads every argument as sent', async () => {
    client = openRedis(redis.url, 1000).client as Redis;
    await ready(client);
    const seen: Array<{ toWritable: unknown }> = [];
    const send = client.sendCommand;
    client.sendCommand = function (this: Redis, command, stream) {
      const result = send.call(this, command, stream);
      seen.push(command as unknown as { toWritable: unknown });
      return result;
    } as Redis['sendCommand'];
    const entry = Buffer.from('{"a":"\u00e9"}\u0000\u00ff\r\n$1\r\n', 'latin1');
    const args = ['évé', '', entry, Buffer.alloc(0), '🙂', Buffer.alloc(70_000, 9), 'last'];
    // evalBuffer exists at run time but is missing from ioredis's typings.
    const evalBuffer = (client as unknown as { evalBuffer(script: string, keys: number, ...keysAndArgs: Array<string | Buffer>): Promise<Buffer[]> }).evalBuffer.bind(client);
    const reply = await evalBuffer('return ARGV', 1, 'batch:k', ...args);
    assert.deepEqual(reply, args.map((a) => (typeof a === 'string' ? Buffer.from(a) : a)));
    // If ioredis stops marking such commands (its bufferMode field), the cheaper encoding is silently lost.
    assert.equal(seen.at(-1)?.toWritable, packedWritable);
  });
});
