// A fill whose handler has not answered by its deadline (COALESCE_WAIT_MS,
// plus the fill lock's lifetime with Redis) no longer holds later requests:
// the next one runs a fill of its own. This file checks what follows from
// that: the next request's miss event does not say collapsed; when the late
// fill finally ends it does not unregister the newer fill, so a request that
// arrives then waits on the newer one; with Redis, the newer fill takes the
// fill lock again, so another instance waits on it too. Mutation testing left
// these unchecked (http-cache.ts joining, beginFill's onSettle, mayStartFill).
// Each test waits past one deadline (3 s and a little more). Express.
import assert from 'node:assert/strict';
import request from 'supertest';
import express from 'express';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { COALESCE_WAIT_MS } from '../../../src/middleware/http-cache.js';
import { useRedisCaches } from '../../support/cache-context.js';

const COLLAPSED = 'tiercache; fwd=miss; collapsed';
const LOCK_MS = 500;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
let counter = 0;

/** A promise to hold a handler on, and its release. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

/** Route /r: run N waits on holds[N - 1] (when there is one); run 1 answers no-store, the others are stored. */
function app(cache: TierCache, holds: ReadonlyArray<Promise<void>>) {
  const a = express();
  let runs = 0;
  a.get('/r', expressCache(cache, { ttl: '1m' }), async (_req, res) => {
    const run = ++runs;
    await holds[run - 1];
    if (run === 1) res.set('Cache-Control', 'no-store');
    res.send(`run ${run}`);
  });
  return { app: a, runs: () => runs };
}

async function until(check: () => boolean, ms = 2_000): Promise<void> {
  for (const end = performance.now() + ms; !check() && performance.now() < end; ) await sleep(5);
}

describe('middleware: a fill past its deadline', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'fill-past-deadline' });

  it('L1 only: the next request is no collapsed miss, and the late fill ending leaves the newer fill for later requests to wait on', async () => {
    const cache = ctx.track(createCache({ namespace: `${ctx.ns}-${++counter}`, redis: false }));
    const misses: Array<{ collapsed?: boolean }> = [];
    cache.on('miss', (e) => misses.push(e));
    const late = gate();
    const newer = gate();
    const { app: a, runs } = app(cache, [late.wait, newer.wait]);
    const server = await ctx.serve(a);
    const first = request(server).get('/r').then((r) => r);
    await until(() => runs() === 1);
    await sleep(COALESCE_WAIT_MS + 150);
    const second = request(server).get('/r').then((r) => r);
    await until(() => runs() === 2);
    assert.equal(runs(), 2, 'the request after the deadline did not run its own fill');
    assert.deepEqual(misses.map((m) => m.collapsed === true), [false, false], 'the request after the deadline was reported as collapsed');
    late.open();
    assert.equal((await first).text, 'run 1');
    const third = request(server).get('/r').then((r) => r);
    // L1 only, a request counts its miss and joins a fill under way in one synchronous step: the third miss
    // means it has joined (stats().coalesced counts a waiter only once answered, so alone it waited out the 2 s).
    await until(() => cache.stats().l1.misses >= 3 || cache.stats().coalesced === 1 || runs() > 2);
    newer.open();
    assert.equal((await second).text, 'run 2');
    const t = await third;
    assert.equal(runs(), 2, 'the request after the late fill ended ran the handler instead of waiting on the newer fill');
    assert.equal(t.text, 'run 2');
    assert.equal(t.headers['cache-status'], COLLAPSED);
  });

  it('with Redis: the newer fill takes the fill lock, so a request on another instance waits for it', async () => {
    const x = await ctx.open({ namespace: ctx.ns, l2: { lockTimeout: LOCK_MS } });
    const y = await ctx.open({ namespace: ctx.ns, l2: { lockTimeout: LOCK_MS } });
    const late = gate();
    const newer = gate();
    const onX = app(x, [late.wait, newer.wait]);
    const onY = app(y, []);
    const serverX = await ctx.serve(onX.app);
    const serverY = await ctx.serve(onY.app);
    const first = request(serverX).get('/r').then((r) => r);
    await until(() => onX.runs() === 1);
    await sleep(COALESCE_WAIT_MS + LOCK_MS + 150);
    const second = request(serverX).get('/r').then((r) => r);
    await until(() => onX.runs() === 2);
    assert.equal(onX.runs(), 2, 'the request after the deadline did not run its own fill');
    const other = request(serverY).get('/r').then((r) => r);
    await sleep(100); // the other instance's request finds the lock taken and polls for the entry
    newer.open();
    assert.equal((await second).text, 'run 2');
    const o = await other;
    assert.equal(onY.runs(), 0, 'the other instance ran the handler: the newer fill held no lock');
    assert.equal(o.text, 'run 2');
    assert.equal(o.headers['cache-status'], COLLAPSED);
    late.open();
    assert.equal((await first).text, 'run 1');
  });

  it("a lock timeout past node's longest timer (30 days): a request arriving during a fill still waits for it (a timer that long fires after 1 ms)", async () => {
    const cache = await ctx.open({ namespace: `${ctx.ns}-${++counter}`, l2: { lockTimeout: '30d' } });
    const held = gate();
    const { app: a, runs } = app(cache, [Promise.resolve(), held.wait]);
    const server = await ctx.serve(a);
    assert.equal((await request(server).get('/r')).text, 'run 1'); // run 1 stores nothing
    const filling = request(server).get('/r').then((r) => r);
    await until(() => runs() === 2);
    const waiting = request(server).get('/r').then((r) => r);
    await until(() => cache.stats().coalesced === 1 || runs() > 2, 300);
    held.open();
    assert.equal((await filling).text, 'run 2');
    const w = await waiting;
    assert.equal(runs(), 2, 'the request that arrived during the fill ran the handler instead of waiting');
    assert.equal(w.text, 'run 2');
    assert.equal(w.headers['cache-status'], COLLAPSED);
  });
});
