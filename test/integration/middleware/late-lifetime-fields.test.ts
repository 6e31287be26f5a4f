// Origin mode reads a response's lifetime from Cache-Control and also from
// Tiercache-Cache-Control (RFC 9213, read first), CDN-Cache-Control,
// Surrogate-Control and Expires. A writeHead hook mounted before the cache runs
// after the cache's own look at the head, so the cache judges the head again
// as sent; it used to do so only when Set-Cookie, Cache-Control or Vary had
// changed, and stored an answer whose late Tiercache-Cache-Control said
// no-store. Found by mutation testing (http-cache.ts sent()).
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useCleanup } from '../../support/cache-context.js';
import { setAsHeadGoesOut } from '../../support/head-hook.js';

let counter = 0;

describe('middleware: a lifetime field set by a writeHead hook after the cache looked at the head (origin mode)', () => {
  const cleanup = useCleanup();

  /** An app whose hook sets `name: value` on the way out; how many of two GETs ran the handler. */
  async function runsWith(name: string, value: string): Promise<number> {
    const cache = cleanup.track(createCache({ namespace: `late-life${process.pid}-${++counter}`, redis: false }));
    const app = express();
    let runs = 0;
    app.use((_req, res, next) => {
      setAsHeadGoesOut(res, name, value);
      next();
    });
    app.get('/t', expressCache(cache, { freshness: 'origin' }), (_req, res) => void (runs++, res.set('Cache-Control', 'max-age=60').send('t')));
    const first = await request(app).get('/t');
    assert.equal(first.headers[name.toLowerCase()], value, 'the hook ran');
    await request(app).get('/t');
    return runs;
  }

  it('Tiercache-Cache-Control: no-store keeps the answer out of the cache', async () => {
    assert.equal(await runsWith('Tiercache-Cache-Control', 'no-store'), 2);
  });

  it('a field that changes nothing (Tiercache-Cache-Control: max-age=60) still lets it be stored', async () => {
    assert.equal(await runsWith('Tiercache-Cache-Control', 'max-age=60'), 1);
  });
});
