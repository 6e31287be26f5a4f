import assert from 'node:assert/strict';
import { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import express from 'express';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { readyRequest, readyResponse } from '../../../src/middleware/slot-ready.js';

// V8's own answer to "does this object still have a hidden class?", in this
// process (so that the code under test is the one loaded here, mutation
// testing's included): the natives syntax can be switched on at run time for
// functions compiled after it.
setFlagsFromString('--allow-natives-syntax');
const hasFastProperties = new Function('o', 'return %HasFastProperties(o)') as (o: object) => boolean;

/** What V8 says about the objects after readyRequest/readyResponse: whether their properties are fast (a hidden class) or a dictionary. */
function propertyModes(): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  const app = express();
  app.use((req, res) => {
    out.expressReqBefore = hasFastProperties(req);
    const spreadSymbols = (o: object) => Object.getOwnPropertySymbols({ ...o }).length;
    const symbolsBefore = spreadSymbols(res);
    readyRequest(req);
    readyResponse(res);
    readyRequest(req); // a second call (a cache mounted twice) changes nothing
    (req as unknown as Record<symbol, number>)[Symbol('ours')] = 1;
    out.expressReq = hasFastProperties(req);
    out.expressRes = hasFastProperties(res);
    out.methodStillThere = typeof res.end === 'function' && res.statusCode === 200 && req.method === 'GET';
    out.ownKeysKept = Object.keys(res).includes('locals');
    out.markHidden = spreadSymbols(res) === symbolsBefore;
  });
  const sock = { remoteAddress: '127.0.0.1', on() {}, once() {}, removeListener() {}, destroy() {} } as unknown as Socket;
  const req = new IncomingMessage(sock);
  req.method = 'GET';
  req.url = '/';
  req.headers = {};
  (app as unknown as (req: IncomingMessage, res: ServerResponse) => void)(req, new ServerResponse(req));
  // A control pair made the same way and left alone: whether V8 keeps node's
  // own objects fast depends on what this process built before (slack
  // tracking, keyed stores past the soft limit), not on us. Seen on a CI
  // machine: a fresh ServerResponse already in dictionary mode.
  const controlReq = new IncomingMessage(sock);
  const controlRes = new ServerResponse(controlReq);
  out.controlReq = hasFastProperties(controlReq);
  out.controlRes = hasFastProperties(controlRes);
  const nodeReq = new IncomingMessage(sock);
  const nodeRes = new ServerResponse(nodeReq);
  const ownKeys = () => [...Reflect.ownKeys(nodeReq), ...Reflect.ownKeys(nodeRes)].length;
  const keysBefore = ownKeys();
  readyRequest(nodeReq);
  readyResponse(nodeRes);
  out.nodeUntouched = ownKeys() === keysBefore;
  out.nodeReq = hasFastProperties(nodeReq);
  out.nodeRes = hasFastProperties(nodeRes);
  return out;
}

describe('middleware: slot-ready (Express objects made cheap to extend)', () => {
  it("turns Express's req and res into dictionary-mode objects, leaves node's own alone, and keeps what they hold", () => {
    const modes = propertyModes();
    assert.equal(modes.expressReqBefore, true, 'the premise: Express hands over fast-mode objects');
    assert.equal(modes.expressReq, false, "Express's req kept a hidden class of its own");
    assert.equal(modes.expressRes, false, "Express's res kept a hidden class of its own");
    assert.equal(modes.nodeReq, modes.controlReq, "node's own request (Koa, the front door) was changed");
    assert.equal(modes.nodeRes, modes.controlRes, "node's own response (Koa, the front door) was changed");
    assert.equal(modes.nodeUntouched, true, "node's own objects got a property");
    assert.equal(modes.methodStillThere, true);
    assert.equal(modes.ownKeysKept, true);
    assert.equal(modes.markHidden, true, 'a spread of res copies the mark');
  });

  it('an Express L1 hit readies res too, though it adds nothing to it (node writes the answer faster on it)', async () => {
    const cache = createCache({ redis: false });
    const seen: boolean[] = [];
    const app = express();
    app.use((_req, res, next) => {
      res.once('finish', () => seen.push(hasFastProperties(res)));
      next();
    });
    app.get('/api/item', expressCache(cache, { ttl: '1m' }), (_req, res) => {
      res.json({ ok: true });
    });
    try {
      await request(app).get('/api/item').expect(200);
      const hit = await request(app).get('/api/item').expect(200);
      assert.match(String(hit.headers['cache-status']), /hit/);
      assert.equal(seen.length, 2);
      assert.equal(seen[1], false, "the hit's res kept a hidden class of its own");
    } finally {
      await cache.close();
    }
  });
});
