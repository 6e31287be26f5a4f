// The Redis side of a fill, in two round trips. The first looks the entry up
// and, when it is missing, takes the cross-instance fill lock and reads the
// tag counters the fill's stamp needs (creating missing ones with a short,
// provisional TTL); on a hit it reads the counters instead, so the hit can be
// verified without asking again. The second either stores the entries —
// only if no counter moved since the stamp, renewing the counters to outlive
// them — and releases the lock, or, when the fill stored nothing, releases
// the lock and deletes the counters the first one created, so a request that
// stores nothing leaves nothing in Redis. On standalone Redis each step is one
// script. On a Cluster, where the keys of one script must share a slot, each
// step is one script per slot involved, all sent at once: the entry, its lock
// and its own key counter share the entry's slot (in steady state a fill
// touches no other), other counters each live in a slot of their own. An
// entry of STAGED_PAYLOAD_BYTES or more goes ahead of its store script by a
// plain SET, in the same round trip, so Redis never copies it through Lua;
// one of LARGE_ENTRY_BYTES or more is read back by a plain GET after the
// lookup, which judged it by its first bytes (one more round trip).
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { TierCacheError } from '../errors.js';
import { headerFreshUntil } from './entry-codec.js';
import type { L2Store } from './l2-store.js';
import { groupBySlot, keySlot, slotGuardKeys, slotHashTag } from './hash-slot.js';
import { RecentMap } from './recent-map.js';
import { isCluster, type RedisClient } from './redis-client.js';
import { BUMP_TTL, COUNTER_GET, counterValue, LuaScript, PROVISIONAL_COUNTER_TTL_MS, PROVISIONAL_MARK, SLOT_GUARD } from './redis-scripts.js';
import { peekBySlot, readBySlot, TAG_COUNTER_TTL_MS } from './redis-versions.js';

/**
 * Entries this size and over (bytes, by STRLEN) are not read by LOOKUP: it
 * judges them by their first 20 bytes (the freshness it decides by) and the
 * caller reads them with a plain GET after it (TieredStore.readLarge), one
 * more round trip: Redis copying them into a Lua string and out again held
 * every other client waiting (a 5 MiB getOrSet() hit: 12-59 ms of Redis in
 * one script; a 1 MiB HTTP L2 hit about 1.9 ms, against 0.5 ms for a GET).
 * Below it an L2 hit is one command, as before: there the round trip would
 * cost the reader more than Redis gains (SLOWLOG: a Lua GET of 16 KiB 31 µs
 * against 24 for the two steps, while a loopback hit of 20 KiB took 145 µs in
 * one round trip and 220 in two; at 64 KiB 108 µs against 56, the hit even).
 */
export const LARGE_ENTRY_BYTES = 64 * 1024;

/** A Lua pattern every fill lock's and pull claim's token matches (UUID-shaped: FillLock.request, randomUUID()): a key there holding anything else is neither. */
const LOCK_TOKEN_SHAPE = '^' + ['%x'.repeat(8), '%x'.repeat(4), '%x'.repeat(4), '%x'.repeat(4), '%x'.repeat(12)].join('%-') + '$';

/**
 * KEYS[1] entry (deleted, and missing, when it holds a key of another type), KEYS[2] lock
 * (KEYS[1] again when no lock is wanted), KEYS[3..] counters.
 * ARGV[1] lock token ('' = no lock), ARGV[2] lock TTL, ARGV[3] provisional TTL,
 * ARGV[4] '1' when KEYS[3] is the namespace epoch (created without TTL),
 * ARGV[5] now in ms: an entry no longer fresh then (its freshUntil, a double at
 * byte 13 of the entry codec's layout) is returned and the fill steps taken too;
 * ARGV[6] '1' to take the fill steps whatever is stored (the entry is not read);
 * ARGV[7] '1' when the last two of KEYS are the slot's guard keys (on a Cluster, see SLOT_GUARD);
 * ARGV[8] '1' to only read: no lock and no counter made when the entry is missing or no
 * longer fresh (the counters then read as missing), for a reader that fills nothing; a key
 * of another type is left alone (lock -2). ARGV[9] (with ARGV[8]; '' = none): a pull's claim
 * token, taken on KEYS[2] for ARGV[10] ms (SET NX) when the entry is there; while another
 * pull's claim lives the entry reads as missing (see CLAIM).
 * A counter it makes is marked as this fill's (see PROVISIONAL_MARK); one another
 * fill made (still provisional) that this one reads loses that mark, and gets twice
 * the provisional TTL (what an earlier version's abandon tests): that fill's abandon
 * then leaves it to this one.
 * An entry of LARGE_ENTRY_BYTES or more is judged by its first 20 bytes, which come back
 * ({ those 20 bytes }) instead of its bytes (read by the caller with a GET).
 * Reply: { entry | { first 20 bytes } | false, lock (1 taken, 0 held by another, -1 not asked or a fresh hit),
 *          created counter positions ('1,3'), counter values (false when missing on a hit)... }
 */
