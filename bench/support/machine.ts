// What every benchmark result carries (CONVENTIONS item 9): when, on which
// Node and on which machine it was measured.
import { execFileSync } from 'node:child_process';
import { cpus, release, totalmem } from 'node:os';

export interface RunInfo {
  readonly date: string;
  readonly node: string;
  readonly machine: {
    readonly cpu: string;
    readonly cores: number;
    readonly memoryGiB: number;
    readonly os: string;
    readonly redis: string;
  };
}

export function runInfo(): RunInfo {
  let redis = 'unknown';
  try {
    const bin = process.env['REDIS_SERVER_BIN'] ?? 'redis-server';
    redis = /v=(\S+)/.exec(execFileSync(bin, ['--version'], { encoding: 'utf8' }))?.[1] ?? redis;
  } catch {
    // reported as unknown
  }
  return {
    date: new Date().toISOString(),
    node: process.version,
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
      os: `${process.platform} ${release()} ${process.arch}`,
      redis,
    },
  };
}
