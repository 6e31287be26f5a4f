// Invalidations on their way to Redis, in the order they were made. Each is
// applied locally first (TagVersions marks its tags pending), then delivered:
// version bump in Redis, then publish to the other instances. One that Redis
// cannot take stays queued and is replayed, in order, as soon as Redis answers
// again, so an invalidation made during a network blip still reaches L2 and
// every other instance. The backlog is bounded: past MAX_QUEUED tags and keys
// it becomes one clear(), which covers everything it held (over-invalidating).
// On a Cluster that keeps serving what it can, an invalidation whose bump its
// slot's master cannot take (lost with no replica) holds back only the items
// on its slots: the masters that answer take the rest, in order per slot, at
// once (see next); a clear() made meanwhile takes its place, as in an outage.
import { redirectionSpent, slotUnserved } from './cluster-faults.js';
import { keySlot } from './hash-slot.js';
import type { BusMessage, InvalidationBus, PublishProgress } from './invalidation-bus.js';
import { L2NotSentError, type L2Store } from './l2-store.js';
import { counterValue, dropUnlessSetSince } from './redis-scripts.js';
import type { TagVersions } from './tag-versions.js';

export type Invalidation =
  | { readonly kind: 'tags'; readonly tags: readonly string[] }
  /**
   * One store key: `tag` is its key tag; the key is also deleted from L2.
   * `setBefore`: it stands for a set() Redis could not take, whose deadline
   * (Redis's clock, µs) this is: a set() stored after it is left alone.
   * `steps`: ServerClock.steps when that deadline was taken; a step seen
   * since leaves it unusable (the delete then deletes, as with none).
   */
  | { readonly kind: 'key'; readonly key: string; readonly tag: string; readonly setBefore?: number; readonly steps?: number }
  | { readonly kind: 'clear' };

/** How many tags and keys may wait for Redis before the backlog becomes one clear(). */
export const MAX_QUEUED = 1_000;
/** How often delivery is retried while Redis answers but refuses it (L2 coming back retries at once). */
const RETRY_MS = 1_000;
/**
 * How soon an invalidation whose command spent the client's redirection
 * budget on a moving slot is sent again: ioredis's own pause before it
 * follows a TRYAGAIN is 100 ms; a MOVED it followed updated its slot map already.
 */
const REDIRECTED_RETRY_MS = 50;
/** Most tags merged into one bump: consecutive tag invalidations share a round trip. */
const MAX_BATCH_TAGS = 1_000;

/** Tells a caller whether its invalidation reached Redis; shared when items merge. */
interface Ticket {
  delivered: boolean;
  /** Answers the caller: delivered, or not (its bump met a lost slot; it stays queued). */
  readonly answer: (delivered: boolean) => void;
}

interface Item {
  readonly op: Invalidation;
  /** Of the calls that wait for it; those that returned at once have none (an outage's calls would pile up one each). */
  readonly tickets: Ticket[];
  /** How many calls it stands for (for onReplayed). */
  readonly calls: number;
  /** Set once the bump is done: only the publish is left. */
  message?: BusMessage;
  /** How far that publish got: a retry goes on from there, under the number that failed. */
  progress?: PublishProgress;
  /** Its place in the order of submission (see mark). */
  readonly seq: number;
  /** A key's delete: the version a later set() of this instance moved its counter to (see supersede). */
  keepAt?: number;
  /** Its bump failed on a slot the Cluster does not serve (see slotUnserved): it holds back its slots (see next). */
  stuck?: boolean;
  /** The slots of its counters, once asked (see slotsOf). */
  slots?: readonly number[];
}

export interface InvalidationQueueOptions {
  readonly versions: TagVersions;
  readonly l2: L2Store;
  readonly bus: InvalidationBus | undefined;
  /** A backlog left by a failure has been delivered in full. */
  readonly onReplayed: (count: number) => void;
}

export interface Delivery {
  readonly delivered: boolean;
  /** Why not, when not delivered. */
  readonly error?: Error;
}

/** The tags an invalidation moves: a key's delete moves its key tag; a clear() moves the epoch instead. */
function tagsOf(op: Invalidation): readonly string[] {
  return op.kind === 'tags' ? op.tags : op.kind === 'key' ? [op.tag] : [];
}

