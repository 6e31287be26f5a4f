// 'tiercache/express': Express middleware. Lands with the middleware issue.
import type { TierCache } from './cache/tier-cache.js';

/** Express middleware caching whole responses (not implemented yet). */
export function expressCache(_cache: TierCache, _options?: Record<string, unknown>): never {
  throw new Error('tiercache/express: expressCache is not implemented yet');
}
