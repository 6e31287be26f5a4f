// L2: entries in Redis under the namespace, plus a circuit breaker so that a
// dead or frozen Redis costs at most one command timeout, not one per request.
// A caller waits at most one command timeout in all: before the first
// connection is up, the wait for it counts, and it ends for every caller a
// command timeout after the store was made (see run()).
// While the breaker is open a background probe, never a request, finds out
// when Redis answers again. Every method throws on failure; the tiered store
// turns failures into misses. Going down and coming back are each reported
// once per transition (onDown / onUp), not once per failed command.
import { performance } from 'node:perf_hooks';
import { TierCacheError } from '../errors.js';
import { clusterDown, LostNodes, movedUnfollowed, nodeGone } from './cluster-faults.js';
import { CommandDeadlines } from './command-deadlines.js';
import { getFromMaster, isCluster, readsReplicas, type RedisClient } from './redis-client.js';
import { leaveUnlessAt, SENTINEL_QUESTION_GAP_MS, sentinelMaster, sentinelWait, type MasterAddress } from './sentinel-master.js';
import { ServerClock } from './server-clock.js';

/** Thrown without touching Redis while the breaker is open or the client is down. */
export class L2UnavailableError extends TierCacheError {
  static override readonly code: string = 'TIERCACHE_L2_UNAVAILABLE';
}

/**
 * L2UnavailableError for a command that was never sent: nothing it asked for
 * can reach Redis later (a set() refused so has no value that may land).
 */
export class L2NotSentError extends L2UnavailableError {}

export interface L2Options {
  readonly commandTimeout: number;
  /** After a timeout, fail fast and probe in the background this often until Redis answers. */
  readonly breakerCooldown: number;
  /**
   * Whether the client bounds each caller's wait by commandTimeout itself
   * (see openRedis); otherwise one shared timer does (CommandDeadlines).
   */
  readonly clientBoundsCommands: boolean;
  /**
   * Run on every new connection before any other command goes through, and
   * as the background probe: commands flow once it resolves. @default PING
   */
  readonly check?: (client: RedisClient) => Promise<unknown>;
  /** Called once per transition to down (connection lost, or a command timed out). */
  readonly onDown: (err: Error) => void;
  /** Called once per transition to up; `recovered` is false for the first connection. */
  readonly onUp: (recovered: boolean) => void;
  /** Called for a failed command while Redis stays up (a reply error, say). */
  readonly onFailure: (err: Error) => void;
}

type Phase = 'connecting' | 'ok' | 'down' | 'detached';

const ping = (client: RedisClient) => client.ping();

export class L2Store {
  hits = 0;
  misses = 0;
  errors = 0;
  private phase: Phase = 'connecting';
  /** The client is ready and this connection passed the check. */
  // Stryker disable next-line BooleanLiteral: every path to update() before the first 'ready' clears it first
  private connected = false;
  /** A command timed out: requests fail fast until the probe gets an answer. */
  private breakerOpen = false;
  private checking = false;
  /** A new connection arrived while a check was under way: check again. */
  private recheck = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private readyWaiters: Array<(ok: boolean) => void> = [];
  /** waitUp()'s: told only when L2 comes up (true) or is detached (false). */
  private upWaiters: Array<(ok: boolean) => void> = [];
  /**
   * performance.now() past which no command waits for the first connection:
   * one that is not up a command timeout after the store was made (a route
   * dropping packets, a Redis accepting connections but answering nothing, on
   * a client with no timeout of its own) fails fast, as a down one does, until it is.
   */
  private readonly readyBy: number;
  /** Bounds commands when the client does not (undefined when it does). */
  private readonly deadlines: CommandDeadlines | undefined;
  /** The client may send a GET to a replica: get() asks the master (see getFromMaster). */
  private readonly fromMaster: boolean;
  /** Ends the question out to the sentinels, if one is (see followSentinels). */
  private askingSentinels: AbortController | undefined;
  /** When the last question to the sentinels ended (performance.now()): see followSentinels. */
  private sentinelsAnsweredAt = -Infinity;
  /** Connections lost so far (see failed()). */
  private losses = 0;
  /** On a Cluster: the nodes whose connection the client lost (see nodeGone). */
  private readonly lostNodes: LostNodes | undefined;
  /**
   * Redis's clock, learned by the epoch check (RedisVersions.serverEpoch):
   * what a set()'s deadline is given in. Standalone and Sentinel only: a
   * Cluster's masters each have a clock of their own, and the check asks one.
   */
  readonly clock: ServerClock | undefined;

