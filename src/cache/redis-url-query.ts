// Options in a Redis URL's query that tiercache refuses. ioredis reads every
// query parameter as a client option, as a string, and lets it win over the
// options object passed beside the URL: `?enableOfflineQueue=true` or
// `?commandTimeout=5000` silently replaced the settings the outage promises
// rest on (fail fast, one timeout). Names are matched as ioredis reads them:
// decoded, case and all (`?commandtimeout=` sets nothing ioredis reads).
import { TierCacheConfigError } from '../errors.js';
import { isCluster, type RedisClient } from '../store/redis-client.js';

const OR_OWN_CLIENT = 'or pass your own ioredis client, which tiercache uses as it is';

/** What tiercache passes to the client it opens from a URL (openRedis), with what to use instead. */
const SET_BY_TIERCACHE: ReadonlyMap<string, string> = new Map([
  ['commandTimeout', 'set l2.commandTimeout instead'],
  ['connectTimeout', "tiercache derives it from l2.commandTimeout (5 times it, 1 s at least), and ioredis hands a URL's string to socket.setTimeout, which throws out of the connect and ends the process: set l2.commandTimeout instead"],
  ['maxRetriesPerRequest', 'tiercache sends a command once, bounded by l2.commandTimeout, and its breaker (l2.breakerCooldown) skips a dead Redis: set those instead'],
  ['enableOfflineQueue', 'tiercache fails a command at once while the connection is down, so a dead Redis costs a request no more than l2.commandTimeout: set l2.commandTimeout instead'],
  ['autoResendUnfulfilledCommands', 'tiercache never sends again what a cut left unanswered (a late store could land over a newer one): remove it'],
  ['retryStrategy', 'tiercache reconnects within 1 s, and ioredis, given a string where it calls a function, never reconnects at all: remove it'],
  ['lazyConnect', 'tiercache connects at once (see ready()): remove it'],
  ['disconnectTimeout', 'tiercache drops a connection that went silent at once: remove it'],
  ['enableAutoPipelining', 'tiercache sends the commands of one event-loop turn in one write itself: remove it'],
]);

/**
 * Options ioredis reads as something a URL cannot give, by what it expects: given a string, it throws calling one
 * (reconnectOnError on the first error reply, NOSCRIPT after a Redis restart included: a TypeError out of the
 * socket's data handler, which ends the process), throws a bare TypeError out of createCache (scripts,
 * himportFieldsets), or asks its "sentinels" for a master (each character one), never connecting: L2 down for good.
 */
const NOT_FROM_A_STRING: ReadonlyMap<string, string> = new Map([
  ['reconnectOnError', 'calls it'],
  ['Connector', 'calls it'],
  ['sentinelRetryStrategy', 'calls it'],
  ['sentinelReconnectStrategy', 'calls it'],
  ['sentinels', 'reads it as a list of sentinels (and then asks them, not the URL\'s host)'],
  ['scripts', 'reads it as an object of Lua scripts'],
  ['himportFieldsets', 'reads it as a list'],
]);

/**
 * What tiercache sets on the subscriber it opens beside a Cluster (its
 * redisOptions), which a startup node's own options replace: ioredis builds
 * each node's client from the node's options first (a URL's query, or the
 * fields of a node object), then redisOptions.
 */
const SET_ON_CLUSTER_SUBSCRIBER: ReadonlyMap<string, string> = new Map([
  ['stringNumbers', "ioredis reads CLUSTER SLOTS with it too, a third of the slots maps to no node, and the sharded subscriber threw out of 'ready'"],
  ['disconnectTimeout', 'tiercache drops a connection that went silent at once'],
]);

/**
 * Refuses a URL whose query sets what tiercache sets on the client it opens.
 * @throws TierCacheConfigError naming `option` (`redis`, `TIERCACHE_REDIS_URL`) and the parameter.
 */
