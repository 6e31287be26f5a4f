// A captured response to a HEAD goes out with the head node would send
// without the capture. The capture declares the length of a body given whole
// to end(), but a HEAD has none: node adds no Content-Length to a HEAD answer
// ended empty, and neither may the capture (a `content-length: 0` says the
// GET's body is empty). Captures of HEADs exist since stale-if-error answers
// them (StaleIfErrorGuard).
import assert from 'node:assert/strict';
import net from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { captureResponse, type CaptureHooks } from '../../../src/middleware/capture.js';
import { useCleanup } from '../../support/cache-context.js';

const HOOKS: CaptureHooks = { headers: () => undefined, sent: () => undefined, unstorable: () => undefined, finish: () => undefined, abort: () => undefined };

/** The raw head of `method /` on `port` (Connection: close), lower-cased field names. */
function rawHead(port: number, method: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(`${method} / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('end', () => resolve(data.split('\r\n\r\n')[0]!.toLowerCase()));
    socket.on('error', reject);
  });
}

describe('middleware: capture of a HEAD', () => {
  const cleanup = useCleanup();

  it('adds no Content-Length to a HEAD answer ended without a body, as node does not; a GET ended empty still says 0', async () => {
    const heads: Record<string, string> = {};
    for (const captured of [false, true]) {
      const server = await cleanup.serve((_req: IncomingMessage, res: ServerResponse) => {
        if (captured) captureResponse(res, 1024, HOOKS);
        res.sendDate = false;
        res.statusCode = 200;
        res.end();
      });
      const port = (server.address() as net.AddressInfo).port;
      for (const method of ['HEAD', 'GET']) heads[`${method} ${captured ? 'captured' : 'plain'}`] = await rawHead(port, method);
    }
    assert.equal(heads['HEAD captured'], heads['HEAD plain']);
    assert.doesNotMatch(heads['HEAD captured']!, /content-length/);
    // The same fields (the capture sets Content-Length itself, so it comes before node's own fields).
    const fields = (head: string) => head.split('\r\n').sort();
    assert.deepEqual(fields(heads['GET captured']!), fields(heads['GET plain']!));
    assert.match(heads['GET captured']!, /content-length: 0/);
  });
});
