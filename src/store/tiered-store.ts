// The tiered store: L1, then L2, then miss. An L2 hit warms L1 for the rest of
// the entry's life (capped by l1.ttl). Every entry is checked against the tag
// versions before it is returned; an invalid one is dropped from the tier it
// was found in. Redis failures never escape: they count as misses or no-ops.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { decodeEntry, encodeEntry, entryIdentity, identityLength, ownBytes, tagVersionOffset } from './entry-codec.js';
import { EntryKind, type FillStamp, type StoredEntry } from './entry.js';
import { EntryUnfitError, FillProtocol, judgedAlike, type ClaimSettled, type ClaimStep, type CounterAdvance, type CounterRenewal, type CreatedCounter, type LockRequest, type PullClaim, type StoredPayload, type StoreOutcome } from './fill-protocol.js';
import type { L1Store, SlotMemo } from './l1-store.js';
import { batchPositions, groupBySlot } from './hash-slot.js';
import { L2NotSentError, L2UnavailableError, type L2Store } from './l2-store.js';
import { PackedEntry } from './packed-entry.js';
import { isCluster } from './redis-client.js';
import { SLOTS_PER_SLICE } from './redis-scripts.js';
import { Validity, type StampNeeds, type StampRead, type TagVersions } from './tag-versions.js';

export type Tier = 'L1' | 'L2';

export interface TieredHit {
  readonly entry: StoredEntry;
  readonly tier: Tier;
  /** get(): an L1 entry only Redis could vouch for, and Redis did not answer (not served; the middleware's stand-in for a 5xx at most). */
  readonly unverified?: true;
}

/** A value pull() took from L2, and what its second step did to the key's counter (see ClaimSettled). */
export interface PulledHit extends TieredHit {
  readonly key: ClaimSettled;
}

const LET_GO: ClaimStep = Object.freeze({ action: 'release', at: undefined });

/**
 * takeFromL2's answer when the step that takes the entry got no answer (the
 * connection cut, its reply lost): Redis may have taken it, nobody can tell.
 */
export const TAKE_UNANSWERED = Symbol('take unanswered');

/** Returned by lookupL1 when only Redis can tell whether the entry is still valid. */
export const UNDECIDED = Symbol('undecided');

/** What the second step of a fill needs from the first: the lock to release, counters made for nothing. */
export interface FillTicket {
  readonly lock: { readonly key: string; readonly token: string } | undefined;
  readonly created: readonly CreatedCounter[];
  /** The tags of `created`: forgotten here when they are deleted. */
  readonly createdTags: readonly string[];
  /**
   * A fill whose lookup ran out of the one command timeout it had (waiting
   * for the first connection): when it began waiting (performance.now()).
   * Its store waits only what is left of that timeout, none by then: a
   * Redis that came up and froze within it costs no second timeout.
   */
  readonly since?: number;
}

/**
 * What set() resolves when Redis could not be asked: the value is in L1 at most, and L2 may
 * still hold an older one (see TierCache.setValue).
 */
export const UNREACHED = 'unreached';
/**
 * UNREACHED, and known never sent (L2 was down, or its breaker open): no
 * store of this set() can land in Redis later.
 */
export const UNSENT = 'unsent';
/**
 * What a store resolves when Redis cannot hold its entry (see EntryUnfitError): never sent. For a
 * set() (reported): kept in L1 if L1 took it, and L2 left as it was, an older value of the key
 * included. For a fill: kept in L1 (a fill L1 did not keep resolves false).
 */
export const L1_ONLY = 'l1-only';
/** A store's outcome: stored (true), refused or over (false), L1_ONLY (kept in L1 alone: Redis cannot hold the entry), or, for a set() alone, UNREACHED or UNSENT. */
export type StoreResult = boolean | typeof UNREACHED | typeof UNSENT | typeof L1_ONLY;

export const NO_TICKET: FillTicket = Object.freeze({ lock: undefined, created: Object.freeze([]), createdTags: Object.freeze([]) });

/** Whether a fill step that failed with `err` may have reached Redis and run: all but one never sent. */
function mayHaveRun(err: unknown): boolean {
  return !(err instanceof L2NotSentError || err instanceof EntryUnfitError);
}

/** One round trip's worth of a fill's start (see lookupForFill). */
export interface FillLookup {
  /** A valid entry in L2, fresh or stale; undefined when none. */
  readonly hit: TieredHit | undefined;
  /** With no fresh hit: the stamp of the fill that follows. */
  readonly stamp: FillStamp | undefined;
  /** The fill lock: ours, held by another instance's fill, or none (not asked, or Redis could not tell). */
  readonly lock: 'ours' | 'theirs' | 'none';
  readonly ticket: FillTicket;
  /** Redis did not answer the lookup, or the GET of a large entry's bytes after it (down, or silent past the command timeout): no hit says nothing about L2. */
  readonly unanswered?: true;
}

