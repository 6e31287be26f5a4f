import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * What V8 says about the objects after readyRequest/readyResponse: whether
 * their properties are fast (a hidden class) or a dictionary. Asked in a
 * child node with --allow-natives-syntax, through a real Express app.
 */
async function propertyModes(): Promise<Record<string, boolean>> {
  const script = `
    import express from 'express';
    import { IncomingMessage, ServerResponse } from 'node:http';
    import { readyRequest, readyResponse } from './src/middleware/slot-ready.ts';
    const fast = new Function('o', 'return %HasFastProperties(o)');
    const out = {};
    const app = express();
    app.use((req, res) => {
      out.expressReqBefore = fast(req);
      const spreadSymbols = (o) => Object.getOwnPropertySymbols({ ...o }).length;
      const symbolsBefore = spreadSymbols(res);
      readyRequest(req);
      readyResponse(res);
      readyRequest(req); // a second call (a cache mounted twice) changes nothing
      req[Symbol('ours')] = 1;
      out.expressReq = fast(req);
      out.expressRes = fast(res);
      out.methodStillThere = typeof res.end === 'function' && res.statusCode === 200 && req.method === 'GET';
      out.ownKeysKept = Object.keys(res).includes('locals');
      out.markHidden = spreadSymbols(res) === symbolsBefore;
    });
    const sock = { remoteAddress: '127.0.0.1', on() {}, once() {}, removeListener() {}, destroy() {} };
    const req = new IncomingMessage(sock);
    req.method = 'GET'; req.url = '/'; req.headers = {};
    app(req, new ServerResponse(req));
    const nodeReq = new IncomingMessage(sock);
    const nodeRes = new ServerResponse(nodeReq);
    readyRequest(nodeReq);
    readyResponse(nodeRes);
    out.nodeReq = fast(nodeReq);
    out.nodeRes = fast(nodeRes);
    console.log(JSON.stringify(out));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: root });
  return JSON.parse(stdout) as Record<string, boolean>;
}

describe('middleware: slot-ready (Express objects made cheap to extend)', function () {
  this.timeout(20_000);

  it("turns Express's req and res into dictionary-mode objects, leaves node's own alone, and keeps what they hold", async () => {
    const modes = await propertyModes();
    assert.equal(modes.expressReqBefore, true, 'the premise: Express hands over fast-mode objects');
    assert.equal(modes.expressReq, false, "Express's req kept a hidden class of its own");
    assert.equal(modes.expressRes, false, "Express's res kept a hidden class of its own");
    assert.equal(modes.nodeReq, true, "node's own request (Koa, the front door) was changed");
    assert.equal(modes.nodeRes, true, "node's own response (Koa, the front door) was changed");
    assert.equal(modes.methodStillThere, true);
    assert.equal(modes.ownKeysKept, true);
    assert.equal(modes.markHidden, true, 'a spread of res copies the mark');
  });
});
