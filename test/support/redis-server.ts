// Starts throwaway redis-server processes on random loopback ports for tests,
// and gives each test a handle to stop, kill, restart, freeze and thaw them.
// Every server started here is tracked so the root hook (root-hooks.ts) and a
// process 'exit' handler can kill whatever a test forgot to stop. Test
// processes running side by side (mocha --parallel workers) reserve their
// ports through files in a shared directory (see reservePort).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REDIS_HOST = '127.0.0.1';

const READY_LINE = 'Ready to accept connections';
const ADDRESS_IN_USE = 'Address already in use';
const PORT_MIN = 20000;
const PORT_MAX = 29999;
/**
 * The highest port of a cluster node: its bus listens on port + 10000, which
 * must stay below the kernel's ephemeral range (Linux: 32768-60999 by
 * default), where another process's listen(0) could hold it when a test
 * restarts the node.
 */
const CLUSTER_PORT_MAX = 32767 - 10000;
const MAX_PORT_ATTEMPTS = 20;
/** One file per port held by a test process, named for the port, holding that process's PID. */
export const PORT_LOCKS = join(tmpdir(), 'tiercache-redis-ports');
/** How much of a server's own log each handle keeps, for error messages. */
const MAX_LOG_CHARS = 64 * 1024;

export interface RedisServerOptions {
  /**
   * Fixed port. Without it a random free port in 20000-29999 is chosen, and
   * another one is tried when the server reports "Address already in use".
   * @default random
   */
  port?: number;
  /**
   * A cluster node (its bus port is port + 10000): drawn from 20000-22767, so
   * its bus port stays below the kernel's ephemeral range.
   * @default false
   */
  clusterBus?: boolean;
  /**
   * Extra redis-server arguments, appended after the harness's own. A function
   * receives the chosen port and the server's private temp directory.
   * @default []
   */
  args?: readonly string[] | ((ctx: { port: number; dir: string }) => readonly string[]);
  /**
   * A configuration file's text, written to the server's directory and named
   * first on its command line (Sentinel needs one it can rewrite).
   * @default none
   */
  config?: (ctx: { port: number; dir: string }) => string;
  /**
   * The log line that means ready (a Sentinel prints no "Ready to accept connections").
   * @default 'Ready to accept connections'
   */
  readyLine?: string;
  /**
   * How long to wait for the server's own "Ready to accept connections" line.
   * @default 10000
   */
  readyTimeoutMs?: number;
  /**
   * The redis-server binary.
   * @default process.env.REDIS_SERVER_BIN ?? 'redis-server'
   */
  bin?: string;
}

export interface RedisServerHandle {
  readonly host: typeof REDIS_HOST;
  readonly port: number;
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
  /** PID of the current process; changes after restart(). */
  readonly pid: number;
  /** Private working directory (--dir), removed by stop(). */
  readonly dir: string;
  /** The tail of the server's own log output, for debugging. */
  readonly log: string;
  /** True while the current process has not exited. */
  readonly running: boolean;
  /** True once stop() was called: the handle is done, its port given back. */
  readonly stopped: boolean;
  /** SIGKILL (nothing is persisted) and wait until the process has exited; idempotent. */
  stop(): Promise<void>;
  /** Send a signal to the current process without waiting. */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves once the current process has exited (at once if it has). */
  exited(): Promise<void>;
  /** SIGKILL the current process (if alive), then start a new one on the same port. */
  restart(): Promise<void>;
  /** SIGSTOP: the kernel still accepts TCP connections, but nothing is answered. */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
}

/**
 * Every handle not yet stopped, so leftovers can be killed at the end. Their
 * ports are never handed to a new server, since restart() needs them back.
 */
const live = new Set<ServerHandle>();

class ServerHandle implements RedisServerHandle {
  readonly host = REDIS_HOST;
  readonly url: string;
  child: ChildProcess | undefined;
  private output = '';
  stopped = false;

