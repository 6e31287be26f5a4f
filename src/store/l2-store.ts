// L2: entries in Redis under the namespace, plus a circuit breaker so that a
// dead or frozen Redis costs at most one command timeout, not one per request.
// Every method throws on failure; the tiered store turns failures into misses.
import { TierCacheError } from '../errors.js';
import type { RedisClient } from './redis-client.js';

/** Thrown without touching Redis while the breaker is open or the client is down. */
export class L2UnavailableError extends TierCacheError {
  static override readonly code: string = 'TIERCACHE_L2_UNAVAILABLE';
}

export interface L2Options {
  readonly commandTimeout: number;
  /** After a timeout, fail fast this long before letting one probe command through. */
  readonly breakerCooldown: number;
  /** Whether the client enforces commandTimeout itself; otherwise we race a timer. */
  readonly clientBoundsCommands: boolean;
  readonly now: () => number;
  /** Called once per real failure (not for fast failures while open). */
  readonly onFailure: (err: Error) => void;
}

type Health = 'connecting' | 'ok' | 'down';

export class L2Store {
  hits = 0;
  misses = 0;
  errors = 0;
  private health: Health = 'connecting';
  private openUntil = 0;
  private probing = false;
  private readyWaiters: Array<(ok: boolean) => void> = [];

  constructor(
    readonly client: RedisClient,
    private readonly options: L2Options,
  ) {
    if (client.status === 'ready') this.health = 'ok';
    // A caller's client made with lazyConnect waits for a first command, which run() never sends before 'ready'.
    if (client.status === 'wait') client.connect().catch(() => undefined);
    client.on('ready', this.onReady);
    client.on('error', this.onError);
    client.on('close', this.onDown);
    client.on('end', this.onDown);
  }

  /** 'ok' when commands are being sent, 'down' when they fail fast. */
  get state(): 'ok' | 'down' | 'connecting' {
    if (this.health === 'ok' && this.openUntil > this.options.now()) return 'down';
    return this.health;
  }

  /** Resolves true once the client is ready, false if it fails first or `timeout` passes. */
  waitReady(timeout: number): Promise<boolean> {
    if (this.client.status === 'ready') return Promise.resolve(true);
    if (this.health === 'down') return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), timeout);
      const done = (ok: boolean) => {
        clearTimeout(timer);
        const i = this.readyWaiters.indexOf(done);
        if (i !== -1) this.readyWaiters.splice(i, 1);
        resolve(ok);
      };
      this.readyWaiters.push(done);
    });
  }

  detach(): void {
    this.client.off('ready', this.onReady);
    this.client.off('error', this.onError);
    this.client.off('close', this.onDown);
    this.client.off('end', this.onDown);
    this.settleWaiters(false);
  }

  get(key: string): Promise<Buffer | null> {
    return this.run((c) => c.getBuffer(key));
  }

  async set(key: string, value: Buffer, ttlMs: number): Promise<void> {
    await this.run((c) => c.set(key, value, 'PX', Math.max(1, Math.ceil(ttlMs))));
  }

  async del(key: string, urgent = false): Promise<void> {
    await this.run((c) => c.del(key), urgent);
  }

  /**
   * Runs one command through the breaker and the timeout. `urgent` commands
   * (invalidations: rare, and costly to lose) are tried even while the
   * breaker is open after a timeout — a timeout is often this process's own
   * GC pause — but not while the connection is down.
   */
  async run<T>(command: (client: RedisClient) => Promise<T>, urgent = false): Promise<T> {
    const now = this.options.now();
    let probe = false;
    if (this.health !== 'ok' || this.client.status !== 'ready') {
      if (this.health === 'down' || !(await this.waitReady(this.options.commandTimeout))) {
        throw this.unavailable('Redis is not connected');
      }
    } else if (urgent) {
      // straight through, bounded by the timeout
    } else if (this.openUntil > now) {
      throw this.unavailable('Redis timed out recently; skipping it until the cooldown ends');
    } else if (this.openUntil !== 0) {
      // Cooldown over: one command probes; the rest keep failing fast until it answers.
      if (this.probing) throw this.unavailable('Redis timed out recently; a probe is under way');
      this.probing = probe = true;
    }
    try {
      const result = await (this.options.clientBoundsCommands ? command(this.client) : withTimeout(command(this.client), this.options.commandTimeout));
      if (probe || urgent) this.openUntil = 0;
      return result;
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      this.errors++;
      if (/timed out/i.test(error.message)) this.openUntil = this.options.now() + this.options.breakerCooldown;
      this.options.onFailure(error);
      throw error;
    } finally {
      if (probe) this.probing = false;
    }
  }

  private unavailable(message: string): L2UnavailableError {
    this.errors++;
    return new L2UnavailableError(message);
  }

  private settleWaiters(ok: boolean): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const done of waiters) done(ok);
  }

  private readonly onReady = (): void => {
    this.health = 'ok';
    this.openUntil = 0;
    this.settleWaiters(true);
  };

  private readonly onDown = (): void => {
    if (this.client.status === 'ready') return;
    this.health = 'down';
    this.settleWaiters(false);
  };

  /** Connection errors repeat on every reconnect attempt: report only the one that takes Redis down. */
  private readonly onError = (err: Error): void => {
    const wasDown = this.health === 'down';
    this.onDown();
    if (!wasDown && this.health === 'down') this.options.onFailure(err);
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Command timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
