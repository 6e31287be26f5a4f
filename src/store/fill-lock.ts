// The cross-instance fill lock: before running a handler on a miss, an
// instance takes a short Redis lock (SET NX PX) on the key; the others wait
// for the entry to appear instead of running the handler too, up to the
// lock's lifetime. A handler that finishes within it runs once across all
// instances. Redis trouble never blocks a fill: it proceeds unlocked.
import { randomUUID } from 'node:crypto';
import type { LockRequest } from './fill-protocol.js';
import type { L2Store } from './l2-store.js';

const RELEASE_SCRIPT = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

export class FillLock {
  /** This instance's lock value, so it only ever releases its own locks. */
  private readonly token = randomUUID();

  constructor(
    private readonly l2: L2Store,
    /** How long a lock holds, in ms. */
    readonly ttl: number,
  ) {}

  /**
   * The lock of an entry key: it hash-tags the key itself, so on a Cluster it
   * lives in the entry's slot and one script can look up the one and take the other.
   */
  private lockKey(key: string): string {
    return '{' + key + '}:lock';
  }

  /** What a lookup needs to take this instance's lock on `key` (fill-protocol.ts). */
  request(key: string): LockRequest {
    return { key: this.lockKey(key), token: this.token, ttl: this.ttl };
  }

  /** true: ours; false: another instance holds it; undefined: Redis could not tell (fill unlocked). */
  async acquire(key: string): Promise<boolean | undefined> {
    try {
      return (await this.l2.run((c) => c.set(this.lockKey(key), this.token, 'PX', this.ttl, 'NX'))) === 'OK';
    } catch {
      return undefined;
    }
  }

  /** Whether some instance still holds the lock (false when Redis cannot tell: stop waiting). */
  async held(key: string): Promise<boolean> {
    try {
      return (await this.l2.run((c) => c.exists(this.lockKey(key)))) === 1;
    } catch {
      return false;
    }
  }

  release(key: string): void {
    this.l2.run((c) => c.eval(RELEASE_SCRIPT, 1, this.lockKey(key), this.token)).catch(() => undefined);
  }
}
