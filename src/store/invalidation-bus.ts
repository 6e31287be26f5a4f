// The invalidation bus: Redis pub/sub on one channel per namespace. Messages
// carry the sender's instance id (own messages are ignored), a per-sender
// sequence number and the new tag versions / epoch / deleted keys. Pub/sub is
// at-most-once, so nothing depends on delivery: local state is trusted only
// while the subscription is live, a gap in a sender's sequence or a
// reconnect flushes L1 and forgets every version learned, and until the
// subscription is back every hit asks Redis. A message whose PUBLISH failed
// goes out again (the queue replays it) under the number it had, so the
// others see no gap for a message they do get; they take a number heard
// again for that resend (the failed PUBLISH may have reached Redis after all).
//
// On a Redis Cluster whose servers have it (Redis >= 7, Valkey), the bus uses
// sharded pub/sub (SSUBSCRIBE / SPUBLISH): a message goes to the master that
// owns the channel's slot only, where classic PUBLISH is broadcast to every
// node. A Cluster's subscriber moves between nodes by itself, telling only
// that a node went away: then the bus distrusts local state and publishes
// probes to itself until one comes back, proof that the subscription is live
// again (on whichever node), and flushes L1 as after any reconnect. A
// Cluster's subscriber can also end up subscribed nowhere without a word (a
// resubscription that failed during a failover): a heartbeat probe every
// epoch check that does not come back is treated the same way, and while it
// waits the bus subscribes again now and then.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Cluster, Redis } from 'ioredis';
import type { L1Store } from './l1-store.js';
import { L2UnavailableError, withTimeout, type L2Store } from './l2-store.js';
import { keySlot } from './hash-slot.js';
import { DISCONNECT_AT_ONCE, isCluster, keySpace, type RedisClient } from './redis-client.js';
import { leaveUnlessAt, sentinelWait, watchSwitches, type MasterAddress } from './sentinel-master.js';
import type { TagVersions } from './tag-versions.js';

/** What one invalidation tells other instances. */
export interface BusMessage {
  /** Tags and their new versions. */
  readonly tags?: ReadonlyArray<readonly [string, number]>;
  /** New namespace epoch (clear()). */
  readonly epoch?: number;
  /** Store keys deleted. */
  readonly keys?: readonly string[];
}

interface WireMessage {
  i: string;
  s: number;
  /** The sender's key space (see keySpace): a message from another one is not for this instance. Missing from versions before it. */
  d?: string;
  /** A heartbeat (InvalidationBus.sendToSelf): `s` is the sender's last sequence number, nothing else is carried. */
  h?: number;
  t?: Array<[string, number]>;
  e?: number;
  k?: string[];
}

export interface InvalidationBusOptions {
  readonly namespace: string;
  readonly l2: L2Store;
  readonly l1: L1Store | undefined;
  readonly versions: TagVersions;
  /** Called once per failure worth reporting. */
  readonly onError: (err: Error, message: string) => void;
  /** Called once when the subscription is lost (it was live, or never came up). */
  readonly onDown: (err: Error) => void;
  /** Called when the subscription is live again after onDown. */
  readonly onUp: () => void;
  /** How often to compare the epoch with Redis, in ms. @default EPOCH_CHECK_MS */
  readonly epochCheckInterval?: number;
  /** Called after a message from another instance was applied (for events). */
  readonly onMessage?: (message: BusMessage) => void;
}

type BusState = 'connecting' | 'ok' | 'reconnecting' | 'closed';

/** 'sharded': SSUBSCRIBE / SPUBLISH (a Cluster of Redis >= 7); 'classic': SUBSCRIBE / PUBLISH. */
export type PubSubMode = 'sharded' | 'classic';

/** How often a bus that lost track of its Cluster subscriber probes it, and retries choosing its mode. */
const PROBE_MS = 100;
/** While probing, subscribe again every this many probes. */
const RESUBSCRIBE_EVERY = 10;
/**
 * How often a SUBSCRIBE that Redis refused (an ACL without the channel) is
 * sent again on a connection that stays up: nothing else would retry it.
 */
const RESUBSCRIBE_REFUSED_MS = 1_000;

/**
 * How often the namespace epoch is compared with Redis. A FLUSHALL (or an
 * evicted epoch) sends no message; this is how instances notice it.
 */
export const EPOCH_CHECK_MS = 1_000;

/** Most tags and keys one published message carries (see publish). */
export const MESSAGE_ITEMS = 5_000;
/** About the most characters of tags and keys one published message carries (a tag may be up to 64 KiB). */
const MESSAGE_CHARS = 512 * 1024;

/**
 * `message` as the messages publish() sends, in order: itself when it is
 * small enough, else its tags, then its keys, in parts of at most
 * MESSAGE_ITEMS and about MESSAGE_CHARS (the epoch rides in the first).
 */
