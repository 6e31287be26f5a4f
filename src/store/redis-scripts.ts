// Lua scripts for tag versions, kept in one hash slot per namespace so they run
// unchanged on Redis Cluster. A missing counter is created from the server's
// clock in microseconds instead of 0: a counter lost to a restart, FLUSHALL or
// eviction comes back larger than any value it had, so an entry that recorded
// an old version can never match again (no ABA). Tag counters carry a TTL
// (ARGV[1], ms), renewed whenever they are read or bumped, so counters of
// tags nobody uses any more (a deleted user, a one-off path) do not pile up;
// one that expires comes back from the clock like a lost one. ARGV[2] = 1 when
// KEYS[1] is the namespace epoch, which never expires.
import { createHash } from 'node:crypto';
import type { RedisClient } from './redis-client.js';

const INIT = `
local t = redis.call('TIME')
local init = t[1] .. string.format('%06d', tonumber(t[2]))
`;

/** KEYS: counters to read. Returns their values as strings, creating missing ones. */
const READ_SCRIPT = `${INIT}
local ttl = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if not v then
    redis.call('SET', key, init)
    v = init
  end
  if not (i == 1 and ARGV[2] == '1') then redis.call('PEXPIRE', key, ttl) end
  out[i] = v
end
return out`;

/** KEYS: counters to increment. Returns the new values, creating missing ones first. */
const BUMP_SCRIPT = `${INIT}
local ttl = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then redis.call('SET', key, init) end
  out[i] = redis.call('INCR', key)
  if not (i == 1 and ARGV[2] == '1') then redis.call('PEXPIRE', key, ttl) end
end
return out`;

class LuaScript {
  private readonly sha: string;
  constructor(private readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /** `firstIsEpoch`: KEYS[1] is the namespace epoch (no TTL); `ttl`: TTL of tag counters, ms. */
  async run(client: RedisClient, keys: readonly string[], ttl: number, firstIsEpoch: boolean): Promise<number[]> {
    const args = [...keys, String(ttl), firstIsEpoch ? '1' : '0'];
    let reply: unknown;
    try {
      reply = await client.evalsha(this.sha, keys.length, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.includes('NOSCRIPT')) throw err;
      reply = await client.eval(this.source, keys.length, ...args);
    }
    if (!Array.isArray(reply) || reply.length !== keys.length) throw new Error('unexpected reply from a tiercache version script');
    return reply.map((v) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n)) throw new Error(`tiercache version counter holds ${String(v)}, not an integer`);
      return n;
    });
  }
}

/** Reads (creating when missing) version counters. */
export const readCounters = new LuaScript(READ_SCRIPT);
/** Increments version counters (creating them from the clock when missing). */
export const bumpCounters = new LuaScript(BUMP_SCRIPT);
