// An invalidation made on a Cluster by a cache that has just been created
// (a restarted instance's write route, before ready() resolved) reaches the
// other instances. The bus picks sharded or classic pub/sub only once a
// server has told its version (INFO); a message published before that went
// out as a classic PUBLISH, which the others' SSUBSCRIBE never hears, while
// the call resolved { delivered: true }: they went on serving the entry from
// L1 (and from L2, their versions unchanged) until its TTL.
import assert from 'node:assert/strict';
import { createCache } from '../../../src/index.js';
import { clusterCaches } from '../../support/cluster-caches.js';
import { eventually } from '../../support/eventually.js';

describe('invalidation by a cache not ready yet, on a Redis Cluster', function () {
  this.timeout(30_000);
  const env = clusterCaches();

  /** A client whose INFO waits for release(), and the classic PUBLISHes it sends. */
  function heldInfo(): { client: ReturnType<typeof env.client>; release: () => void; classic: string[] } {
    const client = env.client();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const info = client.info.bind(client) as (section: string) => Promise<string>;
    (client as unknown as { info: (section: string) => Promise<string> }).info = async (section) => {
      await held;
      return info(section);
    };
    const classic: string[] = [];
    const publish = client.publish.bind(client);
    client.publish = ((channel: string, message: string) => {
      classic.push(message);
      return publish(channel, message);
    }) as typeof client.publish;
    return { client, release, classic };
  }

  it('reaches an instance that holds the entry in L1', async () => {
    const ns = 'early';
    const a = await env.open(ns);
    const b = await env.open(ns);
    await a.set('k', 'old', { tags: ['t'] });
    await a.set('probe', 1, { tags: ['p'] });
    assert.equal(await a.get('k'), 'old'); // in A's L1
    assert.equal(await a.get('probe'), 1);
    const admin = env.client();
    const counter = `${ns}:v:{t}`;
    const before = Number(await admin.get(counter));

    // A restarted instance invalidates at once. Whether its bus's INFO or the invalidation comes first is
    // a race: the INFO is held back until the invalidation's version bump is in Redis, so the bump wins it.
    const { client, release, classic } = heldInfo();
    const fresh = createCache({ namespace: ns, redis: client, l2: { commandTimeout: 2000 } });
    try {
      const done = fresh.invalidateTags(['t']);
      await eventually(async () => Number(await admin.get(counter)) > before, 'the version bump reaches Redis');
      release();
      assert.deepEqual(await done, { delivered: true });
      assert.deepEqual(classic, [], 'a classic PUBLISH on a Cluster whose instances subscribe sharded');
      // B's invalidation goes out after the fresh one's, on the same channel: once A has B's, it has the fresh one's too.
      await b.invalidateTags(['p']);
      await eventually(async () => (await a.get('probe')) === undefined, "A hears B's invalidation");
      assert.equal(await a.get('k'), undefined, 'A still serves what the fresh instance invalidated');
    } finally {
      release();
      await fresh.close();
    }
  });

  it('is queued, not published classic, while no node has answered INFO for a command timeout, and replayed once one has', async () => {
    const ns = 'unanswered';
    const a = await env.open(ns);
    await a.set('k', 'old', { tags: ['t'] });
    assert.equal(await a.get('k'), 'old'); // in A's L1
    const { client, release, classic } = heldInfo();
    const fresh = createCache({ namespace: ns, redis: client, l2: { commandTimeout: 300 } });
    try {
      // Past one command timeout without a choice, the message is not sent the classic way on a guess.
      assert.deepEqual(await fresh.invalidateTags(['t']), { delivered: false });
      assert.deepEqual(classic, [], 'a classic PUBLISH on a Cluster whose instances subscribe sharded');
      release();
      await eventually(async () => (await a.get('k')) === undefined, 'A hears the queued invalidation once it is replayed');
      assert.deepEqual(classic, [], 'replayed as a classic PUBLISH');
    } finally {
      release();
      await fresh.close();
    }
  });
});