export function splitMessage(message: BusMessage): BusMessage[] {
  const tags = message.tags ?? [];
  const keys = message.keys ?? [];
  if (tags.length + keys.length <= 1 || (tags.length + keys.length <= MESSAGE_ITEMS && charsOf(tags, keys) <= MESSAGE_CHARS)) return [message];
  const parts: BusMessage[] = [];
  let partTags: Array<readonly [string, number]> = [];
  let partKeys: string[] = [];
  let chars = 0;
  const flush = () => {
    const part: { tags?: typeof partTags; keys?: string[]; epoch?: number } = {};
    if (partTags.length > 0) part.tags = partTags;
    if (partKeys.length > 0) part.keys = partKeys;
    if (parts.length === 0 && message.epoch !== undefined) part.epoch = message.epoch;
    parts.push(part);
    partTags = [];
    partKeys = [];
    chars = 0;
  };
  for (const pair of tags) {
    if (partTags.length > 0 && (partTags.length >= MESSAGE_ITEMS || chars + pair[0].length > MESSAGE_CHARS)) flush();
    partTags.push(pair);
    chars += pair[0].length;
  }
  for (const key of keys) {
    if (partTags.length + partKeys.length > 0 && (partTags.length + partKeys.length >= MESSAGE_ITEMS || chars + key.length > MESSAGE_CHARS)) flush();
    partKeys.push(key);
    chars += key.length;
  }
  flush();
  return parts;
}

function charsOf(tags: ReadonlyArray<readonly [string, number]>, keys: readonly string[]): number {
  let chars = 0;
  for (const [tag] of tags) chars += tag.length;
  for (const key of keys) chars += key.length;
  return chars;
}

/**
 * How far the sending of one message got (publish() may split it): a caller
 * that sends the message again after a failure passes the same object, so
 * the parts that went out are not sent twice, and the part that failed keeps
 * its sequence number.
 */
export interface PublishProgress {
  /** Parts sent so far. */
  parts: number;
}

/** Senders whose sequence numbers are tracked; the least recently heard is dropped beyond this. */
const MAX_SENDERS = 1_000;
/** Longest sender id taken (ours are 36-character UUIDs). */
const MAX_SENDER_ID = 64;

export class InvalidationBus {
  /** Identifies this instance's messages. */
  readonly instanceId = randomUUID();
  readonly channel: string;
  /** Known once chosen: at once on standalone Redis, after asking a server's version on a Cluster. */
  mode: PubSubMode | undefined;
  /** Settles once `mode` is chosen (or the bus closed): what publish() waits for on a Cluster that has not answered yet. */
  private readonly modeChosen: Promise<void>;
  private settleMode!: () => void;
  private subscriber: RedisClient | undefined;
  /** On a Sentinel client: the sentinels' announcements of a new master (see masterSwitched). */
  private switches: { close(): void } | undefined;
  private state: BusState = 'connecting';
  /** Epoch checks in a row that got no answer (see checkEpoch). */
  private failedEpochChecks = 0;
  /** The channel's slot (a Cluster's). */
  private readonly slot: number;
  /**
   * On a Cluster: the nodes that served the channel's slot, in the data
   * client's slot map and in the subscriber's, when the subscription was last
   * found live (see nodeGone).
   */
  private channelNodes: ReadonlySet<string> = new Set();
  /** The probe this bus waits to hear back (see suspect()); 0 when none. */
  private probe = 0;
  private probeTimer: NodeJS.Timeout | undefined;
  /** The next try of a refused SUBSCRIBE. */
  private resubscribeTimer: NodeJS.Timeout | undefined;
  /** The last SUBSCRIBE was refused, and that was reported: its retries are not reported again. */
  private refused = false;
  /** Probes sent while waiting (resubscribing every RESUBSCRIBE_EVERY). */
  private probes = 0;
  /** On a Cluster: the heartbeat probe not heard back yet (0: none), when it left, and the epoch checks that found it out since. */
  private heartbeat = 0;
  private heartbeatSent = 0;
  private heartbeatChecks = 0;
  /** On standalone Redis: the PING on the subscriber's connection not answered yet (see checkSubscriber), and when it left. */
  private pingOut: object | undefined = undefined;
  private pingSent = 0;
  /** Epoch checks in a row that found that PING unanswered. */
  private silentPings = 0;
  /** The subscriber's sockets' bytes read as of the last check (see pingUnanswered, heartbeatOverdue). */
  private bytesHeard = 0;
  /** When an epoch check last got Redis's answer on the data connection. */
  private dataAnswered = 0;
  /** Distrusting L1 until the PING out is answered (Redis answered nobody: see pingUnanswered). */
  private lagging = false;
  /** The subscriber was told to connect anew: no PING on the connection it is closing. */
  private resetting = false;
  private seq = 0;
  /**
   * The last number handed out, while the part that got it could not be sent
   * and will be sent again (its caller passed progress): that resend takes
   * it again, so the others see no gap for a message they do get. Any other
   * message takes the next number, leaving this one a gap: a receiver may
   * have heard it (a PUBLISH that timed out can still reach Redis), and must
   * never take a different message under a number it heard for a resend.
   */
  private unsent: { readonly seq: number; readonly progress: PublishProgress } | undefined;
  private readonly lastSeq = new Map<string, number>();
  /** Where this instance's keys live on its server (keySpace): another app's instances may share the channel. */
  private readonly space: string;
  private readyWaiters: Array<() => void> = [];
  /** onDown was called and onUp not yet. */
  private reportedDown = false;
  private readonly epochTimer: NodeJS.Timeout;
  /** Messages received; for tests and stats. */
  received = 0;
  /** Messages published (for stats). */
  sent = 0;
  /** Gaps seen in another instance's sequence (for stats). */
  gaps = 0;
  /** Times local state was flushed because a message may have been missed. */
  flushes = 0;

