// Redis killed and restarted under a cache (issue 9, items 2, 3 and 6): the
// logger gets one warn when L2 goes down and one when the bus does, one info
// when each is back (and when the queued invalidations were delivered); the
// 'l2' and 'bus' events say down and up, 'error' says where; stats() shows
// the state of each tier, the queue and the bus counters throughout. Debug
// lines for decisions come only from a logger whose level allows them.
import assert from 'node:assert/strict';
import request from 'supertest';
import type { Logger, TierCache, TierCacheEvents } from '../../../src/index.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { buildApp, adapters } from '../middleware/apps.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A pino-compatible logger that records every call. */
class RecordingLogger implements Logger {
  readonly lines: Array<{ level: string; obj: Record<string, unknown>; msg: string }> = [];
  constructor(readonly level: string) {}
  isLevelEnabled(level: string): boolean {
    const order = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
    return order.indexOf(level) >= order.indexOf(this.level);
  }
  debug(obj: object, msg = ''): void {
    this.lines.push({ level: 'debug', obj: obj as Record<string, unknown>, msg });
  }
  info(obj: object, msg = ''): void {
    this.lines.push({ level: 'info', obj: obj as Record<string, unknown>, msg });
  }
  warn(obj: object, msg = ''): void {
    this.lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg });
  }
  error(obj: object, msg = ''): void {
    this.lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg });
  }
  messages(level: string): string[] {
    return this.lines.filter((l) => l.level === level).map((l) => l.msg);
  }
}

