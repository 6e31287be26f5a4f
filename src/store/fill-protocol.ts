// The Redis side of a fill, in two round trips. The first looks the entry up
// and, when it is missing, takes the cross-instance fill lock and reads the
// tag counters the fill's stamp needs (creating missing ones with a short,
// provisional TTL); on a hit it reads the counters instead, so the hit can be
// verified without asking again. The second either stores the entries —
// only if no counter moved since the stamp, renewing the counters to outlive
// them — and releases the lock, or, when the fill stored nothing, releases
// the lock and deletes the counters the first one created, so a request that
// stores nothing leaves nothing in Redis. On standalone Redis each step is one
// script; on a Cluster, where keys of one script must share a slot, the same
// commands go out in parallel, one per slot group.
import type { L2Store } from './l2-store.js';
import { isCluster, type RedisClient } from './redis-client.js';
import { counterValue, LuaScript } from './redis-scripts.js';

/**
 * KEYS[1] entry, KEYS[2] lock (KEYS[1] again when no lock is wanted), KEYS[3..] counters.
 * ARGV[1] lock token ('' = no lock), ARGV[2] lock TTL, ARGV[3] provisional TTL,
 * ARGV[4] '1' when KEYS[3] is the namespace epoch (created without TTL),
 * ARGV[5] now in ms: an entry no longer fresh then (its freshUntil, a double at
 * byte 13 of the entry codec's layout) is returned and the fill steps taken too;
 * ARGV[6] '1' to take the fill steps whatever is stored (the entry is not read).
 * A counter another fill made (still provisional) that this one reads gets twice
 * the provisional TTL: that fill's abandon then leaves it to this one.
 * Reply: { entry | false, lock (1 taken, 0 held by another, -1 not asked or a fresh hit),
 *          created counter positions ('1,3'), counter values (false when missing on a hit)... }
 */
const LOOKUP = `
local v = false
if ARGV[6] ~= '1' then v = redis.call('GET', KEYS[1]) end
local out = {v or false, -1, ''}
local fresh = v and true or false
if v and string.len(v) >= 20 and string.sub(v, 1, 2) == 'TC' then
  fresh = struct.unpack('>d', v, 13) > tonumber(ARGV[5])
end
if fresh then
  for i = 3, #KEYS do out[i + 1] = redis.call('GET', KEYS[i]) or false end
  return out
end
if ARGV[1] ~= '' then
  if redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') then out[2] = 1 else out[2] = 0 end
end
local created = {}
local init
local provisional = tonumber(ARGV[3])
for i = 3, #KEYS do
  local c = redis.call('GET', KEYS[i])
  if c then
    -- Another fill made it and may still abandon it: shared now, so it must outlive that abandon.
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl > 0 and ttl <= provisional then redis.call('PEXPIRE', KEYS[i], 2 * provisional) end
  else
    if not init then
      local t = redis.call('TIME')
      init = t[1] .. string.format('%06d', tonumber(t[2]))
    end
    c = init
    if i == 3 and ARGV[4] == '1' then
      redis.call('SET', KEYS[i], c)
    else
      redis.call('SET', KEYS[i], c, 'PX', ARGV[3])
      created[#created + 1] = i - 2
    end
  end
  out[i + 1] = c
end
out[3] = table.concat(created, ',')
return out`;

/**
 * KEYS[1] lock (or the first entry key when none), KEYS[2..1+E] entries, then counters.
 * ARGV[1] lock token ('' = none), ARGV[2] E, ARGV[3..2+E] payloads, ARGV[3+E..2+2E]
 * entry TTLs, then per counter: the version the fill recorded, and the TTL it must
 * at least have from now (0: leave it alone, for the epoch, which comes first).
 * Stores only when every counter still holds what the fill recorded. Reply: 1
 * stored; 0 not, a tag counter moved; -1 not, the first counter (the epoch) moved.
 */
const STORE = `
local e = tonumber(ARGV[2])
local first = 3 + 2 * e
local fresh = 1
for i = 2 + e, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[first + 2 * (i - 2 - e)] then
    if i == 2 + e then fresh = -1 else fresh = 0 end
    break
  end
end
if fresh == 1 then
  for i = 1, e do redis.call('SET', KEYS[1 + i], ARGV[2 + i], 'PX', ARGV[2 + e + i]) end
  for i = 2 + e, #KEYS do
    local ttl = tonumber(ARGV[first + 2 * (i - 2 - e) + 1])
    if ttl > 0 and redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return fresh`;