  constructor(
    readonly client: RedisClient,
    private readonly options: L2Options,
  ) {
    this.deadlines = options.clientBoundsCommands ? undefined : new CommandDeadlines(options.commandTimeout);
    this.fromMaster = readsReplicas(client);
    this.readyBy = performance.now() + options.commandTimeout;
    this.clock = isCluster(client) ? undefined : new ServerClock();
    this.lostNodes = isCluster(client) ? new LostNodes(client) : undefined;
    client.on('ready', this.onReady);
    client.on('error', this.onError);
    client.on('close', this.onClose);
    // Stryker disable next-line StringLiteral: ioredis emits 'close' before every 'end'; this one is for clients that do not
    client.on('end', this.onClose);
    // A caller's client made with lazyConnect waits for a first command, which run() never sends before 'ready'.
    // Stryker disable next-line ConditionalExpression: connect() on a client that is not waiting rejects, and the rejection is ignored
    if (client.status === 'wait') client.connect().catch(() => undefined);
    // Checked once the owner is built (the check may use it), like any later connection.
    // Stryker disable next-line ConditionalExpression: the check onReady starts returns at once on a client not ready yet, whose 'ready' comes later
    if (client.status === 'ready') queueMicrotask(this.onReady);
  }

  /** 'ok' when commands are being sent, 'down' when they fail fast, 'connecting' before the first connection. */
  /** Whether Redis is skipped after a timeout until a probe gets an answer (for stats). */
  get breakerIsOpen(): boolean {
    return this.breakerOpen;
  }

  /** How long one command may take (l2.commandTimeout). */
  get commandTimeout(): number {
    return this.options.commandTimeout;
  }

  /**
   * How long a caller waits for one command at most: the command timeout, or
   * the client's own when shorter (a caller's client with a timeout of its own).
   */
  get callerWait(): number {
    const options = (this.client as { options?: { commandTimeout?: unknown; redisOptions?: { commandTimeout?: unknown } } }).options;
    const own = options?.commandTimeout ?? options?.redisOptions?.commandTimeout;
    const l2 = this.options;
    return typeof own === 'number' && own > 0 && own < l2.commandTimeout ? own : l2.commandTimeout;
  }

  get state(): 'ok' | 'down' | 'connecting' {
    return this.phase === 'detached' ? 'down' : this.phase;
  }

  /** Resolves true once L2 is up, false if it goes down first or `timeout` passes. */
  waitReady(timeout: number): Promise<boolean> {
    if (this.phase === 'ok') return Promise.resolve(true);
    if (this.phase !== 'connecting' || timeout <= 0) return Promise.resolve(false);
    return this.waitIn('readyWaiters', timeout, false);
  }

  /**
   * Resolves true once L2 is up (at once if it is), false when `timeout`
   * passes first or the store is detached. Unlike waitReady(), it waits
   * through a connection that is down.
   */
  waitUp(timeout: number): Promise<boolean> {
    if (this.phase === 'ok') return Promise.resolve(true);
    if (this.phase === 'detached' || timeout <= 0) return Promise.resolve(false);
    return this.waitIn('upWaiters', timeout, true);
  }

