// From the rounds of an interleaved run to what run.mjs and miss.mjs report:
// per scenario the median over the rounds that passed their checks (a failed
// round is reported, never averaged in), ratios of medians, and per-round
// ratios of neighbours in time (round r of both) to show the spread.

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const round1 = (v) => Math.round(v * 10) / 10;
export const round3 = (v) => Math.round(v * 1000) / 1000;

/** A round that ran and passed every check (the others are reported, not counted). */
const valid = (r) => r.failed === undefined && r.problems.length === 0;

/** Medians over one scenario's valid rounds (`all`: every round, failed ones with `failed` set). */
export function summarizeRounds(all) {
  const rs = all.filter(valid);
  const problems = all.flatMap((r) => r.problems.map((p) => `round ${r.round}: ${p}`));
  if (rs.length === 0) return { medianRps: NaN, roundsRps: [], roundNumbers: [], contendedRounds: [], problems };
  const rps = rs.map((r) => r.rps);
  return {
    medianRps: Math.round(median(rps)),
    roundsRps: rps,
    roundNumbers: rs.map((r) => r.round),
    rangeRps: [Math.min(...rps), Math.max(...rps)],
    medianP50Ms: round3(median(rs.map((r) => r.latencyMs.p50))),
    medianP99Ms: round3(median(rs.map((r) => r.latencyMs.p99))),
    bytesPerResponse: rs[0]?.bytesPerResponse,
    medianServerCpuPercent: round1(median(rs.map((r) => r.serverCpuPercent))),
    medianCpuUsPerRequest: round1(median(rs.map((r) => r.serverCpuUsPerRequest))),
    medianKernelUsPerRequest: round1(median(rs.map((r) => r.serverKernelUsPerRequest))),
    medianLoadCoreBusyPercent: round1(median(rs.map((r) => r.coreBusyPercent['0'] ?? 0))),
    medianOtherCpuUsPerRequest: Object.fromEntries(Object.keys(rs[0].otherCpuUsPerRequest ?? {}).map((k) => [k, round1(median(rs.map((r) => r.otherCpuUsPerRequest[k])))])),
    problems,
    contendedRounds: rs.filter((r) => r.contended).map((r) => r.round),
  };
}

/** Ratio of medians a / b (req/s), or undefined when either is missing. */
export function ratioOf(med, a, b) {
  return med[a] && med[b] && med[a].medianRps > 0 && med[b].medianRps > 0 ? round3(med[a].medianRps / med[b].medianRps) : undefined;
}

/** [min, max] of a / b over the rounds both passed (same round number: neighbours in time). */
export function pairedRange(rounds, a, b) {
  if (!rounds[a] || !rounds[b]) return undefined;
  const xs = [];
  for (const ra of rounds[a]) {
    const rb = rounds[b].find((r) => r.round === ra.round);
    if (valid(ra) && rb !== undefined && valid(rb)) xs.push(ra.rps / rb.rps);
  }
  return xs.length === 0 ? undefined : [round3(Math.min(...xs)), round3(Math.max(...xs))];
}

/**
 * Targets `{ candidate, baseline, min, text }` whose two scenarios were in the
 * run, with ratio, range, CPU ratio and met. Without a valid round of either,
 * ratio is undefined and the target counts as not met.
 */
export function checkTargets(targets, med, rounds) {
  return targets
    .filter((t) => med[t.candidate] !== undefined && med[t.baseline] !== undefined)
    .map((t) => {
      const ratio = ratioOf(med, t.candidate, t.baseline);
      if (ratio === undefined) return { ...t, ratio, met: false };
      const cpu = round3(med[t.baseline].medianCpuUsPerRequest / med[t.candidate].medianCpuUsPerRequest);
      return { ...t, ratio, perRoundRange: pairedRange(rounds, t.candidate, t.baseline), cpuNormalizedRatio: cpu, met: ratio >= t.min };
    });
}

/** The markdown table of checked targets. */
export function targetLines(checked) {
  if (checked.length === 0) return [];
  const lines = ['', '| DESIGN.md section 6 target | req/s ratio (medians) | per-round range | CPU-µs/req ratio | met (req/s) |', '|---|---:|---|---:|---|'];
  for (const t of checked) {
    if (t.ratio === undefined) lines.push(`| ${t.text} | no valid rounds | | | NOT MET |`);
    else lines.push(`| ${t.text} | ${t.ratio.toFixed(2)}x | ${t.perRoundRange?.map((v) => v.toFixed(2)).join('-') ?? '?'}x | ${t.cpuNormalizedRatio.toFixed(2)}x | ${t.met ? 'met' : 'NOT MET'} |`);
  }
  return lines;
}

/** A scenario's req/s per round for the table, `*` on contended rounds. */
export function roundsCell(m) {
  return m.roundsRps.map((v, i) => (m.contendedRounds.includes(m.roundNumbers[i]) ? `${v}*` : String(v))).join(', ');
}

/** The lines that open a run's report: title, machine, how it measured (`how`), code and command. */
export function reportHead(title, run, opts, command, how) {
  const { info } = run;
  return [
    `### ${title}, ${info.date.slice(0, 10)}`,
    '',
    `${info.machine.cpu}, ${info.machine.cores} cores, ${info.machine.memoryGiB} GiB, ${info.machine.os}; Node ${info.node}; wrk ${info.tools.wrk}; redis ${info.tools.redis}.`,
    ...how,
    `${opts.rounds} interleaved rounds per scenario, each a fresh process: ${opts.warmup} s warm-up + ${opts.duration} s measured; median of rounds.`,
    'Rounds marked * were contended (other load on the machine when the round began, or the server got < 90% of its busy core).',
    `Command: \`${command}\` (total ${run.seconds} s). Code: commit ${info.source.commit}${info.source.srcChangesNotCommitted.length ? ` plus uncommitted src/ changes (${info.source.srcChangesNotCommitted.join(', ')})` : ''}.`,
    '',
  ];
}

/** The lines that close a run's report: the rounds left out and why, and warnings about the machine and src/. */
export function reportTail(rows, run) {
  const lines = [];
  const problems = rows.flatMap((r) => r.problems.map((p) => `${r.scenario} ${p}`));
  if (problems.length > 0) lines.push('', 'Rounds left out of the medians (failed a check):', ...problems.map((p) => `- ${p}`));
  if (run.srcChanged) lines.push('', 'Warning: src/ changed while this ran; rounds may have measured different code.');
  if (run.machineBusy) lines.push('', `Warning: cpus busy before the run ${JSON.stringify(run.quietBefore)}; other load was on the machine.`);
  return lines;
}
