// Slots moving between live masters (CLUSTER SETSLOT IMPORTING/MIGRATING, the
// keys MIGRATEd one by one, SETSLOT NODE on every master) while two instances
// serve (data API, and HTTP through the Express middleware) and invalidate:
// their commands meet ASK, TRYAGAIN (a multi-key script whose keys are split
// between the two masters) and MOVED, all from nodes that answer. That is one
// command's failure at most, never an outage: no breaker opens, nothing
// rejects, and no invalidation is lost on the way (the bus's channel moves
// too, and sharded subscribers are unsubscribed when it does).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import express from 'express';
import Koa from 'koa';
import { Cluster, Redis, type ClusterOptions } from 'ioredis';
import { expressCache } from '../../src/express.js';
import { createCache, type TierCache } from '../../src/index.js';
import { koaCache } from '../../src/koa.js';
import { keySlot } from '../../src/store/hash-slot.js';
import { addEmptyMaster, startRedisCluster, type RedisClusterHandle } from '../support/redis-cluster.js';
import type { RedisServerHandle } from '../support/redis-server.js';

/** How long after an invalidation resolved the other instance may still serve what it invalidated: its message's way, or a lost one's discovery (the next heartbeat, about two epoch checks). */
const OTHER_INSTANCE_GRACE_MS = 3_000;

