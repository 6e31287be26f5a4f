// The capture holds a response's real end until the promise its finish hook
// returns settles (CaptureHooks.finish: "the real end waits until the returned
// promise settles"). A promise that rejects settles too: the response must
// still end, or the client waits forever. HttpCache's finish catches a failed
// store itself, but its catch reports the error to the app's logger and
// 'error' listeners, which may throw. Found by mutation testing: the rejection
// handler `() => c.finishEnd()` -> `() => undefined` survived.
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import request from 'supertest';
import { captureResponse, type CaptureHooks } from '../../../src/middleware/capture.js';
import { useCleanup } from '../../support/cache-context.js';

function hooks(finish: CaptureHooks['finish']): CaptureHooks {
  return {
    headers: () => undefined,
    sent: () => undefined,
    unstorable: () => undefined,
    finish,
    abort: () => undefined,
  };
}

describe('middleware: capture, the end that waits for the finish hook', () => {
  const cleanup = useCleanup();

  for (const [what, outcome] of [
    ['resolves', () => Promise.resolve()],
    ['rejects', () => Promise.reject(new Error('the store failed, and so did its report'))],
  ] as const) {
    it(`the response ends with every byte when the finish hook's promise ${what}`, async () => {
      let captured: Buffer | undefined;
      const server = await cleanup.serve((_req, res: ServerResponse) => {
        captureResponse(res, 1024, hooks((body) => {
          captured = body;
          return outcome();
        }));
        res.setHeader('content-type', 'text/plain');
        res.write('first ');
        res.end('second');
      });
      const res = await request(server).get('/').timeout(5_000);
      assert.equal(res.status, 200);
      assert.equal(res.text, 'first second');
      assert.equal(captured?.toString(), 'first second');
    });
  }
});
