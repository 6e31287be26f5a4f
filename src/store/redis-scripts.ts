// Lua scripts for tag versions. On standalone Redis one script reads or bumps
// any counters; on a Cluster, where counters spread over slots, the slot
// variants run once per slot (see SLOT_GUARD). A missing counter is created from the server's
// clock in microseconds instead of 0: a counter lost to a restart, FLUSHALL or
// eviction comes back larger than any value it had, so an entry that recorded
// an old version can never match again (no ABA). Tag counters carry a TTL
// (ARGV[1], ms): short when a read or a bump creates one, renewed when an entry
// that recorded it is stored or when it is bumped, so counters of tags nobody uses
// any more (a deleted user, a one-off path) do not pile up; one that expires
// comes back from the clock like a lost one. ARGV[2] = 1 when KEYS[1] is the
// namespace epoch, which never expires.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { performance } from 'node:perf_hooks';
import { TierCacheError } from '../errors.js';
import { withTimeout } from './l2-store.js';
import { isCluster, type RedisClient } from './redis-client.js';
import type { ServerEpoch } from './tag-versions.js';

/** How long a counter made by a lookup lives unless a store renews it. */
export const PROVISIONAL_COUNTER_TTL_MS = 60_000;

/**
 * Most counters one version script reads or bumps. Longer lists (a
 * deleteMany of 50,000 keys) go out as several scripts, one after another,
 * each bounded by the command timeout on its own: one script over every key
 * would block Redis past that timeout (a healthy Redis reported down).
 */
export const COUNTERS_PER_SCRIPT = 1_000;

/**
 * On a Cluster, where a slice sends one script (or command) per slot it
 * holds, all at once: the most slots one slice holds, so each stays well
 * within the command timeout (a slice of 1,000 keys spread over 1,000 slots
 * would be 1,000 scripts).
 */
export const SLOTS_PER_SLICE = 100;

/**
 * Most keys one script call takes: COUNTERS_PER_SCRIPT counters, or a fill's
 * (fill-protocol.ts MAX_ENTRY_TAGS, the epoch, the entries, their lock, a
 * slot's two guard keys). A call past it is refused before anything is sent.
 */
export const MAX_SCRIPT_KEYS = 4_200;

/**
 * Lua: a counter's value, or nil when it is missing or holds anything but a
 * positive safe integer as INCR writes it (written by hand or by another
 * program, a key of another type):
 * such a counter is made again from the clock like a lost one, so corrupt data
 * costs a miss, never a script error that would fail every lookup and leave
 * the tag's invalidations undelivered.
 */
export const COUNTER_GET = `
local function counter(key)
  local v = redis.pcall('GET', key)
  if type(v) ~= 'string' or #v > 16 or not string.match(v, '^[1-9]%d*$') or tonumber(v) > 9007199254740991 then return nil end
  return v
end
`;

/**
 * Lua: the mark of a counter a fill's lookup made (fill-protocol.ts LOOKUP):
 * a key beside the counter, in its slot (the counter's name and ':new', so
 * the same hash tag), holding the value the counter was made with, with the
 * provisional TTL. Whatever makes the counter shared takes the mark away: a
 * lookup that reads the counter, a store whose entries record it. An abandon
 * deletes only a counter whose mark it finds still holding the value its own
 * lookup made it with: a TTL cannot tell a provisional counter from one an
 * entry of 60 s or less recorded. A separate key, so the counter stays the
 * plain integer every version reads. A counter without a hash tag (a tag
 * starting with '}') has no key beside it in its slot, so no mark: an
 * abandon leaves it to expire. mark_of(key) is the mark's name, or nil.
 */
export const PROVISIONAL_MARK = `
local function mark_of(key)
  local open = string.find(key, '{', 1, true)
  local close = open and string.find(key, '}', open + 1, true)
  if close and close > open + 1 then return key .. ':new' end
  return nil
end
local function unmark(key)
  local mark = mark_of(key)
  if mark then redis.call('DEL', mark) end
end
`;

const INIT = `${COUNTER_GET}
local t = redis.call('TIME')
local init = t[1] .. string.format('%06d', tonumber(t[2]))
`;

/**
 * KEYS: counters to read. Returns their values as strings, creating missing
 * ones with a short TTL (ARGV[1], ms): a counter outlives a read only when an
 * entry that recorded it is stored (the store renews it, see fill-protocol.ts),
 * so reads that end in nothing stored leave nothing behind for long.
 */
