// The cross-instance fill lock: before running a handler on a miss, an
// instance takes a short Redis lock (SET NX PX) on the key; the others wait
// for the entry to appear instead of running the handler too, up to the
// lock's lifetime. A handler that finishes within it runs once across all
// instances. Redis trouble never blocks a fill: it proceeds unlocked. Each
// fill locks with a token of its own, so what one fill sends to release its
// lock (late, or sent again) never releases another's.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { LockRequest } from './fill-protocol.js';
import type { L2Store } from './l2-store.js';
import { readsReplicas } from './redis-client.js';

/** How often a caller waiting on another instance's fill looks for its result. */
const POLL_MS = 20;
/** Every this many looks, whether the lock is still held is asked too. */
const HELD_EVERY = 5;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const RELEASE_SCRIPT = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
/** PTTL run on the master: a client that reads replicas sends a plain PTTL to one, which may not have the lock yet. */
const HELD_SCRIPT = "return redis.call('PTTL', KEYS[1])";

export class FillLock {
  /**
   * A UUID's first four groups, this instance's: a fill's token ends in a
   * count of its own (see request). Still shaped as a UUID, which a lookup
   * (fill-protocol.ts LOCK_TOKEN_SHAPE), on any version, takes for a lock.
   */
  private readonly instance = randomUUID().slice(0, 24);
  private fills = 0;
  /** Whether held() must ask the master in a script (see HELD_SCRIPT). */
  private readonly heldOnMaster: boolean;

  constructor(
    private readonly l2: L2Store,
    /** How long a lock holds, in ms. */
    readonly ttl: number,
  ) {
    this.heldOnMaster = readsReplicas(l2.client);
  }

  /**
   * The lock of an entry key: it hash-tags the key itself, so on a Cluster it
   * lives in the entry's slot and one script can look up the one and take the other.
   */
  private lockKey(key: string): string {
    return '{' + key + '}:lock';
  }

  /**
   * What a lookup needs to take a lock on `key` for one fill (fill-protocol.ts),
   * with a token no other fill has, here or elsewhere: a release this fill
   * sends again once Redis answers (FillProtocol.abandon), or one that runs
   * late, finds another fill of the key (begun here since) holding the lock
   * under another token, and leaves it. With one token per instance, it
   * released that lock, and another instance ran the handler beside it.
   */
  request(key: string): LockRequest {
    // 48 bits of count (a UUID's last group), wrapping after 2^48 fills.
    this.fills = (this.fills + 1) % 0x1000000000000;
    return { key: this.lockKey(key), token: this.instance + this.fills.toString(16).padStart(12, '0'), ttl: this.ttl };
  }

  /** Takes `lock` (from request()) by itself: true taken; false held by another; undefined: Redis could not tell. Fills take it in their lookup instead (fill-protocol.ts LOOKUP), which also takes over a lock key without a TTL. */
  async acquire(lock: LockRequest): Promise<boolean | undefined> {
    try {
      return (await this.l2.run((c) => c.set(lock.key, lock.token, 'PX', lock.ttl, 'NX'))) === 'OK';
    } catch {
      return undefined;
    }
  }

  /** Whether some instance still holds the lock (false when Redis cannot tell: stop waiting; false for a key without a TTL, which no instance made). */
  async held(key: string): Promise<boolean> {
    try {
      const lockKey = this.lockKey(key);
      return (await this.l2.run((c) => (this.heldOnMaster ? (c.eval(HELD_SCRIPT, 1, lockKey) as Promise<number>) : c.pttl(lockKey)))) >= 0;
    } catch {
      return false;
    }
  }

  /**
   * Waits for another instance's fill of `key`: polls `look` until it finds
   * the result, the lock is gone with nothing stored (that fill stored
   * nothing), the lock's lifetime has passed, L2 is down, or `stop()` says to give up.
   * undefined when nothing came: the caller then fills itself.
   */
  async waitFor<T>(key: string, look: () => Promise<T | undefined>, stop?: () => boolean): Promise<T | undefined> {
    const deadline = performance.now() + this.ttl;
    // L2 going down (a failover, say) ends the wait: the holder may not be able to store either.
    for (let round = 1; performance.now() < deadline && stop?.() !== true && this.l2.state !== 'down'; round++) {
      await sleep(POLL_MS);
      const found = await look().catch(() => undefined);
      if (found !== undefined) return found;
      // Stored and unlocked in one step: a lock found gone may have just stored, so look once more.
      if (round % HELD_EVERY === 0 && !(await this.held(key))) return look().catch(() => undefined);
    }
    return undefined;
  }

  /** Releases `lock` while it is still held under its token. */
  release(lock: LockRequest): void {
    this.l2.run((c) => c.eval(RELEASE_SCRIPT, 1, lock.key, lock.token)).catch(() => undefined);
  }
}