const LOOKUP = `${SLOT_GUARD}${COUNTER_GET}${PROVISIONAL_MARK}
-- Fill locks and pull claims are always an instance's token, made with a TTL. Anything else at their key (foreign
-- data, a key of another type, a restore without the TTL) would hold off every fill or pull of the entry until it
-- expires, or for good: it is no lock, and is taken over.
local function not_held(key)
  local holder = redis.pcall('GET', key)
  return type(holder) ~= 'string' or not string.find(holder, '${LOCK_TOKEN_SHAPE}') or redis.call('PTTL', key) == -1
end
local n = #KEYS
if ARGV[7] == '1' then
  guard = KEYS[n - 1]
  followed_key = KEYS[n]
  n = n - 2
end
local v = false
-- A large entry (see LARGE_ENTRY_BYTES): v is then its first 20 bytes alone, all its freshness needs.
local large = false
if ARGV[6] ~= '1' then
  local length = redis.pcall('STRLEN', KEYS[1])
  -- A user whose ACL lacks STRLEN or GETRANGE reads every entry whole, as before.
  if type(length) == 'number' and length >= ${LARGE_ENTRY_BYTES} then
    v = redis.pcall('GETRANGE', KEYS[1], 0, 19)
    large = type(v) == 'string'
  end
  if not large then v = redis.pcall('GET', KEYS[1]) end
  -- A key of another type is foreign data: a miss, and deleted (a failed GET would fail every lookup of it);
  -- a reader is told (lock -2) and leaves it to a GET, which reports it.
  if type(v) == 'table' and ARGV[8] == '1' then
    local out = {false, -2, ''}
    for i = 3, n do out[i + 1] = false end
    return out
  end
  if type(v) == 'table' then
    redis.call('DEL', KEYS[1])
    v = false
  end
  if v and ARGV[9] ~= '' and not redis.call('SET', KEYS[2], ARGV[9], 'PX', ARGV[10], 'NX') then
    if not_held(KEYS[2]) then redis.call('SET', KEYS[2], ARGV[9], 'PX', ARGV[10]) else v = false end
  end
end
local out = {v or false, -1, ''}
-- The caller reads a large entry's bytes with a plain GET; told what this judged it by, its first 20 bytes.
if v and large then out[1] = {v} end
local fresh = v and true or false
if v and string.len(v) >= 20 and string.sub(v, 1, 2) == 'TC' then
  fresh = struct.unpack('>d', v, 13) > tonumber(ARGV[5])
end
if fresh then
  for i = 3, n do
    local c = counter(KEYS[i])
    out[i + 1] = c and lift(KEYS[i], c) or false
  end
  return out
end
if ARGV[8] == '1' then
  for i = 3, n do out[i + 1] = false end
  return out
end
if ARGV[1] ~= '' then
  if redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') then out[2] = 1
  elseif not_held(KEYS[2]) then
    redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
    out[2] = 1
  else out[2] = 0 end
end
local created = {}
local init
local provisional = tonumber(ARGV[3])
for i = 3, n do
  local c = counter(KEYS[i])
  if c then
    c = lift(KEYS[i], c)
    -- Another fill made it and may still abandon it: shared now, so it must outlive that abandon.
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl > 0 and ttl <= 2 * provisional then
      unmark(KEYS[i])
      if ttl <= provisional then redis.call('PEXPIRE', KEYS[i], 2 * provisional) end
    end
  else
    mark()
    if not init then
      local t = redis.call('TIME')
      init = t[1] .. string.format('%06d', tonumber(t[2]))
    end
    c = init
    if i == 3 and ARGV[4] == '1' then
      redis.call('SET', KEYS[i], c)
    else
      redis.call('SET', KEYS[i], c, 'PX', ARGV[3])
      local m = mark_of(KEYS[i])
      if m then redis.call('SET', m, c, 'PX', ARGV[3]) end
      created[#created + 1] = i - 2
    end
  end
  out[i + 1] = c
end
out[3] = table.concat(created, ',')
return out`;

/** Shared counters live a week; renewing one that has most of that left again gains nothing (STORE and the Cluster path). */
const RENEW_WHEN_LEFT = 0.9;

/**
 * KEYS[1] lock (or the first entry key when none), KEYS[2..1+E] entries, then counters.
 * ARGV[1] lock token ('' = none), ARGV[2] E, ARGV[3..2+E] payloads, ARGV[3+E..2+2E]
 * entry TTLs, then per counter: the version the fill recorded, and the TTL it is
 * renewed to (0: leave it alone, for the epoch, which comes first). A counter is
 * renewed only when it would not outlive the entries, or has less than 90% of that
 * TTL left: a shared counter (a path's, in every fill) is then written about once
 * every 17 hours, as on a Cluster (RENEW_WHEN_LEFT), instead of by every fill.
 * Stores only when every counter still holds what the fill recorded. A set()
 * passes five more ARGV: its key counter's position among the counters (1-based),
 * where the first payload records that counter's version (a byte offset), a
 * token of its own, how long (ms) the token is kept, and its deadline on Redis's
 * clock (µs, as TIME; '' = none): the instant its caller stops waiting, or
 * earlier. Run past it (its bytes held on a slow link), it does nothing but
 * delete its staged payload and replies -3: its caller was answered that Redis
 * did not take it, and a set() made since, anywhere, must not be stored over. A set() that stored
 * leaves the token beside its key counter (`<counter>:set:<token>`, holding the
 * version it moved the counter to), so the same script run again (ioredis sends
 * a command again on a new connection when a cut lost its reply) stores nothing
 * and replies what the first run did: it never lands again over a set() made
 * since (readers would see the older value come back). Measured (redis 7,
 * 1 KiB values): about 2-3.5 µs of Redis more per set() (27-29 µs), and about
 * 150 bytes per set() made within the token's life.
 * That counter is not checked (a set() is the caller's value, however many came
 * before it) but moved past what it holds, what was recorded and the clock (a
 * lost counter never comes back smaller), its TTL kept, and the payload is stored recording the moved version: a fill of the key
 * that began before, on any instance, is refused when it stores, and set()s are
 * stored in the order they arrive. A counter young enough to be one a fill's
 * lookup made loses its mark (PROVISIONAL_MARK) as the entries are stored: an
 * entry records it now, so that fill's abandon must leave it. A payload of
 * STAGED_PAYLOAD_BYTES or more comes as '' here: the client SET it, just
 * before, under a staging key of its own (in KEYS after the counters, one per
 * such entry, in entry order), which is renamed onto the entry (TTL set anew,
 * a set()'s version patched in place by SETRANGE) or deleted when refused:
 * Redis never turns it into a Lua string and back. Reply: 1 stored; 0 not, a tag counter moved;
 * -1 not, the first counter (the epoch) moved; -2 not, a staged payload was
 * missing (nothing else done but the lock released); -3 not, a set() past its
 * deadline; for a set() that stored, {1, the moved version}.
 */