/** One entry of a fill to store (a response, or a Vary manifest and its variant). */
export interface FillWrite {
  readonly key: string;
  /** What L2 stores (encoded; a packed entry is its bytes already). */
  readonly entry: StoredEntry;
  /** What L1 keeps (a decoded form). */
  readonly l1Entry: StoredEntry;
}

/**
 * The tags of the counters a fill's lookup created: `keys` are the counters
 * it read (`tags`' counters, after the epoch's when `epoch`). A search per
 * counter for the few a fill usually makes; a map for many (an entry with
 * thousands of tags would otherwise cost millions of comparisons).
 */
function tagsOfCreated(created: readonly CreatedCounter[], keys: readonly string[], tags: readonly string[], epoch: boolean): string[] {
  const skip = epoch ? 1 : 0;
  // Stryker disable next-line ConditionalExpression,EqualityOperator: both ways find the same positions
  if (created.length <= 16) return created.map((c) => tags[keys.indexOf(c.key) - skip]!);
  const at = new Map<string, number>();
  keys.forEach((key, i) => at.set(key, i));
  return created.map((c) => tags[at.get(c.key)! - skip]!);
}

/** Most keys one UNLINK of dropManyFromL2 carries. */
const KEYS_PER_UNLINK = 1_000;

/** Counters of per-entry `key:` tags live as long as their entry; shared ones at least this long. */
const KEY_TAG_PREFIX = 'key:';

export interface TieredStoreOptions {
  readonly l1: L1Store | undefined;
  readonly l2: L2Store | undefined;
  readonly versions: TagVersions;
  readonly now: () => number;
  /** How long shared tag counters live after an entry that recorded them is stored (ms). */
  readonly counterTtl?: number;
}

/** Redis's reply to a command on a key of another type. */
/** Counter values a lookup read for `needs`, as decide() and stampFrom() take them (the epoch first when it was read). */
function readOf(needs: StampNeeds, values: ReadonlyArray<number | undefined>): StampRead {
  return { epoch: needs.epoch ? values[0] : undefined, versions: needs.epoch ? values.slice(1) : values };
}

function isWrongType(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('WRONGTYPE');
}

export class TieredStore {
  l1Hits = 0;
  l1Misses = 0;
  l2Hits = 0;
  l2Misses = 0;
  readonly l1: L1Store | undefined;
  readonly l2: L2Store | undefined;
  readonly versions: TagVersions;
  private readonly now: () => number;
  private readonly fills: FillProtocol | undefined;
  /** Until the first connection is checked and the bus first listens (see holdFillsUntil). */
  private startGate: Promise<void> | undefined = undefined;
  /** How long shared tag counters live after a store (TAG_COUNTER_TTL_MS). */
  private readonly counterTtl: number;

  constructor(options: TieredStoreOptions) {
    this.l1 = options.l1;
    this.l2 = options.l2;
    this.versions = options.versions;
    this.now = options.now;
    this.counterTtl = options.counterTtl ?? 0;
    this.fills = options.l2 === undefined ? undefined : new FillProtocol(options.l2);
  }

  /**
   * The synchronous L1 path: a valid entry, undefined on a miss (counted), or
   * UNDECIDED when the entry's versions must be checked in Redis (then call get()).
   * `memo` lets a caller that reads the key often skip L1's Map lookup (see SlotMemo).
   */
  lookupL1(key: string, countMiss = true, memo?: SlotMemo, countHit = true): StoredEntry | undefined | typeof UNDECIDED {
    if (this.l1 === undefined) return undefined;
    const entry = this.l1.get(key, memo);
    if (entry !== undefined) {
      const validity = this.versions.check(entry);
      if (validity === Validity.Valid) {
        if (countHit) this.l1Hits++;
        return entry;
      }
      // Stryker disable next-line ConditionalExpression: UNDECIDED for an invalid entry only sends the caller to get(), whose check in Redis finds it invalid
      if (validity === Validity.Unknown) return UNDECIDED;
      this.l1!.delete(key);
    }
    if (countMiss) this.l1Misses++;
    return undefined;
  }

  /** Counts L1 hits found with lookupL1(key, false, undefined, false) once they are served (the front door may pass them on). */
  noteL1Hits(lookups: number): void {
    this.l1Hits += lookups;
  }

  /** Counts an L1 miss that the caller found with lookupL1(key, false) before asking L2 itself. */
  noteL1Miss(): void {
    if (this.l1 !== undefined) this.l1Misses++;
  }

  /** Takes back a miss noted for a request another layer (a per-route middleware) looks up again. */
  unnoteL1Miss(): void {
    if (this.l1 !== undefined) this.l1Misses--;
  }