const READ_SCRIPT = `${INIT}
local ttl = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local v = counter(key)
  if not v then
    if i == 1 and ARGV[2] == '1' then redis.call('SET', key, init) else redis.call('SET', key, init, 'PX', ttl) end
    v = init
  end
  out[i] = v
end
return out`;

/**
 * Lua: the TTL a bump leaves on a tag counter. One it had to create (no entry
 * records a missing counter: a store renews every counter it records, and a
 * store that finds one gone is refused) gets the provisional lifetime a
 * lookup's counter gets, not the week of a shared one: a write to a path
 * nothing caches (POST /api/orders/<id>) would otherwise leave a counter per
 * id for a week. So does one it finds with no more than a provisional life
 * left (twice the TTL: what a lookup gives a counter two fills read), made by
 * a lookup or an earlier bump, or kept by a short-lived entry: an entry that
 * recorded it recorded a value the bump leaves behind (invalid now), one
 * stored after renews it, and a PUT then a PATCH of each id would otherwise
 * leave it a week.
 * Letting it expire is safe as losing any counter is: it comes back from the
 * clock, past the bumped value; an instance that learned that value from the
 * bus and stamps with it is refused once, then reads again. One with more
 * left (a store renewed it: entries share it), or none (written by hand), is
 * renewed to the shared TTL, as always.
 */
export const BUMP_TTL = `
local function bump_ttl(key, made, ttl)
  if not made then
    local left = redis.call('PTTL', key)
    if left < 0 or left > ${2 * PROVISIONAL_COUNTER_TTL_MS} then
      redis.call('PEXPIRE', key, ttl)
      return
    end
    if left >= ${PROVISIONAL_COUNTER_TTL_MS} then return end
  end
  redis.call('PEXPIRE', key, ${PROVISIONAL_COUNTER_TTL_MS})
end
`;

/**
 * KEYS: counters to increment. Returns the new values, creating missing ones
 * first. ARGV[2 + i], when given, is a floor for KEYS[i]: the highest value
 * the caller has seen. A counter found below it (restored from an older
 * snapshot, or on a replica that missed increments) is raised to it first,
 * so the new version is larger than anything the caller recorded.
 * TTLs: see BUMP_TTL (ARGV[1], the shared TTL; the epoch has none).
 */
const BUMP_SCRIPT = `${INIT}${BUMP_TTL}
local ttl = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local v = counter(key)
  local made = not v
  if made then
    redis.call('SET', key, init)
    v = init
  end
  local floor = ARGV[i + 2]
  -- KEEPTTL: the TTL it had decides what it gets (BUMP_TTL), not the lack of one a plain SET leaves.
  if floor and tonumber(v) < tonumber(floor) then redis.call('SET', key, floor, 'KEEPTTL') end
  out[i] = redis.call('INCR', key)
  if not (i == 1 and ARGV[2] == '1') then bump_ttl(key, made, ttl) end
end
return out`;

/**
 * Lua: who serves the data, for the guards below. serving() returns the Redis
 * process's run id (a restart changes it) and its master_replid2: zeros on a
 * master never promoted, and set by a promotion (replica -> master) to the
 * replication id it followed as replica. The run id alone takes a master for
 * itself when it comes back as master after a round as its successor's
 * replica, cut off before that one's last writes (a failover, a partition,
 * the successor lost): same process, older data. So each record (the
 * namespace's server key, a slot's guard) has a second key beside it, in the
 * same slot, holding the master_replid2 last seen; promoted() tells a
 * promotion since: a non-zero value other than the one recorded. A change to
 * zeros moves nothing: Redis clears master_replid2 when a master makes or
 * frees its backlog (first replica attaching to a master without one; no
 * replica for repl-backlog-ttl), not in a promotion. Nothing else on a master
 * changes it: replicas attaching, full resyncs, BGSAVE and Sentinel
 * re-pointing replicas leave it be (measured on 7.0). Not master_replid: a
 * master takes a new one when its first replica attaches. A second key rather
 * than a new record format, so instances of earlier versions, which read and
 * write the run id alone, keep agreeing with this one on the record. Without
 * INFO (an ACL), nil: no check, as before.
 */
