// A writeHead wrapper on ServerResponse.prototype, put there before tiercache
// loads (an APM agent started with `-r`), runs in every writeHead: what it
// sets or removes for one request is that request's alone. A hit may not
// hand it the node form every hit of the entry shares (nor the flat array,
// which its setHeader merges). Its own process: the wrapper must come first.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Answer } from './front-door-prototype-writehead.worker.js';

const WORKER = fileURLToPath(new URL('./front-door-prototype-writehead.worker.ts', import.meta.url));

describe('a writeHead wrapper on the prototype, put there before tiercache loads', function () {
  // tsx compiles the worker and the library in the child.
  this.timeout(60_000);
  let answers: Answer[];

  before(async () => {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', WORKER], { timeout: 50_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
    });
    answers = JSON.parse(out) as Answer[];
  });

  for (const how of ['front door', 'middleware', 'koa']) {
    for (const path of ['/api/x', '/api/y']) {
      it(`${how} ${path}: each hit says only what the wrapper said for it, and every stored field`, () => {
        const mine = answers.filter((a) => a.how === `${how} ${path}`);
        assert.equal(mine.length, 6);
        const etag = mine[0]!.etag;
        assert.ok(etag !== undefined, 'the answer has an ETag');
        mine.forEach((a, i) => {
          const label = `answer ${i} (${JSON.stringify(a.asked)}, ${a.cacheStatus})`;
          if (i > 0) assert.equal(a.cacheStatus, 'tiercache; hit; detail=L1', label);
          // As from the app alone: the wrapper's field on the request that asked for it, on no other.
          assert.equal(a.traceId, a.asked['x-trace'], label);
          assert.equal(a.etag, a.asked['x-drop'] === undefined ? etag : undefined, label);
          assert.deepEqual(a.multi, path === '/api/x' ? ['a', 'b'] : [], label);
        });
      });
    }
  }
});