export function refuseOwnSettingsInQuery(option: string, query: URLSearchParams, shown: string): void {
  for (const [name, value] of query) {
    const instead = SET_BY_TIERCACHE.get(name);
    if (instead !== undefined) throw new TierCacheConfigError(option, shown, `must not set ${name} in its query: tiercache sets it on the client it opens, and ioredis would let the URL's value win (${instead}, ${OR_OWN_CLIENT})`);
    if (name === 'monitor') throw new TierCacheConfigError(option, shown, `must not set monitor in its query: ioredis then turns the connection into a MONITOR stream, which refuses every command tiercache sends (L2 and the bus stayed down): remove it`);
    if (name === 'tls' && TLS_OFF.test(value)) throw new TierCacheConfigError(option, shown, `must not set tls=${value} in its query: ioredis reads it as TLS with a profile named ${JSON.stringify(value)}, so TLS is on whatever the value says, and a server speaking plain text never answers (L2 and the bus stay down): remove it for plain text, or use rediss:// for TLS`);
    refuseNotFromAString(option, name, shown, `remove it, ${OR_OWN_CLIENT}`);
  }
}

/** A `tls` value that means "off" to a reader, which ioredis takes for the name of a TLS profile, turning TLS on. */
const TLS_OFF = /^(?:false|0|no|off|)$/i;

/**
 * Refuses a Cluster whose startup nodes set what tiercache sets on the
 * subscriber it opens beside it (the Cluster itself is the caller's and stays as it is).
 * @throws TierCacheConfigError naming `redis` and the node's option.
 */
export function refuseClusterNodeSettings(client: RedisClient): void {
  if (!isCluster(client)) return;
  const nodes = (client as unknown as { startupNodes?: unknown }).startupNodes;
  if (!Array.isArray(nodes)) return;
  for (const node of nodes) {
    const names = typeof node === 'string' ? [...(nodeQuery(node)?.keys() ?? [])] : typeof node === 'object' && node !== null ? Object.keys(node) : [];
    const shown = typeof node === 'string' ? `a Cluster with the startup node ${JSON.stringify(withoutPassword(node))}` : 'a Cluster with a startup node object';
    for (const name of names) {
      const why = SET_ON_CLUSTER_SUBSCRIBER.get(name);
      if (why !== undefined) throw new TierCacheConfigError('redis', shown, `must not set ${name} on a startup node: tiercache sets it on the subscriber it opens beside the Cluster, where the node's value would win (${why}); set it in the Cluster's redisOptions instead, or leave it out`);
      if (typeof node === 'string') refuseNotFromAString('redis', name, shown, "give it in the Cluster's redisOptions instead, or leave it out");
    }
  }
}

function refuseNotFromAString(option: string, name: string, shown: string, instead: string): void {
  const expects = NOT_FROM_A_STRING.get(name);
  if (expects !== undefined) throw new TierCacheConfigError(option, shown, `must not set ${name} in its query: ioredis ${expects}, and a URL can only give a string (ioredis would throw on it, or never connect): ${instead}`);
}

/** A startup node's query as ioredis's parseURL reads it: a port alone has none, a unix socket path keeps its own. */
function nodeQuery(node: string): URLSearchParams | undefined {
  if (/^\d+$/.test(node)) return undefined;
  if (node[0] === '/' && !node.startsWith('//')) {
    const at = node.indexOf('?');
    return at === -1 ? undefined : new URLSearchParams(node.slice(at + 1));
  }
  try {
    return new URL(/^rediss?:\/\//i.test(node) ? node : node.startsWith('//') ? `redis:${node}` : `redis://${node}`).searchParams;
  } catch {
    // ioredis throws on it when the Cluster connects: the caller's own client, not a setting of tiercache's.
    return undefined;
  }
}

/**
 * A URL with its credentials masked, for messages and logs: everything up to
 * the last '@' (a password may hold '/', '#' or '@'; masking a host too is the
 * safe side), with or without a scheme (a Cluster's startup node may have
 * none), and a password given as a query parameter.
 */
export function withoutPassword(url: string): string {
  return url.replace(/^((?:[a-z][a-z0-9+.-]*:)?\/\/)?.*@/is, '$1***@').replace(/([?&])([^=&#]*)=([^&#]*)/g, maskPasswordParameter);
}

/** A query parameter named password as URLSearchParams decodes it (`pass%77ord`, `+` for space, any case), its value masked. */
function maskPasswordParameter(whole: string, separator: string, name: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    decoded = name; // a malformed escape: URLSearchParams keeps it as written
  }
  return decoded.toLowerCase() === 'password' ? `${separator}${name}=***` : whole;
}