  /**
   * L1, then L2. The entry may be past freshUntil (but not staleUntil); callers decide.
   * An L1 entry only Redis could vouch for, while Redis does not answer, comes
   * back `unverified` (counted a miss) where servableInOutage allows it, else
   * is dropped: no caller serves it (this instance cannot tell an outage from
   * being cut off alone while others invalidate), the middleware keeps it as
   * a stand-in for a 5xx (see HttpCache.find).
   */
  async get(key: string): Promise<TieredHit | undefined> {
    const l1 = this.l1;
    if (l1 !== undefined) {
      const entry = l1.get(key);
      if (entry !== undefined) {
        const word = await this.versions.vouch(entry);
        if (word === true || (word === undefined && this.versions.servableInOutage(entry))) {
          if (word === undefined) {
            this.l1Misses++;
            return { entry, tier: 'L1', unverified: true };
          }
          this.l1Hits++;
          return { entry, tier: 'L1' };
        }
        l1.delete(key);
      }
      this.l1Misses++;
    }
    return this.getL2(key);
  }

  /**
   * L2 only (after an L1 miss); warms L1 on a hit. `tags`: tags the entry
   * records that the reader knows before reading it (a data key's own, its
   * view's). When local state does not hold their versions, the entry and
   * their counters are read in one round trip (the fill's lookup, taking no
   * lock and making no counter), not a GET and then a read of the counters to
   * vouch for what it found.
   */
  async getL2(key: string, tags?: readonly string[]): Promise<TieredHit | undefined> {
    if (this.l2 === undefined) return undefined;
    // (Before the first connection's checks have settled, the plain way, as fills wait for them: see holdFillsUntil.)
    if (tags !== undefined && this.fills !== undefined && this.startGate === undefined) {
      const needs = this.versions.needs(tags);
      // Asking anyway: Redis's word on all of them, and on standalone Redis the epoch too (one more GET in the
      // script), as the read of every counter that vouched for such an entry gave, not what this instance last
      // heard (an invalidation whose message is still on its way). On a Cluster the epoch's slot would be in
      // every such read: it stays the instance's, checked once a second.
      if (needs.tags.length > 0 || needs.epoch) {
        const all: StampNeeds = { tags, epoch: needs.epoch || !isCluster(this.l2.client), generation: needs.generation };
        return this.readWithCounters(key, all);
      }
    }
    return this.getL2Plain(key);
  }

  private async getL2Plain(key: string): Promise<TieredHit | undefined> {
    const l2 = this.l2!;
    let raw: Buffer | null;
    try {
      raw = await l2.get(key);
    } catch (err) {
      // Counted (and reported) by L2Store. A key of another type (a list, say) is foreign data: a miss, and deleted,
      // so it is reported once, not on every read.
      if (isWrongType(err)) {
        this.l2Misses++;
        this.dropFromL2(key);
      }
      return undefined;
    }
    if (raw === null) {
      this.l2Misses++;
      return undefined;
    }
    const entry = this.decodeFromL2(key, raw);
    if (entry === undefined) {
      this.l2Misses++;
      return undefined;
    }
    const validity = this.versions.check(entry);
    // Only Redis's word (or local state's) serves an L2 entry: unlike L1's, its age is bounded by its TTL alone, not
    // l1.ttl, and on a Cluster it is read from a master that answers while its tags' counters sit on one that does not.
    // Stryker disable next-line ConditionalExpression: vouching for an entry already known invalid asks Redis, which says so too
    const word = validity === Validity.Valid ? true : validity === Validity.Unknown ? await this.versions.vouch(entry) : false;
    if (entry.staleUntil <= this.now() || word !== true) {
      this.l2Misses++;
      // Unchecked (Redis did not answer) is no reason to delete it.
      if (word === false || entry.staleUntil <= this.now()) this.dropFromL2(key, raw);
      return undefined;
    }
    this.l2Hits++;
    this.l1?.set(key, entry);
    return { entry, tier: 'L2' };
  }

  /** getL2's one round trip for an entry and the counters `needs` names; Redis failures are a miss (counted by L2Store). */
  private async readWithCounters(key: string, needs: StampNeeds): Promise<TieredHit | undefined> {
    const read = await this.readOnlyLookup(key, needs);
    return 'done' in read ? read.done : this.judgeFromL2(key, read.entry, needs, readOf(needs, read.values));
  }

