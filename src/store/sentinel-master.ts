// A Sentinel client asks its sentinels where the master is only when its
// connection closes. A master that stalls without closing it (a paused or
// hung process, a route that drops packets) keeps the client, and the bus's
// subscriber, on it after the sentinels promoted its replica: every command
// times out, the breaker never closes and no invalidation reaches Redis for
// as long as the old master stays stalled (measured: 20 s and more, against a
// promotion in 1.6 s). After a timeout L2Store asks the sentinels itself
// (with its own short-lived connection, whose wait it bounds: a stalled
// sentinel accepts connections too); when they name another master, the
// stalled connection is dropped and the client reconnects through them, as
// after any lost connection. The bus's subscriber follows once the data
// connection answers again and the subscriber's does not (checkSubscriber).
import { isIP } from 'node:net';
import { Redis } from 'ioredis';
import { DISCONNECT_AT_ONCE, isCluster, type RedisClient } from './redis-client.js';

interface SentinelAddress {
  readonly host?: string;
  readonly port?: number;
  readonly family?: number;
}

export interface MasterAddress {
  readonly host: string;
  readonly port: number;
}

/** The options of a Sentinel client this module reads (ioredis's names). */
interface SentinelClientOptions {
  readonly sentinels?: readonly SentinelAddress[];
  readonly name?: string;
  readonly role?: string;
  readonly sentinelUsername?: string;
  readonly sentinelPassword?: string;
  readonly sentinelTLS?: object;
  readonly natMap?: Record<string, { host: string; port: number }> | ((key: string) => { host: string; port: number } | null | undefined);
}

function sentinelOptions(client: RedisClient): SentinelClientOptions | undefined {
  if (isCluster(client)) return undefined;
  const options = (client as { options?: SentinelClientOptions }).options;
  return Array.isArray(options?.sentinels) && options.sentinels.length > 0 && typeof options.name === 'string' ? options : undefined;
}

/**
 * Where `client`'s sentinels say its master is now: the first of them that
 * answers within `within` ms (tried in order) says. Undefined for a client
 * without sentinels, when none answers, or once `signal` aborts.
 */
export async function sentinelMaster(client: RedisClient, within: number, signal: AbortSignal): Promise<MasterAddress | undefined> {
  const options = sentinelOptions(client);
  return options === undefined ? undefined : askMaster(options, within, signal);
}

/**
 * Drops `client`'s connection when it does not go to `master`, as a reset
 * would: ioredis reconnects, asking the sentinels. Returns whether it did.
 */
export function leaveUnlessAt(client: RedisClient, master: MasterAddress): boolean {
  const stream = (client as { stream?: { remoteAddress?: string; remotePort?: number; destroy(): void } }).stream;
  if (client.status !== 'ready' || stream === undefined || reaches(stream, master)) return false;
  stream.destroy();
  return true;
}

/**
 * Whether a socket connected to `stream`'s peer reaches `master`. A master
 * the sentinels name by host name cannot be told from the socket's address:
 * then the port alone decides, and a move on the same port goes unseen.
 */
function reaches(stream: { remoteAddress?: string; remotePort?: number }, master: MasterAddress): boolean {
  if (stream.remotePort !== master.port) return false;
  if (isIP(master.host) === 0 || stream.remoteAddress === undefined) return true;
  return unmapped(stream.remoteAddress) === unmapped(master.host);
}

