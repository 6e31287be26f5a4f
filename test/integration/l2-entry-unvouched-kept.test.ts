// Why this test exists (mutation testing, thirty-seventh run): an entry read
// from L2 is served only on Redis's word that its tag versions are current;
// where Redis gave no word (the read of the counters failed) it is a miss
// here, but not a reason to delete it: the entry may well be current, and
// the next instance to ask, or this one once Redis answers, serves it without
// running the loader. No test looked in L2 after such a miss. Here Redis
// answers the entry's key but refuses the counters' (an ACL that leaves them
// out, as an operator's change would): L2 stays up, the word is missing.
import assert from 'node:assert/strict';
import { useRedisCaches } from '../support/cache-context.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('an L2 entry whose tag versions Redis does not give', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'l2-unvouched-kept', serverPerTest: true });

  for (const read of ['get()', 'getOrSet() without tags, whose loader fails'] as const) {
    it(`data API ${read}: a miss, the entry left in L2, and served from there once Redis answers again`, async () => {
      await ctx.admin.call('ACL', 'SETUSER', 'app', 'on', '>secret', '~*', '&*', '+@all');
      const url = new URL(ctx.redis.url);
      url.username = 'app';
      url.password = 'secret';
      const b = await ctx.open();
      await b.set('k', 'current', { ttl: '1h', tags: ['films'] });
      const a = await ctx.open({ redis: url.toString() });
      const errors: string[] = [];
      a.on('error', (e: { err: Error }) => errors.push(String(e.err)));

      // Entries, their fill locks and the epoch: everything of the namespace but the tag counters (`<ns>:v:{tag}`).
      await ctx.admin.call('ACL', 'SETUSER', 'app', 'resetkeys', `~${ctx.ns}:d:*`, `~{${ctx.ns}:d:*`, `~{${ctx.ns}}*`);
      if (read === 'get()') assert.equal(await a.get('k'), undefined);
      else
        await assert.rejects(
          a.getOrSet('k', () => Promise.reject(new Error('backend down')), { ttl: '1h' }),
          (err: Error) => String(err).includes('backend down'),
        );
      assert.ok(
        errors.some((e) => /NOPERM|permission/i.test(e)),
        `the counters' read was not refused: ${errors.join('; ')}`,
      );
      // A delete, had one been sent, would have landed by now (one connection, in order).
      await sleep(50);
      assert.equal(await ctx.admin.exists(b.dataKey('k')), 1, 'the entry Redis gave no word on was deleted from L2');

      await ctx.admin.call('ACL', 'SETUSER', 'app', '~*');
      assert.equal(await a.get('k'), 'current', 'the entry is not served from L2 once Redis vouches for it');
      assert.equal(a.stats().l2.hits, 1);
    });
  }
});
