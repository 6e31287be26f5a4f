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

  // What each refusal says: the option's full name and what it must be (the only clue a user gets at start-up).
  for (const [options, option, says] of [
    [{ ttl: 0 }, 'f.ttl', 'to never cache a route, mount no cache middleware on it (or give it a routes rule set to false)'],
    [{ staleWhileRevalidate: 'soon' }, 'f.staleWhileRevalidate', 'must be a non-negative duration'],
    [{ staleIfError: -1 }, 'f.staleIfError', 'must be a non-negative duration'],
    [{ requestDirectives: 7 }, 'f.requestDirectives', 'must be true, false or an object of booleans'],
    [{ key: 'k' }, 'f.key', 'must be a function'],
    [{ tags: ['t'] }, 'f.tags', 'must be a function'],
    [{ maxBodyBytes: 1.5 }, 'f.maxBodyBytes', 'must be a whole number of bytes >= 0'],
    [{ shared: 'y' }, 'f.shared', 'must be a boolean'],
    [{ cacheStatus: 'loud' }, 'f.cacheStatus', "must be true, false or 'verbose'"],
    [{ query: 'page' }, 'f.query', 'must be an array of query parameter names'],
    [{ surrogateControl: 'a b' }, 'f.surrogateControl', 'must be a boolean or a device name (letters, digits, _ . -)'],
    [{ nope: 1 }, 'f.nope', 'is not a known option (known: ttl, tags, user, vary, key, staleWhileRevalidate, staleIfError, maxBodyBytes, methods, negativeTtl, shared, query, cacheStatus, bypass, jitter, freshness, requestDirectives, cdnCacheControl, surrogateControl)'],
    [[], 'f', 'options must be an object'],
  ] as const) {
    it(`${JSON.stringify(options)} is refused as ${option}, saying what it must be`, () => {
      assert.throws(
        () => resolveMiddlewareOptions('f', options as never),
        (err: unknown) => err instanceof TierCacheConfigError && err.option === option && err.message.startsWith(`tiercache: option ${option} `) && err.message.includes(says),
      );
    });
  }

  it('maxBodyBytes: 0 is taken (store no body larger than nothing); cdnCacheControl is on only when true', () => {
    assert.equal(resolveMiddlewareOptions('f', { maxBodyBytes: 0 }).maxBodyBytes, 0);
    assert.equal(resolveMiddlewareOptions('f', { cdnCacheControl: true }).targeted.cdnCacheControl, true);
    assert.equal(resolveMiddlewareOptions('f', { cdnCacheControl: false }).targeted.cdnCacheControl, false);
    assert.equal(resolveMiddlewareOptions('f', {}).targeted.cdnCacheControl, false);
  });

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
