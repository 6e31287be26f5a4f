// RFC 9111 §4.2.1 lets a cache use the first of a repeated lifetime directive
// or treat the response as stale. Stale is taken only when the repeats
// disagree: the same max-age twice (a framework and a proxy both set it) is
// one max-age, and the response is reused.
import assert from 'node:assert/strict';
import { freshPath, useOriginAndProxy } from './harness.js';

describe('RFC 9111 repeated lifetime directives (origin mode, proxy example)', function () {
  const { origin, proxy } = useOriginAndProxy();

  async function twice(headers: ReadonlyArray<readonly [string, string]>): Promise<number> {
    const path = freshPath('repeat');
    origin.script(path, { headers });
    await proxy.get(path);
    await proxy.get(path);
    return origin.count(path);
  }

  it('the same max-age or s-maxage twice, in one field line or two, quoted or not, is fresh', async () => {
    assert.equal(await twice([['Cache-Control', 'max-age=3600, max-age=3600']]), 1);
    assert.equal(await twice([['Cache-Control', 'max-age=3600'], ['Cache-Control', 'max-age=3600']]), 1);
    assert.equal(await twice([['Cache-Control', 'max-age="3600", max-age=3600']]), 1);
    assert.equal(await twice([['Cache-Control', 's-maxage=3600, s-maxage=3600, max-age=0']]), 1);
  });

  it('the same directive with another value is still stale', async () => {
    assert.equal(await twice([['Cache-Control', 'max-age=3600, max-age=3601']]), 2);
    assert.equal(await twice([['Cache-Control', 's-maxage=3600, max-age=3600, s-maxage=0']]), 2);
  });
});
