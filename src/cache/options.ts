// createCache options: the public interface, environment fallbacks and the
// single validation step. Everything is checked here, once, and resolved
// into a frozen object; the caller's object is never mutated.
import { TierCacheConfigError } from '../errors.js';
import { parseDuration, parseTimerDuration, parseTtl, type Duration } from '../keys/duration.js';
import { parseJitter, type Jitter } from '../keys/jitter.js';
import { CACHE_TTL_INSTEAD, RouteTable, type RouteRuleInput } from '../keys/route-table.js';
import { isCluster, isRedisClient, type RedisClient } from '../store/redis-client.js';
import { refuseClusterNodeSettings, refuseOwnSettingsInQuery, withoutPassword } from './redis-url-query.js';
import { resolveSerializer, type ResolvedSerializer, type Serializer, type SerializerName } from './serializer.js';

/** Anything with pino's method shapes: `logger.warn({ err }, 'message')`. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface L1CacheOptions {
  /** Most entries L1 holds. @default 10_000 */
  maxEntries?: number | undefined;
  /** Most bytes (bodies, headers, keys, tags) L1 holds. @default 64 MiB */
  maxBytes?: number | undefined;
  /** Cap on how long an entry stays in L1; bounds staleness while the bus is down. @default the entry's own TTL */
  ttl?: Duration | undefined;
}

export interface L2CacheOptions {
  /** Longest a Redis command may take before it counts as failed (a miss). @default '200ms' */
  commandTimeout?: Duration | undefined;
  /** After a timeout, how long Redis is skipped before one command probes it again. @default '1s' */
  breakerCooldown?: Duration | undefined;
  /**
   * Lifetime of the cross-instance fill lock: on a miss one instance runs the
   * handler while the others wait up to this long for its entry. 0 turns the lock off. @default '3s'
   */
  lockTimeout?: Duration | undefined;
}

export interface CacheOptions {
  /** Prefixes every Redis key and the pub/sub channel. @default 'tiercache' (env TIERCACHE_NAMESPACE) */
  namespace?: string | undefined;
  /** Redis URL, an ioredis Redis or Cluster, or false for L1 only. @default env TIERCACHE_REDIS_URL, else L1 only */
  redis?: string | RedisClient | false | undefined;
  /** The in-process tier, or false for L2 only. */
  l1?: L1CacheOptions | false | undefined;
  /** How tiercache talks to Redis. */
  l2?: L2CacheOptions | undefined;
  /** TTL where no route rule or per-call ttl applies. @default none (data API: 60 s) */
  ttl?: Duration | undefined;
  /** The route TTL table: path prefix -> TTL, false, or a rule object. */
  routes?: Record<string, RouteRuleInput> | undefined;
  /** Master switch: false makes every middleware pass through and the data API miss. @default true (env TIERCACHE_ENABLED) */
  enabled?: boolean | undefined;
  /** Where HTTP lifetimes come from by default. @default 'table' */
  freshness?: 'table' | 'origin' | undefined;
  /** A pino-compatible logger. @default util.debuglog('tiercache') */
  logger?: Logger | undefined;
  /**
   * How data-API values become bytes: 'json' (frozen shared values), 'v8'
   * (keeps Date, Map, Set, BigInt, Buffer; a fresh copy per read), or your own.
   * Every instance of a namespace must use the same. @default 'json'
   */
  serializer?: SerializerName | Serializer | undefined;
  /**
   * Shortens each stored entry's TTL by a random part of up to this share, so
   * entries filled together do not expire together (route rules and the
   * middleware may set their own). @default none
   */
  jitter?: Jitter | undefined;
}

export interface ResolvedL1Options {
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly ttl: number | undefined;
}

export interface ResolvedOptions {
  readonly namespace: string;
  readonly redis: string | RedisClient | undefined;
  readonly l1: ResolvedL1Options | undefined;
  readonly commandTimeout: number;
  readonly breakerCooldown: number;
  readonly lockTimeout: number;
  readonly ttl: number | undefined;
  readonly routes: RouteTable;
  readonly enabled: boolean;
  readonly freshness: 'table' | 'origin';
  readonly logger: Logger | undefined;
  /** undefined: JSON. */
  readonly serializer: ResolvedSerializer | undefined;
  /** Share of a TTL taken off at random (0: none). */
  readonly jitter: number;
}

