// The invalidation bus: Redis pub/sub on one channel per namespace. Messages
// carry the sender's instance id (own messages are ignored), a per-sender
// sequence number and the new tag versions / epoch / deleted keys. Pub/sub is
// at-most-once, so nothing depends on delivery: local state is trusted only
// while the subscription is live, a gap in a sender's sequence or a
// reconnect flushes L1 and forgets every version learned, and until the
// subscription is back every hit asks Redis.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { L1Store } from './l1-store.js';
import type { L2Store } from './l2-store.js';
import { isCluster, type RedisClient } from './redis-client.js';
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

/**
 * How often the namespace epoch is compared with Redis. A FLUSHALL (or an
 * evicted epoch) sends no message; this is how instances notice it.
 */
export const EPOCH_CHECK_MS = 1_000;

/** Senders whose sequence numbers are tracked; the least recently heard is dropped beyond this. */
const MAX_SENDERS = 1_000;

export class InvalidationBus {
  /** Identifies this instance's messages. */
  readonly instanceId = randomUUID();
  readonly channel: string;
  private readonly subscriber: RedisClient;
  private state: BusState = 'connecting';
  private seq = 0;
  private readonly lastSeq = new Map<string, number>();
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
    this.subscriber = duplicateForSubscribing(options.l2.client);
    this.subscriber.on('ready', this.onReady);
    this.subscriber.on('close', () => this.onLost(undefined));
    this.subscriber.on('end', () => this.onLost(undefined));
    this.subscriber.on('error', (err: Error) => this.onLost(err));
    this.subscriber.on('message', this.onMessage);
    this.epochTimer = setInterval(this.checkEpoch, options.epochCheckInterval ?? EPOCH_CHECK_MS);
    this.epochTimer.unref();
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

  /** Tells every other instance. Throws if Redis cannot take the message. */
  async publish(message: BusMessage): Promise<void> {
    const wire: WireMessage = { i: this.instanceId, s: ++this.seq };
    if (message.tags !== undefined) wire.t = message.tags.map(([t, v]) => [t, v]);
    if (message.epoch !== undefined) wire.e = message.epoch;
    if (message.keys !== undefined) wire.k = [...message.keys];
    const payload = JSON.stringify(wire);
    await this.options.l2.run((c) => c.publish(this.channel, payload), true);
    this.sent++;
  }

  async close(): Promise<void> {
    this.state = 'closed';
    clearInterval(this.epochTimer);
    this.options.versions.trusted = false;
    for (const done of this.readyWaiters.splice(0)) done();
    this.subscriber.removeAllListeners('message');
    try {
      await Promise.race([this.subscriber.quit(), new Promise((r) => setTimeout(r, 500).unref())]);
    } catch {
      // already gone
    }
    this.subscriber.disconnect();
  }

  private readonly onReady = (): void => {
    if (this.state === 'closed') return;
    this.subscriber.subscribe(this.channel).then(
      () => {
        if (this.state === 'closed') return;
        const recovered = this.state === 'reconnecting';
        // Whatever was learned before the subscription was live may be stale.
        this.forget(recovered);
        this.state = 'ok';
        this.options.versions.trusted = true;
        for (const done of this.readyWaiters.splice(0)) done();
        if (this.reportedDown) {
          this.reportedDown = false;
          this.options.onUp();
        }
      },
      (err: Error) => this.options.onError(err, 'could not subscribe to the invalidation channel'),
    );
  };

  /** The subscriber connection dropped (or failed to connect): reported once, until it is live again. */
  private readonly onLost = (err: Error | undefined): void => {
    if (this.state === 'closed') return;
    if (this.state === 'ok') this.state = 'reconnecting';
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
    if (typeof wire !== 'object' || wire === null || typeof wire.i !== 'string' || typeof wire.s !== 'number') return;
    if (wire.i === this.instanceId) return;
    this.received++;
    const last = this.lastSeq.get(wire.i);
    if (last === undefined && this.lastSeq.size >= MAX_SENDERS) {
      // Instances come and go; forget the one heard from longest ago.
      this.lastSeq.delete(this.lastSeq.keys().next().value!);
    }
    this.lastSeq.delete(wire.i);
    this.lastSeq.set(wire.i, wire.s);
    if (last !== undefined && wire.s !== last + 1) {
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
    if (this.state !== 'ok') return;
    const { versions } = this.options;
    const known = versions.knownEpoch;
    versions.serverEpoch().then(
      ({ epoch, previous }) => {
        const moved = previous !== 'same';
        if (moved || (known !== undefined && epoch !== known && versions.knownEpoch === known)) {
          this.forget();
          versions.raiseEpoch(epoch);
          // The others would notice within a check interval; tell them now.
          if (moved) this.publish({ epoch }).catch(() => undefined);
        }
      },
      () => undefined, // counted by L2Store; the bus's own events tell about the connection
    );
  };

  /** A message may have been missed: distrust everything local. */
  private forget(count = true): void {
    if (count) this.flushes++;
    this.options.l1?.clear();
    this.options.versions.reset();
  }
}

/** A second connection for SUBSCRIBE, with the main client's settings but a queue and quick reconnects. */
function duplicateForSubscribing(client: RedisClient): RedisClient {
  const retryStrategy = (times: number) => Math.min(times * 50, 1000);
  if (isCluster(client)) {
    return client.duplicate([], { ...client.options, redisOptions: { ...client.options.redisOptions, enableOfflineQueue: true } });
  }
  return (client as Redis).duplicate({ enableOfflineQueue: true, autoResubscribe: false, retryStrategy, commandTimeout: undefined, lazyConnect: false });
}