const STORE = `${COUNTER_GET}${PROVISIONAL_MARK}
local e = tonumber(ARGV[2])
local first = 3 + 2 * e
local staged = {}
for i = 1, e do
  if ARGV[2 + i] == '' then staged[#staged + 1] = i end
end
local counters = #KEYS - 1 - e - #staged
local last = 1 + e + counters
-- staging[i]: entry i's staging key (nil when its payload came inline).
local staging = {}
for j = 1, #staged do staging[staged[j]] = KEYS[last + j] end
local advance = tonumber(ARGV[first + 2 * counters])
local skip = advance and (1 + e + advance) or 0
-- A set()'s token, beside its key counter (so in its slot): this store ran already, and its reply was lost in a
-- cut; ioredis sent it again on the new connection. Not stored twice (over a set() made in between): what it did is.
local done_key = advance and (KEYS[skip] .. ':set:' .. ARGV[first + 2 * counters + 2]) or nil
local deadline = advance and tonumber(ARGV[first + 2 * counters + 4] or '')
local t = advance and redis.call('TIME')
if deadline and tonumber(t[1]) * 1000000 + tonumber(t[2]) > deadline then
  for j = 1, #staged do redis.call('DEL', KEYS[last + j]) end
  return -3
end
local held = advance and counter(KEYS[skip])
-- Only a counter moved past what this set() recorded can have been moved by it.
if advance and held ~= ARGV[first + 2 * (advance - 1)] then
  local done = redis.call('GET', done_key)
  if done then
    for j = 1, #staged do redis.call('DEL', KEYS[last + j]) end
    return {1, done}
  end
end
-- Gone (expired waiting for a NOSCRIPT's EVAL, evicted, or its SET refused: OOM): nothing is done but the unlock.
for j = 1, #staged do
  if redis.call('EXISTS', KEYS[last + j]) == 0 then
    for k = 1, #staged do redis.call('DEL', KEYS[last + k]) end
    if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
    return -2
  end
end
local fresh = 1
-- One MGET per thousand counters (unpack's limit), not a GET each; a key of another type reads as missing.
for from = 2 + e, last, 1000 do
  local values = redis.call('MGET', unpack(KEYS, from, math.min(from + 999, last)))
  for j = 1, #values do
    local i = from + j - 1
    if i ~= skip and values[j] ~= ARGV[first + 2 * (i - 2 - e)] then
      if i == 2 + e then fresh = -1 else fresh = 0 end
      break
    end
  end
  if fresh ~= 1 then break end
end
local moved
if fresh == 1 then
  local first_payload = ARGV[3]
  if advance then
    local key = KEYS[skip]
    -- Never below the clock (µs, as counters are made): a counter lost (evicted, expired, damaged)
    -- comes back larger than any version it had, never at what this instance happened to record.
    local clock = tonumber(t[1] .. string.format('%06d', tonumber(t[2])))
    moved = string.format('%.0f', math.max(held and tonumber(held) or 0, tonumber(ARGV[first + 2 * (advance - 1)]), clock) + 1)
    local ttl = redis.call('PTTL', key)
    if ttl > 0 then redis.call('SET', key, moved, 'PX', ttl) else redis.call('SET', key, moved) end
    redis.call('SET', done_key, moved, 'PX', ARGV[first + 2 * counters + 3])
    local at = tonumber(ARGV[first + 2 * counters + 1])
    if staging[1] then
      redis.call('SETRANGE', staging[1], at, struct.pack('>d', tonumber(moved)))
    else
      first_payload = string.sub(first_payload, 1, at) .. struct.pack('>d', tonumber(moved)) .. string.sub(first_payload, at + 9)
    end
  end
  local life = 0
  for i = 1, e do
    if staging[i] then
      -- RENAME brings the staging key's short TTL along: the entry's is set at once, in this script.
      redis.call('RENAME', staging[i], KEYS[1 + i])
      redis.call('PEXPIRE', KEYS[1 + i], ARGV[2 + e + i])
    else
      redis.call('SET', KEYS[1 + i], i == 1 and first_payload or ARGV[2 + i], 'PX', ARGV[2 + e + i])
    end
    life = math.max(life, tonumber(ARGV[2 + e + i]))
  end
  for i = 2 + e, last do
    local ttl = tonumber(ARGV[first + 2 * (i - 2 - e) + 1])
    if ttl > 0 then
      local left = redis.call('PTTL', KEYS[i])
      if left < math.max(life, ttl * ${RENEW_WHEN_LEFT}) then redis.call('PEXPIRE', KEYS[i], ttl) end
      if left > 0 and left <= ${2 * PROVISIONAL_COUNTER_TTL_MS} then unmark(KEYS[i]) end
    end
  end
end
if fresh ~= 1 then
  for j = 1, #staged do redis.call('DEL', KEYS[last + j]) end
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if moved then return {fresh, moved} end
return fresh`;

/**
 * KEYS[1] lock (or a created counter when none), KEYS[2..] counters this fill created.
 * ARGV[1] lock token ('' = none), ARGV[2] provisional TTL, ARGV[2 + i] the value
 * KEYS[1 + i] was created with. A counter is deleted only while its mark (see
 * PROVISIONAL_MARK) is still this fill's: nobody read it in a fill or stored an entry
 * recording it since. It must also still hold that value with no more than the
 * provisional TTL, as an earlier version asked: a counter an instance of that version
 * read or stored (leaving the mark) is kept as before, and so is one a Cluster store
 * renewed outside its entries' slot (a week, by RENEW).
 */
const ABANDON = `${PROVISIONAL_MARK}
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local ttl = tonumber(ARGV[2])
for i = 2, #KEYS do
  local mark = mark_of(KEYS[i])
  if mark and redis.call('GET', mark) == ARGV[1 + i] then
    redis.call('DEL', mark)
    if redis.call('GET', KEYS[i]) == ARGV[1 + i] and redis.call('PTTL', KEYS[i]) <= ttl then redis.call('DEL', KEYS[i]) end
  end
end
return 1`;

/**
 * KEYS[1] a counter, ARGV[1] a TTL (ms): PEXPIRE ... GT (a counter without a TTL
 * keeps none), replying whether the counter exists. On a Cluster, a counter in a
 * slot where the store has no entry is renewed with it (storeOnCluster): a
 * plain PEXPIRE's 0 cannot tell a missing counter from one that outlives the TTL.
 */
const RENEW = `
local left = redis.call('PTTL', KEYS[1])
if left == -2 then return 0 end
if left >= 0 and left < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1`;

