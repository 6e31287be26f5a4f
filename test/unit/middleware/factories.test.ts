// The three middleware factories refuse anything but a cache made by
// createCache(), with TierCacheConfigError naming the factory's argument, at
// the moment the middleware is made (not on the first request). A cache is
// recognised by its store and invalidateTags, so a look-alike with one of
// them only is refused too.
import assert from 'node:assert/strict';
import { createCache } from '../../../src/index.js';
import { TierCacheConfigError } from '../../../src/errors.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import { front } from '../../../src/node.js';

const handler = () => undefined;
const factories = {
  expressCache: (cache: unknown) => expressCache(cache as never),
  koaCache: (cache: unknown) => koaCache(cache as never),
  front: (cache: unknown) => front(cache as never, handler),
};

const factoriesWithOptions = {
  expressCache: (cache: unknown, options: object) => expressCache(cache as never, options as never),
  koaCache: (cache: unknown, options: object) => koaCache(cache as never, options as never),
  front: (cache: unknown, options: object) => front(cache as never, handler, options as never),
};

describe('middleware factories: the cache argument', () => {
  for (const [name, make] of Object.entries(factories)) {
    it(`${name}() refuses what is not a cache, naming ${name}(cache)`, () => {
      const notCaches: unknown[] = [undefined, null, 'redis://127.0.0.1:6379', 42, {}, { store: {} }, { store: 'x', invalidateTags() {} }, { invalidateTags() {} }, { store: {}, invalidateTags: true }];
      for (const value of notCaches) {
        assert.throws(
          () => make(value),
          (err: unknown) => err instanceof TierCacheConfigError && err.option === `${name}(cache)` && /must be a cache made by createCache\(\)/.test(err.message),
          `took ${JSON.stringify(value)}`,
        );
      }
    });

    it(`${name}() takes a cache made by createCache()`, async () => {
      const cache = createCache({ redis: false });
      try {
        assert.equal(typeof make(cache), 'function');
      } finally {
        await cache.close();
      }
    });
  }
});

describe('middleware factories: front() and its handler', () => {
  it('front(cache, handler) refuses a handler that is not a function with a TypeError saying what it needs', async () => {
    const cache = createCache({ redis: false });
    try {
      for (const value of [undefined, {}, 'app']) {
        assert.throws(
          () => front(cache, value as never),
          (err: unknown) => err instanceof TypeError && err.message === 'tiercache: front(cache, handler) needs a (req, res) handler, such as an Express app or koaApp.callback()',
        );
      }
    } finally {
      await cache.close();
    }
  });
});

describe('middleware factories: their options', () => {
  for (const name of ['expressCache', 'koaCache', 'front'] as const) {
    it(`${name}() names itself in an option it refuses (${name}.nope)`, async () => {
      const cache = createCache({ redis: false });
      try {
        assert.throws(() => factoriesWithOptions[name](cache, { nope: 1 }), (err: unknown) => err instanceof TierCacheConfigError && err.option === `${name}.nope`);
      } finally {
        await cache.close();
      }
    });
  }
});
