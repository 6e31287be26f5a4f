// A request waiting on another instance's fill polls for the entry and, every
// fifth look, asks whether the fill's lock is still held. The fill stores its
// entry and releases its lock in one script; when that landed between a look
// and the lock check, the waiter saw no entry and no lock and ran the handler
// itself, though the fill had finished within the lock's lifetime (DESIGN §3:
// such a handler runs once across all instances). Redis behind a slow link
// for the waiter places the store in that gap every time.
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { expressCache } from '../../src/express.js';
import type { TierCache } from '../../src/index.js';
import { useRedisCaches } from '../support/cache-context.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const LINK_MS = 150;

describe('fill lock: a waiter whose lock check comes just after the fill stored', () => {
  const ctx = useRedisCaches({ prefix: 'lock-wait-release', flush: true });
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });
  /**
   * x fills /plain (its lock taken), its handler held; y, behind the slow link, finds the lock x's and waits,
   * looking for the entry in L2. x's handler is let go LINK_MS * 1.5 after y's fifth look reached the proxy:
   * that look reaches Redis LINK_MS after the proxy has it, and its lock check LINK_MS * 3 after, so x's store
   * (direct, at once) lands between the two.
   */
  async function xStoresBetweenLookAndLockCheck() {
    proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', LINK_MS);
    const options = { l2: { commandTimeout: 5_000, lockTimeout: 3_000 }, ttl: '1m' } as const;
    const x = await ctx.open(options);
    const y = await ctx.open({ ...options, redis: proxy.url });
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const app = (cache: TierCache, held: boolean) => {
      const a = express();
      a.use(expressCache(cache));
      a.get('/plain', async (_req, res) => {
        const run = ++runs;
        if (held) await gate;
        res.send(`run ${run}`);
      });
      return a;
    };
    const fromX = request(app(x, true)).get('/plain').then((r) => r);
    while (runs === 0) await sleep(5);
    const looks = proxy.watch(['*2\r\n$3\r\nget\r\n']);
    const fromY = request(app(y, false)).get('/plain').then((r) => r);
    while (looks() < 5) await sleep(2);
    await sleep(LINK_MS * 1.5);
    release();
    return { x, fromX, fromY, looks, runs: () => runs };
  }

  it('takes the stored entry, and the handler runs once across the two instances', async function () {
    this.timeout(15_000);
    const { fromX, fromY, runs } = await xStoresBetweenLookAndLockCheck();
    const [rx, ry] = [await fromX, await fromY];
    assert.equal(rx.text, 'run 1');
    assert.equal(runs(), 1, `y ran the handler too: ${String(ry.headers['cache-status'])}`);
    assert.equal(ry.text, 'run 1');
  });

  it('the look after the lock is gone serves no entry invalidated since the fill stored it (h190)', async function () {
    this.timeout(15_000);
    const { x, fromX, fromY, looks } = await xStoresBetweenLookAndLockCheck();
    // x invalidates what it stored, directly, before y's look after its lock check (two round trips on y's
    // slow link) reaches Redis. Without the invalidation y answers with x's entry (collapsed) from that look.
    const rx = await fromX;
    assert.match(String(rx.headers['cache-status']), /stored/);
    await x.invalidatePrefix('/plain');
    const seen = looks();
    const ry = await fromY;
    assert.ok(looks() > seen, 'y looked again after the invalidation');
    assert.notEqual(ry.text, 'run 1', `y served the entry invalidated after its store: ${String(ry.headers['cache-status'])}`);
  });
});