/**
 * A pull's second step. KEYS[1] entry, KEYS[2] claim, KEYS[3] the entry's key
 * counter (in its slot); ARGV[1] the claim's token, ARGV[2] 't' to take the
 * entry, 'd' to delete it (found invalid or over), '0' to let it go; ARGV[3]
 * the key version it is taken or deleted at ('' = the counter missing);
 * ARGV[4] the TTL of a bumped counter (see BUMP_TTL). Only while the claim
 * LOOKUP took is still this pull's (it lives one command timeout: a pull whose
 * caller gave up never deletes an entry, however late Redis runs either step).
 * An entry is deleted only while its key counter is not past ARGV[3]:
 * every set() moves it, so one that replaced the entry since the pull read it is not
 * deleted unseen. Taken so, the counter is bumped in the same step (as
 * delete() bumps it: L1 copies of the pulled value and fills of the key
 * stamped before stop matching); replaced, it is left as the newer value
 * recorded it. Replies 0 when the claim was no longer this pull's; else 1, or
 * for a take { 1, the key version now, 1 when taken and bumped | 0 when
 * replaced | -1 when taken with the counter missing (not bumped) }.
 */
const CLAIM = `${COUNTER_GET}${BUMP_TTL}
if redis.pcall('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
if ARGV[2] == '0' then return 1 end
local held = counter(KEYS[3])
-- A set() always leaves the counter past every version recorded before: one missing (expired, evicted,
-- damaged) or below the version read (a Redis that went back) tells of no set() since.
local replaced = held ~= nil and (ARGV[3] == '' or tonumber(held) > tonumber(ARGV[3]))
if ARGV[2] == 'd' then
  if not replaced then redis.call('DEL', KEYS[1]) end
  return 1
end
if replaced then return {1, held, 0} end
redis.call('DEL', KEYS[1])
if not held then return {1, '', -1} end
if ARGV[3] ~= '' and tonumber(held) < tonumber(ARGV[3]) then redis.call('SET', KEYS[3], ARGV[3], 'KEEPTTL') end
local v = redis.call('INCR', KEYS[3])
bump_ttl(KEYS[3], false, tonumber(ARGV[4]))
return {1, v, 1}`;

/**
 * A reader's drop of a value it found unusable (invalid, over, damaged,
 * unreadable, of another type). KEYS[1] the value's key; ARGV[1] its first
 * bytes as read (see identityLength); ARGV[2] '1' when what was read was a
 * key of another type (ARGV[1] then ''). Deleted only while it still starts
 * with those bytes, or is still not a string: a value stored over it since
 * (another instance's set(), whose SET or RENAME makes it a string) is not
 * deleted unseen. A user whose ACL lacks GETRANGE (or TYPE) deletes it as before.
 */
const DROP = `
if ARGV[2] == '1' then
  local t = redis.pcall('TYPE', KEYS[1])
  if type(t) == 'table' and t.ok == 'string' then return 0 end
  return redis.call('DEL', KEYS[1])
end
local head = redis.pcall('GETRANGE', KEYS[1], 0, #ARGV[1] - 1)
if type(head) == 'string' and head ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`;

const dropScript = new LuaScript(DROP);
const lookupScript = new LuaScript(LOOKUP);
const claimScript = new LuaScript(CLAIM);
const renewScript = new LuaScript(RENEW);
const storeScript = new LuaScript(STORE);
const abandonScript = new LuaScript(ABANDON);

export { PROVISIONAL_COUNTER_TTL_MS };

/** A pull's claim on an entry: its key (in the entry's slot), a token of its own, and how long it lives (ms). */
export interface PullClaim {
  readonly key: string;
  /** The entry's key counter (in the entry's slot): its second step takes the entry only at the version read (see CLAIM). */
  readonly counter: string;
  readonly token: string;
  readonly ttl: number;
}

/** A pull's second step on the entry it claimed (see CLAIM). */
export interface ClaimStep {
  /** 'take' a valid entry, 'delete' one found invalid or over, 'release' one Redis could not vouch for. */
  readonly action: 'take' | 'delete' | 'release';
  /** The key version the entry is taken or deleted at (undefined: its counter was missing). */
  readonly at: number | undefined;
}

/**
 * What a pull's second step did, its claim still its own. A take: `version`
 * is the key version now, which this pull moved on (the entry deleted), or,
 * when `replaced`, which a set() since moved to (the newer entry left alone);
 * undefined when the counter was missing (the entry deleted, nothing moved).
 */
export interface ClaimSettled {
  readonly replaced: boolean;
  readonly version: number | undefined;
}

const UNVERSIONED: ClaimSettled = Object.freeze({ replaced: false, version: undefined });

export interface LockRequest {
  readonly key: string;
  readonly token: string;
  readonly ttl: number;
}

export interface LookupRequest {
  readonly key: string;
  /** Take this lock when the entry is missing or no longer fresh. */
  readonly lock: LockRequest | undefined;
  /** Counter keys to read; the first is the namespace epoch when `epochFirst`. */
  readonly counters: readonly string[];
  readonly epochFirst: boolean;
  /** Now (ms): an entry no longer fresh then counts as missing for the lock and the counters. */
  readonly now: number;
  /** Take the lock and read the counters without looking the entry up (a refresh, a refill). */
  readonly skipEntry?: boolean;
  /** Only read: when the entry is missing or no longer fresh, no lock is taken and no counter made (all read as missing). */
  readonly readOnly?: boolean;
  /** With readOnly: a pull's claim on the entry, taken when it is there and no other pull's claim lives (see CLAIM). */
  readonly claim?: PullClaim;
  /** performance.now() when the caller began waiting, if before the lookup (see L2Store.run). */
  readonly since?: number;
}

export interface LookupReply {
  readonly entry: Buffer | null;
  /** An entry of LARGE_ENTRY_BYTES or more, judged but not read (entry null): read it with readLarge. */
  readonly large?: LargeEntry;
  /** true: the lock is ours; false: another fill holds it; undefined: none asked, or a fresh hit. */
  readonly locked: boolean | undefined;
  /** A read-only lookup found a key of another type under the entry's name (left alone). */
  readonly foreign?: true;
  /** Counter values, as requested; undefined for one missing on a hit (a miss creates them). */
  readonly values: ReadonlyArray<number | undefined>;
  /** Counters this lookup created, with their values: the fill deletes them if it stores nothing. */
  readonly created: ReadonlyArray<CreatedCounter>;
}

/** What LOOKUP judged a large entry by: its first 20 bytes (magic, kind, createdAt, freshUntil). */
export interface LargeEntry {
  readonly head: Buffer;
}