function weight(op: Invalidation): number {
  return op.kind === 'tags' ? op.tags.length : 1;
}

/** How soon close() tries again after a delivery failed. */
const CLOSE_RETRY_MS = 100;

export class InvalidationQueue {
  private items: Item[] = [];
  /** Tags and keys in `items`. */
  private size = 0;
  private draining: Promise<boolean> | undefined;
  /** The last delivery failed (until the queue empties): the bound applies. */
  private failing = false;
  /** Invalidations delivered since the last failure, for onReplayed. */
  private replayed = 0;
  private lastError: Error | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** close() has resolved what is left as undelivered: nothing more may go (see close). */
  private givenUp = false;
  /** L2 came back while a delivery was out (see onL2Up). */
  private cameBack = false;
  /** How many items were ever enqueued (see mark). */
  private enqueued = 0;
  /** How many queued items hold each tag (a key's delete: its key tag), and how many are clear()s (see settle). */
  private readonly holding = new Map<string, number>();
  private clears = 0;
  /** The last failure was a lost slot's (see slotUnserved): items on other slots are still sent while L2 is down. */
  private slotLost = false;
  /** Lost slots' failures since the last delivery: from two, the masters that answer may be gone as well. */
  private lostInARow = 0;
  /** Settles at the next item delivered, or the end of the drain under way (see delivery). */
  private progress: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(private readonly options: InvalidationQueueOptions) {}

  /** Invalidations not delivered yet. */
  get length(): number {
    return this.items.length;
  }

  /** The replay under way, if one is (none while a retry waits): resolves true once the queue is empty, false at a failure. */
  get replaying(): Promise<boolean> | undefined {
    return this.draining;
  }

  /**
   * Resolves once the replay under way delivers one more item or ends
   * (delivered, or failed): when a set() waiting for its tags' invalidations
   * looks again (see covers).
   */
  delivery(): Promise<void> {
    if (this.progress === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.progress = { promise, resolve };
    }
    return this.progress.promise;
  }

  private progressed(): void {
    const progress = this.progress;
    this.progress = undefined;
    progress?.resolve();
  }

  /** Where the order of submission is now: what supersede() is told came after. */
  get mark(): number {
    return this.enqueued;
  }

  /**
   * Whether an invalidation not yet replayed invalidates values with one of
   * `tags` other than by the delete of a single key (a clear(), a tag's, a
   * deleteMany's): a set() of such a value made now would be stored before
   * its replay's bump, and undone by it. (A single key's delete is told which
   * set() came after it: see supersede.)
   */
  covers(tags: readonly string[]): boolean {
    for (const item of this.items) {
      const op = item.op;
      if (op.kind === 'clear') return true;
      if (op.kind === 'tags' && op.tags.some((tag) => tags.includes(tag))) return true;
    }
    return false;
  }

  /**
   * A set() of `key` that this instance began at `mark` was stored in Redis,
   * moving the key's counter to `version`: a delete of the key submitted
   * before it and not yet replayed (Redis was down) must not delete that
   * newer value. Its replay then leaves the entry while the counter still
   * holds `version` (nothing wrote the key since). Not "drop the delete": on
   * a Cluster, or with no clock sample, an older set() whose script was held
   * on the link may land after this one, and the delete is what removes it.
   */
  supersede(key: string, mark: number, version: number): void {
    for (const item of this.items) {
      if (item.seq >= mark) break;
      if (item.op.kind === 'key' && item.op.key === key && item.message === undefined) item.keepAt = version;
    }
  }

