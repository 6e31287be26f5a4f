// Why this exists: stale-waiter-vary.test.ts shows that a waiter for another
// variant is not sent a failing fill's stale answer; this shows the other half,
// that a waiter for the same variant is (the point of handing it over: one
// failing handler run, not one per waiting request). A header whose value is
// '*' rides along, so a check that read header values as Vary names would
// see `Vary: *`.
import assert from 'node:assert/strict';
import request from 'supertest';
import express from 'express';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import Koa from 'koa';
import { useRedisCaches } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('middleware: a stale answer given to waiters of the same variant', () => {
  const cleanup = useRedisCaches({ prefix: 'stale-waiter-same' });

  it('stale-if-error: a waiter with the same Accept-Language gets the stale answer and runs no handler', async () => {
    const cache = cleanup.track(createCache({ namespace: `${cleanup.ns}-1`, redis: false }));
    let failing = false;
    let failingRuns = 0;
    let entered: () => void = () => {};
    const app = express();
    app.get('/greeting', expressCache(cache, { ttl: 100, staleIfError: '1m' }), async (req, res) => {
      res.set('Vary', 'Accept-Language');
      res.set('Access-Control-Allow-Origin', '*');
      if (failing) {
        failingRuns++;
        entered();
        await sleep(300);
        res.status(500).send('down');
        return;
      }
      res.send(`hello in ${String(req.headers['accept-language'])}`);
    });
    const server = await cleanup.serve(app);
    assert.equal((await request(server).get('/greeting').set('Accept-Language', 'en')).text, 'hello in en');
    await sleep(150);
    failing = true;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const first = request(server).get('/greeting').set('Accept-Language', 'en').then((r) => r);
    await inHandler;
    const second = await request(server).get('/greeting').set('Accept-Language', 'en');
    const firstAnswer = await first;
    assert.equal(firstAnswer.text, 'hello in en');
    assert.equal(second.status, 200);
    assert.equal(second.text, 'hello in en');
    // Stale by less than a second: the waiter's ttl counts the seconds since the entry stopped being fresh.
    assert.match(String(second.headers['cache-status']), /hit; ttl=-1(;|$)/);
    assert.equal(failingRuns, 1, 'the waiter ran the failing handler itself');
  });

  it('stale-if-error: a fill that fails after the window ended hands its waiters nothing stale', async () => {
    // ttl 100 ms, stale-if-error 300 ms: the window ends 400 ms after the store; the failing run starts at
    // 150 ms and answers at 750 ms, when the stale answer it hands its waiters is already past the window.
    const cache = cleanup.track(createCache({ namespace: `${cleanup.ns}-2`, redis: false }));
    let failing = false;
    let entered: () => void = () => {};
    const app = express();
    app.get('/late', expressCache(cache, { ttl: 100, staleIfError: 300 }), async (_req, res) => {
      if (failing) {
        entered();
        await sleep(600);
        res.status(500).send('down');
        return;
      }
      res.send('fresh');
    });
    const server = await cleanup.serve(app);
    assert.equal((await request(server).get('/late')).text, 'fresh');
    await sleep(150);
    failing = true;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const first = request(server).get('/late').then((r) => r);
    await inHandler;
    const second = await request(server).get('/late');
    const firstAnswer = await first;
    // The filling request came within the window, and table mode decides on arrival: it gets the stale answer.
    assert.equal(firstAnswer.status, 200);
    assert.equal(second.status, 500, `the waiter got ${second.status} ${second.text} (${String(second.headers['cache-status'])})`);
  });

  it('stale-if-error, Koa: when the handler throws, a waiter gets the stale answer too and runs no handler', async () => {
    // Written for http-cache.ts runHandler's `!capturing || stale === undefined` (-> true, -> stale !== undefined,
    // -> capturing): Koa's next() rejects with the handler's error, and the waiters were released with nothing
    // before Koa's error answer could hand them the stale one.
    const cache = cleanup.track(createCache({ namespace: `${cleanup.ns}-5`, redis: false }));
    let failing = false;
    let failingRuns = 0;
    let entered: () => void = () => {};
    const app = new Koa();
    app.silent = true;
    app.use(koaCache(cache, { ttl: 100, staleIfError: '1m' }));
    app.use(async (ctx) => {
      if (failing) {
        failingRuns++;
        entered();
        await sleep(300);
        throw new Error('the origin is down');
      }
      ctx.body = 'fresh';
    });
    const server = await cleanup.serve(app.callback());
    assert.equal((await request(server).get('/throws')).text, 'fresh');
    await sleep(150);
    failing = true;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const first = request(server).get('/throws').then((r) => r);
    await inHandler;
    const second = await request(server).get('/throws');
    assert.equal((await first).text, 'fresh');
    assert.equal(second.text, 'fresh', `the waiter got ${second.status} ${second.text}`);
    assert.equal(failingRuns, 1, 'the waiter ran the failing handler itself');
  });
});
