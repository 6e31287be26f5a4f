// The front door remembers the key of a URL it answered (node.ts FrontKeys) and, for such a URL, checks
// only what the request's fields say: the target's own checks (odd form, '#', dot segments, access_token)
// read the URL alone, and a remembered URL passed them. These pin both halves on URLs already answered
// from the front door: every field that turns a request away still does, and a target differing from a
// remembered one is checked as a new one.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import express from 'express';
import { createCache, type CacheOptions } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { front } from '../../src/node.js';
import { useCleanup } from '../support/cache-context.js';
import { portOf, valuesOf, wireRequest } from '../support/http-wire.js';

const cleanup = useCleanup();
type RouteTable = NonNullable<CacheOptions['routes']>;

/** Sends `request` as given (head and body) and resolves with the answer's head, once the server closes. */
function sendRaw(server: Server, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = connect(portOf(server), '127.0.0.1', () => socket.write(request));
    const timer = setTimeout(() => socket.destroy(), 5_000);
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text.slice(0, text.indexOf('\r\n\r\n')));
    });
  });
}

async function frontedApp(routes: RouteTable = { '/api': '5m' }) {
  const cache = cleanup.track(createCache({ redis: false, routes }));
  const reached: string[] = [];
  const app = express();
  app.use((req, _res, next) => {
    reached.push(req.url);
    next();
  });
  app.use(expressCache(cache));
  app.use('/api', (req, res) => void res.send(`${req.method} ${req.originalUrl}`));
  const server = createServer(front(cache, app));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => new Promise((resolve) => server.close(resolve)));
  return { server, reached };
}

describe('front door: a URL it answered before', () => {
  it('still sends to the app a request whose fields turn it away: method override, a body, Range, preconditions', async () => {
    const { server, reached } = await frontedApp();
    const target = '/api/movies?page=1';
    await wireRequest(server, target);
    const hit = await wireRequest(server, target);
    assert.deepEqual(valuesOf(hit, 'cache-status'), ['tiercache; hit; detail=L1'], 'the URL was not answered by the front door, so not remembered');
    assert.equal(reached.length, 1);
    const cases: Array<[string, string, string]> = [
      ['X-HTTP-Method-Override: DELETE\r\n', '', 'method-override'],
      ['x-http-method: PUT\r\n', '', 'method-override'],
      ['X-Method-Override: POST\r\n', '', 'method-override'],
      ['Content-Length: 3\r\n', 'abc', 'body'],
      ['Transfer-Encoding: chunked\r\n', '3\r\nabc\r\n0\r\n\r\n', 'body'],
      ['RANGE: bytes=0-1\r\n', '', 'range'],
      ['If-Match: "x"\r\n', '', 'precondition'],
      ['If-Unmodified-Since: Mon, 07 Dec 2020 00:00:00 GMT\r\n', '', 'precondition'],
    ];
    for (const [field, body, detail] of cases) {
      const ran: number = reached.length;
      const head = await sendRaw(server, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${field}Connection: close\r\n\r\n${body}`);
      assert.equal(reached.length, ran + 1, `the front door answered a request with ${JSON.stringify(field)}: ${head.split('\r\n')[0]}`);
      assert.match(head, new RegExp(`\r\ncache-status: tiercache; fwd=bypass; detail=${detail}(\r|$)`, 'i'), JSON.stringify(field));
    }
    assert.deepEqual(valuesOf(await wireRequest(server, target), 'cache-status'), ['tiercache; hit; detail=L1'], 'a plain request is a hit again');
    assert.equal(reached.length, 1 + cases.length);
  });

  it("checks a target that differs from a remembered one as a new one: a raw '#', an access_token", async () => {
    // A route stored for every caller (shared): an answer to an access_token request is in L1 too, and only
    // the target's check keeps the front door from serving it; the key of '/api/feed#x' is '/api/feed's.
    const { server, reached } = await frontedApp({ '/api/feed': { ttl: '5m', shared: true } });
    for (const target of ['/api/feed', '/api/feed?access_token=A']) {
      await wireRequest(server, target);
      assert.deepEqual(valuesOf(await wireRequest(server, target), 'cache-status'), ['tiercache; hit; detail=L1'], target);
    }
    assert.equal(reached.length, 3, 'the access_token request was not left to the middleware (which served it)');
    for (const target of ['/api/feed#x', '/api/feed?access_token=A']) {
      const ran: number = reached.length;
      const answer = await wireRequest(server, target);
      assert.equal(reached.length, ran + 1, `the front door answered ${target} (${valuesOf(answer, 'cache-status').join()})`);
    }
  });
});
