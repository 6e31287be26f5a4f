// One run per key at a time within this process: callers that arrive while a
// run is under way share its promise instead of starting their own — unless
// the run has gone stale (its key was invalidated after it began), or has
// outlived its wait (its loader has run longer than other instances wait on
// its lock), in which case a new run replaces it for everyone who arrives from
// then on. A loader that never settles holds its callers no longer than that.
// A run can also be superseded (a set() of its key on this instance): its
// callers still get its result, but nobody joins it any more and it stores nothing.
import { performance } from 'node:perf_hooks';
import { MAX_TIMER_MS } from '../keys/duration.js';
import type { CacheTier } from '../observe/events.js';

/** What wait() resolves when the run outlived the wait: the caller goes on without it. */
export const OVERDUE = Symbol('overdue');

export class Flight<T, M> {
  readonly promise: Promise<T>;
  /** What the run recorded about itself (its fill stamp), once known. */
  meta: M | undefined = undefined;
  /** The run found its value stored (in this tier) instead of loading it: what its waiters report too. */
  foundIn: CacheTier | undefined = undefined;
  /** A newer value of the key was given while the run was under way: the run's result must not be stored. */
  superseded = false;
  /** The run of the same key that this one replaced while it was still under way (see SingleFlight.start). */
  replaced: Flight<T, M> | undefined = undefined;
  /** Waiters stop waiting here (performance.now()); none until the run starts its clock. */
  private deadline = Infinity;
  private settled = false;
  private expired = false;
  private timer: NodeJS.Timeout | undefined;
  private expire: (() => void) | undefined;
  /** Made when the first waiter asks: most runs have none. */
  private overdue: Promise<typeof OVERDUE> | undefined;

  constructor(
    run: (flight: Flight<T, M>) => Promise<T>,
    private readonly maxWait: number,
    /** Its place among the runs its SingleFlight began (see SingleFlight.begun). */
    readonly ordinal: number,
  ) {
    this.promise = Promise.resolve().then(() => run(this));
    const done = () => {
      this.settled = true;
      clearTimeout(this.timer);
    };
    this.promise.then(done, done);
  }

  /**
   * From now on waiters wait at most maxWait: called when the run's unbounded
   * part (the loader) begins. What comes before (lookups, a wait on another
   * instance's lock) is bounded by timeouts of its own.
   */
  startClock(): void {
    this.deadline = performance.now() + this.maxWait;
    this.arm();
  }

  /** Whether the run has settled. */
  get isSettled(): boolean {
    return this.settled;
  }

  /** Whether waiters have stopped waiting for it (once wait() has said so, always: a caller told OVERDUE must not be handed it again). */
  get isOverdue(): boolean {
    return !this.settled && (this.expired || performance.now() >= this.deadline);
  }

  /** The run's result, or OVERDUE once its wait is over (the run may still settle later). */
  wait(): Promise<T | typeof OVERDUE> {
    this.overdue ??= new Promise<typeof OVERDUE>((resolve) => {
      this.expire = () => {
        this.expired = true;
        resolve(OVERDUE);
      };
    });
    this.arm();
    return Promise.race([this.promise, this.overdue]);
  }

  private arm(): void {
    if (this.expire === undefined || this.timer !== undefined || this.settled || this.deadline === Infinity) return;
    // setTimeout fires at once past 2^31 - 1 ms (a lockTimeout of weeks): wait in steps instead.
    const left = this.deadline - performance.now();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (performance.now() >= this.deadline) this.expire!();
      else this.arm();
    }, Math.min(Math.max(0, left), MAX_TIMER_MS));
  }
}

export class SingleFlight<T, M = unknown> {
  private readonly inflight = new Map<string, Flight<T, M>>();
  private started = 0;

  constructor(
    /** How long callers wait on a run once its clock started (ms). */
    private readonly maxWait: number,
  ) {}

  /**
   * How many runs have begun: a run whose ordinal is above what a caller read when it came began after it
   * (its loader read the source after the caller asked).
   */
  get begun(): number {
    return this.started;
  }

  /** The run under way for `key` that callers still wait for, if any (never a superseded one). */
  current(key: string): Flight<T, M> | undefined {
    const flight = this.inflight.get(key);
    return flight === undefined || flight.isOverdue || flight.superseded ? undefined : flight;
  }

  /** Starts `run` for `key`, replacing any run under way (callers already waiting on it keep it). */
  start(key: string, run: (flight: Flight<T, M>) => Promise<T>): Promise<T> {
    const flight = new Flight<T, M>(run, this.maxWait, ++this.started);
    const forget = () => {
      if (this.inflight.get(key) !== flight) return;
      // A run this one replaced may still be under way: supersede() must still find it.
      let older = flight.replaced;
      while (older !== undefined && older.isSettled) older = older.replaced;
      if (older === undefined) this.inflight.delete(key);
      else this.inflight.set(key, older);
    };
    // A run replaced while it is still under way (overdue, stale) may still finish and store: supersede() reaches it through this link.
    flight.replaced = this.inflight.get(key);
    this.inflight.set(key, flight);
    return flight.promise.finally(forget);
  }

  /**
   * Every run of `key` under way (and the runs they replaced, still under
   * way) is superseded: its callers get its result, nobody joins it from
   * now on, and it must not store what it loaded. No cost without runs.
   */
  supersede(key: string): void {
    for (let flight = this.inflight.get(key); flight !== undefined; flight = flight.replaced) flight.superseded = true;
  }
}
