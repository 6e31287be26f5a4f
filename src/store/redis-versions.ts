// Version counters in Redis. Each tag's counter lives in a slot of its own
// (`ns:v:{tag}`), and an entry's own key tag in the entry's slot (`{key}:v`,
// next to its fill lock), so on a Redis Cluster fills and invalidations
// spread over every master instead of all meeting on one. The epoch and,
// next to it, the run id of the Redis process that last served the
// namespace (and the master_replid2 it was last seen with, which a promotion
// changes) share the slot of `{namespace}`: a restart (from a snapshot), a
// failover of that process, or its promotion back after a round as replica
// is noticed and moves the epoch. On a Cluster,
// the other slots are guarded one by one (SLOT_GUARD in redis-scripts.ts),
// and commands go out once per slot, concurrently; on standalone Redis one
// script does it all. Either way at most COUNTERS_PER_SCRIPT counters at a
// time: a longer list is sent in slices, one after another, each its own
// command under L2's timeout, so a bulk invalidation never blocks Redis (or
// waits) past it.
import { performance } from 'node:perf_hooks';
import type { L2Store } from './l2-store.js';
import { isCluster, type RedisClient } from './redis-client.js';
import { batchPositions, groupBySlot, slotGuardKeys } from './hash-slot.js';
import { bumpCounters, bumpSlotCounters, counterValue, COUNTERS_PER_SCRIPT, epochForServer, PROVISIONAL_COUNTER_TTL_MS, readCounters, readSlotCounters, SLOTS_PER_SLICE } from './redis-scripts.js';
import type { ServerEpoch, VersionSource } from './tag-versions.js';

/** How long a tag counter lives in Redis after an entry that recorded it was last stored, or it was bumped. */
export const TAG_COUNTER_TTL_MS = 7 * 24 * 60 * 60 * 1000;

export class RedisVersionSource implements VersionSource {
  readonly epochKey: string;
  /** The run id (read by every version) and the master_replid2 beside it (see SERVER_SCRIPT). */
  private readonly serverKeys: readonly [string, string];
  private readonly tagPrefix: string;

  constructor(
    private readonly l2: L2Store,
    namespace: string,
  ) {
    this.epochKey = `{${namespace}}:epoch`;
    this.serverKeys = [`{${namespace}}:server`, `{${namespace}}:server:replid2`];
    this.tagPrefix = `${namespace}:v:{`;
  }

  async read(tags: readonly string[], since?: number): Promise<{ epoch: number; versions: number[] }> {
    const keys = [this.epochKey];
    for (const tag of tags) keys.push(this.counterKey(tag));
    const values = await inSlices(this.l2.client, keys, undefined, (slice, epochFirst) =>
      this.l2.run((c) => (isCluster(c) ? readBySlot(c, slice, epochFirst, false).then((r) => r.values) : readCounters.run(c, slice, PROVISIONAL_COUNTER_TTL_MS, epochFirst)), false, since),
    );
    return { epoch: values[0]!, versions: values.slice(1) };
  }

  /**
   * The Redis key of a tag's counter: in a slot of the tag's own, or for an
   * entry's key tag in the entry's slot (store keys escape '{' and '}', so
   * `{key}` hashes the whole key, as the key itself does).
   */
  counterKey(tag: string): string {
    return tag.startsWith(KEY_TAG) ? `{${tag.slice(KEY_TAG.length)}}:v` : this.tagPrefix + tag + '}';
  }

  bump(tags: readonly string[], floors?: readonly number[]): Promise<number[]> {
    const keys = tags.map((tag) => this.counterKey(tag));
    return inSlices(this.l2.client, keys, floors, (slice, _, sliceFloors) =>
      this.l2.run((c) => (isCluster(c) ? bumpBySlot(c, slice, false, sliceFloors) : bumpCounters.run(c, slice, TAG_COUNTER_TTL_MS, false, sliceFloors)), true),
    );
  }

  async bumpEpoch(floor?: number): Promise<number> {
    const floors = floor === undefined ? undefined : [floor];
    const [epoch] = await this.l2.run((c) => (isCluster(c) ? bumpBySlot(c, [this.epochKey], true, floors) : bumpCounters.run(c, [this.epochKey], TAG_COUNTER_TTL_MS, true, floors)), true);
    return epoch!;
  }

  /**
   * The epoch, moved first unless the same Redis process serves the
   * namespace as last time. With `client`, sent on it directly: L2 runs this check on
   * each new connection before it lets other commands through.
   */
  serverEpoch(floor: number, client?: RedisClient): Promise<ServerEpoch> {
    const ask = (c: RedisClient) => {
      const sent = performance.now();
      return epochForServer(c, this.epochKey, this.serverKeys, floor).then((checked) => {
        // Redis's TIME in the reply, read between the two (see ServerClock).
        if (checked.time !== undefined) this.l2.clock?.learn(checked.time, sent);
        return checked;
      });
    };
    return client !== undefined ? ask(client) : this.l2.run(ask);
  }
}

/**
 * Runs `op` over `keys` in slices of at most COUNTERS_PER_SCRIPT keys (and,
 * on a Cluster, SLOTS_PER_SLICE slots), one after another, each its own L2
 * command under its own timeout, and joins the results in the order of
 * `keys`. `epochFirst` is true for the slice that starts with keys[0] (which
 * may be the epoch); `floors` are sliced along. Fails at the first failing
 * slice: what the earlier ones did stays (a bump done twice only
 * over-invalidates; a read creates nothing that does not expire).
 */