  constructor(
    readonly port: number,
    readonly dir: string,
    private readonly argv: readonly string[],
    private readonly bin: string,
    private readonly readyTimeoutMs: number,
    private readonly readyLine: string = READY_LINE,
    private readonly reserved = false,
  ) {
    this.url = `redis://${REDIS_HOST}:${port}`;
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  get log(): string {
    return this.output;
  }

  get running(): boolean {
    return this.child !== undefined && isAlive(this.child);
  }

  /** Spawns the process and resolves when it says it is ready; rejects with its log otherwise. */
  spawn(): Promise<void> {
    if (this.stopped) return Promise.reject(new Error(`redis-server on port ${this.port} was stopped; start a new one`));
    const child = spawn(this.bin, this.argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.output = '';
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      // Keep reading after ready: a full pipe would block the server's logging.
      const onData = (chunk: Buffer) => {
        this.output += chunk.toString('utf8');
        if (this.output.length > MAX_LOG_CHARS) this.output = this.output.slice(-MAX_LOG_CHARS);
        if (!settled && this.output.includes(this.readyLine)) settle();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('error', (err) => {
        settle(new Error(`could not run ${this.bin} (${err.message}); is redis-server installed and on PATH?`, { cause: err }));
      });
      child.once('exit', (code, signal) => {
        settle(new ServerExitedError(this.port, code, signal, this.output));
      });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        settle(
          new Error(
            `redis-server on port ${this.port} printed no "${this.readyLine}" within ${this.readyTimeoutMs} ms; its output:\n${this.output}`,
          ),
        );
      }, this.readyTimeoutMs);
    });
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    const child = this.child;
    if (child && isAlive(child)) child.kill(signal);
  }

  exited(): Promise<void> {
    const child = this.child;
    if (!child || !isAlive(child)) return Promise.resolve();
    return new Promise((resolve) => child.once('exit', () => resolve()));
  }

  async restart(): Promise<void> {
    this.kill('SIGKILL');
    await this.exited();
    // Redis sets SO_REUSEADDR, so the same port is free again at once.
    await this.spawn();
  }

  freeze(): void {
    this.kill('SIGSTOP');
  }

  thaw(): void {
    this.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.kill('SIGKILL');
    await this.exited();
    this.release();
  }

  /** Synchronous last-resort cleanup for process 'exit'. */
  killNow(): void {
    this.stopped = true;
    try {
      this.kill('SIGKILL');
    } catch {
      // already gone
    }
    this.release();
  }

  private release(): void {
    if (!live.delete(this)) return;
    rmSync(this.dir, { recursive: true, force: true });
    if (this.reserved) releasePort(this.port);
  }
}

class ServerExitedError extends Error {
  constructor(
    readonly port: number,
    code: number | null,
    signal: NodeJS.Signals | null,
    readonly output: string,
  ) {
    super(`redis-server on port ${port} exited before it was ready (code ${code}, signal ${signal}); its output:\n${output}`);
  }

  get addressInUse(): boolean {
    return this.output.includes(ADDRESS_IN_USE);
  }
}

