// Child processes for benchmarks that need independent event loops (one per
// cache instance): the parent forks a TypeScript file through tsx and calls
// named handlers in it over the IPC channel. Children exit when the channel
// closes, so a dying parent leaves no worker behind.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root: `--import tsx` resolves from here. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Request {
  readonly id: number;
  readonly type: string;
  readonly payload: unknown;
}

interface Reply {
  readonly id: number;
  readonly ok: boolean;
  readonly result?: unknown;
  readonly error?: string;
}

export interface Worker {
  readonly name: string;
  readonly pid: number;
  /** Calls a handler in the child; rejects on its error, its exit, or after `timeoutMs`. */
  call<T = unknown>(type: string, payload?: unknown, timeoutMs?: number): Promise<T>;
  /** Asks the child to shut down ('shutdown' handler), then SIGKILLs it by PID if it has not exited within 3 s. */
  stop(): Promise<void>;
}

export interface ForkOptions {
  /** Extra Node flags (e.g. --expose-gc); `--import tsx` is always added. */
  readonly nodeFlags?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
}

/** Forks `file` (a .ts path) with `args`; stdout and stderr go to the parent's stderr, so the parent's stdout stays clean for JSON. */
export function forkWorker(name: string, file: string, args: readonly string[], options: ForkOptions = {}): Worker {
  const child: ChildProcess = fork(file, [...args], {
    cwd: REPO_ROOT,
    execArgv: ['--import', 'tsx', ...(options.nodeFlags ?? [])],
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    serialization: 'advanced',
  });
  child.stdout!.pipe(process.stderr);
  child.stderr!.pipe(process.stderr);
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  let exited = child.exitCode !== null;
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = true;
      for (const [id, p] of pending) {
        clearTimeout(p.timer);
        p.reject(new Error(`worker ${name} (pid ${child.pid}) exited (code ${code}, signal ${signal}) during call ${id}`));
      }
      pending.clear();
      resolve();
    });
  });
  child.on('message', (raw) => {
    const reply = raw as Reply;
    const p = pending.get(reply.id);
    if (p === undefined) return;
    pending.delete(reply.id);
    clearTimeout(p.timer);
    if (reply.ok) p.resolve(reply.result);
    else p.reject(new Error(`worker ${name}: ${reply.error}`));
  });
  return {
    name,
    get pid() {
      return child.pid ?? -1;
    },
    call<T>(type: string, payload?: unknown, timeoutMs = 30_000): Promise<T> {
      if (exited) return Promise.reject(new Error(`worker ${name} has exited`));
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`worker ${name}: '${type}' did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
        child.send({ id, type, payload } satisfies Request);
      });
    },
    async stop(): Promise<void> {
      if (exited) return;
      await this.call('shutdown', undefined, 3_000).catch(() => undefined);
      const killTimer = setTimeout(() => {
        if (!exited && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      }, 3_000);
      await exitPromise;
      clearTimeout(killTimer);
    },
  };
}

type Handler = (payload: never) => unknown;

/**
 * In the child: answers the parent's calls with `handlers`. A 'shutdown'
 * handler, if given, runs before the process exits after answering.
 */
export function serveParent(handlers: Record<string, Handler>): void {
  if (process.send === undefined) throw new Error('serveParent: this process has no IPC channel (run it through the benchmark, not directly)');
  const send = process.send.bind(process);
  // A parent that dies (or disconnects) takes its workers with it.
  process.on('disconnect', () => process.exit(0));
  process.on('message', (raw) => {
    const { id, type, payload } = raw as Request;
    const handler = handlers[type];
    void (async () => {
      let reply: Reply;
      try {
        if (handler === undefined && type !== 'shutdown') throw new Error(`no handler '${type}'`);
        const result = handler === undefined ? undefined : await handler(payload as never);
        reply = { id, ok: true, result };
      } catch (err) {
        reply = { id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
      }
      send(reply, undefined, {}, () => {
        if (type === 'shutdown') process.disconnect();
      });
    })();
  });
}