  constructor(private readonly options: InvalidationBusOptions) {
    this.channel = `{${options.namespace}}:bus`;
    this.slot = keySlot(this.channel);
    this.space = keySpace(options.l2.client);
    this.modeChosen = new Promise((resolve) => (this.settleMode = resolve));
    const client = options.l2.client;
    if (isCluster(client)) {
      void this.chooseMode(client);
      // A node of the data client's view went away (a failover): messages through it may be lost too.
      client.on('-node', this.nodeGone);
      client.on('refresh', this.routesRead);
    } else this.attach('classic');
    this.epochTimer = setInterval(this.checkEpoch, options.epochCheckInterval ?? EPOCH_CHECK_MS);
    this.epochTimer.unref();
  }

  /** Sharded pub/sub when the Cluster's servers have it (Redis >= 7), classic otherwise. */
  private async chooseMode(client: Cluster): Promise<void> {
    while (this.state !== 'closed') {
      try {
        if (await this.options.l2.waitReady(PROBE_MS * 10)) {
          const info = await withTimeout(client.info('server'), PROBE_MS * 10);
          if ((this.state as BusState) !== 'closed') this.attach(pubSubModeFor(info));
          return;
        }
      } catch {
        // not answered yet: ask again
      }
      await new Promise((resolve) => setTimeout(resolve, PROBE_MS * 5).unref());
    }
  }

  private attach(mode: PubSubMode): void {
    this.mode = mode;
    this.settleMode();
    const subscriber = duplicateForSubscribing(this.options.l2.client, mode === 'sharded', sentinelWait(this.options.l2.commandTimeout));
    this.subscriber = subscriber;
    subscriber.on('ready', this.onReady);
    subscriber.on('close', () => this.onLost(undefined));
    subscriber.on('end', () => this.onLost(undefined));
    subscriber.on('error', (err: Error) => this.onLost(err));
    subscriber.on(mode === 'sharded' ? 'smessage' : 'message', this.onMessage);
    this.switches = watchSwitches(this.options.l2.client, this.masterSwitched);
    if (isCluster(subscriber)) {
      subscriber.on('-node', this.nodeGone);
      subscriber.on('-subscriber', this.suspect);
    }
  }

  get health(): 'ok' | 'reconnecting' {
    return this.state === 'ok' ? 'ok' : 'reconnecting';
  }

