// RFC 9111 §4.4 in origin mode, across two proxy instances sharing Redis: a
// successful unsafe request invalidates its target URI (every query variant)
// and same-origin Location / Content-Location, on both instances, and
// nothing below those paths.
import assert from 'node:assert/strict';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';
import { freshPath, Origin, sleep, startProxy, type ProxyHandle } from './harness.js';

describe('RFC 9111 invalidation across two instances (origin mode, proxy example, Redis)', function () {
  this.timeout(20_000);
  const origin = new Origin();
  let redis: RedisServerHandle;
  let a: ProxyHandle;
  let b: ProxyHandle;
  before(async function () {
    this.timeout(30_000);
    redis = await startRedisServer();
    await origin.start();
    const shared = { redis: redis.url, namespace: `rfc9111-inv-${process.pid}` };
    a = await startProxy(origin, shared);
    b = await startProxy(origin, shared);
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await origin.stop();
    await redis?.stop();
  });

  /** Until `check` holds or 2 s pass (the bus delivers in milliseconds; the bound only keeps a failure from hanging). */
  async function eventually(check: () => Promise<boolean>): Promise<boolean> {
    for (let i = 0; i < 100; i++) {
      if (await check()) return true;
      await sleep(20);
    }
    return false;
  }

  /** Stores `path` through A, sees B serve it from the cache; the stored body. */
  async function storedOnBoth(path: string): Promise<string> {
    const stored = (await a.get(path)).body;
    await a.get(path);
    const before = origin.count(path);
    const fromB = await b.get(path);
    assert.match(fromB.headers['cache-status'] as string, /hit/, `${path} is a hit on B`);
    assert.equal(fromB.body, stored);
    assert.equal(origin.count(path), before);
    return stored;
  }

  /** Neither instance answers `path` with the body stored before (a refill by one may serve the other: that is a new body). */
  async function goneFromBoth(path: string, old: string): Promise<void> {
    for (const [name, proxy] of [['B', b], ['A', a]] as const) {
      assert.ok(await eventually(async () => (await proxy.get(path)).body !== old), `${path} invalidated on ${name}`);
    }
  }

  it('§4.4 a 2xx POST through A invalidates the target URI, every query variant, on A and on B', async () => {
    const path = freshPath('inv');
    origin.script(path, (req) => (req.method === 'POST' ? { status: 201, body: 'made' } : { headers: [['Cache-Control', 'max-age=3600']] }));
    const plain = await storedOnBoth(path);
    const variant = await storedOnBoth(`${path}?page=2`);
    const posted = await a.send('POST', path, { 'content-type': 'text/plain' }, 'payload');
    assert.equal(posted.status, 201);
    assert.equal(origin.last(path).body, 'payload', 'the body reached the origin');
    await goneFromBoth(path, plain);
    await goneFromBoth(`${path}?page=2`, variant);
  });

  it('§4.4 same-origin Location and Content-Location are invalidated too; another origin and descendants are not', async () => {
    const target = freshPath('inv-target');
    const located = freshPath('inv-location');
    const content = freshPath('inv-content');
    const below = `${located}/child`;
    for (const p of [located, content, below]) origin.script(p, { headers: [['Cache-Control', 'max-age=3600']] });
    origin.script(target, { status: 303, headers: [['Location', located], ['Content-Location', `http://elsewhere.example${content}`]] });
    const old = await storedOnBoth(located);
    await storedOnBoth(content);
    await storedOnBoth(below);
    await a.send('PUT', target, { 'content-length': '0' });
    await goneFromBoth(located, old);
    await sleep(100);
    assert.match(String((await b.get(content)).headers['cache-status']), /hit/, 'a Content-Location on another origin is left alone');
    assert.match(String((await b.get(below)).headers['cache-status']), /hit/, 'what lies below Location is left alone');
  });

  it('§4.4 a Location given as an absolute URI on the origin the write went to is invalidated too', async () => {
    const target = freshPath('inv-abs-target');
    const located = freshPath('inv-abs-location');
    origin.script(located, { headers: [['Cache-Control', 'max-age=3600']] });
    // A's own scheme, host and port: the Host of the write below.
    origin.script(target, { status: 201, headers: [['Location', `${a.base}${located}`]] });
    const old = await storedOnBoth(located);
    await a.send('PUT', target, { 'content-length': '0' });
    await goneFromBoth(located, old);
  });

  it('§4.3.4 a stale entry one instance stored is revalidated by the other, and the refreshed entry serves both', async () => {
    const path = freshPath('reval-l2');
    origin.script(path, (req, n) =>
      req.headers['if-none-match'] === '"r"'
        ? { status: 304, headers: [['Cache-Control', 'max-age=3600'], ['ETag', '"r"'], ['X-Round', String(n)]] }
        : { headers: [['Cache-Control', 'max-age=0'], ['ETag', '"r"'], ['X-Round', String(n)]], body: 'stored once' },
    );
    await a.get(path);
    const fromB = await b.get(path);
    assert.equal(origin.last(path).headers['if-none-match'], '"r"', 'B found A\'s entry in L2 and asked conditionally');
    assert.equal(fromB.body, 'stored once');
    assert.equal(fromB.headers['x-round'], '2');
    assert.ok(await eventually(async () => /hit/.test(String((await a.get(path)).headers['cache-status']))), 'A serves the refreshed entry');
    assert.equal(origin.count(path), 2);
  });

  it('§4.4 an error answer to an unsafe request invalidates nothing', async () => {
    const path = freshPath('inv-error');
    origin.script(path, (req) => (req.method === 'DELETE' ? { status: 500 } : { headers: [['Cache-Control', 'max-age=3600']] }));
    await storedOnBoth(path);
    assert.equal((await a.send('DELETE', path)).status, 500);
    await sleep(100);
    assert.match(String((await a.get(path)).headers['cache-status']), /hit/);
    assert.match(String((await b.get(path)).headers['cache-status']), /hit/);
  });
});