/** LOOKUP's freshness rule (an entry's freshUntil past `now`; anything else counts as fresh, then fails to decode). */
function freshAt(bytes: Buffer, now: number): boolean {
  const until = headerFreshUntil(bytes);
  return until === undefined || until > now;
}

/**
 * Whether LOOKUP, run at `now`, would have decided on `bytes` (a large
 * entry's, read after the script) as it decided on the entry it judged: the
 * same freshness, so the same lock and counters taken. The only thing it
 * decided from the entry's bytes: whether they may be served is decided by
 * the tag versions they record, checked against the counters read with the
 * lookup, whichever entry they are (the one judged, or one stored since).
 */
export function judgedAlike(bytes: Buffer, large: LargeEntry, now: number): boolean {
  return freshAt(bytes, now) === freshAt(large.head, now);
}

export interface CreatedCounter {
  readonly key: string;
  readonly value: number;
}

export interface StoredPayload {
  readonly key: string;
  readonly bytes: Buffer;
  /** ms */
  readonly ttl: number;
}

export interface CounterRenewal {
  readonly key: string;
  /** The version the fill recorded: nothing is stored if the counter moved since. */
  readonly recorded: number;
  /** ms the counter is renewed to when due (it always outlives the entries stored with it); 0 leaves its TTL alone (the epoch has none). */
  readonly ttl: number;
}

export interface StoreRequest {
  readonly entries: readonly StoredPayload[];
  readonly counters: readonly CounterRenewal[];
  /** The fill's lock, released in the same step. */
  readonly lock: { readonly key: string; readonly token: string } | undefined;
  /** A set(): its key counter, moved as it stores (see STORE). */
  readonly advance?: CounterAdvance;
  /** performance.now() when the fill began waiting, if its lookup ran out of time (FillTicket.since). */
  readonly since?: number;
  /** A set()'s deadline on Redis's clock (µs; see STORE), set by store(). Past it, store() throws. */
  readonly deadline?: number;
}

/** A set()'s key counter: which of the request's counters, and where the first entry's bytes record its version. */
export interface CounterAdvance {
  readonly counter: number;
  /** Byte offset of the version (a big-endian double) in the first entry's payload. */
  readonly offset: number;
}

export type StoreResult = 'stored' | 'tags' | 'epoch';

/** What the store step did; for a set() that stored, the version its key counter was moved to (the entry records it). */
export interface StoreOutcome {
  readonly result: StoreResult;
  readonly moved?: number;
}

export interface AbandonRequest {
  readonly lock: { readonly key: string; readonly token: string } | undefined;
  readonly created: readonly CreatedCounter[];
}

const text = (v: unknown): string | undefined => (v === null || v === undefined || v === false ? undefined : Buffer.isBuffer(v) ? v.toString('latin1') : String(v));


/**
 * Most tags (its own key's and its scope's included) an entry stored in
 * Redis records. Its fill's lookup and store are one script each, under one
 * command timeout: on standalone Redis one script over every counter (about
 * 20 ms of Redis for 5,000); on a Cluster one script per slot, all sent at
 * once, hence MAX_ENTRY_TAGS_ON_CLUSTER. Past it only Redis's side is
 * refused: the lookup and the store fail, unsent (reported as an 'error'),
 * the stamp is read in slices, and the entry is kept in L1 only.
 */
export const MAX_ENTRY_TAGS = 4_096;
/** MAX_ENTRY_TAGS on a Redis Cluster, where each counter costs a script of its own. */
export const MAX_ENTRY_TAGS_ON_CLUSTER = 1_024;

/** An entry Redis cannot hold (too many tags, or a tag the entry format cannot hold): refused before it is sent. */
export class EntryUnfitError extends TierCacheError {}

/** A fill step for an entry recording `counters` counters (the epoch and its tags) is refused, unsent, past the limit. */
function checkEntryTags(counters: number, cluster: boolean): void {
  const max = cluster ? MAX_ENTRY_TAGS_ON_CLUSTER : MAX_ENTRY_TAGS;
  // The epoch comes with the tags: one more counter than tags.
  if (counters > max + 1) {
    throw new EntryUnfitError(`tiercache: an entry stored in Redis records at most ${max} tags${cluster ? ' on a Redis Cluster' : ''}; this one records ${counters - 1}, so it is kept in L1 only`);
  }
}

/** Runs the fill steps through `l2` (its breaker and timeout), as scripts or, on a Cluster, per slot group. */
export class FillProtocol {
  /**
   * On a Cluster: until when this instance last renewed each shared counter
   * (ms), so fills renew one once in a while instead of each sending a
   * command to its slot (the same few `path:` counters are in every fill).
   */
  private readonly renewed = new RecentMap<string, number>(10_000);

  constructor(private readonly l2: L2Store) {}

  private get cluster(): boolean {
    return isCluster(this.l2.client);
  }

  /** How long a staged payload waits for its script (ms): a command timeout's wait for a NOSCRIPT's EVAL, with room to spare. */
  private get stagingTtl(): number {
    return Math.max(MIN_STAGING_TTL_MS, 4 * this.l2.commandTimeout);
  }

  /**
   * Why an entry recording `tags` cannot be stored in Redis, when the entry
   * format cannot hold it (`err`, from encoding it): the tag limit of a fill
   * step when it is past it too, as that step would report.
   */
  unfit(tags: readonly string[], err: unknown): EntryUnfitError {
    try {
      checkEntryTags(tags.length + 1, this.cluster);
    } catch (limit) {
      return limit as EntryUnfitError;
    }
    return new EntryUnfitError(`tiercache: an entry stored in Redis records at most 65,535 tags of at most 65,535 bytes each (UTF-8); this one cannot be (${(err as Error)?.message}), so it is kept in L1 only`, { cause: err });
  }

  /** Step one: the entry, or (when missing) the lock and the counters. Throws when Redis fails. */
  lookup(request: LookupRequest): Promise<LookupReply> {
    if (request.claim !== undefined && this.cluster) return this.claimOnCluster(request);
    return this.l2.run(async (client) => {
      checkEntryTags(request.counters.length, this.cluster);
      return this.cluster ? lookupOnCluster(client, request) : lookupInOne(client, request);
    }, false, request.since);
  }

