// RFC 8941 §4.2.2 Dictionaries, as CDN-Cache-Control and Tiercache-Cache-Control
// use them: the edges of each character class, and the whitespace allowed.
import assert from 'node:assert/strict';
import { parseDictionary } from '../../../../src/middleware/origin/structured-dictionary.js';

const parsed = (text: string) => {
  const map = parseDictionary(text);
  return map === undefined ? undefined : Object.fromEntries(map);
};

describe('middleware: RFC 8941 dictionaries, unit', () => {
  it('a key starts with a lower-case letter or *, from a to z; anything just outside is no Dictionary', () => {
    assert.deepEqual(parsed('a=1'), { a: { type: 'integer', value: 1 } });
    assert.deepEqual(parsed('z=1'), { z: { type: 'integer', value: 1 } });
    assert.equal(parsed('{=1'), undefined, "'{' follows 'z'");
    assert.equal(parsed('`=1'), undefined, "'`' precedes 'a'");
    assert.equal(parsed('A=1'), undefined, 'an upper-case key');
  });

  it('a token starts with a letter of either case, A to Z included; [ and @ (just outside) do not', () => {
    assert.deepEqual(parsed('a=A'), { a: { type: 'token', value: 'A' } });
    assert.deepEqual(parsed('a=Z'), { a: { type: 'token', value: 'Z' } });
    assert.deepEqual(parsed('a=z'), { a: { type: 'token', value: 'z' } });
    assert.equal(parsed('a=['), undefined);
    assert.equal(parsed('a=@'), undefined);
  });

  it('takes spaces and tabs around the commas between members, not inside a member', () => {
    assert.deepEqual(parsed('a=1 ,\tb=2'), { a: { type: 'integer', value: 1 }, b: { type: 'integer', value: 2 } });
    assert.equal(parsed('a=1, '), undefined, 'a trailing comma');
  });

  it('a decimal has one point: a second one is no Dictionary', () => {
    assert.deepEqual(parsed('a=1.5'), { a: { type: 'decimal', value: 1.5 } });
    assert.equal(parsed('a=1.2.3'), undefined);
  });

  it('a string takes printable ASCII (space to ~) and the escapes \\" and \\\\ only; a byte sequence needs its closing colon', () => {
    assert.deepEqual(parsed('a="x y~"'), { a: { type: 'string', value: 'x y~' } });
    assert.deepEqual(parsed('a="q\\"\\\\"'), { a: { type: 'string', value: 'q"\\' } });
    assert.equal(parsed('a="x\\y"'), undefined, 'an escape of another character');
    assert.equal(parsed('a="\u007f"'), undefined, 'DEL, just past ~');
    assert.equal(parsed('a="\u00e9"'), undefined, 'not ASCII');
    assert.equal(parsed('a="open'), undefined, 'no closing quote');
    assert.deepEqual(parsed('a=:aGk=:'), { a: { type: 'binary', value: 'aGk=' } });
    assert.equal(parsed('a=:aGk='), undefined, 'no closing colon');
  });
});
