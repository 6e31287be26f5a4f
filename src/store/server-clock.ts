// Redis's clock, as this process can bound it. A script can refuse to act
// past a deadline only on Redis's own clock (its TIME), and the hosts' clocks
// differ: a deadline from Date.now() would refuse every write on a host whose
// clock is behind Redis's by more than any margin. So the epoch check (at
// each connection check, then every second) brings Redis's TIME back: Redis
// read it after the check was sent and before its reply arrived, which bounds
// the offset between its clock and this process's monotonic one from both
// sides. A deadline is put at the lower bound, so it is never later than the
// instant it stands for, early by at most the sample's round trip (a command
// then refused that was just in time: treated as one Redis could not take).
// A step of either clock (NTP) is seen at the next sample when it moves the
// offset out of the bounds; one smaller than a round trip may go unseen, and
// puts a deadline late by at most that.
import { performance } from 'node:perf_hooks';

/**
 * How much the two clocks may drift apart per ms since a sample (generous:
 * crystals drift tens of ppm); a deadline is moved that much earlier.
 */
const DRIFT_PER_MS = 1e-4;
/** A sample older than this (the epoch checks stopped: the bus is down) gives no deadline. */
const MAX_AGE_MS = 60_000;
export class ServerClock {
  /**
   * Redis's clock (ms) minus performance.now(): at least `low`, at most
   * `high`, as of `at`; undefined until a sample.
   */
  private low: number | undefined;
  private high = 0;
  /** performance.now() the bounds hold at (they widen by the drift since). */
  private at = 0;
  private replaceNext = false;
  private stepsSeen = 0;

  /**
   * How many times a sample disagreed with the ones before it (a clock
   * stepped, or another server answers): an instant given in one count is
   * not to be trusted in another, as nothing tells whether the step came
   * before or after it.
   */
  get steps(): number {
    return this.stepsSeen;
  }

  /**
   * A TIME Redis read (µs since the Unix epoch) for a command sent at `sent`
   * whose reply arrived at `arrival` (performance.now() instants).
   */
  learn(micros: number, sent: number, arrival = performance.now()): void {
    if (!Number.isFinite(micros) || micros <= 0 || !(arrival >= sent)) return;
    const time = micros / 1000;
    let low = time - arrival;
    let high = time - sent;
    if (this.low !== undefined) {
      // Every sample bounds the same offset: what they agree on is tighter than any alone. Bounds that do not
      // meet tell a clock stepped (NTP) since, or another server (a failover): the newest sample speaks for now,
      // and an instant given before it may be off by that step (see steps).
      const drift = (arrival - this.at) * DRIFT_PER_MS;
      const both = Math.max(low, this.low - drift);
      const and = Math.min(high, this.high + drift);
      if (both > and) this.stepsSeen++;
      else if (!this.replaceNext) {
        low = both;
        high = and;
      }
    }
    this.low = low;
    this.high = high;
    this.at = arrival;
    this.replaceNext = false;
  }

  /**
   * A lost connection: the next may reach another server (a Sentinel
   * failover), whose clock its check's sample speaks for alone. Until then
   * the kept one still gives deadlines (commands wait for that check; a
   * set() made meanwhile is not sent, and its deadline only bounds what its
   * queued delete leaves: see InvalidationQueue).
   */
  newConnection(): void {
    this.replaceNext = true;
  }

  /**
   * `until` (a performance.now() instant) on Redis's clock, in µs as TIME
   * gives it, never later than it: undefined when there is no recent sample,
   * or when the samples bound the offset no closer than half the wait left
   * (`wait`, by default `until - now`).
   */
  deadline(until: number, now = performance.now(), wait = until - now): number | undefined {
    const low = this.low;
    if (low === undefined || now - this.at > MAX_AGE_MS) return undefined;
    // A deadline is early by up to the bounds' width: a sample whose reply this process handled late (its event
    // loop busy, a GC pause) would refuse set()s a healthy Redis ran in time. Alone (the first of a connection) until
    // the next epoch check, at most a second: no deadline meanwhile, as before any sample. Within half the wait, a
    // refusal needs the set()'s own trip to take the other half; a link whose round trip is that long gives none.
    if ((this.high - low) * 2 > wait) return undefined;
    return Math.floor((until + low - Math.abs(until - this.at) * DRIFT_PER_MS) * 1000);
  }

  /**
   * An instant on Redis's clock (µs) no earlier than `from` and no later
   * than `until` (performance.now() instants, `from` first): undefined when
   * the samples cannot tell them apart that well (a round trip of the
   * sample longer than the time between them). `wait`: as for deadline().
   */
  between(from: number, until: number, now = performance.now(), wait = until - now): number | undefined {
    const late = this.deadline(until, now, wait);
    if (late === undefined) return undefined;
    const early = Math.ceil((from + this.high + Math.abs(from - this.at) * DRIFT_PER_MS) * 1000);
    return late >= early ? late : undefined;
  }
}