/**
 * KEYS[1] lock (or a created counter when none), KEYS[2..] counters this fill created.
 * ARGV[1] lock token ('' = none), ARGV[2] provisional TTL, ARGV[2 + i] the value
 * KEYS[1 + i] was created with. A counter is deleted only while it still holds that
 * value with no more than the provisional TTL: one another fill renewed is kept.
 */
const ABANDON = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local ttl = tonumber(ARGV[2])
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1 + i] and redis.call('PTTL', KEYS[i]) <= ttl then redis.call('DEL', KEYS[i]) end
end
return 1`;

const lookupScript = new LuaScript(LOOKUP);
const storeScript = new LuaScript(STORE);
const abandonScript = new LuaScript(ABANDON);

/** How long a counter made by a lookup lives unless a store renews it. */
export const PROVISIONAL_COUNTER_TTL_MS = 60_000;

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
}

export interface LookupReply {
  readonly entry: Buffer | null;
  /** true: the lock is ours; false: another fill holds it; undefined: none asked, or a fresh hit. */
  readonly locked: boolean | undefined;
  /** Counter values, as requested; undefined for one missing on a hit (a miss creates them). */
  readonly values: ReadonlyArray<number | undefined>;
  /** Counters this lookup created, with their values: the fill deletes them if it stores nothing. */
  readonly created: ReadonlyArray<CreatedCounter>;
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
  /** ms the counter must at least live from now; 0 leaves its TTL alone (the epoch has none). */
  readonly ttl: number;
}

export interface StoreRequest {
  readonly entries: readonly StoredPayload[];
  readonly counters: readonly CounterRenewal[];
  /** The fill's lock, released in the same step. */
  readonly lock: { readonly key: string; readonly token: string } | undefined;
}

export type StoreResult = 'stored' | 'tags' | 'epoch';

export interface AbandonRequest {
  readonly lock: { readonly key: string; readonly token: string } | undefined;
  readonly created: readonly CreatedCounter[];
}

const text = (v: unknown): string | undefined => (v === null || v === undefined || v === false ? undefined : Buffer.isBuffer(v) ? v.toString('latin1') : String(v));

/** Runs the fill steps through `l2` (its breaker and timeout), as scripts or, on a Cluster, per slot group. */
export class FillProtocol {
  constructor(private readonly l2: L2Store) {}

  private get cluster(): boolean {
    return isCluster(this.l2.client);
  }

  /** Step one: the entry, or (when missing) the lock and the counters. Throws when Redis fails. */
  lookup(request: LookupRequest): Promise<LookupReply> {
    return this.l2.run((client) => (this.cluster ? lookupOnCluster(client, request) : lookupInOne(client, request)));
  }

  /**
   * Step two of a fill that stored: 'stored', or which counter had moved since
   * the fill began ('tags', or the first one, 'epoch'). Throws when Redis fails.
   */
  store(request: StoreRequest): Promise<StoreResult> {
    return this.l2.run((client) => (this.cluster ? storeOnCluster(client, request) : storeInOne(client, request)));
  }

  /** Step two of a fill that stored nothing. Never throws: what is left behind expires. */
  abandon(request: AbandonRequest): void {
    if (request.lock === undefined && request.created.length === 0) return;
    this.l2.run((client) => (this.cluster ? abandonOnCluster(client, request) : abandonInOne(client, request))).catch(() => undefined);
  }
}

async function lookupInOne(client: RedisClient, request: LookupRequest): Promise<LookupReply> {
  const { key, lock, counters } = request;
  const args = [lock?.token ?? '', String(lock?.ttl ?? 0), String(PROVISIONAL_COUNTER_TTL_MS), request.epochFirst ? '1' : '0', String(request.now), request.skipEntry ? '1' : '0'];
  const reply = await lookupScript.raw(client, [key, lock?.key ?? key, ...counters], args);
  if (!Array.isArray(reply) || reply.length !== 3 + counters.length) throw new Error('unexpected reply from the tiercache lookup script');
  const entry = Buffer.isBuffer(reply[0]) ? reply[0] : null;
  const values = counters.map((_, i) => (text(reply[3 + i]) === undefined ? undefined : counterValue(reply[3 + i])));
  const created: CreatedCounter[] = [];
  for (const position of (text(reply[2]) ?? '').split(',')) {
    if (position === '') continue;
    const i = Number(position) - 1;
    created.push({ key: counters[i]!, value: values[i]! });
  }
  const lockCode = Number(reply[1]);
  return { entry, locked: lockCode === -1 ? undefined : lockCode === 1, values, created };
}

/** On a Cluster the entry and its lock share a slot (the lock key hash-tags the entry key); counters live elsewhere. */
async function lookupOnCluster(client: RedisClient, request: LookupRequest): Promise<LookupReply> {
  const { key, lock, counters } = request;
  const [own, values] = await Promise.all([
    lookupInOne(client, { ...request, counters: [], epochFirst: false }),
    Promise.all(counters.map((counter, i) => readOrCreate(client, counter, i === 0 && request.epochFirst))),
  ]);
  const created: CreatedCounter[] = [];
  const read: number[] = [];
  values.forEach((v, i) => {
    read.push(v.value);
    if (v.created) created.push({ key: counters[i]!, value: v.value });
  });
  // A fresh hit made counters that were missing; harmless (they expire), and the hit treats them as unknown.
  if (own.entry !== null && own.locked === undefined) return { ...own, values: values.map((v) => (v.created ? undefined : v.value)), created: [] };
  return { ...own, values: read, created };
}

async function readOrCreate(client: RedisClient, key: string, epoch: boolean): Promise<{ value: number; created: boolean }> {
  const reply = await lookupInOne(client, { key, lock: undefined, counters: [key], epochFirst: epoch, now: Number.MAX_SAFE_INTEGER });
  // The lookup of a counter as its own "entry": found means it exists.
  if (reply.entry !== null) return { value: counterValue(reply.entry), created: false };
  return { value: reply.values[0]!, created: reply.created.length > 0 };
}

function storeArgs(request: StoreRequest, lockKey: string | undefined): { keys: string[]; args: string[] | Array<string | Buffer> } {
  const { entries, counters, lock } = request;
  const keys = [lockKey ?? entries[0]!.key, ...entries.map((e) => e.key), ...counters.map((c) => c.key)];
  const args: Array<string | Buffer> = [lock?.token ?? '', String(entries.length)];
  for (const e of entries) args.push(e.bytes);
  for (const e of entries) args.push(String(Math.max(1, Math.ceil(e.ttl))));
  for (const c of counters) args.push(String(c.recorded), String(Math.max(0, Math.ceil(c.ttl))));
  return { keys, args };
}

async function storeInOne(client: RedisClient, request: StoreRequest): Promise<StoreResult> {
  const { keys, args } = storeArgs(request, request.lock?.key);
  const code = Number(await storeScript.raw(client, keys, args));
  return code === 1 ? 'stored' : code === -1 ? 'epoch' : 'tags';
}

async function storeOnCluster(client: RedisClient, request: StoreRequest): Promise<StoreResult> {
  // No cross-slot check is possible: entries are stored and counters renewed; an entry
  // that an invalidation overtook is refused when read (its versions are checked then).
  const writes: Array<Promise<unknown>> = request.entries.map((e) => client.set(e.key, e.bytes, 'PX', Math.max(1, Math.ceil(e.ttl))));
  for (const c of request.counters) if (c.ttl > 0) writes.push(client.pexpire(c.key, Math.ceil(c.ttl), 'GT'));
  if (request.lock !== undefined) writes.push(abandonScript.raw(client, [request.lock.key], [request.lock.token, '0']));
  await Promise.all(writes);
  return 'stored';
}

async function abandonInOne(client: RedisClient, request: AbandonRequest): Promise<void> {
  const { lock, created } = request;
  const keys = [lock?.key ?? created[0]!.key, ...created.map((c) => c.key)];
  await abandonScript.raw(client, keys, [lock?.token ?? '', String(PROVISIONAL_COUNTER_TTL_MS), ...created.map((c) => String(c.value))]);
}

async function abandonOnCluster(client: RedisClient, request: AbandonRequest): Promise<void> {
  const steps: Array<Promise<unknown>> = [];
  if (request.lock !== undefined) steps.push(abandonScript.raw(client, [request.lock.key], [request.lock.token, '0']));
  for (const c of request.created) steps.push(abandonScript.raw(client, [c.key, c.key], ['', String(PROVISIONAL_COUNTER_TTL_MS), String(c.value)]));
  await Promise.all(steps);
}
