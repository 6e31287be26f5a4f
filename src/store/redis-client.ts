// The Redis clients tiercache talks to: a URL (tiercache opens and owns the
// client) or a caller's ioredis Redis / Cluster (used as is, never closed).
// Clients we open fail fast instead of queueing: no offline queue, a short
// commandTimeout, one retry per command, quick reconnects.
import { Redis, type Cluster } from 'ioredis';
import { sendScriptsFlat } from './flat-command.js';
import { batchWrites } from './write-batching.js';

/** What the `redis` option accepts besides a URL: an ioredis Redis or Cluster. */
export type RedisClient = Redis | Cluster;

export interface OpenedRedis {
  readonly client: RedisClient;
  /** Whether tiercache opened it (and so closes it in close()). */
  readonly owned: boolean;
  /**
   * Whether the client bounds each caller's wait itself: a commandTimeout no
   * longer than tiercache's, and no auto-pipelining (whose batches start their
   * commands' timers only when written, which may be a whole timeout after the call).
   */
  readonly boundsCommands: boolean;
}

/** Duck-typed so a client from another copy of ioredis is accepted too. */
export function isRedisClient(value: unknown): value is RedisClient {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { getBuffer?: unknown }).getBuffer === 'function' &&
    typeof (value as { status?: unknown }).status === 'string'
  );
}

export function isCluster(client: RedisClient): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}

/**
 * Where a client's keys live on its server: its database and keyPrefix
 * (`3`, `0 app:`). Two apps kept apart only by these share the namespace's
 * channel, since pub/sub knows no database and ioredis prefixes no channel.
 * A Cluster has one database, and no keyPrefix (refused: see options.ts).
 */
export function keySpace(client: RedisClient): string {
  const options = (client as { options?: { db?: unknown; keyPrefix?: unknown } }).options;
  const db = isCluster(client) ? 0 : Number(options?.db ?? 0);
  const prefix = options?.keyPrefix;
  return prefix === undefined || prefix === '' ? String(db) : `${db} ${String(prefix)}`;
}

/**
 * Whether the client may send a read-only command (GET) to a replica: a
 * Cluster made with `scaleReads` other than 'master'. Scripts always run on a
 * master, so a GET after one could read bytes from before a write the script
 * saw (a lagging replica), or none.
 */
export function readsReplicas(client: RedisClient): boolean {
  if (!isCluster(client)) return false;
  const scaleReads = (client as { options?: { scaleReads?: unknown } }).options?.scaleReads;
  return scaleReads !== undefined && scaleReads !== 'master';
}

/** Clients whose Redis refused GETEX (older than 6.2, or an ACL without it): they read with GET, replica or not. */
const noGetex = new WeakSet<RedisClient>();

/**
 * An entry's bytes as the master holds them (see readsReplicas). GETEX
 * without options is GET, but flagged a write, so ioredis sends it to the
 * master; where Redis refuses it, a GET, as before.
 */
export async function getFromMaster(client: RedisClient, key: string): Promise<Buffer | null> {
  if (noGetex.has(client)) return client.getBuffer(key);
  try {
    return await (client as unknown as { getexBuffer(key: string): Promise<Buffer | null> }).getexBuffer(key);
  } catch (err) {
    if (!(err instanceof Error && /^(ERR unknown command|NOPERM)/i.test(err.message))) throw err;
    noGetex.add(client);
    return client.getBuffer(key);
  }
}

/**
 * ioredis's disconnectTimeout for the connections tiercache opens: disconnect() ends the socket and
 * destroys it only this long after (2 s by default) unless the server closes its side first, which a
 * frozen or blackholed one never does. tiercache disconnects only after QUIT had its wait (close()) or
 * to drop a connection that went silent: the socket then kept the process alive, or held up the
 * reconnect, those 2 s for nothing.
 */
export const DISCONNECT_AT_ONCE = 0;

export function openRedis(target: string | RedisClient, commandTimeout: number): OpenedRedis {
  if (typeof target !== 'string') {
    // A Cluster retries a command through redirections and failovers (up to maxRedirections times
    // retryDelayOnFailover, past any node's commandTimeout): tiercache bounds it itself.
    if (isCluster(target)) return { client: target, owned: false, boundsCommands: false };
    const options = (target as Redis).options;
    // Its own commandTimeout bounds a caller's wait only when no longer than tiercache's.
    const bounds = typeof options?.commandTimeout === 'number' && options.commandTimeout <= commandTimeout && !options.enableAutoPipelining;
    return { client: target, owned: false, boundsCommands: bounds };
  }
  // ioredis reads the scheme in any case but turns TLS on only for one written 'rediss://': a 'REDISS://' URL,
  // valid as URLs go (options.ts takes it), went out in plain text, its password included.
  const client = new Redis(target.replace(/^rediss:/i, 'rediss:'), {
    commandTimeout,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // ioredis keeps what a cut left unanswered and sends it at the next ready, however late, though the
    // command timeout answered its caller long before: a set()'s script landed after a longer outage over
    // a newer set() (its token lives only a few seconds). Nothing here relies on a command being sent again.
    autoResendUnfulfilledCommands: false,
    connectTimeout: Math.max(1000, commandTimeout * 5),
    // Reconnect quickly: every reconnect flushes L1 anyway, and a short gap
    // loses fewer invalidation messages (REDIS-NOTES: window b).
    retryStrategy: (times) => Math.min(times * 50, 1000),
    lazyConnect: false,
    disconnectTimeout: DISCONNECT_AT_ONCE,
  });
  // Commands that concurrent requests send in one turn share one write (one syscall): on a busy
  // instance a round trip is then shared by many requests (write-batching.ts says why not auto-pipelining).
  batchWrites(client);
  // Its scripts' arguments go out without ioredis's Array#flat (flat-command.ts says why).
  sendScriptsFlat(client);
  client.on('close', () => failUnanswered(client));
  // ioredis's timer judges a command from its call, before the socket is read: a turn of the event loop
  // blocked past the timeout (the process's own work) timed out commands that were not even written yet,
  // or whose reply waited in the kernel, and opened the breaker on a healthy Redis. Once the connection is
  // ready, tiercache's deadlines bound its commands instead (CommandDeadlines); ioredis's timer bounds only
  // the handshake (its ready check), which tiercache does not send.
  const options = client.options;
  client.on('ready', () => (options.commandTimeout = undefined));
  client.on('close', () => (options.commandTimeout = commandTimeout));
  return { client, owned: true, boundsCommands: false };
}

/** ioredis's record of the commands a lost connection left unanswered (its own field, read where it is there). */
interface UnansweredQueue {
  readonly length: number;
  peekAt(i: number): { readonly command?: { reject?(err: Error): void } } | undefined;
}

/**
 * Fails at once every command the connection just lost left unanswered: a
 * client that does not send them again never answers them otherwise, and
 * their callers (an invalidation, which is replayed once it fails) would
 * wait a whole command timeout for nothing, Redis often back long before.
 * ioredis emits 'close' on the next tick, before it reconnects.
 */
function failUnanswered(client: Redis): void {
  const queue = (client as unknown as { prevCommandQueue?: UnansweredQueue | null }).prevCommandQueue;
  if (queue === null || queue === undefined) return;
  const lost = new Error('Connection is closed.');
  for (let i = 0; i < queue.length; i++) queue.peekAt(i)?.command?.reject?.(lost);
}
