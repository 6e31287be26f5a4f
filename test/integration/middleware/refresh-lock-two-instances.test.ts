// A background refresh (stale-while-revalidate) takes the cross-instance fill
// lock like any fill, in the round trip that reads its stamp: so when two
// instances serve the same stale entry at once, one runs the handler and the
// other waits for its entry instead of refreshing too. Found while writing it:
// the waiting instance polled through its own L1, which still held the stale
// entry, so it never saw the new one in L2 and ran the handler once the lock
// was gone (three runs, not two); and, found reviewing that fix, the same
// when its L1 could not vouch for the entry (tag state untrusted, as while its
// bus reconnects): Redis then confirmed the stale L1 entry. Also written for http-cache.ts fill()'s
// `store.l2 !== undefined && start === undefined && !flight.done` (-> l2 ===
// undefined, -> flight.done, the block emptied) and its lock request: the
// refresh then took no lock, and both instances ran the handler.
import assert from 'node:assert/strict';
import request from 'supertest';
import express from 'express';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('middleware: a background refresh holds the fill lock across instances', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'refresh-lock' });

  /** Runs the scenario; `untrustY` makes Y's local tag state untrusted (as while its bus reconnects) before it asks for the stale entry. */
  async function refreshRuns(untrustY: boolean): Promise<number> {
    const x = await ctx.open({ namespace: ctx.ns, l2: { lockTimeout: 2_000 } });
    const y = await ctx.open({ namespace: ctx.ns, l2: { lockTimeout: 2_000 } });
    let runs = 0;
    const app = (cache: TierCache) => {
      const a = express();
      a.get('/r', expressCache(cache, { ttl: 1_000, staleWhileRevalidate: '1m' }), async (_req, res) => {
        const run = ++runs;
        if (run > 1) await sleep(300); // the refresh is still running when the other instance asks (and ends within the TTL)
        res.send(`run ${run}`);
      });
      return a;
    };
    const serverX = await ctx.serve(app(x));
    const serverY = await ctx.serve(app(y));
    assert.equal((await request(serverX).get('/r')).text, 'run 1');
    assert.equal((await request(serverY).get('/r')).text, 'run 1'); // Y's L1 holds it too now
    await sleep(1_100);
    const stale = await request(serverX).get('/r');
    assert.equal(stale.text, 'run 1');
    for (let i = 0; i < 200 && runs < 2; i++) await sleep(5);
    if (untrustY) (y as unknown as { store: { versions: { trusted: boolean } } }).store.versions.trusted = false;
    assert.equal((await request(serverY).get('/r')).text, 'run 1');
    await sleep(800); // both refreshes, if there were two, have ended
    return runs;
  }

  it('two instances serving the same stale entry refresh it once', async () => {
    assert.equal(await refreshRuns(false), 2, 'both instances ran the handler to refresh the same entry');
  });

  it('also when the waiting instance cannot vouch for its L1 entry (its tag state untrusted): it still finds the new entry in L2', async () => {
    assert.equal(await refreshRuns(true), 2, 'both instances ran the handler to refresh the same entry');
  });
});
