// A handler that asks for chunked transfer itself (Transfer-Encoding: chunked)
// and ends with its whole body: the cache, which adds Content-Length to whole
// bodies that lack one, must not add it here (RFC 9112 §6.2: a sender MUST NOT
// send Content-Length with Transfer-Encoding). The answer is still stored, and
// replayed with a length. Raw node writes on Express 5 and 4, Koa 3 and 2.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { createCache } from '../../../src/index.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp } from './apps.js';

/** One GET over a raw socket; the head as sent (lower-cased field names) and the rest. */
function rawGet(port: number, path: string): Promise<{ head: string[]; rest: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (data += d));
    socket.on('error', reject);
    socket.on('end', () => {
      const cut = data.indexOf('\r\n\r\n');
      resolve({ head: data.slice(0, cut).split('\r\n').map((l) => l.toLowerCase()), rest: data.slice(cut + 4) });
    });
  });
}

describe('middleware: a handler that asks for chunked transfer', () => {
  const cleanup = useCleanup();

  for (const adapter of adapters) {
    it(`${adapter.name}: gets no Content-Length beside its Transfer-Encoding; the stored answer replays with one`, async () => {
      const cache = cleanup.track(createCache({ redis: false }));
      const app = buildApp(adapter, cache, {
        routes: [{ path: '/t', mw: { ttl: '1m' }, handler: (io) => { io.set('Transfer-Encoding', 'chunked'); io.end('chunked body'); } }],
      });
      const server = await cleanup.serve(app.target);
      const port = (server.address() as AddressInfo).port;
      const first = await rawGet(port, '/t');
      assert.ok(first.head.includes('transfer-encoding: chunked'), first.head.join(' | '));
      assert.ok(!first.head.some((l) => l.startsWith('content-length:')), `Content-Length beside Transfer-Encoding: ${first.head.join(' | ')}`);
      assert.match(first.rest, /chunked body/);
      const hit = await rawGet(port, '/t');
      assert.ok(hit.head.some((l) => l.startsWith('cache-status:') && l.includes('hit')), hit.head.join(' | '));
      assert.ok(hit.head.includes('content-length: 12'), hit.head.join(' | '));
      assert.equal(hit.rest, 'chunked body');
    });
  }
});
