// TTL jitter: entries filled together (a deploy, a warm-up, a popular page
// after an invalidation) would otherwise expire together and miss together.
// A jitter of '10%' shortens each stored entry's TTL by a random part of up
// to 10%: lifetimes spread out below the configured TTL, never above it, so
// the TTL stays a bound on how stale an answer can be.
import { TierCacheConfigError } from '../errors.js';

/** A share of the TTL, written as a percentage: `'10%'`. */
export type Jitter = `${number}%`;

const PERCENT = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/;

/**
 * Parses a jitter option into a fraction of the TTL (0 <= f < 1); undefined when not given.
 * @throws TierCacheConfigError naming `option`.
 */
export function parseJitter(option: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const match = typeof value === 'string' ? PERCENT.exec(value) : null;
  const percent = match === null ? NaN : Number(match[1]);
  if (!(percent >= 0 && percent < 100)) {
    throw new TierCacheConfigError(option, value, "must be a percentage of the TTL from '0%' to below '100%', such as '10%'");
  }
  return percent / 100;
}

/** `ttl` shortened by a random part of up to `fraction` of it (at least 1 ms is left). */
export function jitteredTtl(ttl: number, fraction: number): number {
  if (fraction === 0) return ttl;
  return Math.max(1, ttl - Math.floor(Math.random() * fraction * ttl));
}
