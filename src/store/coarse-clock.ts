// A millisecond clock that is cheap to read. On virtual machines Date.now()
// can cost ~75 ns (no vDSO clock), as much as the rest of an L1 hit; this one
// reads the clock at most once per millisecond and serves the cached value
// in between. It may lag by however long the event loop is blocked, which
// only stretches freshness by that much.

let cached = 0;

function expire(): void {
  cached = 0;
}

/** Milliseconds since the epoch, at most about 1 ms old while the event loop turns. */
export function coarseNow(): number {
  if (cached === 0) {
    cached = Date.now();
    setTimeout(expire, 1).unref();
  }
  return cached;
}