const SERVING = `
local function info_field(info, name)
  -- A plain find (memchr) first: a pattern tried at every offset of INFO's 2 kB costs more than INFO itself.
  local at = string.find(info, '\\n' .. name .. ':', 1, true)
  return at and string.match(info, '^%x+', at + #name + 2) or nil
end
local function serving()
  -- One INFO for both sections (Redis >= 7); Redis 6 takes one section at a time.
  local info = redis.pcall('INFO', 'server', 'replication')
  if type(info) ~= 'string' then
    info = redis.pcall('INFO', 'server')
    if type(info) ~= 'string' then return nil, nil end
    local replication = redis.pcall('INFO', 'replication')
    if type(replication) == 'string' then info = info .. replication end
  end
  return info_field(info, 'run_id'), info_field(info, 'master_replid2')
end
local function promoted(seen, followed)
  return followed ~= nil and seen ~= followed and string.find(followed, '[1-9a-f]') ~= nil
end
`;

/**
 * Lua for scripts that read version counters on a Redis Cluster, where the
 * counters of a namespace spread over every slot and so over every master:
 * a failover to a replica that missed increments (or a restart from an old
 * snapshot) may bring a counter of one slot back to an old value, and the
 * namespace epoch (in another slot, on another master) would not notice. So
 * each slot keeps a guard key (hash-slot.ts slotGuardKeys): the run id of the
 * Redis process that last served the slot, and the slot's floor, and beside
 * it the master_replid2 that process was last seen with (see SERVING). The first
 * time a script finds an existing counter in a slot that another process
 * served before, or that its process served before it was promoted (a
 * replica since, maybe missing writes), the floor moves to the server's clock (in microseconds, the
 * unit counters start from), past every version handed out before; every
 * counter of the slot found below the floor is raised to it, so an entry
 * that recorded an old version never matches again. Counters created after
 * come from the clock, above the floor. A slot's guard is made (by mark(),
 * in the same script) with its first counter, so a replica that holds a
 * counter holds its guard too; an existing counter found without one (a
 * guard evicted, a counter from a version before guards) records the
 * process without moving the floor, as does a guard found without its
 * master_replid2 (written by an earlier version). Scripts set `guard` and
 * `followed_key` to the two keys
 * (nil: standalone, where the epoch check covers the one server), pass
 * every existing counter they read through lift() and call mark() before
 * making one. Without INFO (an ACL), there is no floor.
 */
export const SLOT_GUARD = `${SERVING}
local guard = nil
local followed_key = nil
local floor = nil
local function mark()
  if not guard or floor then return end
  if redis.call('EXISTS', guard) == 0 then
    local run, followed = serving()
    if run then redis.call('SET', guard, run .. ' 0') end
    if run and followed then redis.call('SET', followed_key, followed) end
    floor = 0
  end
end
-- A guard key holding another type (foreign data: the guard is no namespace's key) reads as a guard of
-- unknown origin, '': as one naming another process, it moves the floor and is overwritten. A GET of it
-- failed every script touching a counter of its slot.
local function guarded(key)
  local v = redis.pcall('GET', key)
  if type(v) == 'table' then return '' end
  return v
end
local function lift(key, v)
  if not guard then return v end
  if not floor then
    floor = 0
    local run, followed = serving()
    if run then
      local g = guarded(guard)
      local last, f
      if g then last, f = string.match(g, '^(%x+) (%d+)$') end
      if f then floor = tonumber(f) end
      local moved = g and last ~= run
      local seen = nil
      if g and not moved and followed then
        seen = guarded(followed_key)
        moved = seen and promoted(seen, followed)
      end
      if not g then redis.call('SET', guard, run .. ' 0')
      elseif moved then
        local t = redis.call('TIME')
        local now = tonumber(t[1] .. string.format('%06d', tonumber(t[2])))
        if floor < now then floor = now else floor = floor + 1 end
        redis.call('SET', guard, run .. ' ' .. string.format('%.0f', floor))
      end
      -- Recorded when new, or when the serving process changed; a change to zeros alone is not.
      if followed and (not g or moved or not seen) and seen ~= followed then redis.call('SET', followed_key, followed) end
    end
  end
  if tonumber(v) < floor then
    v = string.format('%.0f', floor)
    redis.call('SET', key, v, 'KEEPTTL')
  end
  return v
end
`;

/**
 * READ_SCRIPT for one Cluster slot: KEYS are counters of that slot, then the
 * slot's guard and the key beside it (hash-slot.ts slotGuardKeys). ARGV[1] provisional TTL, ARGV[2] '1' when KEYS[1] is the
 * epoch, ARGV[3] '1' for a fill's lookup: a counter it makes is marked (see
 * PROVISIONAL_MARK), and one another fill made (still provisional) loses its
 * mark and gets twice the provisional TTL, as in fill-protocol.ts LOOKUP;
 * ARGV[4] '1' for a read-only lookup (a get()): a missing counter is not made
 * (false in the reply), so a read that finds nothing leaves nothing.
 * Reply: { created positions ('1,3'), values... }.
 */