async function inSlices(
  client: RedisClient,
  keys: readonly string[],
  floors: readonly number[] | undefined,
  op: (slice: readonly string[], epochFirst: boolean, floors: readonly number[] | undefined) => Promise<number[]>,
): Promise<number[]> {
  // On a Cluster a slice sends one script per slot it holds: the keys of a slot go together, and so many slots at most.
  const maxSlots = isCluster(client) ? SLOTS_PER_SLICE : undefined;
  if (keys.length <= (maxSlots ?? COUNTERS_PER_SCRIPT)) return op(keys, true, floors);
  // Stryker disable next-line ArrayDeclaration: preallocated for speed; every index is assigned
  const values: number[] = new Array(keys.length);
  for (const at of batchPositions(keys, COUNTERS_PER_SCRIPT, maxSlots)) {
    const got = await op(
      at.map((i) => keys[i]!),
      at[0] === 0,
      floors === undefined ? undefined : at.map((i) => floors[i]!),
    );
    at.forEach((i, n) => (values[i] = got[n]!));
  }
  return values;
}

/** Tags an entry carries for its own key (keys/tags.ts keyTag). */
const KEY_TAG = 'key:';

/**
 * Reads (creating when missing) counters on a Cluster: one guarded script
 * per slot, all sent at once. `epochFirst`: keys[0] is the epoch (no TTL);
 * `forFill`: as a fill's lookup (see SLOT_READ_SCRIPT). Values in the order
 * of `keys`; `created`: positions of the counters made here.
 */
export async function readBySlot(client: RedisClient, keys: readonly string[], epochFirst: boolean, forFill: boolean): Promise<{ values: number[]; created: number[] }> {
  // Stryker disable next-line ArrayDeclaration: preallocated for speed; every index is assigned
  const values: number[] = new Array(keys.length);
  const created: number[] = [];
  await Promise.all(
    groupBySlot(keys).map(async ({ slot, at }) => {
      const epoch = epochFirst && at[0] === 0;
      // Stryker disable next-line StringLiteral: the script tests its flags for '1' only
      const reply = await readSlotCounters.raw(client, [...at.map((i) => keys[i]!), ...slotGuardKeys(slot)], [String(PROVISIONAL_COUNTER_TTL_MS), epoch ? '1' : '0', forFill ? '1' : '0']);
      if (!Array.isArray(reply) || reply.length !== at.length + 1) throw new Error('unexpected reply from a tiercache version script');
      at.forEach((i, n) => (values[i] = counterValue(reply[n + 1])));
      // Stryker disable next-line all: the script always replies a string first ('' when it made nothing)
      const made = Buffer.isBuffer(reply[0]) ? reply[0].toString('latin1') : String(reply[0] ?? '');
      for (const position of made.split(',')) if (position !== '') created.push(at[Number(position) - 1]!);
    }),
  );
  return { values, created };
}

/**
 * readBySlot for a read-only lookup: reads counters on a Cluster, one guarded
 * script per slot, all sent at once, and makes none (a missing one reads
 * undefined) nor touches another fill's provisional one: a get() that finds
 * nothing leaves nothing in Redis. (The epoch needs no flag: only making it differs.)
 */
export async function peekBySlot(client: RedisClient, keys: readonly string[]): Promise<Array<number | undefined>> {
  // Stryker disable next-line ArrayDeclaration: preallocated for speed; every index is assigned
  const values: Array<number | undefined> = new Array(keys.length);
  await Promise.all(
    groupBySlot(keys).map(async ({ slot, at }) => {
      // Stryker disable next-line StringLiteral: the script tests its flags for '1' only
      const reply = await readSlotCounters.raw(client, [...at.map((i) => keys[i]!), ...slotGuardKeys(slot)], [String(PROVISIONAL_COUNTER_TTL_MS), '0', '0', '1']);
      if (!Array.isArray(reply) || reply.length !== at.length + 1) throw new Error('unexpected reply from a tiercache version script');
      at.forEach((i, n) => (values[i] = reply[n + 1] === null || reply[n + 1] === false ? undefined : counterValue(reply[n + 1])));
    }),
  );
  return values;
}

/** Bumps counters on a Cluster: one guarded script per slot, all sent at once (see BUMP_SCRIPT). */
async function bumpBySlot(client: RedisClient, keys: readonly string[], epochFirst: boolean, floors?: readonly number[]): Promise<number[]> {
  // Stryker disable next-line ArrayDeclaration: preallocated for speed; every index is assigned
  const values: number[] = new Array(keys.length);
  await Promise.all(
    groupBySlot(keys).map(async ({ slot, at }) => {
      // Stryker disable next-line StringLiteral: the script tests its flag for '1' only
      const args = [String(TAG_COUNTER_TTL_MS), epochFirst && at[0] === 0 ? '1' : '0'];
      if (floors !== undefined) for (const i of at) args.push(String(floors[i] ?? 0));
      const bumped = await bumpSlotCounters.call(client, [...at.map((i) => keys[i]!), ...slotGuardKeys(slot)], args);
      if (bumped.length !== at.length) throw new Error('unexpected reply from a tiercache version script');
      at.forEach((i, n) => (values[i] = bumped[n]!));
    }),
  );
  return values;
}
