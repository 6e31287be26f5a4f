// A body of exactly maxBodyBytes is stored, written in pieces as well as
// whole: the last write() fills the room to the byte. A mutation run (s25,
// survivors of 925cda3: capture.ts pastRoom's `> room`) showed no test
// noticed when such a body was given up as too large. Buffers and strings
// (a string's bytes are counted without making them where the count is sure).
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useCleanup } from '../../support/cache-context.js';

let counter = 0;

describe('middleware: a body of exactly maxBodyBytes, written in pieces', () => {
  const cleanup = useCleanup();

  for (const [kind, piece] of [
    ['Buffers', (s: string) => Buffer.from(s)],
    ['utf8 strings', (s: string) => s],
  ] as const) {
    it(`${kind}: stored, the next request a hit`, async () => {
      const cache = cleanup.track(createCache({ namespace: `exact-max-${process.pid}-${++counter}`, redis: false }));
      let runs = 0;
      const app = express();
      app.get('/doc', expressCache(cache, { ttl: '1m', maxBodyBytes: 8 }), (_req, res) => {
        runs++;
        res.type('text/plain');
        res.write(piece('abcd'));
        res.write(piece('efgh'));
        res.end();
      });
      const first = await request(app).get('/doc');
      const second = await request(app).get('/doc');
      assert.deepEqual([first.status, first.text, second.status, second.text, runs], [200, 'abcdefgh', 200, 'abcdefgh', 1]);
    });
  }
});