  /**
   * One read-only LOOKUP of `key` with the counters `needs` names (and a
   * pull's claim): the entry and the values read, or what the read already
   * decided (`done`): a Redis failure or no entry is a miss, foreign data is
   * read as a GET reads it (reported and deleted).
   */
  private async readOnlyLookup(key: string, needs: StampNeeds, claim?: PullClaim): Promise<{ readonly entry: Buffer; readonly values: ReadonlyArray<number | undefined> } | { readonly done: TieredHit | undefined }> {
    let reply;
    try {
      reply = await this.fills!.lookup({ key, lock: undefined, counters: this.versions.counterKeys(needs), epochFirst: needs.epoch, now: this.now(), readOnly: true, ...(claim === undefined ? {} : { claim }) });
    } catch {
      return { done: undefined };
    }
    // A key of another type: a GET reports it and deletes it, as a read always has.
    if (reply.foreign === true) return { done: await this.getL2Plain(key) };
    // A large entry's bytes, read after the script: whichever entry they are, they are judged by the versions they
    // record against the counters read before (one they record as read was stored before any later invalidation).
    const entry = reply.large === undefined ? reply.entry : await this.readLarge(key);
    if (entry === null || entry === undefined) {
      if (entry === null) this.l2Misses++;
      // The claim would hold off other pulls for its life: let go at once (a failure leaves it to expire).
      if (claim !== undefined && reply.large !== undefined) this.fills!.settleClaim(key, claim, LET_GO).catch(() => undefined);
      return { done: undefined };
    }
    return { entry, values: reply.values };
  }

  /**
   * A large entry's bytes (LOOKUP judged it by its first 20 bytes, see
   * LARGE_ENTRY_BYTES), read with a plain GET, so Redis never copies them
   * through Lua: null when it is gone, undefined when Redis failed (counted by L2Store).
   */
  private async readLarge(key: string): Promise<Buffer | null | undefined> {
    try {
      return await this.l2!.get(key);
    } catch (err) {
      // A key of another type put there since the script: foreign data, gone as an entry (deleted, as getL2Plain
      // deletes it), not a Redis that did not answer (a fill's lookup would be taken for one: no lock, no miss).
      if (!isWrongType(err)) return undefined;
      this.dropFromL2(key);
      return null;
    }
  }

  /**
   * Takes `key` out of L2 (pull()), in two steps. The first reads the entry
   * and the counters of `tags` and claims the entry for this pull (SET NX, for
   * one command timeout), unless another pull's claim lives; the entry is
   * judged as getL2 judges it; the second deletes it if the claim is still
   * this pull's, and only then is it a hit (never kept in L1); it deletes
   * the entry, and moves the key's counter, only while that counter is not
   * past the version read (see CLAIM): a set() since is not deleted unseen. So of callers
   * racing for it, on any instance, one alone gets it, and a step Redis runs
   * after its caller gave up (a command resent on a reconnect) finds the
   * claim gone: it neither hands over nor deletes a value nobody gets. A
   * value Redis could not vouch for stays, for a later pull. L1 is not looked
   * at: a copy there may be one another caller took from L2 already. A large
   * entry (LARGE_ENTRY_BYTES) is read by a plain GET between the two steps,
   * while the claim holds off every other pull, so no other pull reads what
   * it reads; the bytes are judged against the counters the first step read.
   * TAKE_UNANSWERED when the take got no answer (it may have run).
   */
  async takeFromL2(key: string, tags: readonly string[]): Promise<PulledHit | typeof TAKE_UNANSWERED | undefined> {
    const l2 = this.l2;
    if (l2 === undefined) return undefined;
    // After the first connection's checks (see holdFillsUntil): what they forget must not be decided on.
    if (this.startGate !== undefined) await this.startGate;
    const versions = this.versions;
    const needs: StampNeeds = { tags, epoch: versions.needs(tags).epoch || !isCluster(l2.client), generation: versions.currentGeneration() };
    // The key tag comes first (ownTags): its counter, moved by every set(), tells whether the entry read is still there.
    const keyTag = tags[0]!;
    // The claim lives no longer than its caller waits for a step: a step Redis runs after the caller gave up finds it expired.
    const claim: PullClaim = { key: `{${key}}:pull`, counter: versions.counterKeyOf(keyTag), token: randomUUID(), ttl: l2.callerWait };
    const fills = this.fills!;
    const read = await this.readOnlyLookup(key, needs, claim);
    // What a plain GET read of foreign data (an entry stored over it since) was never claimed: not taken.
    if ('done' in read) return undefined;
    const entry = this.decodeFromL2(key, read.entry);
    const counters = readOf(needs, read.values);
    const word = await this.verdictOn(entry, needs, counters);
    // Valid: taken at the key version it records (a large entry's bytes may be newer than the counters read
    // with the claim), if the claim is still ours. Invalid or over: deleted, at the key version read with the
    // claim. Not vouched for: let go. Neither deletes an entry a set() stored since it was read.
    const at = (word === true ? entry!.versions[entry!.tags.indexOf(keyTag)] : undefined) ?? counters.versions[0];
    const step: ClaimStep = word === undefined ? LET_GO : { action: word ? 'take' : 'delete', at };
    const settled = fills.settleClaim(key, claim, step).catch((): typeof TAKE_UNANSWERED => TAKE_UNANSWERED);
    const took = word === true ? await settled : undefined;
    if (took === TAKE_UNANSWERED) {
      this.l2Misses++;
      return TAKE_UNANSWERED;
    }
    if (took !== undefined) {
      this.l2Hits++;
      return { entry: entry!, tier: 'L2', key: took };
    }
    this.l2Misses++;
    return undefined;
  }

