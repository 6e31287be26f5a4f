// An instance whose route to Redis starts dropping everything, silently (no
// reset: a firewall, a dead link), hears no invalidation and sees no error on
// its subscriber. It kept serving L1 copies another instance had invalidated
// until their TTL ended (found by a hostile review). A failing epoch check
// (every second) now makes it distrust L1 until a probe comes back through
// the subscription, as a dropped subscriber connection already did.
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Socket, type Server } from 'node:net';
import express from 'express';
import request from 'supertest';
import { expressCache } from '../../../src/express.js';
import { useRedisCaches } from '../../support/cache-context.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A TCP proxy to `port` that can stop forwarding in both directions, keeping every connection open. */
async function stallingProxy(port: number): Promise<{ port: number; stall(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let stalled = false;
  const server: Server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (d) => void (stalled || upstream.write(d)));
    upstream.on('data', (d) => void (stalled || client.write(d)));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    stall: () => void (stalled = true),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('invalidation: an instance whose route to Redis drops everything silently', () => {
  const ctx = useRedisCaches({ prefix: 'blackholed', flush: true });

  it("stops serving L1 copies within about two seconds, so another instance's invalidateUser() is not missed until their TTL ends", async function () {
    this.timeout(15_000);
    const proxy = await stallingProxy(ctx.redis.port);
    try {
      const direct = await ctx.open();
      const cut = await ctx.open({ redis: `redis://127.0.0.1:${proxy.port}` });
      cut.on('error', () => undefined);
      let version = 0;
      const app = express();
      app.get('/api/me', expressCache(cut, { user: (req) => req.headers['x-user'] as string, ttl: '5m' }), (_req, res) => void res.json({ version: ++version }));
      const alice = () => request(app).get('/api/me').set('x-user', 'alice').set('cookie', 's=a');
      assert.equal((await alice()).body.version, 1);
      assert.match(String((await alice()).headers['cache-status']), /hit; detail=L1/);
      proxy.stall();
      assert.equal((await direct.invalidateUser('alice')).delivered, true);
      await sleep(3_500); // two epoch checks in a row without an answer
      const after = await alice();
      assert.notEqual(after.body.version, 1, `the invalidated copy was still served (${String(after.headers['cache-status'])})`);
      assert.equal(after.status, 200);
      assert.equal(cut.health().bus, 'reconnecting');
    } finally {
      await proxy.close();
    }
  });
});