  /** Resolves once subscribed (or after `timeout` ms, whichever is first). */
  waitSubscribed(timeout: number): Promise<void> {
    if (this.state === 'ok' || this.state === 'closed') return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeout);
      const waiters = this.readyWaiters;
      function done() {
        clearTimeout(timer);
        const i = waiters.indexOf(done);
        if (i !== -1) waiters.splice(i, 1);
        resolve();
      }
      waiters.push(done);
    });
  }

  /**
   * Tells every other instance. Throws if Redis cannot take the message. A
   * large one (a bulk invalidation) goes out as several, in order, each at
   * most MESSAGE_ITEMS tags and keys and about MESSAGE_CHARS long: one
   * command each, none past L2's timeout or a subscriber's output buffer.
   * `progress`: the caller sends the same message again, with the same
   * object, after a failure (see PublishProgress); without it a failed number
   * stays used, a gap the others notice.
   */
  async publish(message: BusMessage, progress?: PublishProgress): Promise<void> {
    // Before a Cluster has told its version, the message would go out as a classic PUBLISH, which
    // instances subscribed with SSUBSCRIBE never hear: wait for the choice, as a command waits for
    // the first connection, and fail past that (the invalidation stays queued and is replayed).
    if (this.mode === undefined) await this.waitMode();
    const parts = splitMessage(message);
    for (let n = progress?.parts ?? 0; n < parts.length; n++) {
      const part = parts[n]!;
      const s = this.numberFor(progress);
      const wire: WireMessage = { i: this.instanceId, s, d: this.space };
      if (part.tags !== undefined) wire.t = part.tags.map(([t, v]) => [t, v]);
      if (part.epoch !== undefined) wire.e = part.epoch;
      if (part.keys !== undefined) wire.k = [...part.keys];
      const payload = JSON.stringify(wire);
      try {
        this.heardBy(await this.options.l2.run((c) => this.send(c, payload), true));
      } catch (err) {
        // Kept for the resend only while no later number was handed out: that one may be out already.
        if (progress !== undefined && this.seq === s) this.unsent = { seq: s, progress };
        throw err;
      }
      if (progress !== undefined) progress.parts = n + 1;
      this.sent++;
    }
  }

  /** The number for the next part of the message `progress` follows (see unsent). */
  private numberFor(progress: PublishProgress | undefined): number {
    const unsent = this.unsent;
    this.unsent = undefined;
    if (unsent !== undefined && unsent.progress === progress) return unsent.seq;
    return ++this.seq;
  }

  /** Resolves once the pub/sub mode is chosen; throws if it is not within one command timeout. */
  private async waitMode(): Promise<void> {
    await withTimeout(this.modeChosen, this.options.l2.commandTimeout).catch(() => undefined);
    if (this.mode === undefined) throw new L2UnavailableError('the invalidation bus has not chosen between sharded and classic pub/sub yet: no Cluster node answered INFO');
  }

  private send(client: RedisClient, payload: string): Promise<unknown> {
    return this.mode === 'sharded' ? client.spublish(this.channel, payload) : client.publish(this.channel, payload);
  }

  /** `within`: how long QUIT may take before the connection is dropped (close() has a budget of its own). */
  async close(within = 500): Promise<void> {
    this.state = 'closed';
    this.settleMode();
    clearInterval(this.epochTimer);
    clearTimeout(this.probeTimer);
    clearTimeout(this.resubscribeTimer);
    this.switches?.close();
    this.options.l2.client.off('-node', this.nodeGone);
    this.options.l2.client.off('refresh', this.routesRead);
    this.options.versions.trusted = false;
    for (const done of this.readyWaiters.splice(0)) done();
    const subscriber = this.subscriber;
    if (subscriber === undefined) return;
    subscriber.removeAllListeners('message');
    subscriber.removeAllListeners('smessage');
    try {
      await Promise.race([subscriber.quit(), new Promise((r) => setTimeout(r, within).unref())]);
    } catch {
      // already gone
    }
    subscriber.disconnect();
  }

  private readonly onReady = (): void => {
    const subscriber = this.subscriber;
    if (this.state === 'closed' || subscriber === undefined) return;
    clearTimeout(this.resubscribeTimer);
    (this.mode === 'sharded' ? subscriber.ssubscribe(this.channel) : subscriber.subscribe(this.channel)).then(
      () => {
        this.refused = false;
        this.live();
      },
      (err: Error) => {
        if (!this.refused) this.options.onError(err, 'could not subscribe to the invalidation channel');
        this.refused = true;
        // A connection that drops instead is subscribed again on its next 'ready'.
        if (this.state === 'closed' || subscriber.status !== 'ready') return;
        clearTimeout(this.resubscribeTimer);
        this.resubscribeTimer = setTimeout(this.onReady, RESUBSCRIBE_REFUSED_MS);
        this.resubscribeTimer.unref();
      },
    );
  };

  /** The subscription is live (again). */
  private live(): void {
    if (this.state === 'closed') return;
    const recovered = this.state === 'reconnecting';
    // Whatever was learned before the subscription was live may be stale.
    this.forget(recovered);
    this.state = 'ok';
    this.channelNodes = new Set(this.channelOwners());
    this.probe = 0;
    this.probes = 0;
    this.heartbeat = 0;
    clearTimeout(this.probeTimer);
    this.options.versions.trusted = true;
    for (const done of this.readyWaiters.splice(0)) done();
    if (this.reportedDown) {
      this.reportedDown = false;
      this.options.onUp();
    }
  }

  /**
   * A Cluster node went away (a failover, say): the subscription may have
   * moved, or be moving, and messages may be lost meanwhile. Nothing local is
   * trusted until a probe published now comes back through the subscription.
   */
  /**
   * Publishes a heartbeat: a nonce this instance waits to hear back (its
   * subscription works), and its last sequence number, which tells the
   * others whether they missed a message of its since (a failover can lose
   * the last ones without any later message to show the gap). Returns the nonce.
   */
  private sendToSelf(): number {
    const nonce = Math.floor(Math.random() * 2 ** 31) + 1;
    // Not while L2 is down: they would only pile up in the client's queue (the next one goes once it is back).
    // A number kept for a resend is not missed yet: it comes again.
    const seq = this.unsent === undefined ? this.seq : this.seq - 1;
    if (this.options.l2.state === 'ok') this.send(this.options.l2.client, JSON.stringify({ i: this.instanceId, s: seq, h: nonce })).then(this.heardBy, () => undefined);
    return nonce;
  }

  /** One of this instance's heartbeats came back: the subscription works. */
  private onProbe(nonce: number): void {
    if (nonce === this.heartbeat) this.heartbeat = 0;
    if (nonce === this.probe) this.live();
  }

  /** Another instance's heartbeat: a message of its after the last one heard here was lost. */
  private onHeartbeat(sender: string, seq: number): void {
    const last = this.lastSeq.get(sender);
    if (last !== undefined && seq > last) {
      this.lastSeq.set(sender, seq);
      this.gaps++;
      this.forget();
    }
  }

  private readonly suspect = (): void => {
    if (this.state === 'closed' || this.state === 'connecting' || this.subscriber === undefined) return;
    this.state = 'reconnecting';
    this.options.versions.trusted = false;
    if (this.probe === 0) this.sendProbe();
  };

  /**
   * A Cluster client dropped a node's connection ('-node'). Sharded messages
   * travel only from the channel's master to its subscribers, so another
   * node's loss costs this subscription nothing, and a flush then only empties
   * L1: one that a client re-adds and drops again (cut off a master, its
   * commands failing; each failure makes ioredis add the node again) flushed
   * L1 every 100 ms or so for as long as the cut lasted. Suspected: the node
   * that served the channel when the subscription was last found live (after
   * a failover the map may already name its successor), one serving it now,
   * any node once the channel's slot moved since (its new master may not
   * have this subscription yet), and any node that cannot be told apart.
   * Classic messages cross the cluster bus from any node: always suspected.
   */
  private readonly nodeGone = (node?: { options?: { host?: string; port?: number } }, key?: string): void => {
    if (this.mode === 'sharded' && !this.servesChannel(key ?? nodeKey(node))) return;
    this.suspect();
  };

  /**
   * The data client read the slot map anew (L2Store asks after a timeout).
   * A channel slot whose master is not the one the subscription was last
   * found live on means the others publish elsewhere now, and the
   * subscriber may not know: a master that stalled (a paused or hung one)
   * closes nothing, so no '-node' comes, and only the heartbeat would notice,
   * two epoch checks later, with the instance serving from L1 what another
   * invalidated meanwhile. Messages are being missed: L1 is flushed now, and
   * trusted again once a probe comes back through the subscription. Once per
   * move of the channel: live() records the new master.
   */
  private readonly routesRead = (): void => {
    const owner = this.ownerIn(this.options.l2.client);
    if (owner !== undefined && !this.channelNodes.has(owner)) this.channelElsewhere();
  };

  /**
   * What SPUBLISH answered: how many subscribers of the channel's master
   * took the message. This instance is one of them whenever its subscription
   * is where the channel is, so none means it is elsewhere (the channel's
   * master was just replaced, and the subscriber still waits on the old one):
   * the messages of the others, published where the channel is now, are
   * being missed. Distrusted as a moved channel is (see routesRead), once:
   * the probe that brings trust back comes through the subscription, where
   * this client publishes. Classic PUBLISH on a Cluster counts only the
   * receiving node's subscribers, which need not include this one.
   */
  private readonly heardBy = (receivers: unknown): void => {
    // A client made with stringNumbers answers '0'.
    if (Number(receivers) === 0) this.channelElsewhere();
  };

  /**
   * Sharded and trusting L1, this instance's subscription is not where the
   * channel is (see routesRead, heardBy): L1 is flushed now, and trusted
   * again once a probe comes back through the subscription.
   */
  private channelElsewhere(): void {
    if (this.mode !== 'sharded' || this.state !== 'ok') return;
    this.forget();
    this.suspect();
  }

  private servesChannel(gone: string | undefined): boolean {
    const known = this.channelNodes;
    if (gone === undefined || known.size === 0 || known.has(gone)) return true;
    return this.channelOwners().some((owner) => !known.has(owner));
  }

  /** The channel slot's master in the data client's slot map and in the subscriber's (what each knows of). */
  private channelOwners(): string[] {
    const owners: string[] = [];
    for (const client of [this.options.l2.client, this.subscriber]) {
      const owner = this.ownerIn(client);
      if (owner !== undefined) owners.push(owner);
    }
    return owners;
  }

  /** The channel slot's master in `client`'s slot map (a Cluster's), if it knows one. */
  private ownerIn(client: RedisClient | undefined): string | undefined {
    return client !== undefined && isCluster(client) ? client.slots[this.slot]?.[0] : undefined;
  }

  private sendProbe(): void {
    if (this.state !== 'reconnecting') return;
    this.probe = this.sendToSelf();
    if (++this.probes % RESUBSCRIBE_EVERY === 0) this.resubscribe();
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => this.sendProbe(), PROBE_MS);
    this.probeTimer.unref();
  }

  /**
   * Subscribes again. A Cluster's subscriber is first told the slot map
   * anew: a master that stalled without closing its connections (a paused
   * or hung one) sends no MOVED and no reset, so after its replica took
   * over the subscriber would still subscribe on the stalled node, hearing
   * nothing for as long as it stays stalled.
   */
  private resubscribe(): void {
    const subscriber = this.subscriber;
    if (subscriber !== undefined && isCluster(subscriber)) subscriber.refreshSlotsCache(() => this.onReady());
    else this.onReady();
  }

  /**
   * The sentinels switched masters (see watchSwitches). One they switch from
   * while it lives (SENTINEL FAILOVER, or a master they cannot reach but the
   * instances can) closes no connection until they next look at it (up to
   * 10 s; never, if they cannot): it still takes writes and publishes, heard
   * by no instance that reached the new master meanwhile (started, or
   * reconnected), and it hears none of theirs. Both connections go there
   * now; the subscriber's reconnect flushes L1, as any does.
   */
  private readonly masterSwitched = (master: MasterAddress): void => {
    if (this.state === 'closed') return;
    this.options.l2.follow(master);
    if (this.subscriber !== undefined) leaveUnlessAt(this.subscriber, master);
  };

  /** The subscriber connection dropped (or failed to connect): reported once, until it is live again. */
  private readonly onLost = (err: Error | undefined): void => {
    if (this.state === 'closed') return;
    if (this.state === 'ok') this.state = 'reconnecting';
    // A PING out on that connection is answered by no one now; the next connection is checked afresh.
    this.pingOut = undefined;
    this.silentPings = 0;
    this.lagging = false;
    this.resetting = false;
    this.options.versions.trusted = false;
    if (this.reportedDown || (this.state === 'connecting' && err === undefined)) return;
    if (this.state === 'connecting') this.state = 'reconnecting';
    this.reportedDown = true;
    this.options.onDown(err ?? new Error('the invalidation bus lost its Redis connection'));
  };

  private readonly onMessage = (channel: string, payload: string): void => {
    if (channel !== this.channel) return;
    let wire: WireMessage;
    try {
      wire = JSON.parse(payload) as WireMessage;
    } catch {
      return;
    }
    // Sender ids are UUIDs: a longer one is no instance's, and would be kept (lastSeq) at any size.
    if (typeof wire !== 'object' || wire === null || typeof wire.i !== 'string' || wire.i.length > MAX_SENDER_ID) return;
    // Another app's, sharing the namespace on this server in another database or under another keyPrefix: its
    // epoch, learned here, was below this one's in Redis, which then moved past it and told that app, and so on.
    if (typeof wire.d === 'string' && wire.d !== this.space) return;
    if (wire.i === this.instanceId) {
      if (typeof wire.h === 'number') this.onProbe(wire.h);
      return;
    }
    if (typeof wire.s !== 'number') return;
    if (typeof wire.h === 'number') return this.onHeartbeat(wire.i, wire.s);
    this.received++;
    const last = this.lastSeq.get(wire.i);
    if (last === undefined && this.lastSeq.size >= MAX_SENDERS) {
      // Instances come and go; forget the one heard from longest ago.
      this.lastSeq.delete(this.lastSeq.keys().next().value!);
    }
    this.lastSeq.delete(wire.i);
    this.lastSeq.set(wire.i, wire.s);
    // The same number again is a resend (a PUBLISH that timed out may have reached Redis all the same):
    // a sender never gives one number to two messages, and applying one twice is harmless.
    if (last !== undefined && wire.s !== last + 1 && wire.s !== last) {
      this.gaps++;
      this.forget();
    }
    const { versions, l1 } = this.options;
    if (Array.isArray(wire.t)) for (const pair of wire.t) if (Array.isArray(pair) && typeof pair[0] === 'string' && typeof pair[1] === 'number') versions.raise(pair[0], pair[1]);
    if (typeof wire.e === 'number') {
      versions.raiseEpoch(wire.e);
      l1?.clear();
    }
    if (Array.isArray(wire.k)) for (const key of wire.k) if (typeof key === 'string') l1?.delete(key);
    this.options.onMessage?.({ tags: wire.t, epoch: wire.e, keys: wire.k });
  };

  /**
   * Redis lost or moved the epoch without a message (FLUSHALL, eviction), or
   * another Redis process serves the namespace now (restart from a snapshot,
   * failover; the check moves the epoch then): start over. Also catches what
   * L2's own check on reconnecting cannot see, a Cluster failover.
   */
  private readonly checkEpoch = (): void => {
    // While lagging the checks go on: Redis answering again on the data connection, and still not on the subscriber's, tells a lost connection.
    if (this.state !== 'ok' && !this.lagging) return;
    if (this.heartbeat !== 0 && this.heartbeatOverdue()) {
      this.suspect();
      return;
    }
    if (isCluster(this.options.l2.client)) {
      if (this.heartbeat === 0) {
        this.heartbeat = this.sendToSelf();
        this.heartbeatSent = performance.now();
        this.heartbeatChecks = 0;
        this.bytesHeard = bytesRead(this.subscriber);
      }
    } else this.checkSubscriber();
    const { versions } = this.options;
    const known = versions.knownEpoch;
    versions.serverEpoch().then(
      ({ epoch, previous }) => {
        this.failedEpochChecks = 0;
        this.dataAnswered = performance.now();
        const moved = previous !== 'same';
        if (moved || (known !== undefined && epoch !== known && versions.knownEpoch === known)) {
          this.forget();
          versions.raiseEpoch(epoch);
          // The others would notice within a check interval; tell them now.
          if (moved) this.publish({ epoch }).catch(() => undefined);
        }
      },
      // Redis did not answer (counted by L2Store) twice running: a route to it that drops packets silently
      // drops this instance's messages too, with no error on the subscriber to tell. Nothing local is trusted
      // until a probe comes back through the subscription. (Once may be a slow command: suspecting flushes L1.)
      // A check the breaker skipped (opened by the last timeout) asked nothing: it counts neither way; the
      // breaker's own probe, and the PING or heartbeat on the subscription, tell a lost route from a slow moment.
      (err: unknown) => {
        if (err instanceof L2UnavailableError) return;
        if (++this.failedEpochChecks >= 2) this.suspect();
      },
    );
  };

  /**
   * On a Cluster, whether the heartbeat out makes the subscription suspect.
   * Overdue at the second check that finds it out, not the first: a check
   * runs before the loop reads its sockets, so the first one after a blocked
   * loop has not yet seen a heartbeat that came back. And not before one and
   * a half intervals passed (checks run back to back too). Two would be a
   * coin toss: the timer counts from the check's start, the stamp is taken
   * after the send, and the second check often found a hair under two
   * intervals, leaving the verdict to a third (a silent route trusted up to
   * four seconds rather than three). It comes back behind every message
   * published before it, so a subscription that delivered bytes since the
   * last check is alive, however late (a backlog of large messages this
   * process is slow to get through): the verdict waits for a check interval
   * in which it delivered nothing.
   */
  private heartbeatOverdue(): boolean {
    const heard = bytesRead(this.subscriber);
    const delivering = heard !== this.bytesHeard;
    this.bytesHeard = heard;
    return ++this.heartbeatChecks >= 2 && !delivering && performance.now() - this.heartbeatSent > 1.5 * (this.options.epochCheckInterval ?? EPOCH_CHECK_MS);
  }

  /**
   * Standalone Redis: a PING on the subscriber's own connection, which its
   * messages share. A connection that went dead without a reset (a NAT or
   * firewall that forgot an idle subscriber: TCP keepalive notices after
   * minutes) loses every message with no error to tell, while commands on
   * the data connection still get through. A PING found unanswered at two
   * checks in a row (about two seconds; once may be a slow moment) distrusts
   * L1 (see pingUnanswered). One PING a second on this instance's own
   * connection, where a heartbeat through the channel would reach every instance.
   */
  private checkSubscriber(): void {
    const subscriber = this.subscriber as Redis | undefined;
    if (subscriber === undefined || subscriber.status !== 'ready' || this.resetting) return;
    if (this.pingOut !== undefined) return this.pingUnanswered(subscriber);
    const ping = {};
    this.pingOut = ping;
    this.pingSent = performance.now();
    this.bytesHeard = bytesRead(subscriber);
    // An error reply is an answer too (the connection carries bytes); a closed connection is onLost's.
    const answered = () => {
      if (this.pingOut !== ping) return;
      this.pingOut = undefined;
      this.silentPings = 0;
      // The answer came after every message published before the PING: what was learned holds
      // (unless the bus was closed meanwhile).
      if (this.lagging) {
        this.lagging = false;
        if (this.state !== 'reconnecting') return;
        this.state = 'ok';
        this.options.versions.trusted = true;
      }
    };
    subscriber.ping().then(answered, answered);
  }

  /**
   * Nothing local is trusted until the subscription is heard again. If Redis
   * answered the data connection since the PING left, this connection alone
   * is silent (gone): it is made anew, and once subscribed again L1 is
   * flushed, as after any reconnect. If Redis answered nobody (busy with a
   * long script, or the whole route gone), the PING's answer, when it comes,
   * follows every message sent before it: trust comes back then, nothing
   * flushed, no reconnect to add to a busy server's load.
   */
  private pingUnanswered(subscriber: Redis): void {
    // The answer comes after every message sent before the PING: a connection that delivered bytes since the
    // last check is alive, however late the answer (a backlog this process is slow to get through, starved
    // of CPU or busy with its own work). The verdict waits for a check interval in which it delivered nothing.
    const heard = bytesRead(subscriber);
    const delivering = heard !== this.bytesHeard;
    this.bytesHeard = heard;
    if (++this.silentPings < 2 || delivering) return;
    this.silentPings = 0;
    this.state = 'reconnecting';
    this.options.versions.trusted = false;
    if (this.dataAnswered > this.pingSent) {
      this.pingOut = undefined;
      this.resetting = true;
      subscriber.disconnect(true);
    } else this.lagging = true;
  }

  /** A message may have been missed: distrust everything local. */
  private forget(count = true): void {
    if (count) this.flushes++;
    this.options.l1?.clear();
    this.options.versions.reset();
  }
}

