// A TCP proxy on loopback for partition tests: clients connect to the proxy,
// which pipes each connection to the target (a redis-server). cut() drops
// every connection and, until heal(), refuses new ones (accepted and reset at
// once, as a host that is gone answers) or blackholes them (accepted, never
// answered, as a lost route looks). The test cuts one instance off Redis
// while the others keep talking to it directly. It also counts round trips:
// a "turn" is client bytes that follow a reply (or open a connection), so
// pipelined or scripted commands count once, and nothing depends on timing.
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export type CutMode = 'refuse' | 'blackhole';

export interface TcpProxy {
  readonly port: number;
  /** `redis://127.0.0.1:PORT`, for a client that should go through the proxy. */
  readonly url: string;
  /** Connections currently piped to the target. */
  readonly connections: number;
  /** Round trips so far, over every connection (see the file's opening). */
  readonly turns: number;
  /**
   * From now on, counts the client chunks (over every connection) that begin with one of `prefixes`; the
   * function returned reads the count. For telling a client's background commands from a request's turns.
   */
  watch(prefixes: readonly string[]): () => number;
  /** Connections accepted so far, refused and blackholed ones included: how often clients tried. */
  readonly attempts: number;
  /** Drops every connection; new ones are refused or blackholed until heal(). */
  cut(mode?: CutMode): void;
  /**
   * A proxy started adjustable: from now on every chunk is held `ms` (order kept), on open connections too;
   * with `only` 'replies', the target's chunks alone: a command reaches Redis and runs at once, its reply comes late.
   */
  setDelay(ms: number, only?: 'replies'): void;
  /** Lets connections through again (blackholed ones are dropped, so their clients reconnect). */
  heal(): void;
  close(): Promise<void>;
}

/**
 * `delayMs`: every chunk is held that long in each direction (order kept), a
 * slow link: a command's round trip takes twice that. `adjustable` (the
 * default with a delay) relays chunk by chunk, so setDelay() can slow a link
 * once the client's connections are up.
 */
export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1', delayMs = 0, adjustable = delayMs !== 0): Promise<TcpProxy> {
  let delay = delayMs;
  /** What setDelay(ms, 'replies') held the target's chunks by (the client's still go at `delay`). */
  let replyDelay: number | undefined;
  const piped = new Set<Socket>();
  const held = new Set<Socket>();
  let mode: CutMode | undefined;
  let turns = 0;
  let attempts = 0;
  const watchers: Array<(chunk: Buffer) => void> = [];

  const server: Server = createServer((client) => {
    attempts++;
    client.on('error', () => undefined);
    if (mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    if (mode === 'blackhole') {
      held.add(client);
      client.on('close', () => held.delete(client));
      client.resume(); // read and drop
      return;
    }
    // No Nagle on either leg (redis clients set noDelay themselves): a small write would otherwise wait for the ACK of
    // the one before, which the far end delays up to 40 ms when it has nothing to send (a subscriber's connection).
    client.setNoDelay(true);
    const upstream = createConnection({ port: targetPort, host: targetHost, noDelay: true });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => {
      upstream.destroy();
      piped.delete(client);
    });
    upstream.on('close', () => client.destroy());
    // Client bytes after a reply (or the first ones) start a new turn.
    let replied = true;
    client.on('data', (chunk: Buffer) => {
      if (replied) turns++;
      replied = false;
      for (const watcher of watchers) watcher(chunk);
    });
    upstream.on('data', () => (replied = true));
    piped.add(client);
    if (!adjustable) {
      client.pipe(upstream);
      upstream.pipe(client);
    } else {
      client.on('data', relayTo(upstream, () => delay));
      upstream.on('data', relayTo(client, () => replyDelay ?? delay));
    }
  });
  /**
   * Writes each chunk to `to` `delay` ms after it came, never before one that came earlier: one queue and one
   * timer per direction. (A timer per chunk let a chunk sent after setDelay() lowered the delay, due at the
   * same moment as one held from before, fire first: bytes out of order, a RESP stream cut up.)
   */
  function relayTo(to: Socket, held: () => number): (chunk: Buffer) => void {
    const queue: Array<{ due: number; chunk: Buffer }> = [];
    let timer: NodeJS.Timeout | undefined;
    // Held chunks have nowhere to go once `to` is gone: a timer left for them (setDelay(1e9)) kept a test
    // process alive after close().
    to.once('close', () => {
      clearTimeout(timer);
      timer = undefined;
      queue.length = 0;
    });
    const flush = () => {
      timer = undefined;
      const now = Date.now();
      while (queue.length > 0 && queue[0]!.due <= now) {
        const { chunk } = queue.shift()!;
        if (!to.destroyed) to.write(chunk);
      }
      if (queue.length > 0) timer = setTimeout(flush, queue[0]!.due - now);
    };
    return (chunk) => {
      if (to.destroyed) return;
      const now = Date.now();
      const due = Math.max(now + held(), queue.length > 0 ? queue[queue.length - 1]!.due : 0);
      if (queue.length === 0 && due <= now) {
        if (!to.destroyed) to.write(chunk);
        return;
      }
      queue.push({ due, chunk });
      timer ??= setTimeout(flush, due - now);
    };
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get connections() {
      return piped.size;
    },
    get turns() {
      return turns;
    },
    get attempts() {
      return attempts;
    },
    watch(prefixes) {
      const wanted = prefixes.map((prefix) => Buffer.from(prefix));
      let count = 0;
      watchers.push((chunk) => {
        if (wanted.some((prefix) => chunk.subarray(0, prefix.length).equals(prefix))) count++;
      });
      return () => count;
    },
    setDelay(ms: number, only?: 'replies') {
      if (!adjustable) throw new Error('setDelay() needs a proxy started adjustable');
      if (only === 'replies') replyDelay = ms;
      else {
        delay = ms;
        replyDelay = undefined;
      }
    },
    cut(how: CutMode = 'refuse') {
      mode = how;
      for (const socket of [...piped]) socket.resetAndDestroy();
    },
    heal() {
      mode = undefined;
      for (const socket of [...held]) socket.destroy();
    },
    async close() {
      mode = 'refuse';
      for (const socket of [...piped, ...held]) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
