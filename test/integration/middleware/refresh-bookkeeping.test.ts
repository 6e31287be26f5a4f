// Background refreshes for stale-while-revalidate, one key at a time: while a
// refresh of a key is under way (even before it reaches the cache middleware)
// a stale answer starts no second one; once it ended, the next time the entry
// goes stale it is refreshed again; a refresh that never ends is reported as
// an 'error' event (where: 'refresh') once its time is up, and frees its key
// then (found by helper-88: its fill stayed registered, and every stale hit
// for the rest of the stale window started no refresh). Express 5, L1 only.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { createCache, type ErrorEvent } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useCleanup } from '../../support/cache-context.js';
import { eventually } from '../../support/eventually.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const STALE = /^tiercache; hit; ttl=-\d+; detail=L1$/;
const FRESH = 'tiercache; hit; detail=L1';
/** The refresh time limit of src/middleware/refresh.ts (REFRESH_TIMEOUT_MS). */
const REFRESH_TIMEOUT_MS = 60_000;

/**
 * GET `path` (/s) with the refresh's time limit cut short: timers of exactly
 * that length fire after 100 ms while the (stale) request runs.
 */
async function getWithRefreshLimitCut(a: express.Express, path = '/s'): Promise<request.Response> {
  const realSetTimeout = globalThis.setTimeout;
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) =>
    realSetTimeout(() => fn(...args), ms === REFRESH_TIMEOUT_MS ? 100 : ms)) as unknown as typeof setTimeout;
  try {
    return await request(a).get(path);
  } finally {
    globalThis.setTimeout = realSetTimeout;
  }
}

describe('middleware: background refresh bookkeeping', function () {
  const { track } = useCleanup();

  /** GET /s (TTL 100 ms, stale-while-revalidate 10 s) answers `run N`; `before` runs ahead of the cache. */
  function app(before?: express.RequestHandler, handler?: (n: number, res: express.Response) => void) {
    const cache = track(createCache({ redis: false }));
    const state = { runs: 0 };
    const a = express();
    if (before !== undefined) a.use(before);
    a.get('/s', expressCache(cache, { ttl: 100, staleWhileRevalidate: '10s' }), (_req, res) => {
      const n = ++state.runs;
      if (handler !== undefined) handler(n, res);
      else res.send(`run ${n}`);
    });
    return { cache, app: a, state };
  }

  it('a stale answer while a refresh of the key has not yet reached the cache starts no second refresh', async () => {
    let refreshes = 0;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const { app: a, state } = app(async (req, _res, next) => {
      if (req.headers['x-tiercache-refresh'] !== undefined) {
        refreshes++;
        await held;
      }
      next();
    });
    assert.equal((await request(a).get('/s')).text, 'run 1');
    await sleep(150);
    const first = await request(a).get('/s');
    assert.match(String(first.headers['cache-status']), STALE);
    await eventually(() => refreshes === 1, 'the first stale answer started a refresh');
    const second = await request(a).get('/s');
    assert.match(String(second.headers['cache-status']), STALE);
    assert.equal(second.text, 'run 1');
    await sleep(20);
    assert.equal(refreshes, 1, 'a second refresh started while the first was under way');
    release();
    await eventually(async () => (await request(a).get('/s')).headers['cache-status'] === FRESH, 'the refresh stored its answer');
    assert.equal(state.runs, 2);
    assert.equal(refreshes, 1);
  });

  it('an entry refreshed once is refreshed again the next time it goes stale', async () => {
    const { app: a, state } = app();
    assert.equal((await request(a).get('/s')).text, 'run 1');
    for (const run of [2, 3]) {
      await sleep(150);
      const stale = await request(a).get('/s');
      assert.match(String(stale.headers['cache-status']), STALE, `before run ${run}`);
      await eventually(async () => {
        const r = await request(a).get('/s');
        return r.headers['cache-status'] === FRESH && r.text === `run ${run}`;
      }, `the refresh stored run ${run}`);
    }
    assert.equal(state.runs, 3);
  });

  it("a refresh that outlives its time limit is reported as an 'error' event (where: 'refresh')", async () => {
    let answer: (() => void) | undefined;
    const { cache, app: a } = app(undefined, (n, res) => {
      if (n === 1) res.send('run 1');
      else answer = () => res.send(`run ${n}`); // the refresh: no answer until the test says so
    });
    const errors: ErrorEvent[] = [];
    cache.on('error', (e) => errors.push(e));
    assert.equal((await request(a).get('/s')).text, 'run 1');
    await sleep(150);
    const stale = await getWithRefreshLimitCut(a);
    assert.match(String(stale.headers['cache-status']), STALE);
    try {
      await eventually(() => errors.length > 0, 'an error event for the refresh that never ended');
      assert.equal(errors[0]!.where, 'refresh');
      assert.match(errors[0]!.err.message, /background refresh of \/s took over/);
    } finally {
      answer?.();
    }
  });

  // A user-scoped (or shared) route stores a request carrying an access_token (RFC 6750 §2.3) under the
  // query's digest, and its refresh re-sends the target as it came: the report of one given up on named
  // that target, so the 'error' event and the logger's warning held the bearer token in plain text.
  it("the report of a refresh given up on does not carry an access_token from the request's query", async () => {
    const cache = track(createCache({ redis: false }));
    let answer: (() => void) | undefined;
    let runs = 0;
    const a = express();
    a.get('/s', expressCache(cache, { ttl: 100, staleWhileRevalidate: '10s', user: (req) => String(req.query.user) }), (_req, res) => {
      if (++runs === 1) res.send('run 1');
      else answer = () => res.send(`run ${runs}`);
    });
    const errors: ErrorEvent[] = [];
    cache.on('error', (e) => errors.push(e));
    const target = '/s?user=7&access_token=s3cr3t-t0ken';
    assert.equal((await request(a).get(target)).text, 'run 1');
    await sleep(150);
    assert.match(String((await getWithRefreshLimitCut(a, target)).headers['cache-status']), STALE);
    try {
      await eventually(() => errors.length > 0, 'an error event for the refresh that never ended');
      assert.match(errors[0]!.err.message, /background refresh of \/s\?user=7&access_token=redacted took over/);
      assert.doesNotMatch(errors[0]!.err.message, /s3cr3t/);
    } finally {
      answer?.();
    }
  });

  it('a refresh given up on frees its key: the next stale hit refreshes again, and the late answer is not stored', async () => {
    let late: (() => void) | undefined;
    const { cache, app: a, state } = app(undefined, (n, res) => {
      if (n === 2) late = () => res.send('run 2, too late'); // the refresh that never answers in time
      else res.send(`run ${n}`);
    });
    const errors: ErrorEvent[] = [];
    cache.on('error', (e) => errors.push(e));
    assert.equal((await request(a).get('/s')).text, 'run 1');
    await sleep(150);
    assert.match(String((await getWithRefreshLimitCut(a)).headers['cache-status']), STALE);
    await eventually(() => errors.length > 0, 'the refresh was given up on');
    // The stale window is 10 s: without a new refresh the entry would be served stale for all of it.
    await eventually(async () => {
      const r = await request(a).get('/s');
      return r.headers['cache-status'] === FRESH && r.text === 'run 3';
    }, 'a stale hit after the refresh was given up on refreshed the entry');
    late?.();
    await sleep(20);
    const after = await request(a).get('/s');
    assert.equal(after.text, 'run 3', 'the answer of the refresh given up on replaced the entry');
    assert.equal(state.runs, 3);
  });
});