  /**
   * Whether an entry read from L2 with the counters `needs` names may be
   * served: on their word, else on Redis's (vouch); false when it is
   * undecodable or over; undefined when Redis could not vouch for it.
   */
  private async verdictOn(entry: StoredEntry | undefined, needs: StampNeeds, read: StampRead): Promise<boolean | undefined> {
    if (entry === undefined || entry.staleUntil <= this.now()) return false;
    return this.versions.decide(entry, needs, read) ?? (await this.versions.vouch(entry));
  }

  /**
   * An entry read from L2 with the counters `needs` names (a fill's lookup,
   * or getL2's): served on their word, else on Redis's (vouch), warming L1;
   * otherwise a miss, deleted from L2 when Redis says it is invalid or it is
   * over (an entry Redis could not vouch for stays, as in getL2Plain).
   */
  private async judgeFromL2(key: string, raw: Buffer, needs: StampNeeds, read: StampRead): Promise<TieredHit | undefined> {
    const entry = this.decodeFromL2(key, raw);
    const word = await this.verdictOn(entry, needs, read);
    if (word !== true) {
      if (entry !== undefined && word === false) this.dropFromL2(key, raw);
      this.l2Misses++;
      return undefined;
    }
    this.l2Hits++;
    this.l1?.set(key, entry!);
    return { entry: entry!, tier: 'L2' };
  }

  /**
   * With an L2: the first round trip of a fill. Looks `key` up in L2 and, when
   * it is missing or no longer fresh, takes `lock` and reads what the stamp of
   * entries tagged `tags` needs, all at once. `skipEntry` takes the lock and
   * the stamp without looking (a background refresh). Redis failures are a
   * miss with a stamp from what is known here, unlocked.
   */
  /**
   * Fills look up (and are stamped) only once `ready` settles: see
   * TierCache's constructor. Once it has, nothing waits any more.
   */
  holdFillsUntil(ready: Promise<void>): void {
    const gate: Promise<void> = ready.then(() => {
      if (this.startGate === gate) this.startGate = undefined;
    });
    this.startGate = gate;
  }

  async lookupForFill(key: string, tags: readonly string[], lock: LockRequest | undefined, skipEntry = false): Promise<FillLookup> {
    // The wait at the gate counts in the lookup's one command timeout (L2Store.run), and so does
    // the lookup's in the stamp read that follows its failure.
    let since: number | undefined;
    if (this.startGate !== undefined) {
      since = performance.now();
      await this.startGate;
    }
    const fills = this.fills!;
    const versions = this.versions;
    const needs = versions.needs(tags);
    const keys = versions.counterKeys(needs);
    const now = this.now();
    let reply;
    try {
      reply = await fills.lookup({ key, lock, counters: keys, epochFirst: needs.epoch, now, skipEntry, since });
    } catch (err) {
      // Redis may have run a lookup whose answer never came (past the command timeout, a connection cut after
      // it went out) and taken the lock: the ticket holds it, so the fill's store or abandon releases it, later
      // if need be (token-checked: this fill's alone). Left, other instances waited out l2.lockTimeout.
      const taken = lock !== undefined && mayHaveRun(err) ? lock : undefined;
      // A fill held until the first connection, whose wait ran out (see FillTicket.since).
      const waited = since !== undefined && err instanceof L2UnavailableError ? since : undefined;
      const ticket = taken === undefined && waited === undefined ? NO_TICKET : { ...NO_TICKET, lock: taken, since: waited };
      return { hit: undefined, stamp: await versions.stamp(tags, since), lock: 'none', ticket, unanswered: true };
    }
    const read = readOf(needs, reply.values);
    const ticket: FillTicket =
      reply.locked === true || reply.created.length > 0
        ? { lock: reply.locked === true ? { key: lock!.key, token: lock!.token } : undefined, created: reply.created, createdTags: tagsOfCreated(reply.created, keys, needs.tags, needs.epoch) }
        : NO_TICKET;
    const lockState = reply.locked === true ? 'ours' : reply.locked === false ? 'theirs' : 'none';
    let hit: TieredHit | undefined;
    let raw = reply.entry;
    let unread = false;
    if (reply.large !== undefined) {
      // One more round trip for the bytes, which Redis then moves as it moves a GET's.
      const bytes = await this.readLarge(key);
      unread = bytes === undefined;
      // Unread (Redis failed), where the script took no fill step: as a lookup Redis did not answer.
      if (bytes === undefined && reply.locked === undefined && reply.created.length === 0) return { hit: undefined, stamp: await versions.stamp(tags), lock: 'none', ticket: NO_TICKET, unanswered: true };
      // Gone since, or another entry the script would have decided otherwise on (stale where it found one fresh,
      // or the reverse): as an entry found unusable, below (the fill steps taken now where they were not).
      raw = bytes !== undefined && bytes !== null && judgedAlike(bytes, reply.large, now) ? bytes : null;
      // A failed GET is L2Store's error alone, as a failed script is, whatever fill steps the script took.
      if (raw === null && bytes !== undefined) this.l2Misses++;
    }
    const found = reply.entry !== null || reply.large !== undefined;
    if (raw !== null) hit = await this.judgeFromL2(key, raw, needs, read);
    else if (!skipEntry && !found) this.l2Misses++;
    // A fresh hit took no lock and read counters only to check the entry.
    if (reply.locked === undefined && found && hit !== undefined) return { hit, stamp: undefined, lock: 'none', ticket: NO_TICKET };
    if (hit === undefined && reply.locked === undefined && found) {
      // A fresh entry that turned out invalid (invalidated): the fill steps were not taken; take them now.
      return this.lookupForFill(key, tags, lock, true);
    }
    const stamp = versions.stampFrom(tags, needs, read, ticket.createdTags);
    // The fill steps were taken, but Redis did not answer for the entry's bytes: what it holds is unknown here,
    // as after a lookup it did not answer (the HTTP layer's stand-in for a 5xx is looked for then).
    if (unread) return { hit, stamp, lock: lockState, ticket, unanswered: true };
    return { hit, stamp, lock: lockState, ticket };
  }

