// The 304 the cache makes on the filling request (the handler answered 200,
// the client's If-None-Match matched) carries the fields RFC 9110 §15.4.5
// lets a 304 carry (ETag, Cache-Control, Vary, Date, ...) and none of the
// 200's representation fields: no Content-Type, no Content-Length of a body
// that is not sent, none of the handler's own. Express 5 and 4, Koa 3 and 2.
import assert from 'node:assert/strict';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp, type RouteSpec } from './apps.js';

describe('middleware: the 304 of a filling request', () => {
  const cleanup = useCleanup();

  for (const adapter of adapters) {
    it(`${adapter.name}: keeps ETag, Cache-Control and Vary, drops Content-Type, Content-Length and the handler's own fields`, async () => {
      const cache = cleanup.track(createCache({ redis: false }));
      const app = buildApp(adapter, cache, {
        routes: [
          {
            path: '/doc',
            mw: {},
            handler: (io) => {
              io.set('Cache-Control', 'public, max-age=60');
              io.set('Vary', 'Accept-Language');
              io.set('ETag', '"d1"');
              io.set('Content-Type', 'text/plain; charset=utf-8');
              io.set('X-Doc-Id', '42');
              io.send('the document');
            },
          },
        ],
      });
      const res = await request(app.target).get('/doc').set('If-None-Match', '"d1"');
      assert.equal(res.status, 304);
      assert.equal(res.headers.etag, '"d1"');
      assert.equal(res.headers['cache-control'], 'public, max-age=60');
      assert.equal(res.headers.vary, 'Accept-Language');
      for (const name of ['content-type', 'content-length', 'x-doc-id']) assert.equal(res.headers[name], undefined, `${name} on the 304`);
      const full = await request(app.target).get('/doc');
      assert.equal(full.status, 200);
      assert.equal(full.text, 'the document');
      assert.equal(full.headers['x-doc-id'], '42', 'the stored answer keeps its fields');
    });
  }
});

describe('middleware: the 304 of a filling request whose handler streams', () => {
  const cleanup = useCleanup();
  let counter = 0;

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      const build = (route: Omit<RouteSpec, 'path' | 'mw'>) => {
        const cache = cleanup.track(createCache({ namespace: `fill-304-streamed-${process.pid}-${++counter}`, redis: false }));
        // A type supertest reads as text (Koa's own for a stream is application/octet-stream).
        const handler: RouteSpec['handler'] = (io) => (io.set('Content-Type', 'text/plain'), route.handler(io));
        return buildApp(adapter, cache, { routes: [{ path: '/s', mw: { ttl: '1m' }, handler }] });
      };

      it('an ETag the handler set before streaming: a matching If-None-Match gets 304, and the answer is stored whole', async () => {
        const app = build({ handler: (io) => (io.set('ETag', '"s1"'), io.stream(['part one, ', 'part two'])) });
        const res = await request(app.target).get('/s').set('If-None-Match', '"s1"');
        assert.equal(res.status, 304);
        assert.equal(res.text, '');
        assert.equal(res.headers.etag, '"s1"');
        for (const name of ['content-type', 'content-length', 'transfer-encoding']) assert.equal(res.headers[name], undefined, `${name} on the 304`);
        const hit = await request(app.target).get('/s');
        assert.deepEqual([hit.status, hit.text, hit.headers['cache-status']], [200, 'part one, part two', 'tiercache; hit; detail=L1']);
        assert.match(String(hit.headers['content-type']), /^text\/plain/);
        assert.equal(app.runs('/s'), 1);
      });

      it('a Last-Modified the handler set before streaming: If-Modified-Since at or after it gets 304, before it the whole stream', async () => {
        const app = build({ handler: (io) => (io.set('Last-Modified', 'Tue, 01 Dec 2026 10:00:00 GMT'), io.set('Cache-Control', 'no-store'), io.stream(['dated ', 'stream'])) });
        const same = await request(app.target).get('/s').set('If-Modified-Since', 'Tue, 01 Dec 2026 10:00:00 GMT');
        assert.deepEqual([same.status, same.text, same.headers['cache-status']], [304, '', 'tiercache; fwd=miss; detail=no-store']);
        const older = await request(app.target).get('/s').set('If-Modified-Since', 'Mon, 30 Nov 2026 10:00:00 GMT');
        assert.deepEqual([older.status, older.text], [200, 'dated stream']);
      });

      it('a condition that does not match gets the stream whole, as it is written', async () => {
        const app = build({ handler: (io) => (io.set('ETag', '"s2"'), io.stream(['part one, ', 'part two'])) });
        const res = await request(app.target).get('/s').set('If-None-Match', '"s1"');
        assert.deepEqual([res.status, res.text, res.headers.etag], [200, 'part one, part two', '"s2"']);
      });

      it('a piped file that the 304 answers is still read to its end and closed (helper-69: a 304 sent at once left it open)', async () => {
        const dir = mkdtempSync(join(tmpdir(), 'tiercache-304-'));
        const path = join(dir, 'file.txt');
        writeFileSync(path, 'z'.repeat(200_000));
        let closed: Promise<void> | undefined;
        const app = build({
          handler: (io) => {
            io.set('ETag', '"f1"');
            const file = createReadStream(path, { highWaterMark: 16 * 1024 });
            closed = new Promise<void>((resolve) => file.on('close', () => resolve()));
            io.stream(file);
          },
        });
        try {
          const res = await request(app.target).get('/s').set('If-None-Match', '"f1"');
          assert.equal(res.status, 304);
          await closed;
          const hit = await request(app.target).get('/s');
          assert.deepEqual([hit.text.length, hit.headers['cache-status']], [200_000, 'tiercache; hit; detail=L1']);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });

      it('a streamed answer past maxBodyBytes, or shorter than its Content-Length: 304 all the same, and nothing stored', async () => {
        const cache = cleanup.track(createCache({ namespace: `fill-304-streamed-${process.pid}-${++counter}`, redis: false }));
        const app = buildApp(adapter, cache, {
          routes: [
            { path: '/big', mw: { ttl: '1m', maxBodyBytes: 8 }, handler: (io) => (io.set('Content-Type', 'text/plain'), io.set('ETag', '"b1"'), io.stream(['0123456', '789'])) },
            { path: '/short', mw: { ttl: '1m' }, handler: (io) => (io.set('Content-Type', 'text/plain'), io.set('ETag', '"t1"'), io.set('Content-Length', '100'), io.stream(['only ', 'this'])) },
          ],
        });
        for (const [path, etag] of [['/big', '"b1"'], ['/short', '"t1"']] as const) {
          for (let i = 0; i < 2; i++) {
            const res = await request(app.target).get(path).set('If-None-Match', etag);
            assert.deepEqual([res.status, res.text, res.headers['content-length']], [304, '', undefined], path);
          }
          assert.equal(app.runs(path), 2, `${path} was stored`);
        }
      });

      it('a streamed answer with no validator of its own goes whole on its fill: the ETag the cache adds needs the whole body, known after the head left', async () => {
        const app = build({ handler: (io) => io.stream(['no ', 'validator']) });
        const res = await request(app.target).get('/s').set('If-None-Match', '*');
        assert.deepEqual([res.status, res.text, res.headers.etag], [200, 'no validator', undefined]);
      });
    });
  }
});
