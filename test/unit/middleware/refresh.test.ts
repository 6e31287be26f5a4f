// The parts of a background refresh (src/middleware/refresh.ts) on their own:
// the request it re-sends, the in-process dispatch that carries it into an
// app, and the marker that tells the cache a request is its own refresh.
import assert from 'node:assert/strict';
import { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import {
  connectionFacts,
  DiscardingSocket,
  dispatchFor,
  dispatchInto,
  isRefresh,
  REFRESH_HEADER,
  REFRESH_TOKEN,
  refreshRequest,
  remounted,
  type ConnectionFacts,
  type NodeHandler,
  type RefreshRequest,
} from '../../../src/middleware/refresh.js';
import type { AnswerWriter } from '../../../src/middleware/capture.js';

const PLAIN: ConnectionFacts = {
  remoteAddress: '127.0.0.2',
  remotePort: 50_000,
  remoteFamily: 'IPv4',
  localAddress: '127.0.0.1',
  localPort: 8080,
  encrypted: undefined,
  authorized: undefined,
  servername: undefined,
  alpnProtocol: undefined,
};
const TLS: ConnectionFacts = { ...PLAIN, encrypted: true, authorized: false, servername: 'shop.example', alpnProtocol: 'http/1.1' };

function refreshOf(overrides: Partial<RefreshRequest> = {}): RefreshRequest {
  return { url: '/r?a=1', headers: { host: 'shop.example', accept: 'text/html' }, httpVersion: '1.1', connection: PLAIN, ...overrides };
}

/** A request as node's parser leaves it, on a socket that is only a holder of facts. */
function incoming(headers: IncomingMessage['headers'], httpVersion = '1.1', facts: ConnectionFacts = PLAIN): IncomingMessage {
  const req = new IncomingMessage(new DiscardingSocket(facts) as unknown as Socket);
  req.headers = headers;
  req.httpVersion = httpVersion;
  return req;
}

describe('middleware: background refresh parts', () => {
  describe('refreshRequest', () => {
    it("copies the triggering request's headers, adds the marker, and drops the conditionals and the body framing (the refresh must get a full answer, and has no body)", () => {
      const headers = {
        host: 'shop.example',
        'accept-language': 'fr',
        'if-none-match': '"v1"',
        'if-modified-since': 'Tue, 01 Dec 2026 10:00:00 GMT',
        'content-length': '0',
        'transfer-encoding': 'identity',
      };
      const req = incoming({ ...headers }, '1.0', TLS);
      const refresh = refreshRequest(req, '/r?a=1');
      assert.deepEqual(refresh, {
        url: '/r?a=1',
        headers: { host: 'shop.example', 'accept-language': 'fr', [REFRESH_HEADER]: REFRESH_TOKEN },
        httpVersion: '1.0',
        connection: TLS,
      });
      assert.deepEqual(req.headers, headers, "the triggering request's own headers are left as they were");
    });

    it("re-sends an HTTP/2 request as HTTP/1.1 does: its :authority as Host, and none of its pseudo-header fields", () => {
      const headers = { ':method': 'GET', ':path': '/r?a=1', ':scheme': 'https', ':authority': 'shop.example', accept: 'text/html' };
      const refresh = refreshRequest(incoming({ ...headers }, '2.0', TLS), '/r?a=1');
      assert.deepEqual(refresh.headers, { host: 'shop.example', accept: 'text/html', [REFRESH_HEADER]: REFRESH_TOKEN });
    });

    it('re-sends a request that came without Host (HTTP/1.0) without one: no Host field at all, as node never gives one', () => {
      const refresh = refreshRequest(incoming({ accept: 'text/html' }, '1.0'), '/r');
      assert.deepEqual(refresh.headers, { accept: 'text/html', [REFRESH_HEADER]: REFRESH_TOKEN });
      assert.equal(Object.hasOwn(refresh.headers, 'host'), false);
    });

    it('remounted: goes to the target the app was handed when it is not the full one (a Koa app mounted in Express), with the full one as originalUrl', async () => {
      let seen: unknown;
      const dispatch = dispatchInto((req, res) => {
        seen = [req.url, (req as IncomingMessage & { originalUrl?: string }).originalUrl];
        res.end();
      });
      await remounted(dispatch, '/items?a=1')(refreshRequest(incoming({ host: 'shop.example' }), '/v1/items?a=1'));
      assert.deepEqual(seen, ['/items?a=1', '/v1/items?a=1']);
    });
  });

  describe('connectionFacts and DiscardingSocket', () => {
    it('read the facts of a TLS connection and answer them back, address() included', () => {
      const socket = new DiscardingSocket(TLS);
      assert.deepEqual(connectionFacts(incoming({}, '1.1', TLS)), TLS);
      assert.deepEqual(
        [socket.remoteAddress, socket.remotePort, socket.remoteFamily, socket.localAddress, socket.localPort, socket.encrypted, socket.authorized, socket.servername, socket.alpnProtocol],
        ['127.0.0.2', 50_000, 'IPv4', '127.0.0.1', 8080, true, false, 'shop.example', 'http/1.1'],
      );
      assert.deepEqual(socket.address(), { address: '127.0.0.1', port: 8080, family: 'IPv4' });
    });

    it('a plain connection does not look encrypted', () => {
      assert.ok(!new DiscardingSocket(PLAIN).encrypted);
    });

    it('a request without a socket has no facts', () => {
      const req = incoming({});
      (req as { socket: Socket | null }).socket = null;
      assert.deepEqual(Object.values(connectionFacts(req)), Array.from({ length: 9 }, () => undefined));
    });
  });

  describe('dispatchInto', () => {
    /** Dispatches one refresh into `handler`, with a short give-up time; what the handler saw of the request. */
    async function dispatchOnce(handler: NodeHandler, refresh = refreshOf(), timeoutMs = 1_000): Promise<void> {
      await dispatchInto(handler, timeoutMs)(refresh);
    }

    for (const version of ['1.0', '1.1']) {
      it(`sends a complete GET without a body, as HTTP/${version} when the triggering request was`, async () => {
        let seen: unknown;
        await dispatchOnce((req, res) => {
          seen = {
            method: req.method,
            url: req.url,
            headers: req.headers,
            version: [req.httpVersion, req.httpVersionMajor, req.httpVersionMinor],
            complete: req.complete,
            remoteAddress: req.socket.remoteAddress,
          };
          res.end('x');
        }, refreshOf({ httpVersion: version }));
        assert.deepEqual(seen, {
          method: 'GET',
          url: '/r?a=1',
          headers: { host: 'shop.example', accept: 'text/html' },
          version: [version, 1, Number(version.slice(2))],
          complete: true,
          remoteAddress: '127.0.0.2',
        });
      });
    }

    it('resolves once the handler has answered, a body written in many chunks included (the socket drains)', async () => {
      const chunk = Buffer.alloc(64 * 1024, 'a');
      await dispatchOnce(async (_req, res) => {
        for (let i = 0; i < 16; i++) if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve));
        res.end();
      });
    });

    it('resolves when the handler destroys the response instead of ending it', async () => {
      await dispatchOnce((_req, res) => void setImmediate(() => res.destroy()));
    });

    it('rejects with what the handler throws', async () => {
      await assert.rejects(dispatchOnce(() => {
        throw new Error('handler broke');
      }), /^Error: handler broke$/);
    });

    it('gives up, naming the request, on a handler that never answers', async () => {
      const started = Date.now();
      await assert.rejects(dispatchOnce(() => undefined, refreshOf(), 50), {
        message: 'background refresh of /r?a=1 took over 50 ms',
      });
      assert.ok(Date.now() - started < 1_000);
    });

    it('closes the response of a handler it gave up on, as a client that leaves does (its fill ends; a late answer goes nowhere)', async () => {
      let response: ServerResponse | undefined;
      let closed = false;
      await assert.rejects(
        dispatchOnce((_req, res) => {
          response = res;
          res.once('close', () => (closed = true));
        }, refreshOf(), 50),
        /took over 50 ms/,
      );
      assert.equal(response!.destroyed, true);
      await new Promise<void>((resolve) => setImmediate(resolve));
      assert.equal(closed, true);
      response!.end('too late'); // the app's answer, after all: dropped, no throw
    });
  });

  describe('dispatchInto with its answer relayed to a waiting client (a revalidation retried unconditionally)', () => {
    /** A real response on a real socket pair, as a client's: what reached it, and the AnswerWriter onto it. */
    async function clientResponse() {
      const { createServer, request } = await import('node:http');
      let out!: AnswerWriter;
      let serverRes!: ServerResponse;
      const server = createServer((_req, res) => {
        serverRes = res;
        out = {
          res,
          head: (status, headers) => {
            for (const [name, value] of Object.entries(headers)) if (value !== undefined) res.setHeader(name, value);
            res.writeHead(status);
          },
          write: (chunk, encoding, cb) => res.write(chunk as Buffer, encoding as BufferEncoding, cb as () => void),
          end: (cb) => void res.end(cb),
        };
        arrived();
      });
      let arrived!: () => void;
      const ready = new Promise<void>((resolve) => (arrived = resolve));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as { port: number };
      const client = request({ host: '127.0.0.1', port, path: '/' });
      const body = new Promise<string>((resolve, reject) => {
        client.on('response', (r) => {
          let text = '';
          r.setEncoding('utf8');
          r.on('data', (c: string) => (text += c));
          r.on('end', () => resolve(text));
          r.on('error', reject);
        });
        client.on('error', reject);
      });
      client.end();
      await ready;
      return { out: () => out, serverRes: () => serverRes, client, body, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
    }

    it('sets no give-up time of its own: the client waits for an answer slower than a background refresh may take', async () => {
      const c = await clientResponse();
      try {
        await dispatchInto((_req, res) => void setTimeout(() => res.end('slow answer'), 150), 50)(refreshOf(), c.out());
        assert.equal(await c.body, 'slow answer');
      } finally {
        await c.close();
      }
    });

    it('closes the app\'s response at once when the client left before the answer was handed over', async () => {
      const c = await clientResponse();
      try {
        c.body.catch(() => undefined);
        c.client.destroy();
        await new Promise<void>((resolve) => (c.serverRes().destroyed ? resolve() : c.serverRes().once('close', () => resolve())));
        let closed = false;
        await dispatchInto((_req, res) => {
          res.once('close', () => (closed = true));
          res.write('first part'); // an app streaming an answer nobody will read
        }, 5_000)(refreshOf(), c.out());
        assert.equal(closed, true, "the app's response was left open");
      } finally {
        await c.close();
      }
    });
  });

  describe('dispatchFor', () => {
    it('makes one Dispatch per app, asking for its handler once', () => {
      const app = {};
      let asked = 0;
      const handlerOf = (): NodeHandler => {
        asked++;
        return (_req: IncomingMessage, res: ServerResponse) => void res.end();
      };
      const first = dispatchFor(app, handlerOf);
      assert.equal(dispatchFor(app, handlerOf), first);
      assert.equal(asked, 1);
      assert.notEqual(dispatchFor({}, handlerOf), first, 'another app has its own');
    });
  });

  describe('isRefresh', () => {
    it('is true for the marker with this process\'s token, which it removes from the request (the app never sees it)', () => {
      const req = incoming({ [REFRESH_HEADER]: REFRESH_TOKEN, accept: '*/*' });
      assert.equal(isRefresh(req), true);
      assert.deepEqual(req.headers, { accept: '*/*' });
      assert.equal(isRefresh(req), true, 'every later layer on the way knows it too');
    });

    it('is false for a forged marker (any other value), which it removes as well', () => {
      for (const forged of ['1', REFRESH_TOKEN.slice(1), REFRESH_TOKEN.toUpperCase(), '']) {
        const req = incoming({ [REFRESH_HEADER]: forged });
        assert.equal(isRefresh(req), false, `marker ${JSON.stringify(forged)}`);
        assert.deepEqual(req.headers, {});
        assert.equal(isRefresh(req), false);
      }
    });

    it('is false without the marker', () => {
      assert.equal(isRefresh(incoming({ accept: '*/*' })), false);
    });
  });
});
