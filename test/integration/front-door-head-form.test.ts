// A hit's head goes to node in the form node keeps headers set on a response
// (HeaderSet.nodeFormWith), which node sends without validating each field
// again. That form is an object: these check it sends what the stored fields
// say, in their order, and leaves the response as the flat array did.
import assert from 'node:assert/strict';
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import express from 'express';
import { createCache, type TierCache } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { front } from '../../src/node.js';
import { PreparedResponse } from '../../src/middleware/http-entry.js';
import { writeStoredHead } from '../../src/middleware/replay.js';
import { useCleanup } from '../support/cache-context.js';
import { wireText } from '../support/http-wire.js';

const { track, serve } = useCleanup();

function newCache(): TierCache {
  return track(createCache({ redis: false, routes: { '/api': '5m' } }));
}

/** The field names of one answer to `GET path`, in the order they came over the wire, and its Cache-Status. */
async function fieldNames(server: Server, path: string): Promise<{ names: string[]; cacheStatus: string | undefined }> {
  const { port } = server.address() as AddressInfo;
  const bytes = await new Promise<Buffer>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
  });
  const lines = bytes.subarray(0, bytes.indexOf('\r\n\r\n')).toString('latin1').split('\r\n').slice(1);
  const names = lines.map((l) => l.slice(0, l.indexOf(':')).toLowerCase());
  const status = lines.find((l) => l.toLowerCase().startsWith('cache-status:'));
  return { names, cacheStatus: status?.slice(status.indexOf(':') + 1).trim() };
}

/** The bytes of two answers to `GET /` on one connection, the second asked with Connection: close (latin1). */
async function twoAnswers(server: Server): Promise<string> {
  const { port } = server.address() as AddressInfo;
  const bytes = await new Promise<Buffer>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
  });
  return bytes.toString('latin1');
}

/** An Express app whose answer carries a field named as a number between two others. */
function appWithNumberedField(cache: TierCache) {
  const app = express();
  // Nothing set by name before the handler's writeHead, which then sends its array in its order (setHeader
  // would file the fields in node's own object, where '7' comes first already).
  app.disable('x-powered-by');
  app.use(expressCache(cache));
  app.get('/api/x', (_req, res) => {
    res.writeHead(200, ['x-first', 'a', '7', 'seven', 'x-last', 'b', 'content-type', 'application/json']);
    res.end('{"ok":true}');
  });
  return app;
}

/** The names the stored answer holds, in the order `names` has them. */
const stored = (names: string[]) => names.filter((n) => n === 'x-first' || n === '7' || n === 'x-last' || n === 'content-type');