const SLOT_READ_SCRIPT = `${SLOT_GUARD}${INIT}${PROVISIONAL_MARK}
guard = KEYS[#KEYS - 1]
followed_key = KEYS[#KEYS]
local ttl = tonumber(ARGV[1])
local out = {''}
local created = {}
for i = 1, #KEYS - 2 do
  local key = KEYS[i]
  local epoch = i == 1 and ARGV[2] == '1'
  local v = counter(key)
  if v then
    v = lift(key, v)
    if ARGV[3] == '1' and not epoch then
      local left = redis.call('PTTL', key)
      if left > 0 and left <= 2 * ttl then
        unmark(key)
        if left <= ttl then redis.call('PEXPIRE', key, 2 * ttl) end
      end
    end
  elseif ARGV[4] == '1' then
    v = false
  else
    mark()
    v = init
    if epoch then redis.call('SET', key, v) else
      redis.call('SET', key, v, 'PX', ttl)
      if ARGV[3] == '1' then
        local m = mark_of(key)
        if m then redis.call('SET', m, v, 'PX', ttl) end
      end
      created[#created + 1] = i
    end
  end
  out[i + 1] = v
end
out[1] = table.concat(created, ',')
return out`;

/** BUMP_SCRIPT for one Cluster slot: KEYS are counters of that slot, then the slot's two guard keys; ARGV as BUMP_SCRIPT. */
const SLOT_BUMP_SCRIPT = `${SLOT_GUARD}${INIT}${BUMP_TTL}
guard = KEYS[#KEYS - 1]
followed_key = KEYS[#KEYS]
local ttl = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS - 2 do
  local key = KEYS[i]
  local v = counter(key)
  local made = not v
  if v then v = lift(key, v) else
    mark()
    redis.call('SET', key, init)
    v = init
  end
  local least = ARGV[i + 2]
  if least and tonumber(v) < tonumber(least) then redis.call('SET', key, least, 'KEEPTTL') end
  out[i] = redis.call('INCR', key)
  if not (i == 1 and ARGV[2] == '1') then bump_ttl(key, made, ttl) end
end
return out`;

/**
 * KEYS[1]: the namespace epoch; KEYS[2]: the run id of the Redis process that
 * last served the namespace; KEYS[3]: the master_replid2 it was last seen with
 * (see SERVING). Returns { epoch, 0 | 1 | 2 }: 0 the same process,
 * 1 another one (or the same one promoted since: a replica meanwhile, it may
 * have missed writes), 2 none recorded (a new namespace, FLUSHALL, a snapshot from
 * before this check existed; the epoch moves too). When another process
 * serves it now (a restart, possibly from an RDB/AOF snapshot that predates
 * invalidations; a failover to a replica that missed increments), nothing
 * recorded under the old one can be trusted: the epoch moves past the clock,
 * its old value and ARGV[1] (the caller's highest known epoch), so every
 * entry written before stops matching. One caller moves it; the others then
 * find their run id recorded. A master_replid2 found unrecorded (a new
 * namespace, a record from an earlier version) is recorded without moving
 * anything. An epoch found below ARGV[1] counts as another process too
 * (Redis went back in time). Run on the node that holds the slot, so INFO
 * names that node; without INFO (ACL) it only reads the epoch (and that rule).
 * It always writes (PERSIST of the epoch when nothing else is written), so
 * that a read-only replica fails it with READONLY: it is L2's connection
 * check and probe (see L2Store), which must not pass where writes fail.
 * The reply's third element is the server's TIME (µs) (see ServerClock).
 */