  /**
   * The second round trip of a fill that stored nothing: releases its lock and
   * deletes the counters its lookup created (unless `keepCounters`). Never
   * waits, never throws.
   */
  abandonFill(ticket: FillTicket, keepCounters = false): void {
    if (ticket.lock === undefined && ticket.created.length === 0) return;
    if (keepCounters) {
      // Another write of the key (a set()) may have recorded those counters since: they stay, and expire unless renewed.
      if (ticket.lock !== undefined) this.fills?.abandon({ lock: ticket.lock, created: [] });
      return;
    }
    // What the lookup created was never learned here (stampFrom): nothing to forget.
    this.fills?.abandon(ticket);
  }

  /**
   * Stores in L1 (at once) and L2 (awaited). `l1Entry` lets the caller keep a
   * decoded form in L1 while L2 gets the bytes. Never throws for Redis.
   * Resolves whether it stored: false when the entry was over on arrival, or
   * when Redis refused it because a counter its stamp recorded moved (an
   * invalidation this instance had not heard of yet: the versions are
   * forgotten here, so a stamp taken again reads them from Redis). In Redis
   * it moves the key's own counter on (see keyCounterAdvance): a fill of the
   * key stamped before, on any instance, is refused when it stores.
   * `onMoved` hears the version Redis moved that counter to, when it stored.
   */
  async set(key: string, entry: StoredEntry, l1Entry: StoredEntry = entry, onMoved?: (version: number) => void, since?: number): Promise<StoreResult> {
    // A set() replaces what was there: one whose entry is over on arrival leaves nothing, not the old value.
    // Stryker disable next-line EqualityOperator: an entry whose stale window ends this very millisecond
    if (entry.staleUntil - this.now() <= 0) {
      this.l1?.delete(key);
      await this.l2?.del(key).catch(() => undefined);
      return false;
    }
    return this.storeFill([{ key, entry, l1Entry }], since === undefined ? NO_TICKET : { ...NO_TICKET, since }, true, onMoved);
  }

  /**
   * Stores a fill's entries (all recording the same stamp): in L1 at once; in
   * L2, with the counters they recorded renewed and the fill's lock released,
   * in one round trip — unless a counter moved since the fill began (an
   * invalidation overtook it), and then nowhere. Resolves false then, and
   * when Redis cannot be reached and L1 did not keep them (there is none, or
   * it refused an entry that size); true when they stay in L1; L1_ONLY when
   * Redis cannot hold them (EntryUnfitError) and L1 kept them. Never throws.
   */
  storeFill(writes: readonly FillWrite[], ticket: FillTicket, ownValue = false, onMoved?: (version: number) => void): boolean | Promise<StoreResult> {
    const now = this.now();
    const first = writes[0];
    // Stryker disable next-line EqualityOperator: an entry whose stale window ends this very millisecond
    if (first === undefined || first.entry.staleUntil - now <= 0) {
      // What L1 holds for these keys stays: it may be newer than this fill (a set() while the loader ran).
      this.abandonFill(ticket);
      return false;
    }
    // Charged by what L1 keeps (a decoded form may cost more than the stored bytes).
    for (const w of writes) this.l1?.set(w.key, w.l1Entry);
    // Without an L2 the fill is stored now: no promise.
    // Stryker disable next-line ConditionalExpression: without an L2, storeInL2 fails on the missing protocol and answers true as well (a promise instead)
    return this.fills === undefined ? true : this.storeInL2(writes, ticket, first, now, ownValue, onMoved);
  }

