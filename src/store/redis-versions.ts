// Version counters in Redis. All of a namespace's counters share one hash tag,
// `{namespace}`, so the scripts touch a single Cluster slot. Next to the epoch
// sits the run id of the Redis process that last served the namespace, so a
// restart (from a snapshot) or a failover is noticed and moves the epoch.
import type { L2Store } from './l2-store.js';
import type { RedisClient } from './redis-client.js';
import { PROVISIONAL_COUNTER_TTL_MS } from './fill-protocol.js';
import { bumpCounters, epochForServer, readCounters } from './redis-scripts.js';
import type { ServerEpoch, VersionSource } from './tag-versions.js';

/** How long a tag counter lives in Redis after an entry that recorded it was last stored, or it was bumped. */
export const TAG_COUNTER_TTL_MS = 7 * 24 * 60 * 60 * 1000;

export class RedisVersionSource implements VersionSource {
  readonly epochKey: string;
  private readonly serverKey: string;
  private readonly tagPrefix: string;

  constructor(
    private readonly l2: L2Store,
    namespace: string,
  ) {
    this.epochKey = `{${namespace}}:epoch`;
    this.serverKey = `{${namespace}}:server`;
    this.tagPrefix = `{${namespace}}:v:`;
  }

  async read(tags: readonly string[]): Promise<{ epoch: number; versions: number[] }> {
    const keys = [this.epochKey];
    for (const tag of tags) keys.push(this.tagPrefix + tag);
    const values = await this.l2.run((c) => readCounters.run(c, keys, PROVISIONAL_COUNTER_TTL_MS, true));
    return { epoch: values[0]!, versions: values.slice(1) };
  }

  /** The Redis key of a tag's counter. */
  counterKey(tag: string): string {
    return this.tagPrefix + tag;
  }

  bump(tags: readonly string[], floors?: readonly number[]): Promise<number[]> {
    const keys = tags.map((tag) => this.tagPrefix + tag);
    return this.l2.run((c) => bumpCounters.run(c, keys, TAG_COUNTER_TTL_MS, false, floors), true);
  }

  async bumpEpoch(floor?: number): Promise<number> {
    const [epoch] = await this.l2.run((c) => bumpCounters.run(c, [this.epochKey], TAG_COUNTER_TTL_MS, true, floor === undefined ? undefined : [floor]), true);
    return epoch!;
  }

  /**
   * The epoch, moved first unless the same Redis process serves the
   * namespace as last time. With `client`, sent on it directly: L2 runs this check on
   * each new connection before it lets other commands through.
   */
  serverEpoch(floor: number, client?: RedisClient): Promise<ServerEpoch> {
    if (client !== undefined) return epochForServer(client, this.epochKey, this.serverKey, floor);
    return this.l2.run((c) => epochForServer(c, this.epochKey, this.serverKey, floor));
  }
}
