// Redis's clock, as this process can bound it from below. A script can refuse
// to act past a deadline only on Redis's own clock (its TIME), and the hosts'
// clocks differ: a deadline from Date.now() would refuse every write on a host
// whose clock is behind Redis's by more than any margin. So the epoch check
// (at each connection check, then every second) brings Redis's TIME back, and
// the offset kept is the least it can be: Redis read its clock before the
// reply arrived here, so `time - arrival` never puts a deadline later than the
// instant it stands for on this process's monotonic clock. A deadline may come
// early by the round trip of the sample (a command then refused that was just
// in time: treated as one Redis could not take), never late.
import { performance } from 'node:perf_hooks';

/**
 * How much the two clocks may drift apart per ms since a sample (generous:
 * crystals drift tens of ppm); a deadline is moved that much earlier.
 */
const DRIFT_PER_MS = 1e-4;
/** A sample older than this (the epoch checks stopped: the bus is down) gives no deadline. */
const MAX_AGE_MS = 60_000;
/** A sample within this of the kept one is compared with it (the larger bound wins); an older kept one is replaced. */
const COMPARE_WITHIN_MS = 10_000;

export class ServerClock {
  /** Redis's clock (ms) minus performance.now(), at least; undefined until a sample, or after a lost connection. */
  private offset: number | undefined;
  /** performance.now() of the sample `offset` came from. */
  private at = 0;

  /** A TIME Redis read (µs since the Unix epoch) in a reply that arrived at `arrival` (performance.now()). */
  learn(micros: number, arrival = performance.now()): void {
    if (!Number.isFinite(micros) || micros <= 0) return;
    const offset = micros / 1000 - arrival;
    // A larger lower bound is a tighter one (a faster round trip), unless the kept one is old: the clocks may
    // have been stepped since, and the newest sample speaks for now.
    if (this.offset === undefined || offset > this.offset || arrival - this.at > COMPARE_WITHIN_MS) {
      this.offset = offset;
      this.at = arrival;
    }
  }

  /** Another connection, maybe another server: nothing learned holds. */
  forget(): void {
    this.offset = undefined;
  }

  /**
   * `until` (a performance.now() instant) on Redis's clock, in µs as TIME
   * gives it, never later than it: undefined when there is no recent sample.
   */
  deadline(until: number, now = performance.now()): number | undefined {
    const offset = this.offset;
    if (offset === undefined) return undefined;
    if (now - this.at > MAX_AGE_MS) return undefined;
    return Math.floor((until + offset - Math.max(0, until - this.at) * DRIFT_PER_MS) * 1000);
  }
}
