// A handler (or an error path) that calls writeHead() after its head went out
// gets node's ERR_HTTP_HEADERS_SENT, and node leaves res.statusCode as it was:
// what a logger reads at 'finish' is the status the client got. The capture's
// writeHead wrapper must hand such a call straight to node, not treat it as
// the first head (which sets res.statusCode before node refuses). Found by
// mutation testing (capture.ts captureWriteHead's `c.headersSeen ||
// this.headersSent` -> false survived). Express 5, no Redis.
import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import express from 'express';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useCleanup } from '../../support/cache-context.js';

describe('middleware: writeHead() after the head went out, on a filling request', () => {
  const cleanup = useCleanup();

  it('throws node\'s ERR_HTTP_HEADERS_SENT and leaves res.statusCode at the status that was sent', async () => {
    const cache = cleanup.track(createCache({ redis: false }));
    const seen: Array<{ code: unknown; status: number; finished: number }> = [];
    const app = express();
    app.use(expressCache(cache, { ttl: '1m' }));
    app.get('/late', (_req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.write('first ');
      let code: unknown;
      try {
        res.writeHead(500, { 'x-late': 'yes' });
      } catch (err) {
        code = (err as { code?: unknown }).code;
      }
      const entry = { code, status: res.statusCode, finished: 0 };
      seen.push(entry);
      res.on('finish', () => (entry.finished = res.statusCode));
      res.end('second');
    });
    const server = await cleanup.serve(app as unknown as RequestListener);
    const res = await request(server).get('/late');
    assert.equal(res.status, 200);
    assert.equal(res.text, 'first second');
    assert.equal(res.headers['x-late'], undefined);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.code, 'ERR_HTTP_HEADERS_SENT');
    assert.equal(seen[0]!.status, 200, 'res.statusCode after the refused writeHead');
    assert.equal(seen[0]!.finished, 200, 'res.statusCode at finish (what a logger reads)');
  });
});