const SERVER_SCRIPT = `${INIT}${SERVING}
-- A record holding a key of another type (foreign data) is no record: a GET of it would fail every check,
-- so none would ever move the epoch, not even after a restart from a snapshot. Overwritten below.
local function record(key)
  local v = redis.pcall('GET', key)
  if type(v) == 'string' then return v end
  return nil
end
local run, followed = serving()
local epoch = counter(KEYS[1])
local last = record(KEYS[2])
local same = run == nil or last == run
if same and run and followed then
  local seen = record(KEYS[3])
  if not seen then redis.call('SET', KEYS[3], followed)
  elseif promoted(seen, followed) then same = false end
end
-- An epoch below one the caller has known from this namespace can only mean Redis went back in
-- time, whatever it says of itself: a master back after its successor was lost without its
-- replication id telling (split brain, or its backlog freed since its promotion).
local known = tonumber(ARGV[1])
if same and epoch and known < 9007199254740991 and tonumber(epoch) < known then same = false end
if same then
  if not epoch then
    redis.call('SET', KEYS[1], init)
    epoch = init
  else
    -- A write that changes nothing (the epoch has no TTL), so a read-only replica refuses this check as it
    -- refuses every fill: a master demoted since it was recorded here still holds these keys until its sync,
    -- or for good if its new master never answers, and reading them alone it passed for a master. Only that
    -- refusal fails the check: an ACL without PERSIST leaves it as it was.
    local r = redis.pcall('PERSIST', KEYS[1])
    if type(r) == 'table' and r.err and string.find(r.err, '^READONLY') then return redis.error_reply(r.err) end
  end
  return {epoch, 0, init}
end
local new = tonumber(init)
if epoch and tonumber(epoch) >= new then new = tonumber(epoch) + 1 end
local floor = tonumber(ARGV[1])
if floor >= new then new = floor + 1 end
local s = string.format('%.0f', new)
redis.call('SET', KEYS[1], s)
redis.call('SET', KEYS[2], run)
if followed then redis.call('SET', KEYS[3], followed) end
if last then return {s, 1, init} end
return {s, 2, init}`;

/** Keys and arguments go in one array, which ioredis flattens: never spread into a call (see LuaScript.raw). */
interface BufferEval {
  evalshaBuffer(sha: string, numkeys: number, keysAndArgs: ReadonlyArray<string | Buffer>): Promise<unknown>;
  evalBuffer(script: string, numkeys: number, keysAndArgs: ReadonlyArray<string | Buffer>): Promise<unknown>;
}

/** Every script tiercache runs, for loadScripts(). */
const ALL_SCRIPTS: LuaScript[] = [];

export class LuaScript {
  private readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
    ALL_SCRIPTS.push(this);
  }

  /**
   * Runs the script and returns its raw reply (bulk strings as Buffers). A
   * server that does not know the script (restarted, SCRIPT FLUSH, another
   * Cluster node) gets it once with EVAL, which also caches it there for the
   * next EVALSHA. More than MAX_SCRIPT_KEYS keys are refused, unsent.
   */
  async raw(client: RedisClient, keys: readonly string[], args: ReadonlyArray<string | Buffer>): Promise<unknown> {
    if (keys.length > MAX_SCRIPT_KEYS) throw new TierCacheError(`tiercache: a Redis script takes at most ${MAX_SCRIPT_KEYS} keys; this one had ${keys.length} (nothing was sent)`);
    // One array, never `...keys` spread into the call: ioredis's auto-pipelining spreads a command's
    // arguments again, and a list long enough to overflow the stack there leaves its pipeline one
    // reply short, which then throws (`results[i] is not iterable`) where nobody can catch it.
    const keysAndArgs: Array<string | Buffer> = [...keys, ...args];
    // The Buffer-replying variants exist at run time but are missing from ioredis's typings;
    // call('EVALSHA', ...) would do, but is mangled by ioredis's auto-pipelining.
    const c = client as unknown as BufferEval;
    const sent = performance.now();
    try {
      return await c.evalshaBuffer(this.sha, keys.length, keysAndArgs);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.includes('NOSCRIPT')) throw err;
      const fallback = c.evalBuffer(this.source, keys.length, keysAndArgs);
      // A client that bounds each command from its own send would give the EVAL a whole timeout more:
      // it gets what the EVALSHA left, so its caller waits one timeout in all (L2Store.run).
      const timeout = isCluster(client) ? undefined : (client as Redis).options?.commandTimeout;
      return timeout === undefined ? fallback : withTimeout(fallback, Math.max(1, Math.ceil(sent + timeout - performance.now())));
    }
  }

  /** Runs the script and returns its reply as integers. */
  async call(client: RedisClient, keys: readonly string[], args: readonly string[]): Promise<number[]> {
    const reply = await this.raw(client, keys, args);
    if (!Array.isArray(reply)) throw new Error('unexpected reply from a tiercache version script');
    return reply.map(counterValue);
  }

  /** `firstIsEpoch`: KEYS[1] is the namespace epoch (no TTL); `ttl`: TTL of tag counters, ms; `floors`: see BUMP_SCRIPT. */
  async run(client: RedisClient, keys: readonly string[], ttl: number, firstIsEpoch: boolean, floors?: readonly number[]): Promise<number[]> {
    const args = [String(ttl), firstIsEpoch ? '1' : '0'];
    if (floors !== undefined) for (const floor of floors) args.push(String(floor));
    const values = await this.call(client, keys, args);
    if (values.length !== keys.length) throw new Error('unexpected reply from a tiercache version script');
    return values;
  }
}

