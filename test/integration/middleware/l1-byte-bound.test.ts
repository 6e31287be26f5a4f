// L1's byte bound holds for HTTP entries whatever their shape (DESIGN.md
// section 6: "L1 never holds more than maxBytes of entries"): an entry is
// charged what it really holds, its stored header fields included — not only
// its body. Header-heavy answers with a 2-byte body would otherwise fill L1
// far past its bound while it reports a fraction of it. Express 5 and 4, Koa 3 and 2.
import assert from 'node:assert/strict';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp } from './apps.js';

const PAD = 'p'.repeat(1024);
let counter = 0;

describe('middleware: L1 byte bound with header-heavy answers', function () {
  const cleanup = useCleanup();

  for (const adapter of adapters) {
    it(`${adapter.name}: 4 KB of headers and a 2-byte body per answer: L1 keeps no more than maxBytes, and says what it holds`, async () => {
      const maxBytes = 50_000;
      const cache = cleanup.track(createCache({ namespace: `l1b${process.pid}-${++counter}`, redis: false, ttl: '1m', l1: { maxBytes } }));
      const app = buildApp(adapter, cache, {
        appLevel: true,
        routes: [
          {
            path: '/h',
            handler: (io) => {
              for (let i = 0; i < 4; i++) io.set(`x-pad-${i}`, PAD);
              io.send('ok');
            },
          },
        ],
      });
      for (let i = 0; i < 50; i++) assert.equal((await request(app.target).get(`/h?n=${i}`)).headers['cache-status'], 'tiercache; fwd=miss; stored');
      const { entries, bytes } = cache.stats().l1;
      assert.ok(bytes <= maxBytes, `L1 reports ${bytes} bytes, over its bound`);
      assert.ok(entries * 4 * PAD.length <= maxBytes, `L1 keeps ${entries} entries of 4 KB of headers each under a bound of ${maxBytes} bytes`);
      assert.ok(bytes >= entries * 4 * PAD.length, `L1 reports ${bytes} bytes for ${entries} entries holding 4 KB of headers each`);
    });
  }
});
