// What L1 charges for a response it took from L2. The instance that filled
// it charged the decoded entry; another instance reads the bytes from Redis
// and, once it has decoded them to answer, must charge what the same decoded
// entry holds, not the estimate it took the bytes at (issue 8: maxBytes
// accounting stays honest). Two instances on one redis-server; every framework.
import assert from 'node:assert/strict';
import request from 'supertest';
import { useRedisCaches } from '../../support/cache-context.js';
import { adapters, buildApp, type HandlerIO } from './apps.js';

const HIT_L2 = 'tiercache; hit; detail=L2';

/**
 * An answer with many short fields: its decoded form holds several times the
 * bytes of its head, which is what a charge taken from the bytes gets wrong.
 */
function answer(io: HandlerIO): void {
  for (let i = 10; i < 50; i++) io.set(`X-Trace-${i}`, `v${i}`);
  io.set('Cache-Control', 'public, max-age=60');
  io.set('Vary', 'Accept-Language');
  io.json({ id: 1, title: io.header('accept-language') === 'de' ? 'Der Film' : 'The movie' });
}

describe('middleware: L1 charge of a response read from L2', function () {
  const redisCaches = useRedisCaches({ prefix: 'l2-charge' });

  for (const adapter of adapters) {
    it(`${adapter.name}: another instance charges the manifest and variant it read from L2 what the filling instance charged for them`, async () => {
      const options = { ttl: '1m', namespace: redisCaches.ns } as const;
      const filling = await redisCaches.open(options);
      const reading = await redisCaches.open(options);
      const a = buildApp(adapter, filling, { routes: [{ path: '/movie', mw: {}, handler: answer }] });
      const b = buildApp(adapter, reading, { routes: [{ path: '/movie', mw: {}, handler: answer }] });

      await request(a.target).get('/movie').set('Accept-Language', 'de');
      const filled = filling.stats().l1;
      assert.equal(filled.entries, 2, 'the manifest and the variant in the filling L1');

      const read = await request(b.target).get('/movie').set('Accept-Language', 'de');
      assert.equal(read.headers['cache-status'], HIT_L2);
      assert.equal(b.runs('/movie'), 0);
      const charged = reading.stats().l1;
      assert.equal(charged.entries, 2, 'the manifest and the variant in the reading L1');
      // The same keys and decoded entries on both sides. The reader holds each entry's whole L2
      // record (its times, tags and versions around the head and body), a little more than the filler.
      const more = charged.bytes - filled.bytes;
      assert.ok(more >= 0 && more <= 2 * 256, `read from L2: ${charged.bytes} bytes charged; filled: ${filled.bytes}`);
    });
  }
});
