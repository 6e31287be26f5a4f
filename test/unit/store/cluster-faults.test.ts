// How the Cluster client's errors are told apart (src/store/cluster-faults.ts),
// on the messages ioredis 5 builds: "Too many Cluster redirections. Last
// error: " and the String() of the last error it met.
import assert from 'node:assert/strict';
import { redirectionSpent } from '../../../src/store/cluster-faults.js';

const spent = (last: string): Error => new Error(`Too many Cluster redirections. Last error: ${last}`);

describe('Cluster faults: a redirection budget spent on a moving slot', () => {
  // The invalidation queue sends such a command again within a command timeout (invalidation-queue.ts movingSlot):
  // each of the three redirections can be the last one a small budget (maxRedirections 1) meets.
  it('is a budget whose last error is MOVED, ASK or TRYAGAIN', () => {
    for (const last of ['ReplyError: MOVED 3999 127.0.0.1:7001', 'ReplyError: ASK 3999 127.0.0.1:7002', 'ReplyError: TRYAGAIN Multiple keys request during rehashing of slot']) {
      assert.equal(redirectionSpent(spent(last)), true, last);
    }
  });

  it('is not a budget spent on a closed connection, nor a redirection reply that spent no budget', () => {
    assert.equal(redirectionSpent(spent('Error: Connection is closed.')), false);
    assert.equal(redirectionSpent(spent('ReplyError: CLUSTERDOWN The cluster is down')), false);
    assert.equal(redirectionSpent(new Error('MOVED 3999 127.0.0.1:7001')), false);
  });
});