  /**
   * A pull's lookup on a Cluster: the counters of other slots first, as a
   * command of its own, then the claim: one of them failing (its master cut
   * off) then claims nothing, instead of holding off other pulls of the key
   * for the claim's life.
   */
  private async claimOnCluster(request: LookupRequest): Promise<LookupReply> {
    const { counters } = request;
    const { slot, here, elsewhere } = bySlot(request);
    const others = elsewhere.length === 0 ? undefined : await this.l2.run((client) => peekBySlot(client, elsewhere.map((i) => counters[i]!)));
    const own = await this.l2.run(async (client) => {
      checkEntryTags(counters.length, true);
      return lookupInOne(client, { ...request, counters: here.map((i) => counters[i]!), epochFirst: request.epochFirst && here[0] === 0 }, slotGuardKeys(slot));
    });
    return withOthers(own, counters, here, elsewhere, others);
  }

  /**
   * A pull's second step (see CLAIM), while the claim is still this pull's:
   * resolves what it did, or undefined when the claim was no longer this
   * pull's; throws when Redis fails.
   */
  async settleClaim(entryKey: string, claim: PullClaim, step: ClaimStep): Promise<ClaimSettled | undefined> {
    const action = step.action === 'take' ? 't' : step.action === 'delete' ? 'd' : '0';
    const at = step.at === undefined ? '' : String(step.at);
    const reply = await this.l2.run((client) => claimScript.raw(client, [entryKey, claim.key, claim.counter], [claim.token, action, at, String(TAG_COUNTER_TTL_MS)]));
    if (!Array.isArray(reply)) return Number(reply) === 1 ? UNVERSIONED : undefined;
    const code = Number(reply[2]);
    if (code === -1) return UNVERSIONED;
    return { replaced: code === 0, version: counterValue(reply[1]) };
  }

  /** Deletes the value under `key` while it still starts with `head` (see DROP); throws when Redis fails. */
  async dropIfUnchanged(key: string, head: Buffer): Promise<void> {
    await this.l2.run((client) => dropScript.raw(client, [key], [head, '0']));
  }

  /** Deletes the key of another type under `key` while it is still not a string (see DROP); throws when Redis fails. */
  async dropIfForeignType(key: string): Promise<void> {
    await this.l2.run((client) => dropScript.raw(client, [key], ['', '1']));
  }

  /**
   * Step two of a fill that stored: 'stored', or which counter had moved since
   * the fill began ('tags', or the first one, 'epoch'). Throws when Redis fails.
   */
  store(request: StoreRequest): Promise<StoreOutcome> {
    // A set() is refused past the instant its caller stops waiting (the wait starts now, or at `since`), on
    // Redis's clock: answered as not taken, it must not land later over a set() made since, anywhere.
    const deadline = request.advance === undefined ? undefined : this.l2.clock?.deadline((request.since ?? performance.now()) + this.l2.callerWait);
    const sent = deadline === undefined ? request : { ...request, deadline };
    return this.l2.run(async (client) => {
      checkEntryTags(sent.counters.length, this.cluster);
      return this.cluster ? this.storeOnCluster(client, sent) : storeInOne(client, sent, this.stagingTtl);
    }, false, request.since);
  }

  /**
   * Step two of a fill that stored nothing, with a lock or created counters
   * (the tiered store sends no other). Never throws: what is left behind expires.
   */
  abandon(request: AbandonRequest): void {
    const send = () => this.l2.run((client) => (this.cluster ? abandonOnCluster(client, request) : abandonInOne(client, request)));
    // Once more when Redis answers again (soon enough): the connection it went out on may have taken it along,
    // and the client tiercache opens does not send it again (openRedis). Left alone, other instances would wait
    // out the lock's lifetime. Token- and mark-checked, so one that ran after all changes nothing the second time.
    send()
      .catch(async () => {
        if (await this.l2.waitUp(RELEASE_RETRY_MS)) await send();
      })
      .catch(() => undefined);
  }

  /**
   * One STORE script per slot that holds entries (with the lock and the
   * counters of that slot, checked as on standalone Redis); counters of other
   * slots renewed when due, the lock released where it is alone. No check
   * spans slots: an entry that an invalidation of a counter in another slot
   * overtook is stored, and refused when read (its versions are checked then).
   */
  private async storeOnCluster(client: RedisClient, request: StoreRequest): Promise<StoreOutcome> {
    const { entries, counters, lock, advance } = request;
    const now = Date.now();
    const keys = [...entries.map((e) => e.key), ...counters.map((c) => c.key), ...(lock === undefined ? [] : [lock.key])];
    // A set()'s key counter shares its entry's slot (see RedisVersions.counterKey), and is moved in the step that stores the entry.
    const advanced = advance === undefined ? undefined : counters[advance.counter]!;
    if (advanced !== undefined && (entries.length !== 1 || keySlot(entries[0]!.key) !== keySlot(advanced.key))) throw new Error('tiercache: a set() moves its key counter only in the slot of its entry');
    const steps: Array<Promise<StoreOutcome>> = [];
    for (const { at } of groupBySlot(keys)) {
      const slotEntries = at.filter((i) => i < entries.length).map((i) => entries[i]!);
      const slotCounters = at.filter((i) => i >= entries.length && i < entries.length + counters.length).map((i) => counters[i - entries.length]!);
      const slotLock = lock !== undefined && at.includes(keys.length - 1) ? lock : undefined;
      if (slotEntries.length > 0) {
        const first = slotCounters[0]?.ttl === 0 && slotCounters[0] === counters[0] ? 'epoch' : 'tags';
        const slotAdvance = advanced === undefined ? undefined : { counter: slotCounters.indexOf(advanced), offset: advance!.offset };
        steps.push(storeInOne(client, { entries: slotEntries, counters: slotCounters, lock: slotLock, advance: slotAdvance }, this.stagingTtl).then((o) => (o.result === 'epoch' ? { ...o, result: first } : o)));
        continue;
      }
      for (const c of slotCounters) {
        if (c.ttl <= 0 || (this.renewed.get(c.key) ?? 0) - now >= c.ttl * RENEW_WHEN_LEFT) continue;
        steps.push(
          renewScript.raw(client, [c.key], [String(Math.ceil(c.ttl))]).then((found) => {
            // Gone (it expired after a bump made it, while this instance still knew its version): the next
            // read makes it again, provisional, and this instance's next store must renew that one.
            if (Number(found) === 1) this.renewed.set(c.key, now + c.ttl);
            return STORED;
          }),
        );
      }
      if (slotLock !== undefined) steps.push(abandonScript.raw(client, [slotLock.key], [slotLock.token, '0']).then(() => STORED));
    }
    const outcomes = await Promise.all(steps);
    const results = outcomes.map((o) => o.result);
    const result = results.includes('epoch') ? 'epoch' : results.includes('tags') ? 'tags' : 'stored';
    return { result, moved: result === 'stored' ? outcomes.find((o) => o.moved !== undefined)?.moved : undefined };
  }
}