function unmapped(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/**
 * The master the first sentinel that answers names (after `natMap`), or
 * undefined when none does within `within` each. `signal` ends the question
 * at once (close(): its connection would otherwise outlive the cache).
 */
async function askMaster(options: SentinelClientOptions, within: number, signal: AbortSignal): Promise<MasterAddress | undefined> {
  for (const sentinel of options.sentinels!) {
    if (signal.aborted) return undefined;
    let asked: Redis | undefined;
    const abandon = () => asked?.disconnect();
    signal.addEventListener('abort', abandon);
    try {
      asked = sentinelConnection(options, sentinel, within);
      await asked.connect();
      const reply = (await asked.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', options.name!)) as unknown;
      if (Array.isArray(reply) && typeof reply[0] === 'string') return natResolved(options, reply[0], Number(reply[1]));
    } catch {
      // this sentinel did not answer: the next one
    } finally {
      signal.removeEventListener('abort', abandon);
      asked?.disconnect();
    }
  }
  return undefined;
}

/** A connection to `sentinel` as the client would make one (its sentinel credentials and TLS), not yet opened, never reopened. */
function sentinelConnection(options: SentinelClientOptions, sentinel: SentinelAddress, within: number): Redis {
  const connection = new Redis({
    host: sentinel.host ?? 'localhost',
    port: sentinel.port ?? 26379,
    ...(sentinel.family === undefined ? {} : { family: sentinel.family }),
    username: options.sentinelUsername,
    password: options.sentinelPassword,
    tls: options.sentinelTLS,
    lazyConnect: true,
    enableReadyCheck: false,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: within,
    commandTimeout: within,
    disconnectTimeout: DISCONNECT_AT_ONCE,
  });
  connection.on('error', () => undefined);
  return connection;
}

/** The least time between the end of one question to the sentinels after a timeout and the next (see L2Store.followSentinels). */
export const SENTINEL_QUESTION_GAP_MS = 1_000;

/** How long a lost watch waits before it tries the next sentinel. */
const WATCH_RETRY_MS = 1_000;

/**
 * Calls `onSwitch` with the new master whenever `client`'s sentinels
 * announce (`+switch-master`) that they switched its master (another
 * master's switch is ignored), and with the master the watched sentinel
 * names when the watch begins. One connection, to one sentinel at a time:
 * when it is lost, refused, or its PING (once a second) goes unanswered, the
 * next one is tried a second later. Undefined for a client without sentinels.
 */
export function watchSwitches(client: RedisClient, onSwitch: (master: MasterAddress) => void): { close(): void } | undefined {
  const options = sentinelOptions(client);
  if (options === undefined) return undefined;
  const sentinels = options.sentinels!;
  let next = 0;
  let closed = false;
  let watching: Redis | undefined;
  let retry: NodeJS.Timeout | undefined;
  let pinger: NodeJS.Timeout | undefined;
  const heard = (_channel: string, message: string) => {
    // <master name> <old ip> <old port> <new ip> <new port>
    const [name, , , host, port] = message.split(' ');
    if (name === options.name && host !== undefined && port !== undefined) onSwitch(natResolved(options, host, Number(port)));
  };
  const watch = () => {
    if (closed) return;
    const connection = sentinelConnection(options, sentinels[next++ % sentinels.length]!, WATCH_RETRY_MS);
    watching = connection;
    connection.on('message', heard);
    connection.once('end', () => {
      clearInterval(pinger);
      if (closed || watching !== connection) return;
      retry = setTimeout(watch, WATCH_RETRY_MS);
      retry.unref();
    });
    const lost = () => connection.disconnect();
    connection
      .connect()
      // A switch announced while no sentinel was watched (the last one lost, or before the first) is heard
      // from no one: what this one says now is followed as an announcement would be.
      .then(() => connection.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', options.name!))
      .then(async (reply) => {
        await connection.subscribe('+switch-master');
        // Closed, or given up for the next sentinel, while it subscribed: no pinger for a connection left behind.
        if (closed || watching !== connection) return;
        if (Array.isArray(reply) && typeof reply[0] === 'string') onSwitch(natResolved(options, reply[0], Number(reply[1])));
        // A sentinel that stalls without closing the connection announces nothing: one whose PING goes
        // unanswered (within WATCH_RETRY_MS, the connection's command timeout) is left for the next.
        clearInterval(pinger);
        pinger = setInterval(() => void connection.ping().catch(lost), WATCH_RETRY_MS);
        pinger.unref();
      })
      .catch(lost);
  };
  watch();
  return {
    close() {
      closed = true;
      clearTimeout(retry);
      clearInterval(pinger);
      watching?.disconnect();
    },
  };
}

function natResolved(options: SentinelClientOptions, host: string, port: number): MasterAddress {
  const map = options.natMap;
  const key = `${host}:${port}`;
  const mapped = typeof map === 'function' ? map(key) : map?.[key];
  return mapped ?? { host, port };
}

/** How long one sentinel is given to answer: as long as a connection is given to open (see openRedis). */
export function sentinelWait(commandTimeout: number): number {
  return Math.max(1000, commandTimeout * 5);
}
