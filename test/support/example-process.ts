// Starts an example app the way the README says (`npm run example:express`,
// `npm run example:koa`) on a free port, and stops it (its whole process
// group: npm, tsx and node) by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface StartedExample {
  readonly child: ChildProcess;
  readonly base: string;
}

/** Starts an example; `env` names the Redis URL (REDIS_URL, or TIERCACHE_REDIS_URL alone). */
export function startExample(script: string, redisUrl = '', variable: 'REDIS_URL' | 'TIERCACHE_REDIS_URL' = 'REDIS_URL'): Promise<StartedExample> {
  return new Promise((resolve, reject) => {
    // Own process group, so npm, tsx and node all stop together (by PID) afterwards.
    const child = spawn('npm', ['run', '-s', script], {
      cwd: root,
      env: { ...process.env, PORT: '0', REDIS_URL: '', TIERCACHE_REDIS_URL: '', [variable]: redisUrl },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const timer = setTimeout(() => reject(new Error(`${script} printed no port within 30 s:\n${output}`)), 30_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ child, base: match[1]! });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code} before listening:\n${output}`));
    });
  });
}

export async function stopExample(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.pid === undefined) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    return;
  }
  await exited;
}

