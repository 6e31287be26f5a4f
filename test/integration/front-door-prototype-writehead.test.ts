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

/** What the worker printed, run with `wrap` on the prototype. */
function answersUnder(wrap: string): Promise<Answer[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', WORKER], { timeout: 50_000, env: { ...process.env, WRAP: wrap } }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as Answer[])));
  });
}

// 'named': a writeHead wrapper whose source begins as node's does (function writeHead(...)); '_storeHeader': a wrapper
// of the method node's writeHead builds the head with, which changes the headers it is handed (the node form and the
// flat array are shared by every hit of the entry).
describe('a writeHead or _storeHeader wrapper on the prototype, put there before tiercache loads', function () {
  // tsx compiles the worker and the library in each child; the three run at once.
  this.timeout(60_000);
  const answers = new Map<string, Answer[]>();
  const wraps = ['writeHead', 'named', '_storeHeader'];

  before(async () => {
    const all = await Promise.all(wraps.map(answersUnder));
    wraps.forEach((wrap, i) => answers.set(wrap, all[i]!));
  });

  for (const wrap of wraps) {
    for (const how of ['front door', 'middleware', 'koa']) {
      for (const path of ['/api/x', '/api/y']) {
        it(`${wrap} wrapped, ${how} ${path}: each hit says only what the wrapper said for it, and every stored field`, () => {
          const mine = answers.get(wrap)!.filter((a) => a.how === `${how} ${path}`);
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
  }
});
