// An L2Store built on a caller's client that is already connected checks it
// in a microtask (the check may use the owner being built). If detach() comes
// first, that check must not be sent: the check tiercache installs reads and
// may move the namespace epoch, and a detached L2 (a closed cache) sends
// nothing more on a client that is not its own. Written for the mutation
// survivor l2-store.ts probe() `this.phase === 'detached'` -> false, which
// only a check queued before detach() can reach (the 'ready' listener is gone
// after it).
import assert from 'node:assert/strict';
import { L2Store } from '../../src/store/l2-store.js';
import { openRedis, type RedisClient } from '../../src/store/redis-client.js';
import { useRedisCaches } from '../support/cache-context.js';

const COMMAND_TIMEOUT_MS = 200;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('L2Store detached before the check of a connected client ran', function () {
  this.timeout(20_000);
  const ctx = useRedisCaches({ prefix: 'l2detached' });
  const clients: RedisClient[] = [];

  afterEach(() => {
    for (const client of clients.splice(0)) client.disconnect();
  });

  it('sends no connection check and reports nothing when detach() follows construction at once', async () => {
    const { client, boundsCommands } = openRedis(ctx.redis.url, COMMAND_TIMEOUT_MS);
    clients.push(client);
    client.on('error', () => undefined);
    await new Promise((resolve) => client.once('ready', resolve));
    assert.equal(client.status, 'ready');

    let checks = 0;
    const ups: boolean[] = [];
    const downs: Error[] = [];
    const failures: Error[] = [];
    const l2 = new L2Store(client, {
      commandTimeout: COMMAND_TIMEOUT_MS,
      breakerCooldown: 100,
      clientBoundsCommands: boundsCommands,
      check: async (c) => {
        checks++;
        return c.ping();
      },
      onDown: (err) => downs.push(err),
      onUp: (recovered) => ups.push(recovered),
      onFailure: (err) => failures.push(err),
    });
    l2.detach();
    await sleep(300);
    assert.equal(checks, 0, 'a check was sent on the client after detach()');
    assert.deepEqual([ups, downs, failures, l2.state], [[], [], [], 'down']);
  });
});