  /**
   * Applies `op` locally at once, then delivers it after everything queued
   * before it. Resolves whether it was delivered; if not, it stays queued.
   * `bumped`: its message, when its versions were moved in Redis already (a
   * pull's second step): only the publish is left.
   */
  async submit(op: Invalidation, bumped?: BusMessage): Promise<Delivery> {
    const item = this.enqueue(op, bumped);
    // The last try failed and L2 is still down: L2 coming back replays the queue; trying now would only wait.
    // Unless what failed was a lost slot's (its master gone, the breaker open): an invalidation urgent enough goes
    // through the breaker (see L2Store.run), and the masters that answer take one it does not hold back.
    if (this.failing && this.options.l2.state !== 'ok' && !(this.slotLost && this.lostInARow < 2 && this.free(true) !== undefined)) {
      return { delivered: false, error: this.lastError };
    }
    let answer!: (delivered: boolean) => void;
    const answered = new Promise<boolean>((resolve) => (answer = resolve));
    const ticket: Ticket = { delivered: false, answer };
    item.tickets.push(ticket);
    for (;;) {
      // Answered when its item is delivered or stuck, not only once the drain ends: one that goes on to retry
      // a lost slot's items last waits a command timeout for them.
      const emptied = await Promise.race([this.drain(), answered]);
      if (ticket.delivered) return { delivered: true };
      // Emptied without it: a drain that was just ending; go again.
      if (!emptied) return { delivered: false, error: this.lastError };
    }
  }

  /** Delivers what is queued, in order; resolves true once the queue is empty, false at the first failure. */
  drain(): Promise<boolean> {
    // Stryker disable next-line all: a shortcut; run() of an empty queue resolves true too, and only the retry timer, which ignores the answer, drains an empty one
    if (this.items.length === 0 && this.draining === undefined) return Promise.resolve(true);
    this.draining ??= this.run().finally(() => {
      this.draining = undefined;
      this.progressed();
    });
    return this.draining;
  }

