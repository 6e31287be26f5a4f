import assert from 'node:assert/strict';
import { jitteredTtl, parseJitter } from '../../../src/keys/jitter.js';
import { assertConfigError } from './support.js';

describe('keys: parseJitter', () => {
  it("reads a percentage from '0%' up to below '100%' as a fraction of the TTL", () => {
    assert.equal(parseJitter('jitter', undefined), undefined);
    assert.equal(parseJitter('jitter', '0%'), 0);
    assert.equal(parseJitter('jitter', ' 0 % '), 0);
    assert.equal(parseJitter('jitter', '10%'), 0.1);
    assert.equal(parseJitter('jitter', '99.5%'), 0.995);
  });

  it("refuses '100%' and more, other forms and other types, naming the option", () => {
    for (const [bad, shown] of [['100%', '"100%"'], ['150%', '"150%"'], ['-1%', '"-1%"'], ['10', '"10"'], ['%', '"%"'], ['.5%', '".5%"'], [10, '10']] as const) {
      assertConfigError(() => parseJitter('routes[0].jitter', bad), 'routes[0].jitter', shown);
    }
    // The message says what would be accepted.
    assert.throws(() => parseJitter('jitter', '100%'), /from '0%' to below '100%', such as '10%'/);
  });
});

describe('keys: jitteredTtl', () => {
  it('keeps the TTL as it is without jitter', () => {
    assert.equal(jitteredTtl(60_000, 0), 60_000);
    assert.equal(jitteredTtl(1, 0), 1);
  });

  it('shortens the TTL by a random part of at most the fraction, never lengthens it', () => {
    const ttl = 10_000;
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) {
      const t = jitteredTtl(ttl, 0.25);
      assert.ok(Number.isInteger(t), `${t} is not whole milliseconds`);
      assert.ok(t <= ttl && t > ttl * 0.75, `jitteredTtl(${ttl}, 0.25) = ${t}`);
      seen.add(t);
    }
    // Spread out, not one shortened value: 500 draws over 2,500 values.
    assert.ok(seen.size > 100, `only ${seen.size} distinct lifetimes`);
    assert.ok(Math.min(...seen) < ttl * 0.8 && Math.max(...seen) > ttl * 0.95, `range ${Math.min(...seen)}..${Math.max(...seen)}`);
  });

  it('leaves at least 1 ms', () => {
    for (let i = 0; i < 200; i++) {
      const t = jitteredTtl(2, 0.99);
      assert.ok(t === 1 || t === 2, `jitteredTtl(2, 0.99) = ${t}`);
    }
  });
});
