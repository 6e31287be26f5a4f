// What every benchmark result carries (CONVENTIONS item 9): when, on which
// Node and on which machine it was measured. Plain JS, so that the node-run
// runners (run-invalidation.mjs, http/harness.mjs) and the tsx-run benches share it.
import { execFileSync } from 'node:child_process';
import { cpus, release, totalmem } from 'node:os';

/** The machine's CPU, core count, memory and OS. */
export function machineSpecs() {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${process.platform} ${release()} ${process.arch}`,
  };
}

/** The version of redis-server ($REDIS_SERVER_BIN or the one on PATH), or 'unknown'. */
export function redisVersion() {
  try {
    const bin = process.env.REDIS_SERVER_BIN ?? 'redis-server';
    return /v=(\S+)/.exec(execFileSync(bin, ['--version'], { encoding: 'utf8' }))?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Date, Node version and machine, with the redis-server version among the machine's facts. */
export function runInfo() {
  return {
    date: new Date().toISOString(),
    node: process.version,
    machine: { ...machineSpecs(), redis: redisVersion() },
  };
}
