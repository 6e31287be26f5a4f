// A head node refuses only when end() builds it: an invalid status code
// (Express 4's res.status(1000) sets it unchecked) over HTTP/1.1, a
// connection-specific field over HTTP/2 (http2.test.ts). Without the cache
// end() throws to the handler and the app's error handler answers; the
// capture caught the throw and destroyed the connection (the client got no
// answer at all). Found by a hostile review (helper-89).
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { express4 } from './apps.js';
import { useCleanup } from '../../support/cache-context.js';

describe('middleware: a head node refuses at end()', () => {
  const cleanup = useCleanup();

  it("an invalid status code: the app's error handler answers, as without the cache, and nothing is stored", async () => {
    const cache = cleanup.track(createCache({ namespace: `head-refused-${process.pid}`, redis: false, ttl: '1m' }));
    const app = express4();
    app.use(expressCache(cache));
    let runs = 0;
    app.get('/x', (_req: unknown, res: { statusCode: number; end(body: string): void }) => {
      runs++;
      res.statusCode = 1000;
      res.end('x');
    });
    app.use((err: { code?: string }, _req: unknown, res: { status(code: number): { send(body: string): void } }, _next: unknown) => {
      res.status(500).send(`handled ${err.code}`);
    });
    for (let i = 0; i < 2; i++) {
      const res = await request(app).get('/x');
      assert.deepEqual([res.status, res.text], [500, 'handled ERR_HTTP_INVALID_STATUS_CODE']);
    }
    assert.equal(runs, 2);
  });
});
