// 'tiercache/koa': Koa middleware. Lands with the middleware issue.
import type { TierCache } from './cache/tier-cache.js';

/** Koa middleware caching whole responses (not implemented yet). */
export function koaCache(_cache: TierCache, _options?: Record<string, unknown>): never {
  throw new Error('tiercache/koa: koaCache is not implemented yet');
}
