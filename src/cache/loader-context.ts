// What a getOrSet loader is handed: it may decide the lifetime of the value it
// returns (a token's own expiry, an upstream's Cache-Control) or that the
// value must not be stored at all, as bentocache's factory context does.
import { parseTtl, type Duration } from '../keys/duration.js';

/** What a getOrSet loader may decide about the value it returns. */
export interface LoaderContext {
  /** The key being loaded (as given to getOrSet). */
  readonly key: string;
  /** Stores the value for this long instead of the call's (or the cache's) ttl. */
  setTtl(ttl: Duration): void;
  /** Returns the value to the callers without storing it (an answer that must not be cached). */
  skip(): void;
}

/** A getOrSet loader: the value to cache; undefined stores nothing. */
export type Loader<T> = (ctx: LoaderContext) => T | Promise<T>;

export class LoadContext implements LoaderContext {
  skipped = false;

  constructor(
    readonly key: string,
    /** The TTL the value is stored with (ms): the call's, unless the loader set one. */
    public ttl: number,
  ) {}

  setTtl(ttl: Duration): void {
    this.ttl = parseTtl('setTtl', ttl, 'call skip() to return the value without storing it');
  }

  skip(): void {
    this.skipped = true;
  }
}