describe('a hit head in the form node keeps set headers', () => {
  for (const [how, wrap] of [
    ['the front door', (cache: TierCache, app: RequestListener) => front(cache, app)],
    ['the middleware', (_cache: TierCache, app: RequestListener) => app],
  ] as const) {
    it(`${how}: a stored field named as a number keeps its place among the others`, async () => {
      const cache = newCache();
      const server = await serve(wrap(cache, appWithNumberedField(cache) as unknown as RequestListener));
      const miss = await fieldNames(server, '/api/x');
      // The head went out before the body: stored, but too early to say so.
      assert.equal(miss.cacheStatus, 'tiercache; fwd=miss');
      const hit = await fieldNames(server, '/api/x');
      assert.equal(hit.cacheStatus, 'tiercache; hit; detail=L1');
      // An object's keys that are array indexes come first in a for-in, whatever their order.
      assert.deepEqual(stored(hit.names), stored(miss.names));
    });
  }

  // An object literal takes a field so named as its prototype (node's own object has none): the field was lost.
  for (const [how, wrap] of [
    ['the front door', (cache: TierCache, app: RequestListener) => front(cache, app)],
    ['the middleware', (_cache: TierCache, app: RequestListener) => app],
  ] as const) {
    it(`${how}: a stored field named __proto__ is sent on hits, where the app alone sends it`, async () => {
      const cache = newCache();
      const app = express();
      app.use(expressCache(cache));
      app.get('/api/p', (_req, res) => {
        res.setHeader('__proto__', 'kept');
        res.json({ ok: true });
      });
      const server = await serve(wrap(cache, app as unknown as RequestListener));
      assert.ok((await fieldNames(server, '/api/p')).names.includes('__proto__'), 'the fill sends it');
      for (let i = 0; i < 2; i++) {
        const hit = await fieldNames(server, '/api/p');
        assert.equal(hit.cacheStatus, 'tiercache; hit; detail=L1');
        assert.ok(hit.names.includes('__proto__'), `hit ${i}: ${hit.names.join(',')}`);
      }
    });
  }

  it('a stored field named as a number is sent where the stored fields have it (an entry from L2 may hold any order)', async () => {
    // Through Express or Koa node files such a field first already; an entry another writer stored need not.
    const body = Buffer.from('{}');
    const prepared = new PreparedResponse(200, [['x-first', 'a'], ['7', 'seven'], ['x-last', 'b'], ['content-type', 'application/json']], body, true, undefined, false);
    const server = await serve((_req, res) => {
      writeStoredHead(res, 200, prepared.headers, 3, 'tiercache; hit; detail=L2');
      res.end(body);
    });
    for (let i = 0; i < 2; i++) {
      const hit = await fieldNames(server, '/');
      assert.equal(hit.cacheStatus, 'tiercache; hit; detail=L2');
      assert.deepEqual(stored(hit.names), ['x-first', '7', 'x-last', 'content-type']);
    }
  });

  // The form joins the lines of fields node does not look at to the entry before them; what node reads by name as
  // it writes a head (the framing, the connection, Date, Content-Disposition's re-encoding) keeps an entry of its own.
  for (const [what, fields] of [
    ['those node reads between others', [['x-a', '1'], ['date', 'Tue, 01 Dec 2026 10:00:00 GMT'], ['X-Mixed', '2'], ['content-length', '2'], ['x-c', '3'], ['content-disposition', 'attachment; filename="d.txt"'], ['x-d', '4'], ['keep-alive', 'timeout=9'], ['x-e', '5']]],
    ['a Content-Length last', [['x-a', '1'], ['content-type', 'application/json'], ['content-length', '2']]],
    ['none node reads', [['x-a', '1'], ['content-type', 'application/json']]],
  ] as const) {
    it(`sends the bytes node sends for the stored fields as a flat array: ${what}`, async () => {
      const body = Buffer.from('{}');
      const prepared = new PreparedResponse(200, fields.map(([n, v]) => [n, v] as [string, string]), body, true, undefined, false);
      const status = 'tiercache; hit; detail=L1';
      const form = await serve((_req, res) => {
        writeStoredHead(res, 200, prepared.headers, 7, status);
        res.end(body);
      });
      // node's own writeHead of the array (validating each field), as a hit sent it before the form existed.
      const flat = await serve((_req, res) => {
        res.writeHead(200, prepared.headers.rawWith('7', status));
        res.end(body);
      });
      // Two requests on one connection: the first answer left it open (keep-alive as node decides it).
      const [viaForm, viaFlat] = await Promise.all([twoAnswers(form), twoAnswers(flat)]);
      assert.equal(viaForm.replace(/\r\nDate: [^\r]*/g, ''), viaFlat.replace(/\r\nDate: [^\r]*/g, ''));
      assert.equal(viaForm.split('HTTP/1.1 200 OK').length, 3, viaForm);
      assert.ok(!/transfer-encoding/i.test(viaForm), viaForm);
      assert.equal(viaForm.split(/\r\ndate: /i).length, 3, `one Date per answer: ${viaForm}`);
    });
  }

  // node re-encodes a Content-Disposition that follows a Content-Length (its processHeader: the value as latin1
  // bytes in a Buffer) and, on the path that validates (an array given to writeHead), then validates the Buffer's
  // UTF-8 reading, where a byte past 0x7f is U+FFFD: ERR_INVALID_CHAR. The app's own head (set by name) is not
  // validated again and goes out; a hit sent as the array failed on every request.
  for (const [how, wrap] of [
    ['the front door', (cache: TierCache, app: RequestListener) => front(cache, app)],
    ['the middleware', (_cache: TierCache, app: RequestListener) => app],
  ] as const) {
    it(`${how}: a stored Content-Disposition past ASCII after its Content-Length, with a repeated field, is sent on hits as the app sent it`, async () => {
      const cache = newCache();
      const app = express();
      app.use(expressCache(cache));
      app.get('/api/file', (_req, res) => {
        res.setHeader('link', ['<a.css>; rel=preload', '<b.js>; rel=preload']);
        res.setHeader('content-length', '4');
        res.setHeader('content-disposition', 'attachment; filename="caf\xe9.txt"');
        res.end(Buffer.from('file'));
      });
      const server = await serve(wrap(cache, app as unknown as RequestListener));
      const answer = () => wireText(server, '/api/file');
      const disposition = (text: string) => /^content-disposition: ([^\r]*)/im.exec(text)?.[1];
      const fill = await answer();
      assert.match(fill, /^HTTP\/1\.1 200 /, fill);
      for (let i = 0; i < 2; i++) {
        const hit = await answer();
        assert.match(hit, /^HTTP\/1\.1 200 /, `hit ${i}: ${hit}`);
        assert.match(hit, /cache-status: tiercache; hit; detail=L1/, hit);
        assert.equal(disposition(hit), disposition(fill), 'the bytes the app sent');
        assert.equal(hit.match(/^link: /gim)?.length, 2, hit);
      }
    });
  }

  it('a hit whose response a layer of ours hooked (an outer bypass) says its own Cache-Status, and leaves the next hits theirs', async () => {
    const cache = newCache();
    const app = express();
    // The app-wide layer turns Authorization away and hooks the head (capture.ts, stripCacheGroups); the route's own, shared, serves.
    app.use(expressCache(cache));
    app.get('/api/page', expressCache(cache, { shared: true }), (_req, res) => void res.send('page'));
    const server = await serve(app as unknown as RequestListener);
    const { port } = server.address() as AddressInfo;
    const get = async (auth: boolean) => (await fetch(`http://127.0.0.1:${port}/api/page`, { headers: auth ? { authorization: 'Bearer t' } : {} })).headers.get('cache-status');
    assert.equal(await get(true), 'tiercache; fwd=miss; stored');
    for (let i = 0; i < 2; i++) {
      assert.equal(await get(true), 'tiercache; hit; detail=L1');
      // Nothing the hooked head set reached what a later plain hit of the entry sends.
      assert.equal(await get(false), 'tiercache; hit; detail=L1');
    }
  });

  it('leaves no header set on the response once the head is written, and hits of one entry carry their own Age', async () => {
    const cache = newCache();
    const app = express();
    app.use(expressCache(cache));
    app.get('/api/y', (_req, res) => {
      res.json({ ok: true });
    });
    const seen: Array<unknown> = [];
    const door = front(cache, app as unknown as RequestListener);
    const server = await serve((req: IncomingMessage, res: ServerResponse) => {
      res.on('finish', () => seen.push(res.getHeader('etag'), res.getHeader('age')));
      door(req, res);
    });
    await fieldNames(server, '/api/y');
    seen.length = 0;
    const hit = await fieldNames(server, '/api/y');
    assert.equal(hit.cacheStatus, 'tiercache; hit; detail=L1');
    // As with the flat array node was given before: the head's fields are not set on the response.
    assert.deepEqual(seen, [undefined, undefined]);
  });
});