/**
 * Bytes read so far from the kernel on the subscriber's connections (0 when
 * it has none): a Cluster's are its subscriber's, classic, and one per master
 * its sharded subscriptions are on (ioredis 6 internals; 0 where they differ,
 * and silence then is judged by time alone, as before).
 */
function bytesRead(client: RedisClient | undefined): number {
  if (client === undefined || !isCluster(client)) return streamBytes(client);
  const internals = client as unknown as {
    subscriber?: { getInstance?(): Redis | null };
    shardedSubscribers?: { shardedSubscribers?: Map<string, { getInstance?(): Redis | null }> };
  };
  let bytes = streamBytes(internals.subscriber?.getInstance?.() ?? undefined);
  const sharded = internals.shardedSubscribers?.shardedSubscribers;
  if (sharded instanceof Map) for (const subscriber of sharded.values()) bytes += streamBytes(subscriber.getInstance?.() ?? undefined);
  return bytes;
}

function streamBytes(client: RedisClient | null | undefined): number {
  return (client as { stream?: { bytesRead?: number } } | null | undefined)?.stream?.bytesRead ?? 0;
}

/** How ioredis names a Cluster node (host:port, as its slot map does). */
function nodeKey(node: { options?: { host?: string; port?: number } } | undefined): string | undefined {
  const options = node?.options;
  return options?.host === undefined || options.port === undefined ? undefined : `${options.host}:${options.port}`;
}