export const DEFAULT_L1_MAX_ENTRIES = 10_000;
export const DEFAULT_L1_MAX_BYTES = 64 * 1024 * 1024;
export const DEFAULT_COMMAND_TIMEOUT = 200;
export const DEFAULT_BREAKER_COOLDOWN = 1000;
export const DEFAULT_LOCK_TIMEOUT = 3000;

const TOP_KEYS = new Set(['namespace', 'redis', 'l1', 'l2', 'ttl', 'routes', 'enabled', 'freshness', 'logger', 'serializer', 'jitter']);
const L1_KEYS = new Set(['maxEntries', 'maxBytes', 'ttl']);
const L2_KEYS = new Set(['commandTimeout', 'breakerCooldown', 'lockTimeout']);
const NAMESPACE = /^[A-Za-z0-9_.-]{1,64}$/;

type Env = Readonly<Record<string, string | undefined>>;

function checkKeys(option: string, value: object, known: ReadonlySet<string>): void {
  for (const key of Object.keys(value)) {
    if (!known.has(key)) {
      const name = option === '' ? key : `${option}.${key}`;
      throw new TierCacheConfigError(name, (value as Record<string, unknown>)[key], `is not a known option (known: ${[...known].join(', ')})`);
    }
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function envBoolean(env: Env, name: string): boolean | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const v = raw.trim().toLowerCase();
  if (v === 'true' || v === '1' || v === 'yes' || v === 'on') return true;
  if (v === 'false' || v === '0' || v === 'no' || v === 'off') return false;
  throw new TierCacheConfigError(name, raw, 'must be true or false (also 1/0, yes/no, on/off)');
}

function envString(env: Env, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw === '' ? undefined : raw;
}

function positiveInteger(option: string, value: unknown): number {
  if (typeof value === 'string' && /^\s*\d+\s*$/.test(value)) value = Number(value);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new TierCacheConfigError(option, value, 'must be a whole number >= 1');
  }
  return value;
}

/**
 * Clients through which nothing could be cached, refused before anything is sent: a Sentinel client made
 * to connect to a replica, where every script (they all write) fails READONLY; a Cluster client with a
 * keyPrefix, whose keys hash to other slots than tiercache groups them by (key names carry no braces),
 * so every fill failed CROSSSLOT. A standalone client's keyPrefix works (scripts derive keys from their
 * prefixed KEYS); the namespace keeps apps apart without it.
 */
function refuseUnwritable(client: RedisClient): void {
  const options = (client as { options?: { role?: unknown; sentinels?: unknown; keyPrefix?: unknown; redisOptions?: { keyPrefix?: unknown } } }).options;
  if (options === undefined) return;
  if (isCluster(client)) {
    const prefix = options.keyPrefix || options.redisOptions?.keyPrefix;
    if (prefix) throw new TierCacheConfigError('redis', `a Cluster client with keyPrefix '${String(prefix)}'`, "must have no keyPrefix on a Cluster (tiercache puts each key in a slot by its name as written, which the prefix would move): keep apps apart with the namespace option instead");
  } else if (options.role === 'slave' && Array.isArray(options.sentinels) && options.sentinels.length > 0) {
    throw new TierCacheConfigError('redis', "a Sentinel client with role: 'slave'", "must connect to the master (leave role out, or 'master'): tiercache writes on every fill and invalidation, which a replica refuses");
  }
}