  /** A wait settled by settleWaiters through the list `waiters` names (it is replaced as it is settled), or false after `timeout`. */
  private waitIn(waiters: 'readyWaiters' | 'upWaiters', timeout: number, unref: boolean): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), timeout);
      if (unref) timer.unref();
      const done = (ok: boolean) => {
        clearTimeout(timer);
        const list = this[waiters];
        const i = list.indexOf(done);
        // Stryker disable next-line ConditionalExpression: i is -1 only once settleWaiters has emptied the list: splice(-1, 1) of nothing
        if (i !== -1) list.splice(i, 1);
        resolve(ok);
      };
      this[waiters].push(done);
    });
  }

  detach(): void {
    this.phase = 'detached';
    clearTimeout(this.probeTimer);
    this.client.off('ready', this.onReady);
    this.client.off('error', this.onError);
    this.client.off('close', this.onClose);
    this.client.off('end', this.onClose);
    this.lostNodes?.close();
    this.askingSentinels?.abort();
    this.settleWaiters(false);
  }

  /**
   * On a Cluster: whether one of `slots` is served, as the client's slot map
   * has it, by a node whose connection it lost (see LostNodes). A command
   * there fails on that slot alone, by a spent redirection budget or, with a
   * short command timeout, a timeout.
   */
  servedByLost(slots: readonly number[]): boolean {
    const lost = this.lostNodes;
    if (lost === undefined) return false;
    const map = (this.client as { slots?: ReadonlyArray<readonly string[] | undefined> }).slots;
    return slots.some((slot) => {
      const master = map?.[slot]?.[0];
      return master !== undefined && lost.has(master);
    });
  }

  /** An entry's bytes, from the master even on a client that reads replicas (a lagging one has older bytes, or none). */
  get(key: string): Promise<Buffer | null> {
    return this.run(this.fromMaster ? (c) => getFromMaster(c, key) : (c) => c.getBuffer(key));
  }

  async del(key: string, urgent = false): Promise<void> {
    await this.run((c) => c.del(key), urgent);
  }

  /**
   * Runs one command through the breaker and the timeout. `urgent` commands
   * (invalidations: rare, and costly to lose) are tried even while the
   * breaker is open after a timeout — a timeout is often this process's own
   * GC pause — but not while the connection is down. `since`
   * (performance.now()): when the caller began waiting, if before the call
   * (a fill held until the first connection is up). A caller waits one
   * command timeout at most, from `since` or the call, the wait for the first
   * connection included: a command sent late is still given its whole
   * timeout, for the breaker, but the caller stops waiting for it then.
   */
  async run<T>(command: (client: RedisClient) => Promise<T>, urgent = false, since?: number): Promise<T> {
    let until: number | undefined;
    if (this.phase !== 'ok') {
      const through = urgent && this.breakerOpen && this.connected;
      if (!through) {
        until = (since ?? performance.now()) + this.options.commandTimeout;
        // Stryker disable next-line ConditionalExpression: waitReady answers false at once in any phase but 'connecting'
        if (this.phase !== 'connecting' || !(await this.waitReady(Math.min(until, this.readyBy) - performance.now()))) {
          throw this.unavailable(this.breakerOpen ? 'Redis timed out recently; skipping it until a probe gets an answer' : 'Redis is not connected', true);
        }
      }
    } else if (since !== undefined) until = since + this.options.commandTimeout;
    if (until !== undefined) return this.within(command, until);
    const losses = this.losses;
    try {
      return this.answered(await this.bounded(command));
    } catch (err) {
      throw this.fault(err, true, losses);
    }
  }

  /** A store refused before it was sent, Redis being unable to hold it (see EntryUnfitError): counted and reported as a failed command is. */
  refuse(err: Error): void {
    this.errors++;
    this.options.onFailure(err);
  }

  /** A command answered: a breaker opened by an earlier timeout closes. */
  private answered<T>(result: T): T {
    // Stryker disable next-line ConditionalExpression: closing a closed breaker changes nothing while L2 is up, the only phase a command runs in with it closed
    if (this.breakerOpen) this.closeBreaker();
    return result;
  }

  /** A command sent while `losses` connections had been lost failed: sorted (see failed()) and, when `count`, counted. */
  private fault(err: unknown, count: boolean, losses: number): Error {
    const error = err instanceof Error ? err : new Error(String(err));
    if (count) this.errors++;
    this.failed(error, losses);
    return error;
  }

  /**
   * run() for a caller that has already waited (for the first connection, or
   * before the call): the command, bounded as any, and the caller's wait
   * ending at `until`. Past it the caller gets L2UnavailableError and the
   * command goes on unwatched but for the breaker (a healthy Redis that just
   * came up is not reported down because a caller ran out of time).
   */
  private within<T>(command: (client: RedisClient) => Promise<T>, until: number): Promise<T> {
    const left = until - performance.now();
    if (left <= 0) return Promise.reject(this.unavailable('Redis was not ready within the command timeout', true));
    let gaveUp = false;
    const losses = this.losses;
    const sent = this.bounded(command).then(
      (result) => this.answered(result),
      // Counted once: as the caller's wait, when that ended first.
      (err: unknown) => {
        throw this.fault(err, !gaveUp, losses);
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        gaveUp = true;
        reject(this.unavailable('Redis was not ready within the command timeout'));
      }, Math.ceil(left));
    });
    return Promise.race([sent, late]).finally(() => clearTimeout(timer));
  }

  /** The command, bounded by commandTimeout from now. */
  private bounded<T>(command: (client: RedisClient) => Promise<T>): Promise<T> {
    const deadlines = this.deadlines;
    return deadlines === undefined ? command(this.client) : deadlines.bound(command, this.client);
  }

  /**
   * Sorts a failure of a command sent while `losses` connections had been
   * lost: a timeout, a replica's refusal, a Cluster node that stays
   * unreachable or a Cluster down (see cluster-faults) opens the breaker, a lost connection takes L2 down, anything
   * else is reported as is.
   */
  private failed(error: Error, losses: number): void {
    const timedOut = /timed out/i.test(error.message);
    if (timedOut || readOnly(error) || nodeGone(error, this.lostNodes) || clusterDown(error)) {
      // Its connection was lost since: the client dropped it (a client that does not send again, as openRedis's),
      // and only its timer answered it. Redis was not slow; the loss was taken (and reported) as such, and the
      // next connection's check, not a breaker, says when commands go through.
      if (timedOut && this.losses !== losses) return;
      this.breakerOpen = true;
      this.update(error);
      this.scheduleProbe();
      if (timedOut) this.askRoutes();
    // Stryker disable next-line BlockStatement: the 'close' that comes with a lost connection takes L2 down as well, a moment later
    } else if (this.client.status !== 'ready') {
      this.connected = false;
      this.update(error);
    } else {
      // The slot moved (resharding): the client asks where it went now, not at its next periodic refresh.
      if (movedUnfollowed(error)) this.askRoutes();
      this.options.onFailure(error);
    }
  }

  /**
   * A Cluster node that stopped answering without closing its connections (a
   * paused or hung master) sends no MOVED and no reset, so a Cluster client
   * keeps routing its slots to it after its replica took over, and the
   * breaker never closes: every slot's commands skip L2 for as long as the
   * old master stays stalled. Asking for the slot map again after a timeout
   * moves those slots to whoever serves them now, before the next probe. A
   * Sentinel client stays on such a master likewise: its sentinels are asked
   * (see followSentinels).
   */
  private askRoutes(): void {
    if (isCluster(this.client)) this.client.refreshSlotsCache();
    else void this.followSentinels();
  }

  /**
   * When the sentinels name another master than the one the client is
   * connected to, drops that connection so that the client reconnects
   * through them (see sentinel-master.ts). One question at a time; none for
   * a client without sentinels, not connected (it asks them as it reconnects), or detached.
   */
  private async followSentinels(): Promise<void> {
    // Detached: a command that was out at close() times out later, and the question would outlive the cache.
    if (this.askingSentinels !== undefined || this.phase === 'detached' || this.client.status !== 'ready') return;
    // The commands out when a master stalls time out one after another, each a question with the same answer
    // (measured: 44 timeouts, 44 connections to the sentinels in half a second): the first one, and the probes', suffice.
    if (performance.now() - this.sentinelsAnsweredAt < SENTINEL_QUESTION_GAP_MS) return;
    const asking = new AbortController();
    this.askingSentinels = asking;
    try {
      const master = await sentinelMaster(this.client, sentinelWait(this.options.commandTimeout), asking.signal);
      if (master !== undefined) this.follow(master);
    } finally {
      this.askingSentinels = undefined;
      this.sentinelsAnsweredAt = performance.now();
    }
  }

  /** Drops the client's connection when it does not go to `master`, as the sentinels name it: it reconnects through them. */
  follow(master: MasterAddress): void {
    // Once detached, the caller's client is none of tiercache's business.
    if (this.phase !== 'detached') leaveUnlessAt(this.client, master);
  }

  private unavailable(message: string, unsent = false): L2UnavailableError {
    this.errors++;
    return unsent ? new L2NotSentError(message) : new L2UnavailableError(message);
  }

  /** Moves to 'ok' or 'down' from the connection and breaker state, reporting a change once. */
  private update(cause?: Error): void {
    if (this.phase === 'detached') return;
    const up = this.connected && !this.breakerOpen;
    // Stryker disable next-line ConditionalExpression: update() never finds L2 up in phase 'ok': a new connection passes through 'down' first
    if (up && this.phase !== 'ok') {
      const recovered = this.phase === 'down';
      this.phase = 'ok';
      this.settleWaiters(true);
      this.options.onUp(recovered);
    } else if (!up && this.phase !== 'down') {
      // Also before the first connection was up: a far end that accepts and closes (a proxy
      // without a backend) sends no error, and 'connecting' would make every command wait for it.
      const lost = this.phase === 'ok' ? 'the connection to Redis was lost' : 'Redis closed the connection before it was ready';
      this.phase = 'down';
      this.settleWaiters(false);
      this.options.onDown(cause ?? new Error(lost));
    }
  }

  private closeBreaker(): void {
    this.breakerOpen = false;
    clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    this.update();
  }

  private scheduleProbe(): void {
    // Stryker disable next-line ConditionalExpression: a probe scheduled after detach() returns at once
    if (this.probeTimer !== undefined || this.phase === 'detached') return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      void this.probe();
    }, this.options.breakerCooldown);
    this.probeTimer.unref();
  }

  /**
   * The connection check, also used as the probe: in the background, so no
   * request ever waits on it. Success lets commands through; a timeout or a
   * lost connection keeps them failing fast and probes again later.
   */
  private async probe(): Promise<void> {
    if (this.checking) {
      this.recheck = true;
      return;
    }
    if (this.phase === 'detached' || this.client.status !== 'ready') return;
    this.checking = true;
    try {
      await this.bounded(this.options.check ?? ping);
      this.passed();
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      // A replica's or a broken Cluster's refusal answers too, but says commands would fail.
      const refused = readOnly(error) || clusterDown(error);
      if (error.name === 'ReplyError' && this.client.status === 'ready' && !refused) {
        // Redis answered: it is up, only the check failed (an ACL, say). Say so and go on.
        this.options.onFailure(error);
        this.passed();
      } else {
        if (/timed out/i.test(error.message) || refused) {
          this.breakerOpen = true;
          if (!refused) this.askRoutes();
        }
        // Stryker disable next-line ConditionalExpression: the 'close' of the lost connection clears it as well, a moment later
        else if (this.client.status !== 'ready') this.connected = false;
        this.update(error);
        this.scheduleProbe();
      }
    } finally {
      this.checking = false;
    }
    if (this.recheck) {
      this.recheck = false;
      void this.probe();
    }
  }

  private passed(): void {
    if (this.phase === 'detached' || this.client.status !== 'ready' || this.recheck) return;
    this.connected = true;
    this.closeBreaker();
  }

  private settleWaiters(ok: boolean): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const done of waiters) done(ok);
    // Going down is no answer for these: they wait for up (or detach, which is final).
    if (!ok && this.phase !== 'detached') return;
    const up = this.upWaiters;
    this.upWaiters = [];
    for (const done of up) done(ok);
  }

  /** A new connection: nothing goes through until it passed the check. */
  private readonly onReady = (): void => {
    this.connected = false;
    void this.probe();
  };

  private readonly onClose = (): void => {
    this.losses++;
    this.clock?.newConnection();
    // Stryker disable next-line ConditionalExpression: ioredis never emits 'close' or 'end' with the status 'ready'
    if (this.client.status === 'ready') return;
    this.connected = false;
    this.update();
  };

  /** Connection errors repeat on every reconnect attempt: only the one that takes L2 down is reported (by update). */
  private readonly onError = (err: Error): void => {
    if (this.client.status === 'ready') return;
    this.connected = false;
    this.update(err);
  };
}

/**
 * A replica's refusal of a write. Every fill and invalidation writes, so a
 * client that reaches a replica (pointed at one, or at a master demoted since,
 * as in a failover behind a DNS name or proxy) is as good as down: the breaker
 * opens, and a probe finds out when the server is a master again. Answered
 * as a reply error instead, each request paid a round trip and an 'error'.
 */
function readOnly(error: Error): boolean {
  return error.message.startsWith('READONLY');
}

/** `promise`, or a rejection once `ms` passed. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Command timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