/** The pub/sub a Cluster whose servers answer INFO with `info` supports: sharded from Redis 7 (Valkey says 7.2 there too). */
export function pubSubModeFor(info: string): PubSubMode {
  return Number(/^redis_version:(\d+)/m.exec(info)?.[1] ?? 0) >= 7 ? 'sharded' : 'classic';
}

/**
 * A second connection for SUBSCRIBE, with the main client's settings but a queue and quick reconnects.
 * `sentinelWait`: how long a sentinel is given to name the master, unless the client says (sentinelCommandTimeout).
 */
function duplicateForSubscribing(client: RedisClient, sharded: boolean, sentinelWait: number): RedisClient {
  const retryStrategy = (times: number) => Math.min(times * 50, 1000);
  if (isCluster(client)) {
    // Without stringNumbers, which ioredis also applies to CLUSTER SLOTS: its ranges then compare as strings
    // ('5461' <= '10922' is false), a third of the slots maps to no node, and the sharded subscriber's lookup
    // of one threw out of 'ready', uncaught. The subscriber reads no numbers.
    return client.duplicate([], { ...client.options, shardedSubscribers: sharded, redisOptions: { ...client.options.redisOptions, enableOfflineQueue: true, stringNumbers: false, disconnectTimeout: DISCONNECT_AT_ONCE } });
  }
  // No command timeout here: a command a cut left unanswered is answered only by being sent again (the client
  // tiercache opens does not send again: see openRedis). Without a sentinelCommandTimeout (ioredis has no
  // default) a Sentinel client waits for a sentinel's answer for ever: one that hangs (it accepts connections)
  // kept the channel off the master however many others answered, and its connection open past close().
  const sentinelCommandTimeout = (client as Redis).options.sentinelCommandTimeout ?? sentinelWait;
  return (client as Redis).duplicate({ enableOfflineQueue: true, autoResubscribe: false, autoResendUnfulfilledCommands: true, retryStrategy, commandTimeout: undefined, sentinelCommandTimeout, lazyConnect: false, disconnectTimeout: DISCONNECT_AT_ONCE });
}
