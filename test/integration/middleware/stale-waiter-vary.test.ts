// Why this exists: a request that waits on another's fill of the same key may
// be answered with what that fill produced only if the answer fits it: a
// stored answer is checked against the waiter's Vary headers (reusable()), but
// a stale answer handed to the waiters (stale-if-error, stale-while-revalidate)
// was replayed to every waiter, so a French request got the English variant.
// Likewise a fill that found another variant fresh in L2 tells its waiters to
// look again: one whose own variant is stale runs the handler (mutation
// testing: no test reached that answer, which must not leave it unanswered).
import assert from 'node:assert/strict';
import request from 'supertest';
import express from 'express';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
let counter = 0;

describe('middleware: a stale answer given to waiters fits their Vary headers', () => {
  const cleanup = useRedisCaches({ prefix: 'stale-waiter-vary' });

  it('stale-if-error: a waiter for another variant runs the handler, it is not sent the stale variant of the failing fill', async () => {
    const cache = cleanup.track(createCache({ namespace: `${cleanup.ns}-${++counter}`, redis: false }));
    let failing = false;
    let entered: () => void = () => {};
    const app = express();
    app.get('/greeting', expressCache(cache, { ttl: 100, staleIfError: '1m' }), async (req, res) => {
      const lang = String(req.headers['accept-language']);
      res.set('Vary', 'Accept-Language');
      if (failing && lang === 'en') {
        entered();
        await sleep(300);
        res.status(500).send('down');
        return;
      }
      res.send(`hello in ${lang}`);
    });
    const server = await cleanup.serve(app);
    assert.equal((await request(server).get('/greeting').set('Accept-Language', 'en')).text, 'hello in en');
    await sleep(150);
    failing = true;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const en = request(server).get('/greeting').set('Accept-Language', 'en');
    const enDone = en.then((r) => r);
    await inHandler;
    const fr = await request(server).get('/greeting').set('Accept-Language', 'fr');
    const enAnswer = await enDone;
    assert.equal(enAnswer.text, 'hello in en');
    assert.match(String(enAnswer.headers['cache-status']), /hit; ttl=-/);
    assert.equal(fr.text, 'hello in fr', `fr got ${fr.text} (${String(fr.headers['cache-status'])})`);
  });

  it('stale-while-revalidate with Redis: a waiter for another variant runs the handler, it is not sent the stale variant', async () => {
    // Redis is paused while the first request (en, stale) looks its variant up, so that the second (fr)
    // looks up its own (missing) variant meanwhile and waits on the first one's fill.
    const cache = await cleanup.open({ namespace: cleanup.ns, l2: { commandTimeout: '5s' } });
    let runs = 0;
    const app = express();
    app.get('/greeting', expressCache(cache, { ttl: 100, staleWhileRevalidate: '1m' }), (req, res) => {
      runs++;
      res.set('Vary', 'Accept-Language');
      res.send(`hello in ${String(req.headers['accept-language'])}`);
    });
    const server = await cleanup.serve(app);
    assert.equal((await request(server).get('/greeting').set('Accept-Language', 'en')).text, 'hello in en');
    await sleep(150);
    await cleanup.admin.call('CLIENT', 'PAUSE', '300');
    const en = request(server).get('/greeting').set('Accept-Language', 'en').then((r) => r);
    await sleep(100);
    const fr = request(server).get('/greeting').set('Accept-Language', 'fr').then((r) => r);
    const [enAnswer, frAnswer] = await Promise.all([en, fr]);
    assert.equal(enAnswer.text, 'hello in en');
    assert.match(String(enAnswer.headers['cache-status']), /hit; ttl=-/);
    assert.equal(frAnswer.text, 'hello in fr', `fr got ${frAnswer.text} (${String(frAnswer.headers['cache-status'])})`);
    for (let i = 0; i < 200 && runs < 3; i++) await sleep(10); // the background refresh of en
  });

  it('with Redis: a waiter whose own variant is stale, on a fill that found its variant fresh in L2 (filled by another instance), runs the handler', async () => {
    // Redis is paused while the first request (en) looks its variant up, so that the second (fr), whose stale
    // variant this instance has in L1, waits on the first one's fill; that fill finds en fresh in L2 (another
    // instance stored it) and tells its waiters to look again.
    const serving = await cleanup.open({ namespace: cleanup.ns, l2: { commandTimeout: '5s' } });
    const other = await cleanup.open({ namespace: cleanup.ns });
    let runs = 0;
    const build = (cache: typeof serving) => {
      const app = express();
      app.get('/greeting', expressCache(cache, { ttl: 1_000, staleIfError: '1m' }), (req, res) => {
        runs++;
        res.set('Vary', 'Accept-Language');
        res.send(`hello in ${String(req.headers['accept-language'])}, run ${runs}`);
      });
      return app;
    };
    const server = await cleanup.serve(build(serving));
    const otherServer = await cleanup.serve(build(other));
    const get = (target: typeof server, lang: string) => request(target).get('/greeting').set('Accept-Language', lang).timeout(5_000);
    assert.equal((await get(server, 'fr')).text, 'hello in fr, run 1');
    await sleep(1_100); // stale, kept for stale-if-error
    assert.equal((await get(otherServer, 'en')).text, 'hello in en, run 2'); // en, fresh, in L2 only
    await cleanup.admin.call('CLIENT', 'PAUSE', '300');
    const en = get(server, 'en').then((r) => r);
    await sleep(100);
    const fr = get(server, 'fr').then((r) => r, (err: Error) => err);
    const enAnswer = await en;
    assert.equal(enAnswer.text, 'hello in en, run 2');
    assert.equal(enAnswer.headers['cache-status'], 'tiercache; hit; detail=L2');
    const frAnswer = await fr;
    assert.ok(!(frAnswer instanceof Error), `fr got no answer: ${String(frAnswer)}`);
    assert.equal(frAnswer.text, 'hello in fr, run 3');
    assert.equal(frAnswer.headers['cache-status'], 'tiercache; fwd=miss; detail=waited');
  });
});
