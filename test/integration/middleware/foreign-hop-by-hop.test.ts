// A fresh entry in Redis whose stored fields hold a hop-by-hop field, which
// tiercache never stores (storage-rules HOP_BY_HOP): another writer's, or
// damaged. DESIGN §4: foreign data in L2 is a miss, never a crash. Replayed,
// Trailer made node's _storeHeader throw on every hit (ERR_HTTP_TRAILER_INVALID:
// the hit's body has a length, no chunks), out of the front door's request
// listener once the entry was in L1; Transfer-Encoding went out beside the
// Content-Length the hit adds, and node chunked the body. Express 5, one
// redis-server.
import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import express from 'express';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { front } from '../../../src/node.js';
import { EntryKind } from '../../../src/store/entry.js';
import { encodeEntry } from '../../../src/store/entry-codec.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { wireText } from '../../support/http-wire.js';

describe('middleware: a foreign L2 entry holding a hop-by-hop field', function () {
  const ctx = useRedisCaches({ prefix: 'hopbyhop' });

  /** Plants, under the key of GET `path`, a fresh public 200 whose fields include `field`. */
  async function plant(cache: TierCache, path: string, field: [string, string]): Promise<void> {
    const key = cache.keyFor({ method: 'GET', url: path, headers: {} });
    const epoch = Number(await ctx.admin.get(`{${cache.prefix}}:epoch`));
    assert.ok(Number.isFinite(epoch) && epoch > 0, `no epoch in Redis: ${epoch}`);
    const now = Date.now();
    const head = { s: 200, h: [['content-type', 'text/plain'], field], p: 1 };
    const entry = encodeEntry({ kind: EntryKind.Http, createdAt: now, freshUntil: now + 60_000, staleUntil: now + 60_000, epoch, tags: [], versions: [], head: Buffer.from(JSON.stringify(head)), body: Buffer.from('foreign') });
    await ctx.admin.set(key, entry, 'PX', 60_000);
  }

  for (const field of [['trailer', 'x-checksum'], ['transfer-encoding', 'chunked'], ['connection', 'close']] as Array<[string, string]>) {
    it(`is a miss (${field[0]}): the app answers, through the middleware and the front door, and what it answers is served after`, async () => {
      const cache = await ctx.open({ ttl: '1m', l2: { commandTimeout: '3s' } });
      await plant(cache, '/doc', field);
      const app = express();
      app.use(expressCache(cache));
      app.get('/doc', (_req, res) => void res.type('text').send('from the app'));
      const server = await ctx.serve(front(cache, app as unknown as RequestListener));
      for (let i = 0; i < 3; i++) {
        const text = await wireText(server, '/doc');
        assert.match(text, /^HTTP\/1\.1 200 /, `answer ${i}: ${text}`);
        assert.ok(!text.includes('foreign'), `answer ${i} replayed the foreign entry: ${text}`);
        assert.ok(text.endsWith('\r\n\r\nfrom the app'), `answer ${i}: ${text}`);
        assert.ok(!/^transfer-encoding:/im.test(text), `answer ${i}: ${text}`);
      }
    });
  }
});