/**
 * A queued delete of one key, replayed, that a newer value may have to
 * survive. KEYS[1] the entry, KEYS[2] its key counter (in its slot); ARGV[1]
 * ('' for none) the deadline on Redis's clock (µs; see ServerClock) of the
 * set() Redis could not take that the delete stands for; ARGV[2] (none for
 * none) the version a set() of this instance made after the delete moved the
 * counter to (see InvalidationQueue.supersede). A counter past ARGV[1] was
 * moved by a set() stored after that one's caller was answered (a set() moves
 * it past the clock, µs as TIME gives it; a bump only adds one); a counter at
 * ARGV[2] was moved last by that later set(): whatever any write since would
 * have moved it to is higher. That newer value stays, and the counter comes
 * back (the replay tells the other instances of that version instead of
 * bumping it). Else the entry is deleted, and false comes back (the bump
 * follows, as for any delete()). A counter remade from the clock since (lost,
 * expired) matches no entry recording the lost one.
 */
const DROP_UNLESS_SET_SINCE = `${COUNTER_GET}
local held = counter(KEYS[2])
if held then
  local since = tonumber(ARGV[1])
  if (since and tonumber(held) > since) or (ARGV[2] and tonumber(held) == tonumber(ARGV[2])) then return held end
end
redis.call('DEL', KEYS[1])
return false`;

/** Reads (creating when missing) version counters. */
export const readCounters = new LuaScript(READ_SCRIPT);
/** Increments version counters (creating them from the clock when missing). */
export const bumpCounters = new LuaScript(BUMP_SCRIPT);

/** readCounters for the counters of one Cluster slot, guarded (see SLOT_GUARD). */
export const readSlotCounters = new LuaScript(SLOT_READ_SCRIPT);
/** bumpCounters for the counters of one Cluster slot, guarded (see SLOT_GUARD). */
export const bumpSlotCounters = new LuaScript(SLOT_BUMP_SCRIPT);

const serverScript = new LuaScript(SERVER_SCRIPT);

/** See DROP_UNLESS_SET_SINCE. */
export const dropUnlessSetSince = new LuaScript(DROP_UNLESS_SET_SINCE);

/**
 * Loads every script into the server's script cache (on a Cluster, every
 * master's), so EVALSHA finds them: a script missing there costs its caller a
 * second round trip (NOSCRIPT, then EVAL), and a command sent meanwhile would
 * overtake it — a released lock, say. Run on every new connection.
 */
export async function loadScripts(client: RedisClient): Promise<void> {
  const nodes = isCluster(client) ? client.nodes('master') : [client as Redis];
  await Promise.all(
    nodes.map((node) => {
      const pipeline = node.pipeline();
      for (const script of ALL_SCRIPTS) pipeline.script('LOAD', script.source);
      return pipeline.exec();
    }),
  );
}

const DIGITS = /^[0-9]+$/;

/** A counter's value from a script reply (a Buffer, string or number); Number() alone would read '', ' 7' or null as a number. */
export function counterValue(v: unknown): number {
  const text = Buffer.isBuffer(v) ? v.toString('latin1') : v;
  const n = typeof text === 'number' || (typeof text === 'string' && DIGITS.test(text)) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) throw new Error(`tiercache version counter holds ${String(v)}, not an integer`);
  return n;
}

const PREVIOUS: ReadonlyArray<ServerEpoch['previous']> = ['same', 'other', 'none'];

/**
 * The namespace epoch, moved first unless the same Redis process serves the
 * namespace as last time (see SERVER_SCRIPT).
 */
export async function epochForServer(client: RedisClient, epochKey: string, serverKeys: readonly [string, string], floor: number): Promise<ServerEpoch> {
  const [epoch, code, time] = await serverScript.call(client, [epochKey, ...serverKeys], [String(floor)]);
  const previous = PREVIOUS[code ?? -1];
  if (epoch === undefined || previous === undefined) throw new Error('unexpected reply from a tiercache version script');
  return time === undefined ? { epoch, previous } : { epoch, previous, time };
}
