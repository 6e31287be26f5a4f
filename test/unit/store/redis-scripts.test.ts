// What tiercache makes of its scripts' replies (src/store/redis-scripts.ts).
// The scripts themselves run against real servers in the integration tests;
// here, only the checks that turn a reply of the wrong shape into an error
// instead of a wrong version, which a real server running these scripts never
// sends: the client below answers EVALSHA with whatever a test gives it.
import assert from 'node:assert/strict';
import { TierCacheError } from '../../../src/errors.js';
import { counterValue, epochForServer, LuaScript, MAX_SCRIPT_KEYS } from '../../../src/store/redis-scripts.js';
import type { RedisClient } from '../../../src/store/redis-client.js';

/** A client whose EVALSHA replies `reply` (or fails with `fail`), and whose EVAL replies `evalReply`; counts both. */
function scriptedClient(reply: unknown, fail?: Error, evalReply: unknown = reply) {
  const calls = { evalsha: 0, eval: 0 };
  const client = {
    evalshaBuffer: async () => {
      calls.evalsha++;
      if (fail !== undefined) throw fail;
      return reply;
    },
    evalBuffer: async () => {
      calls.eval++;
      return evalReply;
    },
  } as unknown as RedisClient;
  return { client, calls };
}

describe('store: Lua script replies', () => {
  it('counterValue reads a counter given as a Buffer, a string or a number', () => {
    assert.equal(counterValue(Buffer.from('1796000000000001')), 1796000000000001);
    assert.equal(counterValue('42'), 42);
    assert.equal(counterValue(7), 7);
  });

  it('counterValue refuses what is not a safe integer, naming it', () => {
    for (const bad of ['garbage', '1.5', '', ' 7', '-3', '9007199254740993', null, undefined, 2.5]) {
      assert.throws(() => counterValue(bad), (err: Error) => err.message === `tiercache version counter holds ${String(bad)}, not an integer`, String(bad));
    }
  });

  it('a script the server does not know (NOSCRIPT) is sent once with EVAL; any other error is passed on without a second try', async () => {
    const script = new LuaScript('return 1');
    const missing = scriptedClient([Buffer.from('5')], new Error('NOSCRIPT No matching script. Please use EVAL.'));
    assert.deepStrictEqual(await script.call(missing.client, ['k'], []), [5]);
    assert.deepStrictEqual(missing.calls, { evalsha: 1, eval: 1 });

    const refused = scriptedClient([Buffer.from('5')], new Error('NOPERM this user has no permissions to run the evalsha command'));
    await assert.rejects(script.call(refused.client, ['k'], []), /NOPERM/);
    assert.deepStrictEqual(refused.calls, { evalsha: 1, eval: 0 });
  });

  it('a reply that is not an array, or has another count of values than keys, is an error', async () => {
    const script = new LuaScript('return 2');
    await assert.rejects(script.call(scriptedClient(Buffer.from('5')).client, ['k'], []), { message: 'unexpected reply from a tiercache version script' });
    await assert.rejects(script.run(scriptedClient([Buffer.from('5')]).client, ['k1', 'k2'], 1000, false), { message: 'unexpected reply from a tiercache version script' });
    assert.deepStrictEqual(await script.run(scriptedClient([Buffer.from('5'), Buffer.from('6')]).client, ['k1', 'k2'], 1000, false), [5, 6]);
  });

  it('keys and arguments reach the client as one array, never spread into the call; past MAX_SCRIPT_KEYS keys nothing is sent', async () => {
    // ioredis's auto-pipelining spreads a command's arguments once more: a list long enough to overflow the
    // stack there left its pipeline one reply short, which threw where nothing could catch it.
    const script = new LuaScript('return 3');
    const sent: unknown[][] = [];
    const client = { evalshaBuffer: async (...args: unknown[]) => (sent.push(args), 1) } as unknown as RedisClient;
    const keys = Array.from({ length: MAX_SCRIPT_KEYS }, (_, i) => `k${i}`);
    assert.equal(await script.raw(client, keys, ['a', Buffer.from('b')]), 1);
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.length, 3, 'sha, key count, one array');
    assert.equal(sent[0]![1], MAX_SCRIPT_KEYS);
    assert.deepStrictEqual(sent[0]![2], [...keys, 'a', Buffer.from('b')]);
    await assert.rejects(script.raw(client, [...keys, 'one more'], []), (err: Error) => err instanceof TierCacheError && err.message.includes(`at most ${MAX_SCRIPT_KEYS} keys`));
    assert.equal(sent.length, 1, 'nothing sent');
  });

  it('epochForServer needs the epoch and a known code: a reply without the code is an error', async () => {
    assert.deepStrictEqual(await epochForServer(scriptedClient([Buffer.from('9'), 1]).client, 'e', ['s', 'r'], 0), { epoch: 9, previous: 'other' });
    for (const reply of [[Buffer.from('9')], [Buffer.from('9'), 3], []]) {
      await assert.rejects(epochForServer(scriptedClient(reply).client, 'e', ['s', 'r'], 0), { message: 'unexpected reply from a tiercache version script' }, JSON.stringify(reply));
    }
  });
});
