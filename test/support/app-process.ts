// App processes for tests: test/fixtures/invalidation-app.ts started as a
// child process (node --import tsx) with its own tiercache, talked to over
// real HTTP. Children are tracked and killed by PID (SIGKILL) by
// stopAllApps() and, as a last resort, at exit.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../fixtures/invalidation-app.ts', import.meta.url));
/** How long a child may take to start (tsx compiles on the fly). */
export const START_MS = 30_000;

export interface Reply {
  readonly status: number;
  readonly body: string;
  readonly cacheStatus: string | null;
  /** The parsed body (pid, n, url, key, ...). */
  readonly json: { pid: number; n: number; url: string; key: string; [k: string]: unknown };
}

export type Headers = Readonly<Record<string, string>>;

export interface AppProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  /** The child's stderr so far, for failure messages. */
  readonly stderr: () => string;
  /** GET `url`; asserts a 200. */
  get(url: string, headers?: Headers): Promise<Reply>;
  /** POST /admin/invalidate?<query>; asserts the 204. */
  invalidate(query: Record<string, string>): Promise<void>;
  health(): Promise<{ health: { bus: string; l2: string; pubsub?: string }; received: number; flushes: number; runs: number }>;
}

/** Children started here and not yet seen to exit. */
const children = new Set<ChildProcess>();

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

export async function killChild(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || hasExited(child)) {
    children.delete(child);
    return;
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid, 'SIGKILL');
  await exited;
  children.delete(child);
}

/** Kills every app process started here. */
export async function stopAllApps(): Promise<void> {
  await Promise.all([...children].map((child) => killChild(child)));
}

// Last resort if the run ends without the after hook: only synchronous work here.
process.on('exit', () => {
  for (const child of children) {
    if (child.pid !== undefined && !hasExited(child)) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

/**
 * Starts the fixture app with `env` (REDIS_URL, or REDIS_CLUSTER / REDIS_SENTINELS:
 * see the fixture; NAMESPACE; ...) and resolves once it printed its port.
 */
export function startApp(name: string, env: Record<string, string>): Promise<AppProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    cwd: REPO_ROOT,
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
    if (stderr.length > 64 * 1024) stderr = stderr.slice(-64 * 1024);
  });
  return new Promise<AppProcess>((resolve, reject) => {
    let settled = false;
    const fail = (message: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void killChild(child).finally(() => reject(new Error(`${name}: ${message}; stderr:\n${stderr}`)));
    };
    const timer = setTimeout(() => fail(`printed no port within ${START_MS} ms`), START_MS);
    child.once('error', (err) => fail(`could not start (${err.message})`));
    child.once('exit', (code, signal) => fail(`exited before printing its port (code ${code}, signal ${signal})`));
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      if (settled) return;
      for (const line of stdout.split('\n').slice(0, -1)) {
        let parsed: { port?: unknown; pid?: unknown };
        try {
          parsed = JSON.parse(line) as typeof parsed;
        } catch {
          continue;
        }
        if (typeof parsed.port !== 'number' || parsed.port <= 0) continue;
        settled = true;
        clearTimeout(timer);
        assert.equal(parsed.pid, child.pid, 'the child printed another pid than its own');
        resolve(appHandle(name, child, parsed.port, () => stderr));
        return;
      }
    });
  });
}

/** A request to an app process that takes longer than this fails, naming it, instead of hanging its test until mocha's limit. */
const REQUEST_LIMIT_MS = 15_000;

function appHandle(name: string, child: ChildProcess, port: number, stderr: () => string): AppProcess {
  const base = `http://127.0.0.1:${port}`;
  const limit = () => AbortSignal.timeout(REQUEST_LIMIT_MS);
  return {
    name,
    child,
    pid: child.pid!,
    port,
    stderr,
    async get(url, headers = {}) {
      const res = await fetch(base + url, { headers, signal: limit() });
      const body = await res.text();
      assert.equal(res.status, 200, `${name} GET ${url}: status ${res.status}: ${body}`);
      return { status: res.status, body, cacheStatus: res.headers.get('cache-status'), json: JSON.parse(body) as Reply['json'] };
    },
    async invalidate(query) {
      const res = await fetch(`${base}/admin/invalidate?${new URLSearchParams(query)}`, { method: 'POST', signal: limit() });
      const body = await res.text();
      assert.equal(res.status, 204, `${name} POST /admin/invalidate?${new URLSearchParams(query)}: ${res.status} ${body}`);
    },
    async health() {
      const res = await fetch(`${base}/admin/health`, { signal: limit() });
      return (await res.json()) as Awaited<ReturnType<AppProcess['health']>>;
    },
  };
}