/** Validates createCache options (and TIERCACHE_* variables for options not given). */
export function resolveOptions(input: CacheOptions | undefined, env: Env = process.env): ResolvedOptions {
  if (input !== undefined && !isPlainObject(input)) throw new TierCacheConfigError('options', input, 'must be an object');
  const options: CacheOptions = input ?? {};
  checkKeys('', options, TOP_KEYS);

  const fromEnv = (option: string, variable: string) => (options as Record<string, unknown>)[option] === undefined && env[variable] !== undefined && env[variable] !== '';

  // namespace
  // null is a value (refused below), not "not given": it must not let TIERCACHE_NAMESPACE name another app's keys.
  const namespace: unknown = options.namespace !== undefined ? options.namespace : (envString(env, 'TIERCACHE_NAMESPACE') ?? 'tiercache');
  const nsName = options.namespace === undefined && envString(env, 'TIERCACHE_NAMESPACE') !== undefined ? 'TIERCACHE_NAMESPACE' : 'namespace';
  if (typeof namespace !== 'string' || !NAMESPACE.test(namespace)) {
    throw new TierCacheConfigError(nsName, namespace, 'must be 1-64 characters from A-Z a-z 0-9 _ . -');
  }

  // enabled
  let enabled: boolean;
  if (options.enabled !== undefined) {
    if (typeof options.enabled !== 'boolean') throw new TierCacheConfigError('enabled', options.enabled, 'must be a boolean');
    enabled = options.enabled;
  } else enabled = envBoolean(env, 'TIERCACHE_ENABLED') ?? true;

  // redis / L2
  let redis: string | RedisClient | undefined;
  if (options.redis !== undefined) {
    if (options.redis === false) redis = undefined;
    else if (typeof options.redis === 'string') redis = redisUrl('redis', options.redis, 'must be a redis:// or rediss:// URL, an ioredis Redis or Cluster, or false');
    else if (isRedisClient(options.redis)) {
      // 'end': quit() or disconnect() was called, or it gave up reconnecting; it never connects again by itself,
      // and the cache would run on L1 alone with nothing said (the bus, on a connection of its own, looked fine).
      if (options.redis.status === 'end') throw new TierCacheConfigError('redis', `an ioredis client whose status is 'end'`, 'must be a client that is not closed (quit() or disconnect() ends it): pass an open one, or a URL');
      refuseUnwritable(options.redis);
      refuseClusterNodeSettings(options.redis);
      redis = options.redis;
    }
    else throw new TierCacheConfigError('redis', options.redis, 'must be a redis:// or rediss:// URL, an ioredis Redis or Cluster, or false');
  } else if (envBoolean(env, 'TIERCACHE_L2_ENABLED') !== false) {
    const url = envString(env, 'TIERCACHE_REDIS_URL');
    redis = url === undefined ? undefined : redisUrl('TIERCACHE_REDIS_URL', url, 'must be a redis:// or rediss:// URL');
  }

  let commandTimeout = DEFAULT_COMMAND_TIMEOUT;
  let breakerCooldown = DEFAULT_BREAKER_COOLDOWN;
  let lockTimeout = DEFAULT_LOCK_TIMEOUT;
  if (options.l2 !== undefined) {
    if (!isPlainObject(options.l2)) throw new TierCacheConfigError('l2', options.l2, 'must be an object');
    checkKeys('l2', options.l2, L2_KEYS);
    if (options.l2.commandTimeout !== undefined) commandTimeout = parseTimerDuration('l2.commandTimeout', options.l2.commandTimeout);
    if (options.l2.breakerCooldown !== undefined) breakerCooldown = parseTimerDuration('l2.breakerCooldown', options.l2.breakerCooldown);
    if (options.l2.lockTimeout !== undefined) lockTimeout = parseDuration('l2.lockTimeout', options.l2.lockTimeout);
    if (commandTimeout < 1) throw new TierCacheConfigError('l2.commandTimeout', options.l2.commandTimeout, 'must be at least 1 ms');
  }

  // L1
  let l1: ResolvedL1Options | undefined;
  const l1Enabled = options.l1 !== undefined ? options.l1 !== false : envBoolean(env, 'TIERCACHE_L1_ENABLED') ?? true;
  if (l1Enabled) {
    const o = options.l1 === undefined || options.l1 === false ? {} : options.l1;
    if (!isPlainObject(o)) throw new TierCacheConfigError('l1', options.l1, 'must be an object or false');
    checkKeys('l1', o, L1_KEYS);
    const pick = (key: keyof L1CacheOptions, variable: string): [string, unknown] =>
      o[key] !== undefined ? [`l1.${key}`, o[key]] : [variable, envString(env, variable)];
    const [entriesName, entries] = pick('maxEntries', 'TIERCACHE_L1_MAX_ENTRIES');
    const [bytesName, bytes] = pick('maxBytes', 'TIERCACHE_L1_MAX_BYTES');
    const [ttlName, ttl] = pick('ttl', 'TIERCACHE_L1_TTL');
    l1 = Object.freeze({
      maxEntries: entries === undefined ? DEFAULT_L1_MAX_ENTRIES : positiveInteger(entriesName, entries),
      maxBytes: bytes === undefined ? DEFAULT_L1_MAX_BYTES : positiveInteger(bytesName, bytes),
      ttl: ttl === undefined ? undefined : parseTtl(ttlName, ttl, 'leave l1.ttl out for entries to live in L1 as long as their TTL'),
    });
  } else if (options.l1 !== undefined && options.l1 !== false) {
    throw new TierCacheConfigError('l1', options.l1, 'must be an object or false');
  }

  if (l1 === undefined && redis === undefined) {
    const why = options.l1 === false && options.redis === false ? 'l1' : options.l1 === false ? 'l1' : 'TIERCACHE_L1_ENABLED';
    throw new TierCacheConfigError(why, false, 'cannot be off while there is no Redis (redis: false or no TIERCACHE_REDIS_URL): the cache could store nothing');
  }

  // TTL and table
  let ttl: number | undefined;
  if (options.ttl !== undefined) ttl = parseTtl('ttl', options.ttl, CACHE_TTL_INSTEAD);
  else if (fromEnv('ttl', 'TIERCACHE_TTL')) ttl = parseTtl('TIERCACHE_TTL', env.TIERCACHE_TTL, CACHE_TTL_INSTEAD);
  const routes = new RouteTable(options.routes, 'routes');

  const freshness = options.freshness === undefined ? 'table' : options.freshness;
  if (freshness !== 'table' && freshness !== 'origin') throw new TierCacheConfigError('freshness', options.freshness, "must be 'table' or 'origin'");

  const logger = options.logger;
  if (logger !== undefined) {
    for (const level of ['debug', 'info', 'warn', 'error'] as const) {
      if (typeof (logger as unknown as Record<string, unknown>)?.[level] !== 'function') {
        throw new TierCacheConfigError('logger', logger, `must have debug, info, warn and error methods (pino-compatible); ${level} is missing`);
      }
    }
  }

  const serializer = resolveSerializer('serializer', options.serializer);
  const jitter = parseJitter('jitter', options.jitter) ?? 0;

  return Object.freeze({ namespace, redis, l1, commandTimeout, breakerCooldown, lockTimeout, ttl, routes, enabled, freshness, logger, serializer, jitter });
}

