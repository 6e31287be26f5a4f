// One run per key at a time within this process: callers that arrive while a
// run is under way share its promise instead of starting their own.

export class SingleFlight<T> {
  private readonly inflight = new Map<string, Promise<T>>();

  /** The promise of the run under way for `key`, if any. */
  current(key: string): Promise<T> | undefined {
    return this.inflight.get(key);
  }

  /** Starts `run` for `key` unless one is under way; returns the shared promise. */
  run(key: string, run: () => Promise<T>): Promise<T> {
    const existing = this.inflight.get(key);
    if (existing !== undefined) return existing;
    const promise = run().finally(() => {
      if (this.inflight.get(key) === promise) this.inflight.delete(key);
    });
    this.inflight.set(key, promise);
    return promise;
  }

  get size(): number {
    return this.inflight.size;
  }
}
