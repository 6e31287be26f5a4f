// `compression` in front of the cache decides from res.getHeader('Content-Type')
// whether to compress, and takes only a string (compressible() refuses an
// array). Headers the cache sets by name must therefore keep a single value as
// a string, not a one-element array, in the two places it does so: a handler's
// writeHead() given a raw header list (capture.ts applyHeaderArgument) and a
// hit whose stored answer repeats a field, replayed through compression's
// wrapped writeHead (http-entry.ts HeaderSet.setOn, grouped by name). Found by
// mutation testing: both `values.length === 1 ? values[0] : values` -> `values`
// survived, and the answers went out uncompressed. Express 5, no Redis.
import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import { gunzipSync } from 'node:zlib';
import compression from 'compression';
import express from 'express';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useCleanup } from '../../support/cache-context.js';
import { fetchRaw, GZIP_MAGIC, type RawResponse } from '../../support/http-bytes.js';

const BODY = 'All the movies, every showtime, all week long. '.repeat(100);
const LINKS = ['</a.css>; rel=preload', '</b.js>; rel=preload'];

function assertGzip(res: RawResponse, what: string): void {
  assert.equal(res.status, 200, what);
  assert.equal(res.headers['content-encoding'], 'gzip', `${what}: not compressed (Content-Type ${res.headers['content-type']})`);
  assert.ok(res.bytes.subarray(0, 2).equals(GZIP_MAGIC), `${what}: the body is not gzip bytes`);
  assert.equal(gunzipSync(res.bytes).toString('utf8'), BODY, `${what}: body`);
}

describe('middleware: compression in front of the cache sees single header values as strings', () => {
  const cleanup = useCleanup();

  it('a handler that gives writeHead() a raw header list with a repeated field gets its answer compressed', async () => {
    const cache = cleanup.track(createCache({ redis: false }));
    const app = express();
    app.use(compression({ threshold: 0 }));
    app.use(expressCache(cache, { ttl: '1m' }));
    app.get('/raw', (_req, res) => {
      res.writeHead(200, ['Content-Type', 'text/plain; charset=utf-8', 'Link', LINKS[0]!, 'Link', LINKS[1]!]);
      res.end(BODY);
    });
    const server = await cleanup.serve(app as unknown as RequestListener);
    assertGzip(await fetchRaw(server, '/raw', 'gzip'), 'the filling answer');
  });

  it('a hit whose stored answer repeats a field is compressed like the answer that filled it', async () => {
    const cache = cleanup.track(createCache({ redis: false }));
    let runs = 0;
    const app = express();
    app.use(compression({ threshold: 0 }));
    app.use(expressCache(cache, { ttl: '1m' }));
    app.get('/repeated', (_req, res) => {
      runs++;
      res.set('Link', LINKS);
      res.type('text/plain').send(BODY);
    });
    const server = await cleanup.serve(app as unknown as RequestListener);
    assertGzip(await fetchRaw(server, '/repeated', 'gzip'), 'the miss');
    const hit = await fetchRaw(server, '/repeated', 'gzip');
    assert.equal(hit.headers['cache-status'], 'tiercache; hit; detail=L1');
    assert.equal(runs, 1);
    assertGzip(hit, 'the hit');
  });
});