function isAlive(child: ChildProcess): boolean {
  // No pid means spawn itself failed (e.g. ENOENT): there is nothing to wait for.
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/**
 * A random port in 20000-29999 that no live server of any test process holds,
 * reserved for this process until its handle is stopped. "Address already in
 * use" alone cannot tell: a server a test killed to play an outage (and will
 * restart() on its port) leaves its port free, and a server another process
 * starts there meanwhile would answer in its place.
 */
function randomPort(max = PORT_MAX): number {
  mkdirSync(PORT_LOCKS, { recursive: true });
  for (;;) {
    const port = PORT_MIN + Math.floor(Math.random() * (max - PORT_MIN + 1));
    if (reservePort(port)) return port;
  }
}

/** Creates the port's file exclusively (O_EXCL); false when another live process (or this one) holds it. */
function reservePort(port: number): boolean {
  const file = join(PORT_LOCKS, String(port));
  try {
    writeFileSync(file, String(process.pid), { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  // A holder killed before its exit handler ran leaves its file: remove it so
  // the port comes back, but take another one now. (Two processes removing the
  // same stale file at once could both reserve the port after it; the second
  // server then fails with "Address already in use" and is retried elsewhere.)
  let holder = 0;
  try {
    holder = Number(readFileSync(file, 'utf8').trim());
  } catch {
    // released meanwhile: the next draw may find it free
  }
  if (holder > 0 && !processAlive(holder)) rmSync(file, { force: true });
  return false;
}

function releasePort(port: number): void {
  try {
    unlinkSync(join(PORT_LOCKS, String(port)));
  } catch {
    // already removed (as stale, by another process)
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive, owned by another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Starts a redis-server on 127.0.0.1 that persists nothing, and resolves when
 * it reports itself ready. Call `stop()` when done; anything left running is
 * killed by the root `afterAll` hook and at process exit.
 */
export async function startRedisServer(opts: RedisServerOptions = {}): Promise<RedisServerHandle> {
  const bin = opts.bin ?? process.env['REDIS_SERVER_BIN'] ?? 'redis-server';
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  const attempts = opts.port === undefined ? MAX_PORT_ATTEMPTS : 1;
  let lastError: unknown;
  for (let i = 0; i < attempts; i++) {
    const port = opts.port ?? randomPort(opts.clusterBus === true ? CLUSTER_PORT_MAX : PORT_MAX);
    const dir = mkdtempSync(join(tmpdir(), `tiercache-redis-${port}-`));
    const extra = typeof opts.args === 'function' ? opts.args({ port, dir }) : (opts.args ?? []);
    const config: string[] = [];
    if (opts.config !== undefined) {
      const file = join(dir, 'redis.conf');
      writeFileSync(file, opts.config({ port, dir }));
      config.push(file);
    }
    const argv = [
      ...config,
      '--bind', REDIS_HOST,
      '--port', String(port),
      '--save', '',
      '--appendonly', 'no',
      '--dir', dir,
      '--logfile', '',
      '--daemonize', 'no',
      ...extra,
    ];
    const handle = new ServerHandle(port, dir, argv, bin, readyTimeoutMs, opts.readyLine, opts.port === undefined);
    live.add(handle);
    try {
      await handle.spawn();
      return handle;
    } catch (err) {
      await handle.stop();
      lastError = err;
      const retryable = err instanceof ServerExitedError && err.addressInUse && opts.port === undefined;
      if (!retryable) throw err;
    }
  }
  throw new Error(`could not find a free port for redis-server after ${attempts} attempts`, { cause: lastError });
}

/** Kills every server started by this process that is still running, and waits for each to exit. */
export async function stopAllRedisServers(): Promise<void> {
  await Promise.all([...live].map((h) => h.stop()));
}

/** Ports freePort() handed out: reserved until this process exits. */
const heldFree = new Set<number>();

/**
 * A loopback port where nothing listens, for "Redis is down" tests and for a
 * process a test starts to listen on (a sentinel, an example). Drawn from the
 * servers' 20000-29999 and reserved across processes (see reservePort) until
 * this process exits: a port from the kernel (listen(0), then closed) could be
 * handed to another test process's listen(0) meanwhile, and a client meant to
 * find nothing there would reach that process's HTTP server or TCP proxy.
 * Outside the kernel's ephemeral range (32768-60999), no listen(0) draws it.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < MAX_PORT_ATTEMPTS; i++) {
    const port = randomPort();
    // Something outside the test processes (they all reserve) may listen there.
    if (await bindable(port)) {
      heldFree.add(port);
      return port;
    }
    releasePort(port);
  }
  throw new Error(`could not find a free loopback port after ${MAX_PORT_ATTEMPTS} attempts`);
}

/** Whether a listener can be bound to `port` on the loopback address now (it is closed again before this resolves). */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, REDIS_HOST, () => server.close(() => resolve(true)));
  });
}

/** Gives back every port freePort() reserved (at exit: tests hold them as long as they like). */
function releaseFreePorts(): void {
  for (const port of heldFree) releasePort(port);
  heldFree.clear();
}

// Last resort if the run ends without the root hook (e.g. process.exit()):
// only synchronous work is possible here.
process.on('exit', () => {
  for (const handle of [...live]) handle.killNow();
  releaseFreePorts();
});

// A mocha --parallel worker (a forked child) has no SIGINT handler of mocha's:
// Ctrl-C reaches the whole process group and would end it without 'exit',
// leaving its servers running. Kill them, then let the signal do the rest.
if (process.send !== undefined) {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const handle of [...live]) handle.killNow();
      releaseFreePorts();
      process.kill(process.pid, signal);
    });
  }
}