  private async storeInL2(writes: readonly FillWrite[], ticket: FillTicket, first: FillWrite, now: number, ownValue: boolean, onMoved: ((version: number) => void) | undefined): Promise<StoreResult> {
    let entries: StoredPayload[];
    let unfit = false;
    try {
      entries = writes.map((w) => ({ key: w.key, bytes: w.entry instanceof PackedEntry ? w.entry.bytes : encodeEntry(w.entry), ttl: w.entry.staleUntil - now }));
    } catch (err) {
      // A set() replaces the key's value: its caller must hear that L2 keeps the one from before.
      if (ownValue) {
        this.l2!.refuse(this.fills!.unfit(first.entry.tags, err));
        return L1_ONLY;
      }
      // Past what the L2 format holds (a tag over 64 KiB): L1 keeps the fill, L2 none of it. The
      // store step still runs, with no entry: it renews the counters L1's copy recorded and releases the lock.
      entries = [];
      unfit = true;
    }
    // A set() moves its key counter as it stores (an entry L2 cannot hold leaves it alone: none would record it).
    const advance = ownValue && entries.length === 1 ? keyCounterAdvance(first) : undefined;
    let stored: StoreOutcome;
    try {
      stored = await this.fills!.store({ entries, counters: this.renewals(first.entry, first.entry.staleUntil - now), lock: ticket.lock, advance, since: ticket.since });
    } catch (err) {
      // Released (token-checked), not left for other instances' callers to wait out: a fill whose time ran out
      // waiting for the first connection sent no store, though a lookup Redis ran after the fill gave up on it
      // may have taken the lock; a store the connection took with it is not sent again (openRedis), and Redis
      // may answer again by the time it fails. (Skipped at once while L2 is down: the lock expires then.)
      if (ticket.lock !== undefined) this.fills!.abandon({ lock: ticket.lock, created: [] });
      // Counted by L2Store; the entries still serve from L1 (and the lock expires). A set()'s copy there
      // records its key counter as read: the version Redis would have moved it to is known to nobody.
      // Stored, then, only if L1 kept it (there is one, and it took an entry that size). A set() is told
      // apart: L2 may still hold an older value of its key, which the caller must make invalid. (One L2
      // cannot hold was never going there: what L2 holds of its key is as Redis refusing it leaves it.)
      if (ownValue && entries.length > 0) return err instanceof L2NotSentError ? UNSENT : err instanceof EntryUnfitError ? L1_ONLY : UNREACHED;
      return this.l1?.peek(first.key) !== undefined;
    }
    if (stored.result === 'stored') {
      const moved = advance === undefined || stored.moved === undefined ? undefined : movedCopies(first, advance.counter - 1, stored.moved);
      // Redis holds exactly these versions now (renewed): known here, so L1 hits decide without asking.
      this.versions.learnStored(moved?.entry ?? first.entry);
      // L1's copy records what Redis's does, unless another store replaced it meanwhile.
      if (moved !== undefined && this.l1?.peek(first.key) === first.l1Entry) this.l1.set(first.key, moved.l1Entry);
      if (moved !== undefined) onMoved?.(stored.moved!);
      // A fill L2 could not hold was stored in L1 alone, if L1 kept it: its 'store' event must not name L2.
      if (unfit) return this.l1?.peek(first.key) === undefined ? false : L1_ONLY;
      return true;
    }
    // Overtaken by an invalidation, or a counter (or the epoch: FLUSHALL) known here is gone
    // from Redis: what this instance knows of them is read again by the next fill.
    for (const w of writes) this.l1?.delete(w.key);
    // Stryker disable next-line ConditionalExpression: forgetting the epoch as well only makes the next fill read it again
    this.versions.forget(first.entry.tags, stored.result === 'epoch');
    return false;
  }

  /** The counters an entry recorded, with what they must still hold and how long they must live. */
  private renewals(entry: StoredEntry, ttl: number): CounterRenewal[] {
    const versions = this.versions;
    const out: CounterRenewal[] = [{ key: versions.epochCounterKey(), recorded: entry.epoch, ttl: 0 }];
    for (let i = 0; i < entry.tags.length; i++) {
      const tag = entry.tags[i]!;
      out.push({ key: versions.counterKeyOf(tag), recorded: entry.versions[i]!, ttl: tag.startsWith(KEY_TAG_PREFIX) ? ttl : Math.max(ttl, this.counterTtl) });
    }
    return out;
  }

