// The tags a route's `tags` function names are recorded on its entries as
// given, with what could never be invalidated left out: empty strings and
// values that are no strings (from untyped callers), and a tag named twice, or
// one that is already an implicit tag of the entry, recorded once. Express 5,
// L1 only.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useCleanup } from '../../support/cache-context.js';

describe('middleware: explicit tags', function () {
  const { track } = useCleanup();

  it("records each non-empty string tag once, and leaves out '' and non-strings", async () => {
    const cache = track(createCache({ redis: false }));
    let key: string | undefined;
    const app = express();
    const tags = () => ['movies', 'movies', '', 5, null, 'path:/t', 'movie:7'] as unknown as string[];
    app.get('/t', expressCache(cache, { ttl: '1m', tags }), (req, res) => {
      key = cache.keyFor(req);
      res.send('t');
    });
    assert.equal((await request(app).get('/t')).headers['cache-status'], 'tiercache; fwd=miss; stored');
    const entry = cache.store.l1!.peek(key!)!;
    assert.deepEqual([...entry.tags], [`key:${key}`, 'path:/t', 'at:/t', 'movies', 'movie:7']);
    assert.equal(entry.versions.length, entry.tags.length);
    // Each of them drops the entry.
    await cache.invalidateTags(['movie:7']);
    assert.equal((await request(app).get('/t')).headers['cache-status'], 'tiercache; fwd=miss; stored');
  });
});