async function lookupInOne(client: RedisClient, request: LookupRequest, guard?: readonly [string, string]): Promise<LookupReply> {
  const { key, lock, counters } = request;
  const args = [lock?.token ?? '', String(lock?.ttl ?? 0), String(PROVISIONAL_COUNTER_TTL_MS), request.epochFirst ? '1' : '0', String(request.now), request.skipEntry ? '1' : '0', guard === undefined ? '0' : '1', request.readOnly ? '1' : '0', request.claim?.token ?? '', String(request.claim?.ttl ?? 0)];
  const keys = [key, lock?.key ?? request.claim?.key ?? key, ...counters];
  if (guard !== undefined) keys.push(...guard);
  const reply = await lookupScript.raw(client, keys, args);
  if (!Array.isArray(reply) || reply.length !== 3 + counters.length) throw new Error('unexpected reply from the tiercache lookup script');
  const entry = Buffer.isBuffer(reply[0]) ? reply[0] : null;
  const judged = reply[0];
  const large = Array.isArray(judged) && Buffer.isBuffer(judged[0]) ? { head: judged[0] } : undefined;
  const values = counters.map((_, i) => (text(reply[3 + i]) === undefined ? undefined : counterValue(reply[3 + i])));
  const created: CreatedCounter[] = [];
  for (const position of (text(reply[2]) ?? '').split(',')) {
    if (position === '') continue;
    const i = Number(position) - 1;
    created.push({ key: counters[i]!, value: values[i]! });
  }
  const lockCode = Number(reply[1]);
  if (lockCode === -2) return { entry: null, locked: undefined, values, created, foreign: true };
  const locked = lockCode === -1 ? undefined : lockCode === 1;
  return large === undefined ? { entry, locked, values, created } : { entry, large, locked, values, created };
}

/**
 * On a Cluster: the LOOKUP script in the entry's slot (the entry, its lock,
 * which hash-tags the entry key, and the counters of that slot: in steady
 * state the entry's own key counter, the only one a fill reads), and the
 * counters of every other slot read at the same time, one script per slot.
 */
/** The entry's slot, and the indexes of the lookup's counters in it (`here`) and in other slots. */
function bySlot(request: LookupRequest): { slot: number; here: number[]; elsewhere: number[] } {
  const slot = keySlot(request.key);
  const here: number[] = [];
  const elsewhere: number[] = [];
  request.counters.forEach((counter, i) => (keySlot(counter) === slot ? here : elsewhere).push(i));
  return { slot, here, elsewhere };
}

async function lookupOnCluster(client: RedisClient, request: LookupRequest): Promise<LookupReply> {
  const { counters } = request;
  const { slot, here, elsewhere } = bySlot(request);
  const epochHere = request.epochFirst && here[0] === 0;
  if (request.readOnly === true) return lookupReadOnlyOnCluster(client, request, here, elsewhere, epochHere);
  const [own, others] = await Promise.all([
    lookupInOne(client, { ...request, counters: here.map((i) => counters[i]!), epochFirst: epochHere }, slotGuardKeys(slot)),
    elsewhere.length === 0
      ? undefined
      : readBySlot(
          client,
          elsewhere.map((i) => counters[i]!),
          request.epochFirst && elsewhere[0] === 0,
          true,
        ),
  ]);
  // Stryker disable next-line ArrayDeclaration: preallocated for speed; every index is here or elsewhere, and assigned
  const values: Array<number | undefined> = new Array(counters.length);
  here.forEach((i, n) => (values[i] = own.values[n]));
  const created: CreatedCounter[] = [...own.created];
  if (others !== undefined) {
    elsewhere.forEach((i, n) => (values[i] = others.values[n]));
    for (const n of others.created) created.push({ key: counters[elsewhere[n]!]!, value: others.values[n]! });
  }
  // A fresh hit: the counters read elsewhere were made if missing (harmless: they expire), and count as unknown.
  if ((own.entry !== null || own.large !== undefined) && own.locked === undefined) {
    if (others !== undefined) for (const n of others.created) values[elsewhere[n]!] = undefined;
    return { ...own, values, created: [] };
  }
  // The order of `created` does not matter to the fill; the order of `values` does.
  return { ...own, values, created };
}

/** lookupOnCluster for a reader: counters of other slots are read without making any (see peekBySlot). */
async function lookupReadOnlyOnCluster(client: RedisClient, request: LookupRequest, here: readonly number[], elsewhere: readonly number[], epochHere: boolean): Promise<LookupReply> {
  const { key, counters } = request;
  const [own, others] = await Promise.all([
    lookupInOne(client, { ...request, counters: here.map((i) => counters[i]!), epochFirst: epochHere }, slotGuardKeys(keySlot(key))),
    elsewhere.length === 0 ? undefined : peekBySlot(client, elsewhere.map((i) => counters[i]!)),
  ]);
  return withOthers(own, counters, here, elsewhere, others);
}

/** A reply of the entry's slot, with the counters of other slots read beside it, in the request's order. */
function withOthers(own: LookupReply, counters: readonly string[], here: readonly number[], elsewhere: readonly number[], others: ReadonlyArray<number | undefined> | undefined): LookupReply {
  // Stryker disable next-line ArrayDeclaration: preallocated for speed; every index is here or elsewhere, and assigned
  const values: Array<number | undefined> = new Array(counters.length);
  here.forEach((i, n) => (values[i] = own.values[n]));
  if (others !== undefined) elsewhere.forEach((i, n) => (values[i] = others[n]));
  return { ...own, values };
}

