// Durations in options: a number is milliseconds, a string uses the `ms`
// format ('30s', '5m', '1h'). Parsed once, when options are resolved.
import ms from 'ms';
import { TierCacheConfigError } from '../errors.js';

/** A unit the `ms` format reads after a number, in lower case. */
type DurationUnitLower =
  | 'ms' | 'msec' | 'msecs' | 'millisecond' | 'milliseconds'
  | 's' | 'sec' | 'secs' | 'second' | 'seconds'
  | 'm' | 'min' | 'mins' | 'minute' | 'minutes'
  | 'h' | 'hr' | 'hrs' | 'hour' | 'hours'
  | 'd' | 'day' | 'days'
  | 'w' | 'week' | 'weeks'
  | 'y' | 'yr' | 'yrs' | 'year' | 'years';

/** A unit as `ms` reads it: case does not matter ('5m', '5 Minutes', '5 MIN'). */
export type DurationUnit = DurationUnitLower | Capitalize<DurationUnitLower> | Uppercase<DurationUnitLower>;

/**
 * A duration string in the `ms` format: a number, optionally followed by a
 * unit, with or without one space (`'30s'`, `'5 minutes'`, `'1.5h'`,
 * `'250'` = 250 ms). A typo such as `'5 minutez'` does not compile.
 */
export type DurationString = `${number}` | `${number}${DurationUnit}` | `${number} ${DurationUnit}`;

/** A duration: milliseconds as a number, or an `ms` string such as `'30s'`. */
export type Duration = number | DurationString;

/**
 * The longest duration any option takes: 10 years (`'10y'`; ms counts a year
 * as 365.25 days). Far beyond any real lifetime, and safe where durations
 * end up: an entry lives its ttl plus two stale windows (30 years at most,
 * about 9.5e11 ms), which Redis takes as a PX argument only as an integer in
 * plain digits up to about 9.2e18 minus its clock, and `now` plus that
 * (about 2.6e12) stays an exact integer in the float64 times of the entry format.
 */
export const MAX_DURATION_MS = 10 * 365.25 * 24 * 60 * 60 * 1000;

/** The longest delay node's setTimeout keeps; past it a timer fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Parses a duration option that becomes a timer's delay (a command's timeout,
 * the breaker's cooldown): like parseDuration, but at most MAX_TIMER_MS, since
 * a longer one would fire at once.
 */
export function parseTimerDuration(option: string, value: unknown): number {
  const whole = parseDuration(option, value);
  if (whole > MAX_TIMER_MS) throw new TierCacheConfigError(option, value, `must be at most ${MAX_TIMER_MS} ms (about 24.8 days): node's timers fire at once past it`);
  return whole;
}

/**
 * Parses a duration option into whole milliseconds.
 * @throws TierCacheConfigError naming `option` when the value is not a
 * finite, non-negative number or an `ms` string, or is longer than MAX_DURATION_MS.
 */
export function parseDuration(option: string, value: unknown): number {
  let parsed: number | undefined;
  if (typeof value === 'number') parsed = value;
  else if (typeof value === 'string' && value.trim() !== '') {
    // ms() reads plain digit strings as milliseconds, returns undefined for what it
    // cannot read, and takes no leading space: surrounding white space is trimmed.
    parsed = ms(value.trim() as ms.StringValue) as number | undefined;
  }
  if (parsed === undefined || !Number.isFinite(parsed) || parsed < 0) {
    throw new TierCacheConfigError(option, value, "must be a non-negative duration: milliseconds as a number, or a string such as '30s', '5m', '1h'");
  }
  const whole = Math.round(parsed);
  if (whole > MAX_DURATION_MS) throw new TierCacheConfigError(option, value, `must be at most 10 years ('10y', ${MAX_DURATION_MS} ms)`);
  return whole;
}

/**
 * Parses a cache lifetime (`ttl`, `negativeTtl`): at least 1 ms once rounded. A TTL
 * of 0 would report every answer as stored while never serving one, so it is
 * refused with `instead`, the way to say what was meant.
 * @throws TierCacheConfigError naming `option`.
 */
export function parseTtl(option: string, value: unknown, instead: string): number {
  const ttl = parseDuration(option, value);
  // Says what is accepted: 0.4 is more than 0, but rounds to 0.
  if (ttl === 0) throw new TierCacheConfigError(option, value, `must be at least 1 ms (durations are rounded to whole milliseconds, so anything under 0.5 ms is 0, and a TTL of 0 stores answers that are never served): ${instead}`);
  return ttl;
}
