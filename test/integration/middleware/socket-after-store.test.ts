// With Redis the real end of a fill waits for its store, and while it waits a
// destroy() of the socket without an error is held until the answer is out
// (capture.ts holdSocket). What that must not change: a keep-alive connection
// stays open for the next request after a fill; and a destroy that was held
// (Express's final handler, for a handler that threw after answering) still
// closes the connection once the answer is out; and a destroy() of the
// socket's own (a layer before the cache) is put back, not left wrapped.
// Found by mutation testing: the held-destroy flag's initial value and its
// assignment both survived, and so did putting back an own destroy().
import assert from 'node:assert/strict';
import { Agent, get, type Server } from 'node:http';
import { Socket, type AddressInfo } from 'node:net';
import express from 'express';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

/** GET `path` through `agent`; the body, the cache status, and when the server's side of that connection closed (a promise). */
function fetchVia(server: Server, agent: Agent, path: string): Promise<{ body: string; cacheStatus: string }> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ body, cacheStatus: String(res.headers['cache-status']) }));
    }).on('error', reject);
  });
}

describe('middleware: the connection after a fill that waited for its store (Redis)', () => {
  const ctx = useRedisCaches({ prefix: 'sockstore', flush: true });

  it('Express: a keep-alive connection carries the fill and then the hit, and a held destroy still closes it once the answer is out', async () => {
    const cache = await ctx.open({ routes: { '/x': '1m', '/late': '1m' } });
    const app = express();
    app.set('env', 'test'); // the final handler logs errors in any other env
    app.use(expressCache(cache));
    app.get('/x', (_req, res) => void res.json({ ok: true }));
    app.get('/late', (_req, res) => {
      res.json({ late: true });
      throw new Error('a bug after the answer');
    });
    const server = await ctx.serve(app);
    const connections: Array<{ closed: boolean }> = [];
    server.on('connection', (socket) => {
      const c = { closed: false };
      connections.push(c);
      socket.on('close', () => (c.closed = true));
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const fill = await fetchVia(server, agent, '/x');
      assert.match(fill.cacheStatus, /stored/);
      const hit = await fetchVia(server, agent, '/x');
      assert.match(hit.cacheStatus, /hit/);
      assert.equal(connections.length, 1, 'the connection was closed after the fill');
      assert.equal(connections[0]!.closed, false);

      const late = await fetchVia(server, agent, '/late');
      assert.equal(late.body, '{"late":true}');
      for (let i = 0; i < 100 && !connections.at(-1)!.closed; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(connections.at(-1)!.closed, true, "the final handler's destroy never happened: the connection stayed open");
    } finally {
      agent.destroy();
    }
  });

  it("Express: a destroy() of its own that a layer before the cache put on the socket is the socket's again after the fill (no wrapper of a finished fill left on a keep-alive connection)", async () => {
    const cache = await ctx.open({ routes: { '/x': '1m', '/y': '1m' } });
    const app = express();
    const own = new Map<Socket, (err?: Error) => Socket>();
    const found: Array<[string, boolean]> = [];
    // As a connection-tracking layer might: its own destroy, an own property of the socket.
    app.use((req, _res, next) => {
      const socket = req.socket;
      const mine = own.get(socket);
      if (mine === undefined) {
        const destroy = function (this: Socket, err?: Error): Socket {
          return Socket.prototype.destroy.call(this, err);
        };
        own.set(socket, destroy);
        socket.destroy = destroy;
      } else found.push([req.url, socket.destroy === mine]);
      next();
    });
    app.use(expressCache(cache));
    app.get(['/x', '/y'], (_req, res) => void res.json({ ok: true }));
    const server = await ctx.serve(app);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.match((await fetchVia(server, agent, '/x')).cacheStatus, /stored/);
      assert.match((await fetchVia(server, agent, '/y')).cacheStatus, /stored/);
      assert.match((await fetchVia(server, agent, '/x')).cacheStatus, /hit/);
      assert.equal(own.size, 1, 'one keep-alive connection');
      assert.deepEqual(found, [['/y', true], ['/x', true]], "the socket's destroy after a fill was not its own");
    } finally {
      agent.destroy();
    }
  });
});