async function until(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function recordStates(cache: TierCache): Array<[string, string, string?]> {
  const seen: Array<[string, string, string?]> = [];
  for (const name of ['l2', 'bus'] as const) cache.on(name, (e: TierCacheEvents['l2']) => seen.push([name, e.state]));
  cache.on('error', (e) => seen.push(['error', e.where, e.err.name]));
  return seen;
}

describe('Redis lost and back: logger, events and stats()', function () {
  this.timeout(60_000);
  const ctx = useRedisCaches({ prefix: 'outage', serverPerTest: true });

  it('warns once when L2 and the bus go down, says when each is back, and stats() follows every step', async () => {
    const logger = new RecordingLogger('info');
    const a = await ctx.open({ logger, l2: { commandTimeout: 100, breakerCooldown: 200 } });
    const b = await ctx.open();
    const seen = recordStates(a);
    await a.set('k', 1);
    assert.equal(await a.get('k'), 1);
    await b.invalidateTags(['from-b']);
    await until('a hears b', () => a.stats().bus.received === 1);
    let stats = a.stats();
    assert.deepEqual(
      { l2: stats.l2, bus: stats.bus, queued: stats.queuedInvalidations, bounds: [stats.l1.maxEntries, stats.l1.maxBytes] },
      { l2: { hits: 0, misses: 0, errors: 0, state: 'ok', breaker: 'closed' }, bus: { state: 'ok', sent: 0, received: 1, gaps: 0 }, queued: 0, bounds: [10_000, 64 * 1024 * 1024] },
    );
    assert.equal(logger.lines.length, 0, 'nothing logged while all is well');

    // A gap in another instance's sequence is counted (and L1 flushed).
    await ctx.admin.publish(`{${ctx.ns}}:bus`, JSON.stringify({ i: 'someone', s: 1, t: [['x', 1]] }));
    await ctx.admin.publish(`{${ctx.ns}}:bus`, JSON.stringify({ i: 'someone', s: 3, t: [['x', 2]] }));
    await until('the gap', () => a.stats().bus.gaps === 1);

    ctx.redis.kill('SIGKILL');
    await ctx.redis.exited();
    await a.get('k'); // a request notices too
    await until('both down', () => a.health().l2 === 'down' && a.health().bus === 'reconnecting');
    const queued = await a.invalidateTags(['while-down']);
    assert.deepEqual(queued, { delivered: false });
    stats = a.stats();
    assert.equal(stats.l2.state, 'down');
    assert.equal(stats.bus.state, 'reconnecting');
    assert.equal(stats.queuedInvalidations, 1);
    assert.ok(stats.l2.errors >= 1);
    const warns = logger.messages('warn');
    assert.equal(warns.filter((m) => /Redis \(L2\) is unreachable/.test(m)).length, 1, warns.join('\n'));
    assert.equal(warns.filter((m) => /invalidation bus is disconnected/.test(m)).length, 1, warns.join('\n'));
    assert.ok(warns.some((m) => /invalidation queued/.test(m)));
    for (const line of logger.lines.filter((l) => l.level === 'warn')) assert.ok(line.obj['err'] instanceof Error && typeof line.obj['where'] === 'string');
    assert.deepEqual(logger.messages('info'), []);

    await ctx.redis.restart();
    await until('both back', () => a.health().l2 === 'ok' && a.health().bus === 'ok' && a.stats().queuedInvalidations === 0);
    await until('the info lines', () => logger.messages('info').length >= 3);
    const infos = logger.messages('info');
    assert.equal(infos.filter((m) => /Redis \(L2\) is reachable again/.test(m)).length, 1, infos.join('\n'));
    assert.equal(infos.filter((m) => /invalidation bus is connected again/.test(m)).length, 1, infos.join('\n'));
    assert.ok(infos.some((m) => /1 invalidation\(s\) queued while Redis was unreachable were delivered/.test(m)), infos.join('\n'));
    stats = a.stats();
    assert.equal(stats.l2.state, 'ok');
    assert.equal(stats.l2.breaker, 'closed');
    assert.ok(stats.bus.sent >= 1, 'the queued invalidation was published');

    const states = seen.filter(([name]) => name !== 'error');
    assert.deepEqual(
      [states.filter(([n]) => n === 'l2').map(([, s]) => s), states.filter(([n]) => n === 'bus').map(([, s]) => s)],
      [['down', 'up'], ['down', 'up']],
    );
    const wheres = new Set(seen.filter(([name]) => name === 'error').map(([, where]) => where));
    assert.ok(wheres.has('l2') && wheres.has('bus') && wheres.has('invalidation'), [...wheres].join(', '));
    assert.equal(logger.messages('debug').length, 0, 'an info-level logger gets no debug lines');
  });

  it("stats() shows the breaker open while Redis does not answer in time, and closed once a probe gets an answer", async () => {
    const a = await ctx.open({ l2: { commandTimeout: 100, breakerCooldown: 300 } });
    a.on('error', () => undefined);
    assert.equal(a.stats().l2.breaker, 'closed');
    ctx.redis.freeze();
    try {
      assert.equal(await a.get('absent'), undefined);
      assert.equal(a.stats().l2.breaker, 'open');
      assert.ok(a.stats().l2.errors >= 1);
    } finally {
      ctx.redis.thaw();
    }
    await until('the breaker closed', () => a.stats().l2.breaker === 'closed');
    assert.equal(a.stats().l2.state, 'ok');
  });

  it('a logger whose level allows debug gets one line per decision (hit, miss, store, bypass, invalidate); one at info gets none and adds no listener', async () => {
    const verbose = new RecordingLogger('debug');
    const quiet = new RecordingLogger('info');
    const a = await ctx.open({ logger: verbose, routes: { '/api': '1m' } });
    const q = await ctx.open({ logger: quiet, routes: { '/api': '1m' } });
    assert.equal(q.listenerCount('hit'), 0, 'nothing listens on the hit path');
    for (const cache of [a, q]) {
      const app = buildApp(adapters[0]!, cache, { appLevel: true, routes: [{ path: '/api/x', handler: (io) => io.send('x') }] });
      await request(app.target).get('/api/x');
      await request(app.target).get('/api/x');
      await request(app.target).get('/api/x').set('Cookie', 'a=1');
      await cache.invalidateTags(['t']);
    }
    assert.deepEqual(
      verbose.lines.filter((l) => l.level === 'debug').map((l) => [l.msg, l.obj['event'], l.obj['route']]),
      [
        ['tiercache: miss', 'miss', '/api'],
        ['tiercache: store', 'store', '/api'],
        ['tiercache: hit', 'hit', '/api'],
        ['tiercache: bypass', 'bypass', '/api'],
        ['tiercache: invalidate', 'invalidate', undefined],
      ],
    );
    assert.deepEqual(quiet.lines, []);
  });
});