  /**
   * Stops retrying in the background; delivers what is left within `ms`,
   * trying again every CLOSE_RETRY_MS after a failure (a Redis paused or
   * failing over for a moment answers in time). Resolves how many are left
   * undelivered.
   */
  async close(ms: number): Promise<number> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      // Stryker disable next-line ConditionalExpression,EqualityOperator: draining an empty queue resolves at once
      if (this.items.length === 0 || left <= 0) break;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.drain(), new Promise((resolve) => (timer = setTimeout(resolve, left)))]);
      clearTimeout(timer);
      const pause = Math.min(CLOSE_RETRY_MS, deadline - Date.now());
      if (this.items.length > 0 && pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));
    }
    // What is left is reported lost now: a drain still under way (the resends of a moving slot's bump, on a
    // Cluster the caller keeps open) must not deliver it once the move ends, as if it had been told after all.
    this.givenUp = true;
    return this.items.length;
  }

  /** What is still queued, oldest first (for close() to name what it could not deliver). */
  pending(): Invalidation[] {
    return this.items.map((item) => item.op);
  }

  /** Queues `op`; returns the item that holds it now (the clear() it collapsed into, if it did). */
  private enqueue(op: Invalidation, bumped: BusMessage | undefined): Item {
    const versions = this.options.versions;
    if (op.kind === 'clear') versions.markPendingClear();
    else versions.markPending(op.kind === 'tags' ? op.tags : [op.tag]);
    const item: Item = { op, tickets: [], calls: 1, seq: this.enqueued++ };
    if (bumped !== undefined) item.message = bumped;
    this.items.push(item);
    this.hold(op, 1);
    this.size += weight(op);
    // While Redis fails, a clear() covers the whole backlog, and so does one past the bound.
    if (this.failing && (op.kind === 'clear' || this.size > MAX_QUEUED)) this.collapse();
    return this.items[this.items.length - 1]!;
  }

  /** Replaces the backlog with one clear() that carries every caller's ticket. */
  private collapse(): void {
    const tickets = this.items.flatMap((item) => item.tickets);
    const calls = this.items.reduce((sum, item) => sum + item.calls, 0);
    this.items = [{ op: { kind: 'clear' }, tickets, calls, seq: this.items[this.items.length - 1]!.seq }];
    this.holding.clear();
    this.clears = 1;
    this.size = 1;
    this.options.versions.markPendingClear();
  }

  private async run(): Promise<boolean> {
    /** When the head's delivery first met a moving slot (see movingSlot). */
    let redirected: number | undefined;
    /** An item got stuck on a lost slot in this drain, and none was delivered since (see next). */
    let stuckHere = false;
    while (this.items.length > 0) {
      if (this.givenUp) return false;
      const item = this.next(stuckHere);
      if (item === undefined) {
        this.scheduleRetry(RETRY_MS);
        return false;
      }
      this.cameBack = false;
      try {
        await this.deliver(item);
        redirected = undefined;
        stuckHere = false;
        this.lostInARow = 0;
      } catch (err) {
        if (this.movingSlot(err, (redirected ??= performance.now()))) {
          await new Promise((resolve) => setTimeout(resolve, REDIRECTED_RETRY_MS));
          continue;
        }
        const error = err instanceof Error ? err : new Error(String(err));
        this.lastError = error;
        this.failing = true;
        this.slotLost = this.lostSlot(item, error);
        if (this.slotLost) {
          // A retry tells nothing new: that slot was lost already.
          if (item.stuck !== true) this.lostInARow++;
          item.stuck = true;
          stuckHere = true;
          for (const ticket of item.tickets) ticket.answer(false);
          // A clear() queued behind it covers it, as one made now would (see enqueue): none waits behind a stuck
          // item, where every set() would wait for it (see covers) for as long as the master stays lost.
          if (this.clears > 0) this.collapse();
          // The items it does not hold back go on. Unless a second slot was lost since the last delivery: it may
          // be the whole Cluster gone, each try costing up to a command timeout; the probe, not a caller, finds out.
          if (this.lostInARow <= 1) {
            redirected = undefined;
            continue;
          }
        }
        // L2 came back while it was out: its command went with the connection lost before (the client does not
        // send it again), and Redis answers now. Replayed at once, as onL2Up would have, not a retry period later.
        this.scheduleRetry(this.cameBack && this.options.l2.state === 'ok' ? 0 : RETRY_MS);
        return false;
      }
      // A collapse while this one was out replaced it (and kept its tickets in the clear()).
      const i = this.items.indexOf(item);
      if (i !== -1) {
        this.items.splice(i, 1);
        this.size -= weight(item.op);
        this.hold(item.op, -1);
      }
      for (const ticket of item.tickets) {
        ticket.delivered = true;
        ticket.answer(true);
      }
      if (this.failing) this.replayed += item.calls;
      if (this.items.length > 0) {
        this.settle(item.op);
        this.progressed();
      }
    }
    // Every invalidation is in Redis, and its new versions are known here: no marker is needed any more.
    this.options.versions.clearPending();
    if (this.failing) {
      this.failing = false;
      this.slotLost = false;
      this.lostInARow = 0;
      this.options.onReplayed(this.replayed);
      this.replayed = 0;
    }
    return true;
  }

  /**
   * `op` is in Redis: what it alone kept pending is pending no more. A set()
   * of a value with its tags made from now on is stored after it (and
   * stamped with the version it left, not a marker Redis refuses), not after
   * the whole backlog.
   */
  private settle(op: Invalidation): void {
    const tags = tagsOf(op);
    this.options.versions.settlePending(
      tags.filter((tag) => !this.holding.has(tag)),
      op.kind === 'clear' && this.clears === 0,
    );
  }

  /** Counts `op`'s tags (or its clear) as held by one more queued item (`by` 1) or one less (-1). */
  private hold(op: Invalidation, by: 1 | -1): void {
    if (op.kind === 'clear') {
      this.clears += by;
      return;
    }
    for (const tag of tagsOf(op)) {
      const n = (this.holding.get(tag) ?? 0) + by;
      if (n === 0) this.holding.delete(tag);
      else this.holding.set(tag, n);
    }
  }

  /**
   * A bump or publish that spent the Cluster client's redirection budget on a
   * slot moving between masters that answer (L2 stays up: no node is gone)
   * found Redis up, and the caller is owed `delivered: true` as soon as the
   * move lets the command through (a small budget, maxRedirections 1, spends
   * itself on a MOVED and an ASK). Sent again, within one command
   * timeout since `since`, a short pause apart, instead of a retry period later
   * as an outage's failure.
   */
  private movingSlot(err: unknown, since: number): boolean {
    const l2 = this.options.l2;
    return err instanceof Error && redirectionSpent(err) && l2.state === 'ok' && performance.now() - since < l2.commandTimeout;
  }

  /**
   * Whether `item` failed on a slot of its own that the Cluster does not
   * serve while others may answer: its master lost (the client's slot map
   * still names it), or the slot refused. Its bump, not its publish (every
   * item's goes to the bus's one slot); not a clear() (it covers all), and
   * not a command never sent (Redis not connected at all).
   */
  private lostSlot(item: Item, error: Error): boolean {
    if (item.message !== undefined || item.op.kind === 'clear' || error instanceof L2NotSentError) return false;
    return slotUnserved(error) || this.options.l2.servedByLost(this.slotsOf(item));
  }

  /**
   * What to deliver next: the first item that no stuck one holds back (see
   * free), merged; with none, the oldest, a stuck slot's retry, while L2 is
   * up (its probe passed), unless one got stuck in this drain (`stuckHere`):
   * L2 coming back or the retry timer tries again. The items of each slot
   * keep their order, and what every other instance must hear is not held
   * back by a master that is gone.
   */
  private next(stuckHere: boolean): Item | undefined {
    const free = this.free(false);
    if (free !== undefined) return this.head(free.at, free.held);
    return stuckHere || this.options.l2.state !== 'ok' ? undefined : this.head(0, undefined);
  }

  /**
   * The first item no stuck one holds back (`last`: the last item, if none
   * holds it back), and the slots held back before it. An item is held back
   * when stuck, or when it has a counter in a slot of one held back before
   * it: two invalidations of one counter, or of one key, stay in order. (No
   * clear() is queued with a stuck item: it took their place, see
   * collapse.) Without a stuck item: the first.
   */
  private free(last: boolean): { at: number; held: ReadonlySet<number> | undefined } | undefined {
    const items = this.items;
    if (!items.some((item) => item.stuck === true)) return items.length === 0 ? undefined : { at: last ? items.length - 1 : 0, held: undefined };
    const held = new Set<number>();
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (item.stuck === true || this.slotsOf(item).some((slot) => held.has(slot))) {
        for (const slot of this.slotsOf(item)) held.add(slot);
      } else if (!last || i === items.length - 1) {
        return { at: i, held };
      }
    }
    return undefined;
  }

  /** The slots of `item`'s counters (a key's delete: its key's, which its counter shares). */
  private slotsOf(item: Item): readonly number[] {
    const versions = this.options.versions;
    item.slots ??= tagsOf(item.op).map((tag) => keySlot(versions.counterKeyOf(tag)));
    return item.slots;
  }

  /**
   * The item at `at`, merged with the tag invalidations right behind it (one
   * bump, one message for them all) that are not held back: none stuck, none
   * on a slot in `held`.
   */
  private head(at: number, held: ReadonlySet<number> | undefined): Item {
    const first = this.items[at]!;
    if (first.op.kind !== 'tags' || first.message !== undefined) return first;
    let end = at + 1;
    const tags = new Set(first.op.tags);
    for (; end < this.items.length; end++) {
      const next = this.items[end]!;
      if (next.op.kind !== 'tags' || next.message !== undefined || tags.size + next.op.tags.length > MAX_BATCH_TAGS) break;
      if (held !== undefined && (next.stuck === true || this.slotsOf(next).some((slot) => held.has(slot)))) break;
      for (const tag of next.op.tags) tags.add(tag);
    }
    // Stryker disable next-line ConditionalExpression: a merge of one item is that item (its tags deduplicated)
    if (end === at + 1) return first;
    const parts = this.items.slice(at, end);
    const merged: Item = { op: { kind: 'tags', tags: [...tags] }, tickets: parts.flatMap((item) => item.tickets), calls: parts.reduce((sum, item) => sum + item.calls, 0), seq: parts[parts.length - 1]!.seq };
    if (parts.some((item) => item.stuck === true)) merged.stuck = true;
    const removed = this.items.splice(at, end - at, merged);
    for (const item of removed) this.hold(item.op, -1);
    this.hold(merged.op, 1);
    this.size += weight(merged.op) - removed.reduce((sum, item) => sum + weight(item.op), 0);
    return merged;
  }

  /** Bump (once), then publish; throws if Redis cannot take either. */
  private async deliver(item: Item): Promise<void> {
    const { versions, l2, bus } = this.options;
    // Stryker disable next-line ConditionalExpression: bumping again an item whose publish failed only over-invalidates
    if (item.message === undefined) {
      const op = item.op;
      if (op.kind === 'tags') {
        const bumped = await versions.bump(op.tags);
        item.message = { tags: op.tags.map((tag, i) => [tag, bumped[i]!] as const) };
      } else if (op.kind === 'key') {
        // The bump is what makes the entry invalid everywhere; the delete only frees the memory, so it goes first:
        // after the bump it would delete a set() from another instance landing in between, after this invalidation.
        const keepAt = item.keepAt;
        // Taken on Redis's clock as this instance knew it then: after a step of either clock, a value stored before
        // the set() it stands for may look newer than it (or a newer one older). Nothing tells which: a delete.
        const setBefore = op.setBefore !== undefined && l2.clock?.steps === op.steps ? op.setBefore : undefined;
        const newer = setBefore === undefined && keepAt === undefined ? undefined : await this.setSince(op.key, op.tag, setBefore, keepAt);
        if (newer !== undefined) {
          // A set() stored since the one this stands for is newer (this replayed after an outage, say): it stays,
          // and the other instances drop their copies of anything older by its version, as none of theirs is newer.
          versions.raise(op.tag, newer);
          item.message = { tags: [[op.tag, newer]] };
        } else {
          if (setBefore === undefined && keepAt === undefined) {
            // Stryker disable next-line BooleanLiteral: the bump already invalidates the entry everywhere; the delete only frees memory sooner
            await l2.del(op.key, true).catch(() => undefined);
          }
          const [version] = await versions.bump([op.tag]);
          // Stryker disable next-line ArrayDeclaration: the same (the key list lets receivers drop the entry from L1 at once)
          item.message = { tags: [[op.tag, version!]], keys: [op.key] };
        }
      } else {
        item.message = { epoch: await versions.bumpEpoch() };
      }
    }
    item.progress ??= { parts: 0 };
    await bus?.publish(item.message, item.progress);
  }

  /**
   * For the delete of a set() Redis could not take, or one a later set() of
   * this instance stored after (see DROP_UNLESS_SET_SINCE): the version of a
   * set() stored after it, left alone; else undefined, the entry deleted.
   * Throws when Redis fails: the bump waits for its answer (a bump sent
   * anyway would make that newer value invalid).
   */
  private async setSince(key: string, tag: string, deadline: number | undefined, keepAt: number | undefined): Promise<number | undefined> {
    const { l2, versions } = this.options;
    const args = keepAt === undefined ? [String(deadline)] : [deadline === undefined ? '' : String(deadline), String(keepAt)];
    const newer = await l2.run((c) => dropUnlessSetSince.raw(c, [key, versions.counterKeyOf(tag)], args), true);
    return newer === null || newer === undefined ? undefined : counterValue(newer);
  }

  private scheduleRetry(ms: number): void {
    if (this.closed) return;
    if (this.retryTimer !== undefined) {
      if (ms === RETRY_MS) return;
      clearTimeout(this.retryTimer);
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      // While L2 is down, its coming back (onL2Up) is the signal; retrying meanwhile could only fail.
      // Stryker disable next-line ConditionalExpression: a drain while L2 is down fails fast and re-arms this timer
      if (this.options.l2.state === 'ok') void this.drain();
      // Stryker disable next-line ConditionalExpression,EqualityOperator: L2 coming back drains the queue anyway (onL2Up)
      else if (this.items.length > 0) this.scheduleRetry(RETRY_MS);
    }, ms);
    this.retryTimer.unref();
  }

  /** L2 answers again: replay the backlog now. */
  onL2Up(): void {
    // Stryker disable next-line all: draining an empty queue does nothing, and a closed cache's L2 never comes back
    if (this.items.length > 0 && !this.closed) {
      // A delivery out now may fail all the same (see run()): the drain that is out ends with it.
      if (this.draining !== undefined) this.cameBack = true;
      void this.drain();
    }
  }
}
