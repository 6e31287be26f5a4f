// koa-cash as its README sets it up, for the scenarios that measure it:
// get/set on an lru-cache of 10,000 entries living 60 s, and ctx.cashed()
// typed for the handlers that call it.
import type { Middleware } from 'koa';
import koaCash from 'koa-cash';
import { LRUCache } from 'lru-cache';

declare module 'koa' {
  interface BaseContext {
    /** Added by koa-cash: true when the answer was served from its store. */
    cashed(maxAge?: number): Promise<boolean>;
  }
}

/** koa-cash on an LRU; `setCachedHeader` marks answers served from it (for the runner's checks). */
export function koaCashOnLru(setCachedHeader: boolean): Middleware {
  const lru = new LRUCache<string, object>({ max: 10_000, ttl: 60_000 });
  return koaCash({
    setCachedHeader,
    get: (key: string) => lru.get(key),
    set: (key: string, value: object) => {
      lru.set(key, value);
    },
  });
}
