// Bounds how long callers wait on Redis commands, with one timer for all of
// them rather than one each. Every command gets the same timeout, so deadlines
// come in the order commands are sent: the oldest pending command always has
// the earliest one, and one timer set for it is enough. The client's own
// commandTimeout is not such a bound when it auto-pipelines: its timer starts
// only when a batch is written, and a batch waits while the one before it is
// in flight, so on a frozen Redis a command waited up to twice the timeout.
// A deadline is judged only once the process has read what reached it: after
// a blocked event loop the timer fires before the sockets are read, and a
// reply Redis sent in time would count as Redis's silence (an outage).

interface Waiter {
  /** performance.now() when the caller stops waiting: a timeout after the turn that sent the command ended (see stamp). */
  at: number;
  /** Rejects the caller's promise; undefined once it has settled. */
  reject: ((err: Error) => void) | undefined;
  next: Waiter | undefined;
}

export class CommandDeadlines {
  /** Oldest first; settled waiters are dropped when the timer passes them. */
  private head: Waiter | undefined;
  private tail: Waiter | undefined;
  /** Set while a timer or a judgment (see expire) is pending for the oldest waiter. */
  private armed = false;
  /** The first waiter of this turn of the event loop, until stamp() runs at its end. */
  private turnFirst: Waiter | undefined;

  constructor(private readonly timeout: number) {}

  /** What `send(client)` resolves to, or a rejection ("Command timed out") once `timeout` ms passed, whichever is first. */
  bound<C, T>(send: (client: C) => Promise<T>, client: C): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = { at: performance.now() + this.timeout, reject, next: undefined };
      send(client).then(
        (value) => {
          waiter.reject = undefined;
          resolve(value);
        },
        (err: unknown) => {
          waiter.reject = undefined;
          reject(err);
        },
      );
      if (this.tail === undefined) this.head = waiter;
      else this.tail.next = waiter;
      this.tail = waiter;
      if (this.turnFirst === undefined) {
        this.turnFirst = waiter;
        setImmediate(this.stamp);
      }
      if (!this.armed) this.arm(this.timeout);
    });
  }

  private arm(ms: number): void {
    this.armed = true;
    // Node may fire a fraction of a millisecond early by performance.now(): judge() then sets it again.
    setTimeout(this.expire, Math.max(1, Math.ceil(ms))).unref();
  }

  /**
   * A command sent in this turn is written at its end (write-batching.ts
   * corks the socket until then), however long the turn's own work takes:
   * its wait for Redis starts there. Counted from the call, a turn that ran
   * past the timeout had its commands timed out before they were sent.
   */
  private readonly stamp = (): void => {
    const at = performance.now() + this.timeout;
    for (let w = this.turnFirst; w !== undefined; w = w.next) w.at = at;
    this.turnFirst = undefined;
  };

  /**
   * Timers run before the loop reads its sockets: the judgment waits for that
   * read (setImmediate runs right after it), so a reply that arrived while
   * the process could not look (a blocked loop) is taken, not timed out. Who
   * was due is fixed now: a read that takes long itself makes no one late.
   */
  private readonly expire = (): void => {
    setImmediate(this.judge, performance.now());
  };

  private readonly judge = (now: number): void => {
    this.armed = false;
    let w = this.head;
    while (w !== undefined && (w.reject === undefined || w.at <= now)) {
      const reject = w.reject;
      if (reject !== undefined) {
        w.reject = undefined;
        reject(new Error(`Command timed out after ${this.timeout} ms`));
      }
      w = w.next;
    }
    this.head = w;
    if (w === undefined) this.tail = undefined;
    else this.arm(w.at - performance.now());
  };
}