  private decodeFromL2(key: string, raw: Buffer): StoredEntry | undefined {
    try {
      // Decoded views point into the bytes; give them their own, since L1 may keep them long.
      // Stryker disable next-line ConditionalExpression,EqualityOperator: ownBytes and packing only change what an entry keeps in memory (the reply's buffer may be larger; a packed entry is fewer objects); the values are the same
      if (this.l1 === undefined) return decodeEntry(raw);
      const bytes = ownBytes(raw);
      const entry = decodeEntry(bytes);
      // An HTTP entry L1 keeps is kept as its bytes (packed-entry.ts); its tags are read at once.
      return entry.kind === EntryKind.Http ? new PackedEntry(bytes, undefined, entry.tags, entry.versions) : entry;
    } catch {
      this.dropFromL2(key, raw);
      return undefined;
    }
  }

  /**
   * Drops `entry`, found unusable above this layer (a value the serializer
   * cannot read), from both tiers without waiting for Redis: from L2 only
   * while it still holds that entry (see DROP), so a set() landing since,
   * on another instance, is not deleted unseen.
   */
  discard(key: string, entry: StoredEntry): void {
    // What L1 holds now may be newer (a set() here since the read).
    if (this.l1?.peek(key) === entry) this.l1.delete(key);
    const fills = this.fills;
    if (fills === undefined) return;
    let head: Buffer;
    try {
      head = entryIdentity(entry);
    } catch {
      // The format cannot hold it, so L2 never held it: whatever is there is another value.
      return;
    }
    fills.dropIfUnchanged(key, head).catch(() => undefined);
  }

  /**
   * Deletes `key` from L2 without waiting, only while it still holds what
   * was read (see DROP): given the bytes read (`raw`), while it still starts
   * with them; without (a key of another type was read), while it is not a
   * string. A value stored over it since the read, another instance's set(), stays.
   */
  private dropFromL2(key: string, raw?: Buffer): void {
    if (this.fills === undefined) return;
    const dropped = raw === undefined ? this.fills.dropIfForeignType(key) : this.fills.dropIfUnchanged(key, raw.subarray(0, identityLength(raw)));
    dropped.catch(() => undefined);
  }

  /**
   * Deletes `keys` from L2 for a deleteMany, before its bump (which is what
   * makes them invalid everywhere: this only frees Redis's memory sooner, and
   * landing after the bump's message it could drop a value set anew). At most
   * KEYS_PER_UNLINK keys per command, slice after slice, each under L2's
   * timeout (on a Cluster, one command per slot of the slice, at most
   * SLOTS_PER_SLICE): tens of thousands of keys sent at once would outlast
   * it. Never throws.
   */
  async dropManyFromL2(keys: readonly string[]): Promise<void> {
    const l2 = this.l2;
    if (l2 === undefined) return;
    for (const at of batchPositions(keys, KEYS_PER_UNLINK, isCluster(l2.client) ? SLOTS_PER_SLICE : undefined)) {
      const slice = at.map((i) => keys[i]!);
      await l2
        .run<unknown>((c) => (isCluster(c) ? Promise.all(groupBySlot(slice).map((group) => c.unlink(group.at.map((i) => slice[i]!)))) : c.unlink(slice)))
        .catch(() => undefined);
    }
  }
}

/**
 * A set() moves its key's own counter as it stores (fill-protocol.ts, STORE):
 * a getOrSet() of the key that began before, on any instance, recorded the
 * version before and is refused when it stores, instead of storing its older
 * value over this one. Which counter (the epoch is the first), and where the
 * encoded entry records its version; undefined for an entry without its key's tag.
 */
function keyCounterAdvance(write: FillWrite): CounterAdvance | undefined {
  const at = write.entry.tags.indexOf(KEY_TAG_PREFIX + write.key);
  if (at < 0 || write.entry instanceof PackedEntry) return undefined;
  return { counter: at + 1, offset: tagVersionOffset(write.entry.tags, at) };
}

/** The set()'s entry and L1 copy recording the version Redis moved its key counter to. */
function movedCopies(write: FillWrite, at: number, moved: number): { entry: StoredEntry; l1Entry: StoredEntry } {
  const { entry, l1Entry } = write;
  const versions = entry.versions.slice();
  versions[at] = moved;
  const advanced: StoredEntry = { ...entry, versions };
  return { entry: advanced, l1Entry: l1Entry === entry ? advanced : { ...l1Entry, versions } };
}
