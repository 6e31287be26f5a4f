// Middleware options that are checked when the middleware is made: an
// ill-typed `query` or `surrogateControl` throws TierCacheConfigError naming
// the option and the value; a device name is matched case-insensitively.
import assert from 'node:assert/strict';
import { TierCacheConfigError } from '../../../src/errors.js';
import { resolveMiddlewareOptions } from '../../../src/middleware/options.js';

describe('middleware options', () => {
  for (const query of ['page', [''], ['page', 3], {}]) {
    it(`query: ${JSON.stringify(query)} throws, naming the option`, () => {
      assert.throws(() => resolveMiddlewareOptions('expressCache', { query: query as never }), (err: unknown) => err instanceof TierCacheConfigError && /expressCache\.query/.test(err.message));
    });
  }

  it('query: an allow-list of names is kept as a set', () => {
    assert.deepEqual([...resolveMiddlewareOptions('koaCache', { query: ['page', 'sort'] }).query!], ['page', 'sort']);
  });

  for (const surrogateControl of ['', 'edge cache', 'a/b', 7]) {
    it(`surrogateControl: ${JSON.stringify(surrogateControl)} throws, naming the option`, () => {
      assert.throws(
        () => resolveMiddlewareOptions('expressCache', { surrogateControl: surrogateControl as never }),
        (err: unknown) => err instanceof TierCacheConfigError && /expressCache\.surrogateControl/.test(err.message),
      );
    });
  }

  for (const [option, value, says] of [
    ['freshness', 'heuristic', "must be 'table' or 'origin'"],
    ['freshness', true, "must be 'table' or 'origin'"],
    ['cdnCacheControl', 'yes', 'must be a boolean'],
    ['cdnCacheControl', 1, 'must be a boolean'],
  ] as const) {
    it(`${option}: ${JSON.stringify(value)} throws, naming the option and what it must be`, () => {
      assert.throws(
        () => resolveMiddlewareOptions('koaCache', { [option]: value } as never),
        (err: unknown) => err instanceof TierCacheConfigError && err.option === `koaCache.${option}` && err.message.includes(says),
      );
    });
  }

  it("freshness and cdnCacheControl: 'table', 'origin' and booleans are taken", () => {
    for (const freshness of ['table', 'origin'] as const) assert.doesNotThrow(() => resolveMiddlewareOptions('koaCache', { freshness }));
    for (const cdnCacheControl of [true, false]) assert.doesNotThrow(() => resolveMiddlewareOptions('koaCache', { cdnCacheControl }));
  });

  it('surrogateControl: a device name is kept lower-cased; true means tiercache; false and none mean no device', () => {
    assert.equal(resolveMiddlewareOptions('f', { surrogateControl: 'Edge-1.eu_west' }).targeted.surrogate, 'edge-1.eu_west');
    assert.equal(resolveMiddlewareOptions('f', { surrogateControl: true }).targeted.surrogate, 'tiercache');
    assert.equal(resolveMiddlewareOptions('f', { surrogateControl: false }).targeted.surrogate, undefined);
    assert.equal(resolveMiddlewareOptions('f', {}).targeted.surrogate, undefined);
  });
});