/**
 * Payloads this size and over (bytes) reach STORE through a staging key
 * instead of as an argument. Measured on redis-server 7.0 (INFO commandstats,
 * per store): through Lua a 16 KiB entry costs Redis about 29 µs (71 µs for a
 * set(), whose version is patched in), staged about 10 µs, as a 1 KiB entry
 * either way; 64 KiB 92 (460) µs against 11 (15); 1 MiB 1.9 (6.9) ms
 * against 0.03 (0.04). Below it a fill sends one command, as before.
 */
export const STAGED_PAYLOAD_BYTES = 16 * 1024;

/** How long a release that failed waits for Redis to answer again (a fill lock lives 3 s by default). */
const RELEASE_RETRY_MS = 10_000;

/** The least a staging key lives: it must outlast a NOSCRIPT's EVAL, sent after the EVALSHA's reply. */
const MIN_STAGING_TTL_MS = 2_000;

// Staging keys and set() tokens are unique per store, across instances: two stores of one key at once never share one.
const STAGING_ID = randomBytes(9).toString('base64url');
let stagingSeq = 0;

/** Unique across stores and instances: a staging key's, a set()'s token. */
function uniqueId(): string {
  return `${STAGING_ID}.${(stagingSeq = (stagingSeq + 1) % Number.MAX_SAFE_INTEGER).toString(36)}`;
}

/**
 * A key of `entryKey`'s Cluster slot no entry, lock or counter is ever named:
 * `{entryKey}:stage:…` (entry keys hold no brace: both key builders escape
 * them), or, were that ever to land elsewhere, one hash-tagged by the slot's own tag.
 */
export function stagingKey(entryKey: string): string {
  const unique = `:tiercache:stage:${uniqueId()}`;
  const slot = keySlot(entryKey);
  const named = `{${entryKey}}${unique}`;
  return keySlot(named) === slot ? named : `{${slotHashTag(slot)}}${unique}`;
}

interface StoreCommand {
  readonly keys: string[];
  readonly args: Array<string | Buffer>;
  /** Payloads sent ahead under staging keys (see STORE); undefined when every one rides in the script. */
  readonly staged: Array<{ readonly key: string; readonly bytes: Buffer }> | undefined;
}

function storeArgs(request: StoreRequest, lockKey: string | undefined, stagingTtl: number): StoreCommand {
  const { entries, counters, lock } = request;
  // KEYS[1] without a lock: any key of the step (a cluster slot's own; a store with no entry has the epoch).
  const keys = [lockKey ?? entries[0]?.key ?? counters[0]!.key, ...entries.map((e) => e.key), ...counters.map((c) => c.key)];
  const args: Array<string | Buffer> = [lock?.token ?? '', String(entries.length)];
  let staged: StoreCommand['staged'];
  for (const e of entries) {
    if (e.bytes.length < STAGED_PAYLOAD_BYTES) {
      args.push(e.bytes);
      continue;
    }
    const key = stagingKey(e.key);
    (staged ??= []).push({ key, bytes: e.bytes });
    // After the counters, in entry order.
    keys.push(key);
    args.push('');
  }
  for (const e of entries) args.push(String(Math.max(1, Math.ceil(e.ttl))));
  for (const c of counters) args.push(String(c.recorded), String(Math.max(0, Math.ceil(c.ttl))));
  // A set(): its key counter, where its payload records it, and a token of its own (see STORE), kept stagingTtl.
  if (request.advance !== undefined) args.push(String(request.advance.counter + 1), String(request.advance.offset), uniqueId(), String(stagingTtl), request.deadline === undefined ? '' : String(request.deadline));
  return { keys, args, staged };
}

const STORED: StoreOutcome = Object.freeze({ result: 'stored' });

async function storeInOne(client: RedisClient, request: StoreRequest, stagingTtl: number): Promise<StoreOutcome> {
  const { keys, args, staged } = storeArgs(request, request.lock?.key, stagingTtl);
  let reply: unknown;
  if (staged === undefined) reply = await storeScript.raw(client, keys, args);
  else {
    // Sent in the same turn as the script, so in the same write (write-batching.ts) and round trip, and run just before it.
    const sets = Promise.allSettled(staged.map((s) => client.set(s.key, s.bytes, 'PX', stagingTtl)));
    const [done, replied] = await Promise.all([sets, storeScript.raw(client, keys, args)]);
    reply = replied;
    if (Number(reply) === -2) {
      const failed = done.find((d): d is PromiseRejectedResult => d.status === 'rejected');
      throw failed?.reason instanceof Error ? failed.reason : new Error('tiercache: a staged payload was gone before the store script ran (nothing was stored)');
    }
  }
  // A set() that stored: {1, the version its key counter was moved to}.
  if (Array.isArray(reply)) return { result: 'stored', moved: counterValue(reply[1]) };
  const code = Number(reply);
  // Its answer in time all the same (a deadline comes early by up to a round trip): a failure, reported as one,
  // and its set() handled as one Redis could not take (TieredStore.storeInL2).
  if (code === -3) throw new TierCacheError('tiercache: a set() reached Redis past its deadline (the end of its caller\'s wait, on Redis\'s clock): not stored');
  return code === 1 ? STORED : { result: code === -1 ? 'epoch' : 'tags' };
}

async function abandonInOne(client: RedisClient, request: AbandonRequest): Promise<void> {
  const { lock, created } = request;
  const keys = [lock?.key ?? created[0]!.key, ...created.map((c) => c.key)];
  await abandonScript.raw(client, keys, [lock?.token ?? '', String(PROVISIONAL_COUNTER_TTL_MS), ...created.map((c) => String(c.value))]);
}

/** ABANDON once per slot: the lock with the counters of its slot, the other counters by slot. */
async function abandonOnCluster(client: RedisClient, request: AbandonRequest): Promise<void> {
  const { lock, created } = request;
  const keys = [...created.map((c) => c.key), ...(lock === undefined ? [] : [lock.key])];
  await Promise.all(
    groupBySlot(keys).map(({ at }) =>
      abandonInOne(client, {
        lock: lock !== undefined && at.includes(created.length) ? lock : undefined,
        created: at.filter((i) => i < created.length).map((i) => created[i]!),
      }),
    ),
  );
}
