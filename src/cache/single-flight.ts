// One run per key at a time within this process: callers that arrive while a
// run is under way share its promise instead of starting their own — unless
// the run has gone stale (its key was invalidated after it began), in which
// case a new run replaces it for everyone who arrives from then on.

export interface Flight<T, M> {
  readonly promise: Promise<T>;
  /** What the run recorded about itself (its fill stamp), once known. */
  meta: M | undefined;
}

export class SingleFlight<T, M = unknown> {
  private readonly inflight = new Map<string, Flight<T, M>>();

  /** The run under way for `key`, if any. */
  current(key: string): Flight<T, M> | undefined {
    return this.inflight.get(key);
  }

  /** Starts `run` for `key`, replacing any run under way (callers already waiting on it keep it). */
  start(key: string, run: (flight: Flight<T, M>) => Promise<T>): Promise<T> {
    const flight: Flight<T, M> = { promise: undefined as unknown as Promise<T>, meta: undefined };
    const promise = Promise.resolve()
      .then(() => run(flight))
      .finally(() => {
        if (this.inflight.get(key) === flight) this.inflight.delete(key);
      });
    (flight as { promise: Promise<T> }).promise = promise;
    this.inflight.set(key, flight);
    return promise;
  }
}
