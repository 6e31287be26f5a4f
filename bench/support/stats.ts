// Summaries of latency samples for the benchmarks: nearest-rank percentiles,
// so every reported figure is a value that was actually measured.

export interface Summary {
  readonly n: number;
  readonly min: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((s, v) => s + v, 0);
  return {
    n: sorted.length,
    min: sorted[0] ?? Number.NaN,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
    mean: sorted.length === 0 ? Number.NaN : sum / sorted.length,
  };
}

/** Rounds every number of a summary to `digits` decimals, for printing and JSON. */
export function rounded(summary: Summary, digits = 3): Summary {
  const f = 10 ** digits;
  const r = (v: number) => Math.round(v * f) / f;
  return { n: summary.n, min: r(summary.min), p50: r(summary.p50), p95: r(summary.p95), p99: r(summary.p99), max: r(summary.max), mean: r(summary.mean) };
}

/** Milliseconds on a clock shared by every process on this machine: wall-clock origin plus monotonic time. */
export function machineNow(): number {
  return performance.timeOrigin + performance.now();
}
