// The evalshaBuffer sendScriptsFlat puts on a client tiercache opens must
// send the Command ioredis's own evalshaBuffer sends for the same call (the
// one LuaScript.raw makes: sha, key count, one array of keys and arguments):
// the same arguments, keys prefixed alike, the same bytes on the wire, Buffers
// back; only its argument list skips Array#flat. No Redis: the client's
// sendCommand is replaced by one that records the Command and answers it.
import assert from 'node:assert/strict';
import { Redis, type Command, type RedisOptions } from 'ioredis';
import { FlatArgs, sendScriptsFlat } from '../../../src/store/flat-command.js';

type Evalsha = (...args: unknown[]) => Promise<unknown>;

const entry = Buffer.from('TC\u0001 binary \r\n$3\r\n', 'latin1');
const keysAndArgs: Array<string | Buffer> = ['e:{k}', '{e:{k}}:lock', '{e:{k}}:v', 'tok', '3000', entry, '', 'évé'];

/** A client that records what it is asked to send and answers each Command with `reply`. */
function recording(options: RedisOptions, flat: boolean) {
  const client = new Redis({ lazyConnect: true, ...options });
  const sent: Command[] = [];
  client.sendCommand = ((command: Command) => {
    sent.push(command);
    command.resolve(Buffer.from('reply'));
    return command.promise;
  }) as Redis['sendCommand'];
  if (flat) sendScriptsFlat(client);
  const evalsha = (...args: unknown[]) => (client as unknown as { evalshaBuffer: Evalsha }).evalshaBuffer(...args);
  return { client, sent, evalsha };
}

/** The Command each client sent for `args`, ours and ioredis's. */
async function both(options: RedisOptions, ...args: unknown[]): Promise<[Command, Command]> {
  const ours = recording(options, true);
  const theirs = recording(options, false);
  try {
    // Answered with a Buffer, read as one: a Command asking for strings would turn it into 'reply'.
    assert.deepEqual(await ours.evalsha(...args), Buffer.from('reply'));
    assert.deepEqual(await theirs.evalsha(...args), Buffer.from('reply'));
    assert.equal(ours.sent.length, 1);
    assert.equal(theirs.sent.length, 1);
    return [ours.sent[0]!, theirs.sent[0]!];
  } finally {
    ours.client.disconnect();
    theirs.client.disconnect();
  }
}

describe('sendScriptsFlat (scripts sent without Array#flat, on clients tiercache opens)', () => {
  it('sends the Command ioredis sends for evalshaBuffer(sha, numkeys, keysAndArgs), from a list that skips flat()', async () => {
    const [ours, theirs] = await both({}, '0123abcd', 3, keysAndArgs);
    assert.ok(ours.args instanceof FlatArgs, 'the list is FlatArgs');
    assert.equal(ours.args.flat(), ours.args, 'flat() answers the list itself');
    assert.deepEqual(Object.keys(ours.args), Object.keys([...ours.args]), 'no property but its elements is enumerable');
    assert.equal(ours.name, theirs.name);
    assert.deepEqual([...ours.args], theirs.args);
    assert.deepEqual(ours.toWritable({} as never), theirs.toWritable({} as never));
  });

  it("prefixes the keys (and only them) with the client's keyPrefix, as ioredis does", async () => {
    const [ours, theirs] = await both({ keyPrefix: 'app:' }, '0123abcd', 3, keysAndArgs);
    assert.deepEqual([...ours.args], theirs.args);
    assert.deepEqual([...ours.args].slice(2, 6), ['app:e:{k}', 'app:{e:{k}}:lock', 'app:{e:{k}}:v', 'tok']);
  });

  // A callback after the list (ioredis calls it with the reply): only ioredis's method knows to.
  it('leaves a call with a callback after the list to ioredis, which answers the callback', async () => {
    const [ours, theirs] = [recording({}, true), recording({}, false)];
    try {
      for (const { evalsha, sent } of [ours, theirs]) {
        const replied = await new Promise<unknown>((resolve, reject) => {
          void evalsha('0123abcd', 3, keysAndArgs, (err: Error | null, reply: unknown) => (err ? reject(err) : resolve(reply)));
          setTimeout(() => reject(new Error('the callback was never called')), 500);
        });
        assert.deepEqual(replied, Buffer.from('reply'));
        assert.equal(sent.length, 1);
      }
      assert.deepEqual(ours.sent[0]!.args, theirs.sent[0]!.args);
    } finally {
      ours.client.disconnect();
      theirs.client.disconnect();
    }
  });

  // ioredis turns auto-pipelining on for any truthy value; a URL's query (redis://h?enableAutoPipelining=true) gives a string.
  // Its queue holds commands back to the next tick: a script sent past it would overtake commands called before it.
  for (const value of [true, 'true', 1]) {
    it(`leaves a client with enableAutoPipelining ${JSON.stringify(value)} to ioredis's own method (its queue keeps the order of calls)`, async () => {
      const client = new Redis({ lazyConnect: true, enableAutoPipelining: value as boolean });
      let ioredisCalls = 0;
      (client as unknown as { evalshaBuffer: Evalsha }).evalshaBuffer = () => (ioredisCalls++, Promise.resolve(Buffer.from('reply')));
      sendScriptsFlat(client);
      try {
        await (client as unknown as { evalshaBuffer: Evalsha }).evalshaBuffer('0123abcd', 3, keysAndArgs);
        assert.equal(ioredisCalls, 1, "the script skipped ioredis's method on an auto-pipelining client");
      } finally {
        client.disconnect();
      }
    });
  }

  it('leaves any other form of the call to ioredis', async () => {
    // Keys and arguments spread; one key given alone, three arguments as for LuaScript.raw but no list.
    for (const args of [[1, 'k', 'a'], [1, 'k']]) {
      const [ours, theirs] = await both({}, '0123abcd', ...args);
      assert.ok(!(ours.args instanceof FlatArgs));
      assert.deepEqual(ours.args, theirs.args);
    }
  });
});