interface Master {
  readonly port: number;
  readonly id: string;
  readonly admin: Redis;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Moves `slot` from `from` to `to` as redis-cli --cluster reshard does, one key
 * at a time with a pause between: the window in which a command on the slot
 * gets ASK (its key moved) or TRYAGAIN (a script's keys on both sides).
 */
async function moveSlot(slot: number, from: Master, to: Master, masters: readonly Master[], pauseMs: number): Promise<number> {
  await to.admin.cluster('SETSLOT', slot, 'IMPORTING', from.id);
  await from.admin.cluster('SETSLOT', slot, 'MIGRATING', to.id);
  return finishMove(slot, from, to, masters, pauseMs);
}

/**
 * The rest of a move begun with SETSLOT IMPORTING/MIGRATING: the keys still in
 * the slot on `from` (other tests' keys share it: a slot is chosen by a tag's
 * name, whatever its namespace), then SETSLOT NODE, which `from` refuses while
 * it holds any.
 */
async function finishMove(slot: number, from: Master, to: Master, masters: readonly Master[], pauseMs = 0): Promise<number> {
  let moved = 0;
  for (;;) {
    const keys = (await from.admin.cluster('GETKEYSINSLOT', slot, 1)) as string[];
    if (keys.length === 0) break;
    await from.admin.call('MIGRATE', '127.0.0.1', String(to.port), '', '0', '5000', 'REPLACE', 'KEYS', ...keys);
    moved += keys.length;
    await sleep(pauseMs);
  }
  // The new owner first (redis-cli's order), so no node sends a client back and forth.
  await to.admin.cluster('SETSLOT', slot, 'NODE', to.id);
  await from.admin.cluster('SETSLOT', slot, 'NODE', to.id);
  for (const m of masters) if (m !== from && m !== to) await m.admin.cluster('SETSLOT', slot, 'NODE', to.id);
  return moved;
}

/** The error replies the masters sent since their last RESETSTAT, by kind (INFO errorstats): MOVED, ASK, TRYAGAIN... */
async function errorCounts(masters: readonly Master[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const m of masters) {
    for (const [, kind, n] of String(await m.admin.info('errorstats')).matchAll(/^errorstat_(\w+):count=(\d+)/gm)) counts[kind!] = (counts[kind!] ?? 0) + Number(n);
  }
  return counts;
}

/** Which master serves `slot` now (asked of the first master). */
async function ownerOf(slot: number, masters: readonly Master[]): Promise<Master> {
  const ranges = (await masters[0]!.admin.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
  const port = ranges.find(([lo, hi]) => lo <= slot && slot <= hi)![2][1];
  return masters.find((m) => m.port === port)!;
}

/** A data key of `cache` whose slot a master other than its namespace's bus master serves (moving it leaves the bus alone). */
async function keyOffBusMaster(cache: TierCache, ns: string, masters: readonly Master[]): Promise<{ key: string; slot: number; busMaster: Master }> {
  const busMaster = await ownerOf(keySlot(`{${ns}}:epoch`), masters);
  for (let k = 0; ; k++) {
    const slot = keySlot(cache.dataKey(`k${k}`));
    if ((await ownerOf(slot, masters)) !== busMaster) return { key: `k${k}`, slot, busMaster };
  }
}

describe('Redis Cluster: slots resharded between live masters while two instances serve and invalidate', function () {
  this.timeout(60_000);
  let cluster: RedisClusterHandle;
  let masters: Master[] = [];
  const clients: Cluster[] = [];
  const caches: TierCache[] = [];
  const added: Array<Master & { server: RedisServerHandle }> = [];

  /** A master joined to the cluster holding no slot (a scale-out's first step). */
  async function newMaster(): Promise<Master> {
    const server = await addEmptyMaster(cluster);
    const admin = new Redis(server.port, '127.0.0.1');
    const m = { port: server.port, id: String(await admin.cluster('MYID')), admin, server };
    added.push(m);
    return m;
  }

  before(async function () {
    this.timeout(60_000);
    cluster = await startRedisCluster({ masters: 3 });
    masters = await Promise.all(
      cluster.nodes.map(async (n) => {
        const admin = new Redis(n.port, n.host);
        return { port: n.port, id: String(await admin.cluster('MYID')), admin };
      }),
    );
  });
  after(async () => {
    for (const m of [...masters, ...added]) m.admin.disconnect();
    await Promise.all(added.map((m) => m.server.stop()));
    await cluster?.stop();
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    for (const c of clients.splice(0)) c.disconnect();
  });

  function open(namespace: string, options: ClusterOptions = {}): TierCache {
    const client = new Cluster(cluster.nodes, options);
    clients.push(client);
    // A healthy Cluster's bound (the timeout is not what this asks); a long cooldown keeps a wrongly opened breaker in sight.
    const cache = createCache({ namespace, redis: client, l2: { commandTimeout: '3s', breakerCooldown: '30s' } });
    caches.push(cache);
    return cache;
  }

  /** A ready cache on a client with `options`, and the messages of the errors it reports from then on. */
  async function openWatched(namespace: string, options: ClusterOptions): Promise<{ cache: TierCache; errors: string[] }> {
    const cache = open(namespace, options);
    await cache.ready();
    const errors: string[] = [];
    cache.on('error', (e) => errors.push(e.err.message));
    return { cache, errors };
  }

  /**
   * A ready cache on a client with a budget of one redirection, and a tag whose counter's slot (off the bus's master)
   * moved x -> y behind the client's back (its slot map still says x), y then moving it on to z.
   */
  async function tagCounterMovingOn(ns: string): Promise<{ cache: TierCache; errors: string[]; tag: string; slot: number; x: Master; y: Master; z: Master }> {
    const { cache, errors } = await openWatched(ns, { maxRedirections: 1, slotsRefreshInterval: 60_000 });
    const busMaster = await ownerOf(keySlot(`{${ns}}:epoch`), masters);
    let tag = '';
    for (let t = 0; tag === ''; t++) if ((await ownerOf(keySlot(`${ns}:v:{t${t}}`), masters)) !== busMaster) tag = `t${t}`;
    const slot = keySlot(`${ns}:v:{${tag}}`);
    const x = await ownerOf(slot, masters);
    const [y, z] = masters.filter((m) => m !== x) as [Master, Master];
    await moveSlot(slot, x, y, masters, 0);
    await z.admin.cluster('SETSLOT', slot, 'IMPORTING', y.id);
    await y.admin.cluster('SETSLOT', slot, 'MIGRATING', z.id);
    return { cache, errors, tag, slot, x, y, z };
  }

  it('no request fails, no breaker opens and no invalidation is lost while the slots of entries, locks, counters and the bus move', async () => {
    const ns = `rsh${process.pid}`;
    // B gives up after one redirection: its scripts meet a spent budget (last error ASK, TRYAGAIN or MOVED) and must fail safe.
    const a = open(ns);
    const b = open(ns, { maxRedirections: 1 });
    await Promise.all([a.ready(), b.ready()]);
    const instances = [a, b];
    const problems: string[] = [];
    const errors: string[] = [];
    for (const [i, cache] of instances.entries()) {
      cache.on('error', (e) => errors.push(`${'AB'[i]} ${e.where}: ${e.err.message}`));
      cache.on('l2', (e) => e.state === 'down' && problems.push(`${'AB'[i]}: L2 reported down (${e.err?.message})`));
    }

    // Everything on one master: the namespace's slot (epoch, server keys, the bus channel), two tags, and six
    // entries (each slot holds the entry, its fill lock and its key counter).
    const home = await ownerOf(keySlot(`{${ns}}:epoch`), masters);
    const homeOf = async (slot: number) => (await ownerOf(slot, masters)) === home;
    const tags: string[] = [];
    for (let t = 0; tags.length < 2; t++) if (await homeOf(keySlot(`${ns}:v:{t${t}}`))) tags.push(`t${t}`);
    const keys: string[] = [];
    for (let k = 0; keys.length < 6; k++) if (await homeOf(keySlot(a.dataKey(`k${k}`)))) keys.push(`k${k}`);
    // And three routes the middleware caches (its entries, locks and key counters): GET /r/<path> through Express,
    // and three through Koa (GET /k/<path>), whose hits are answered by a path of their own (a deferred hit).
    // Named apart from the data keys (k<n>): the truth and the stale check go by name.
    const urlOf = (path: string) => `/${path.startsWith('koa') ? 'k' : 'r'}/${path}`;
    const httpKey = (path: string) => a.keyFor({ method: 'GET', url: urlOf(path), headers: {} });
    const paths: string[] = [];
    for (let h = 0; paths.length < 3; h++) if (await homeOf(keySlot(httpKey(`h${h}`)))) paths.push(`h${h}`);
    for (let h = 0; paths.length < 6; h++) if (await homeOf(keySlot(httpKey(`koa${h}`)))) paths.push(`koa${h}`);
    const items = [...keys, ...paths];
    const tagOf = (item: string) => tags[items.indexOf(item) % tags.length]!;
    const slots = [...new Set([keySlot(`{${ns}}:epoch`), ...tags.map((t) => keySlot(`${ns}:v:{${t}}`)), ...keys.map((k) => keySlot(a.dataKey(k))), ...paths.map((h) => keySlot(httpKey(h)))])];

    // The truth a loader or handler reads: a number per key or path, moved on before each invalidation of it.
    const truth = new Map(items.map((k) => [k, 0]));
    const servers = await Promise.all(
      instances.map(async (cache) => {
        const app = express();
        app.get('/r/:path', expressCache(cache, { ttl: '30s', tags: (req) => [tagOf(String(req.params['path']))] }), (req, res) => void res.json({ v: truth.get(String(req.params['path'])) }));
        const koa = new Koa();
        const router = new Router();
        router.get('/k/:path', koaCache(cache, { ttl: '30s', tags: (ctx) => [tagOf(String(ctx.params['path']))] }), (ctx) => void (ctx.body = { v: truth.get(String(ctx.params['path'])) }));
        koa.use(router.routes());
        const koaHandler = koa.callback();
        const server = http.createServer((req, res) => (req.url!.startsWith('/k/') ? void koaHandler(req, res) : app(req, res)));
        server.listen(0, '127.0.0.1');
        await once(server, 'listening');
        return server;
      }),
    );
    const base = servers.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    for (const path of [paths[0]!, paths[3]!]) {
      assert.equal((await fetch(`${base[0]}${urlOf(path)}`)).status, 200);
      assert.equal(await clients[0]!.exists(httpKey(path)), 1, `the premise: the route entry of ${urlOf(path)} is stored under the key whose slot moves`);
    }
    interface Read { readonly by: number; readonly key: string; readonly started: number; readonly value: number }
    interface Invalidation { readonly by: number; readonly key: string; readonly value: number; readonly resolved: number }
    const reads: Read[] = [];
    const invalidations: Invalidation[] = [];
    let running = true;
    let queued = 0;
    let koaHits = 0;

    const reader = async (by: number) => {
      for (let n = 0; running; n++) {
        const key = keys[n % keys.length]!;
        const started = performance.now();
        try {
          const value = await instances[by]!.getOrSet(
            key,
            async () => {
              const now = truth.get(key)!;
              await sleep(2);
              return { v: now };
            },
            { tags: [tagOf(key)], ttl: '30s' },
          );
          reads.push({ by, key, started, value: value.v });
        } catch (err) {
          problems.push(`${'AB'[by]}: getOrSet(${key}) rejected: ${(err as Error).message}`);
        }
        await sleep(1);
      }
    };
    const httpReader = async (by: number) => {
      for (let n = 0; running; n++) {
        const path = paths[n % paths.length]!;
        const started = performance.now();
        try {
          const response = await fetch(`${base[by]}${urlOf(path)}`);
          const body = (await response.json()) as { v: number };
          if (response.status !== 200) problems.push(`${'AB'[by]}: GET ${urlOf(path)} answered ${response.status}`);
          else reads.push({ by, key: path, started, value: body.v });
          if (path.startsWith('koa') && /hit/.test(response.headers.get('cache-status') ?? '')) koaHits++;
        } catch (err) {
          problems.push(`${'AB'[by]}: GET ${urlOf(path)} failed: ${(err as Error).message}`);
        }
      }
    };
    const writer = async () => {
      for (let n = 0; running; n++) {
        const by = n % 2;
        const key = items[(n * 5) % items.length]!;
        const value = truth.get(key)! + 1;
        truth.set(key, value);
        try {
          // A route's entry goes with its tag; a data key's with its tag, or delete().
          const result = await (n % 3 === 0 && keys.includes(key) ? instances[by]!.delete(key) : instances[by]!.invalidateTags([tagOf(key)]));
          // B's bump can spend its one redirection (the last error TRYAGAIN, ASK or MOVED): sent again while the move
          // lasts, it is delivered all the same. Neither instance has a reason to queue.
          if (!result.delivered) problems.push(`${'AB'[by]}: an invalidation went undelivered (queued) with Redis up`);
          if (!result.delivered) queued++;
          invalidations.push({ by, key, value, resolved: performance.now() });
        } catch (err) {
          problems.push(`${'AB'[by]}: invalidation of ${key} rejected: ${(err as Error).message}`);
        }
        await sleep(25);
      }
    };
    await Promise.all(masters.map((m) => m.admin.config('RESETSTAT')));
    const traffic = Promise.all([reader(0), reader(0), reader(1), reader(1), httpReader(0), httpReader(1), writer()]);

    // Round trip: home -> second master -> third -> home; each slot moved with the traffic on.
    let moved = 0;
    try {
      const route = [home, ...masters.filter((m) => m !== home), home];
      for (let hop = 0; hop + 1 < route.length; hop++) {
        for (const slot of slots) moved += await moveSlot(slot, route[hop]!, route[hop + 1]!, masters, 10);
        await sleep(200);
      }
      await sleep(500);
    } finally {
      running = false;
      await traffic;
      for (const server of servers) {
        server.closeAllConnections();
        server.close();
      }
    }

    // A read that began after an invalidation resolved may not return what it replaced: at once on the instance that
    // invalidated, and on the other once its message had time to arrive (or its loss to be noticed).
    const stale: string[] = [];
    for (const read of reads) {
      for (const inv of invalidations) {
        if (inv.key !== read.key || read.value >= inv.value) continue;
        const after = read.started - inv.resolved;
        if (after > (inv.by === read.by ? 0 : OTHER_INSTANCE_GRACE_MS)) {
          stale.push(`${'AB'[read.by]} read ${read.key}=${read.value} ${Math.round(after)} ms after ${'AB'[inv.by]}'s invalidation to ${inv.value} resolved`);
          break;
        }
      }
    }
    const redirections = await errorCounts(masters);
    const otherLag = Math.max(0, ...reads.flatMap((r) => invalidations.filter((i) => i.key === r.key && r.value < i.value && i.by !== r.by && r.started > i.resolved).map((i) => r.started - i.resolved)));
    const summary = `${reads.filter((r) => paths.includes(r.key)).length} HTTP answers (${koaHits} Koa hits); ${queued} invalidations queued; redirections answered ${JSON.stringify(redirections)}; longest the other instance served an invalidated value: ${Math.round(otherLag)} ms; bus ${JSON.stringify(instances.map((c) => c.stats().bus))}; ${reads.length} reads, ${invalidations.length} invalidations, ${moved} keys migrated over ${slots.length * 3} slot moves; errors reported: ${errors.length} (${[...new Set(errors.map((e) => e.replace(/\d+/g, 'N')))].join(' | ')})`;
    assert.ok(moved > 0 && invalidations.length > 20 && reads.length > 100 && reads.some((r) => paths.includes(r.key)) && koaHits > 0, `the premise: traffic and keys to move (${summary})`);
    assert.ok((redirections['MOVED'] ?? 0) > 0 && (redirections['ASK'] ?? 0) + (redirections['TRYAGAIN'] ?? 0) > 0, `the premise: commands met the moves (${summary})`);
    assert.deepStrictEqual(problems, [], summary);
    assert.deepStrictEqual(stale.slice(0, 5), [], `${stale.length} stale reads; ${summary}`);
    for (const cache of instances) assert.equal(cache.health().l2, 'ok');
  });

  // h146's rule: a spent budget whose last error is a MOVED to a node the client holds no ready connection to opens
  // the breaker (a cut master: the random node tried after the closed connection sends the client back to it). A
  // client with one redirection whose slot moved twice since it read the map (here: on to a master just added to
  // scale out) ends on a MOVED to the newest owner, which it never had a command for: alive, just never tried.
  it('a budget of one redirection spent on a MOVED to a live master the client never tried leaves L2 up', async () => {
    const ns = `rsm${process.pid}`;
    const { cache, errors } = await openWatched(ns, { maxRedirections: 1 });
    const client = cache.redisClient as Cluster;
    const { key, slot } = await keyOffBusMaster(cache, ns, masters);
    const x = await ownerOf(slot, masters);
    const y = masters.find((m) => m !== x)!;
    const w = await newMaster();
    // x -> y, told to every master; then y -> w, told to y alone so far: x sends the client to y, and y to w.
    await moveSlot(slot, x, y, [...masters, w], 0);
    await w.admin.cluster('SETSLOT', slot, 'IMPORTING', y.id);
    await y.admin.cluster('SETSLOT', slot, 'MIGRATING', w.id);
    await y.admin.cluster('SETSLOT', slot, 'NODE', w.id);
    try {
      assert.ok(!client.nodes('all').some((n) => n.options.port === w.port && n.status === 'ready'), 'the premise: the client never connected to the new master');
      assert.equal(await cache.get(key), undefined);
      assert.match(errors.join(' | '), new RegExp(`MOVED ${slot} 127.0.0.1:${w.port}`), 'the premise: the read spent its redirection on the way to the new master');
      assert.equal(cache.health().l2, 'ok', `L2 went down after a read whose last redirection named a live master (${errors.join(' | ')})`);
    } finally {
      for (const m of [w, x, ...masters.filter((n) => n !== x && n !== y)]) await m.admin.cluster('SETSLOT', slot, 'NODE', w.id);
    }
    // Once the move is done the client follows it: the next command on the slot goes through.
    const failures = errors.length;
    await cache.set(key, 'v');
    assert.deepStrictEqual(errors.slice(failures), []);
    assert.equal(cache.health().l2, 'ok');
  });

  // ioredis learns a slot's new owner from a MOVED it follows; a budget spent before the MOVED is followed teaches it
  // nothing, and a client that follows none (maxRedirections 0) kept sending the slot's commands to its old owner,
  // each one a failure, until its periodic slot refresh (slotsRefreshInterval, 5 s by default).
  it('a client that follows no redirection (maxRedirections 0) learns where a moved slot went at its first MOVED', async () => {
    const ns = `rs0${process.pid}`;
    const { cache, errors } = await openWatched(ns, { maxRedirections: 0, slotsRefreshInterval: 60_000 });
    const { key, slot, busMaster } = await keyOffBusMaster(cache, ns, masters);
    const x = await ownerOf(slot, masters);
    await moveSlot(slot, x, masters.find((m) => m !== x && m !== busMaster)!, masters, 0);
    assert.equal(await cache.get(key), undefined);
    assert.match(errors.join(' | '), new RegExp(`MOVED ${slot} `), 'the premise: the read met the move');
    // One round trip for the slot map.
    await sleep(300);
    const failures = errors.length;
    await cache.set(key, 'v');
    assert.deepStrictEqual(errors.slice(failures), [], 'the set() after the MOVED went to the old owner again');
    assert.equal(cache.health().l2, 'ok');
  });

  // §4: `delivered: false` stands for an invalidation Redis could not take. A bump that spent a budget of one
  // redirection on a slot moving between masters that answer (a MOVED to the new owner, then its ASK onwards) found
  // Redis up: it went into the queue and resolved `{ delivered: false }`, the other instances hearing it only at the
  // replay a retry period (1 s) later.
  it('an invalidation whose bump spends a budget of one redirection on a moving slot is sent again and resolves delivered', async () => {
    const ns = `rsi${process.pid}`;
    const { cache, errors, tag, slot, x, y, z } = await tagCounterMovingOn(ns);
    const invalidated = cache.invalidateTags([tag]);
    // The move ends a moment later, as a resharding's does.
    await sleep(300);
    await finishMove(slot, y, z, [x, y, z]);
    const result = await invalidated;
    assert.match(errors.join(' | '), new RegExp(`Too many Cluster redirections\\. Last error: ReplyError: (ASK|TRYAGAIN)`), 'the premise: the bump spent its redirection on the move');
    assert.deepStrictEqual(result, { delivered: true }, `the invalidation was queued with Redis up (${errors.join(' | ')})`);
    assert.equal(await z.admin.exists(`${ns}:v:{${tag}}`), 1, "the tag's counter was bumped on the slot's new owner");
    assert.equal(cache.health().l2, 'ok');
  });

  // close() names what it could not deliver as lost to the other instances, and the Cluster, the caller's, stays open:
  // were the resends of a moving slot's bump to go on after it (up to a command timeout from the first), a move ending
  // meanwhile would let the closed cache bump and publish what it had just reported as never told. They end with L2
  // (closed, so no longer 'ok').
  it('close() during the resends of a bump on a moving slot: nothing is sent once it has resolved', async () => {
    const ns = `rsc${process.pid}`;
    const { cache, errors, tag, slot, x, y, z } = await tagCounterMovingOn(ns);
    const invalidated = cache.invalidateTags([tag]);
    try {
      await sleep(200);
      assert.match(errors.join(' | '), /Too many Cluster redirections\. Last error: ReplyError: (ASK|TRYAGAIN)/, 'the premise: the bump spent its redirection on the move');
      // Its wait (2 s) ends before the resends' command timeout (3 s) would.
      await cache.close();
      assert.match(errors.join(' | '), new RegExp(`closed with 1 invalidation\\(s\\).*${tag}`), 'the premise: close() reported the invalidation as not delivered');
    } finally {
      await finishMove(slot, y, z, [x, y, z]);
    }
    await sleep(1500);
    assert.equal(await z.admin.exists(`${ns}:v:{${tag}}`), 0, 'the closed cache bumped the tag after close() had reported it lost');
    assert.equal((await invalidated).delivered, false, 'the invalidation close() reported lost was delivered after all');
  });
});
