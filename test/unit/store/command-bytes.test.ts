// packedWritable must give exactly the bytes ioredis's own Command#toWritable
// gives: Redis reads them either way, and any difference is a corrupt command.
import assert from 'node:assert/strict';
import { Command } from 'ioredis';
import { packedWritable, type PackableCommand } from '../../../src/store/command-bytes.js';

/** ioredis types args before its constructor turns numbers into strings. */
const packed = (command: Command) => packedWritable.call(command as unknown as PackableCommand);

const entry = Buffer.from('{"a":1}\u0000\u00ff binary \r\n$3\r\n', 'latin1');
const cases: Array<[string, Array<string | Buffer | number>]> = [
  ['one Buffer among strings (a STORE step)', ['0123abcd', 3, 'tc:lock:{k}', 'tc:e:{k}', 'tc:c:path:/api', 'tok', '1', entry, '60000', '17', '120000']],
  ['multi-byte strings on both sides of the Buffer', ['évé', 'ключ', entry, '日本', '🙂']],
  ['the Buffer first and last, two Buffers side by side', [entry, 'x', Buffer.from([1, 2, 3]), Buffer.from([4]), 'y', entry]],
  ['empty strings and empty Buffers', ['', Buffer.alloc(0), '', Buffer.alloc(0)]],
  ['only a Buffer', [Buffer.from('v')]],
  ['a large Buffer (off the pool)', ['k', Buffer.alloc(70_000, 7), 'ttl']],
];

describe('packedWritable (a Buffer-carrying command encoded as ioredis does)', () => {
  for (const [name, args] of cases) {
    it(name, () => {
      const command = new Command('evalsha', args);
      const own = command.toWritable({});
      assert.ok(Buffer.isBuffer(own), 'ioredis encodes a command with a Buffer argument as a Buffer');
      assert.deepEqual(packed(command), own);
    });
  }

  it('the command name is measured in bytes', () => {
    const command = new Command('set', ['k', Buffer.from('v')]);
    assert.equal(packed(command).toString('latin1'), '*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1\r\nv\r\n');
  });
});