/**
 * A Redis URL as ioredis will read it (node's URL parser: a bad port or host
 * threw a bare TypeError from inside ioredis). Errors show it without its
 * password.
 * @throws TierCacheConfigError naming `option`.
 */
function redisUrl(option: string, url: string, expected: string): string {
  const shown = withoutPassword(url);
  if (!/^rediss?:\/\//i.test(url)) throw new TierCacheConfigError(option, shown, expected);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TierCacheConfigError(option, shown, `is not a URL node can read (${expected})`);
  }
  // ioredis sends SELECT with what it makes of the path (or ?db=) by parseInt: '/1.5' or '/2x' is another
  // database than written, and 'abc' sends SELECT NaN, whose refusal no one catches (the process ends).
  const dbs = [...(parsed.pathname === '' || parsed.pathname === '/' ? [] : [parsed.pathname.slice(1)]), ...parsed.searchParams.getAll('db')];
  for (const db of dbs) {
    if (!/^\d{1,10}$/.test(db) || Number(db) > MAX_DB_INDEX) {
      throw new TierCacheConfigError(option, shown, `names a database that is not a whole number from 0 to ${MAX_DB_INDEX} (${JSON.stringify(db)}; ${expected})`);
    }
  }
  refuseOwnSettingsInQuery(option, parsed.searchParams, shown);
  return url;
}

/** The largest database index a Redis server can have (its `databases` setting is an int). */
const MAX_DB_INDEX = 2 ** 31 - 1;
