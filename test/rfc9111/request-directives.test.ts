// RFC 9111 §5.2.1 request directives and §5.4 Pragma through the proxy
// example, each honoured by default, each behind an option, and the per-key
// limit on refreshes a request forces.
import assert from 'node:assert/strict';
import { freshPath, Origin, startProxy, type ProxyHandle } from './harness.js';

describe('RFC 9111 request directives (origin mode, proxy example)', function () {
  const origin = new Origin();
  let proxy: ProxyHandle;
  before(async () => {
    await origin.start();
    // No rate limit here: every forced refresh is honoured.
    proxy = await startProxy(origin, {}, { cacheOptions: { requestDirectives: { forcedRefreshInterval: 0 } } });
  });
  after(async () => {
    await proxy.stop();
    await origin.stop();
  });

  /** A stored fresh (max-age=3600) or stale-but-kept (max-age=0 with an ETag) entry, then one request with `headers`. */
  async function afterStored(headers: Record<string, string>, cc = 'max-age=3600', via = proxy) {
    const path = freshPath('rd');
    origin.script(path, (req, n) => (req.headers['if-none-match'] === '"e"' ? { status: 304, headers: [['Cache-Control', cc], ['ETag', '"e"']] } : { headers: [['Cache-Control', cc], ['ETag', '"e"']], body: `body ${n}` }));
    await via.get(path);
    const answer = await via.get(path, headers);
    return { answer, count: origin.count(path), last: origin.last(path) };
  }

  it('§5.2.1.4 no-cache: a fresh entry is revalidated before it is used', async () => {
    const { answer, count, last } = await afterStored({ 'cache-control': 'no-cache' });
    assert.equal(count, 2);
    assert.equal(last.headers['if-none-match'], '"e"');
    assert.equal(answer.body, 'body 1');
  });

  it('§5.4 Pragma: no-cache without Cache-Control acts as no-cache; with Cache-Control it is ignored', async () => {
    assert.equal((await afterStored({ pragma: 'no-cache' })).count, 2);
    assert.equal((await afterStored({ pragma: 'no-cache', 'cache-control': 'max-stale=1' })).count, 1);
  });

  it('§5.2.1.1 max-age: an entry older than the request allows is revalidated', async () => {
    assert.equal((await afterStored({ 'cache-control': 'max-age=0' })).count, 2);
    assert.equal((await afterStored({ 'cache-control': 'max-age=600' })).count, 1);
  });

  it('§5.2.1.3 min-fresh: an entry fresh for less than asked is revalidated', async () => {
    assert.equal((await afterStored({ 'cache-control': 'min-fresh=7200' })).count, 2);
    assert.equal((await afterStored({ 'cache-control': 'min-fresh=60' })).count, 1);
  });

  it('§5.2.1.2 max-stale: a stale entry is served within the asked staleness (any, without a value)', async () => {
    const any = await afterStored({ 'cache-control': 'max-stale' }, 'max-age=0');
    assert.equal(any.count, 1);
    assert.equal(any.answer.body, 'body 1');
    assert.match(any.answer.headers['cache-status'] as string, /hit; ttl=-/);
    assert.equal((await afterStored({ 'cache-control': 'max-stale=3600' }, 'max-age=0')).count, 1);
  });

  it('§5.2.1.7 only-if-cached: answered from the cache, else 504 without asking the origin', async () => {
    const hit = await afterStored({ 'cache-control': 'only-if-cached' });
    assert.equal(hit.count, 1);
    assert.equal(hit.answer.status, 200);
    const path = freshPath('only-if-cached');
    const miss = await proxy.get(path, { 'cache-control': 'only-if-cached' });
    assert.equal(miss.status, 504);
    assert.equal(origin.count(path), 0);
    const stale = await afterStored({ 'cache-control': 'only-if-cached' }, 'max-age=0');
    assert.equal(stale.answer.status, 504);
    assert.equal(stale.count, 1);
  });

  it('§5.2.1 every directive can be turned off (requestDirectives: false): the cache answers as if the request said nothing', async () => {
    const deaf = await startProxy(origin, {}, { cacheOptions: { requestDirectives: false } });
    try {
      assert.equal((await afterStored({ 'cache-control': 'no-cache' }, 'max-age=3600', deaf)).count, 1);
      assert.equal((await afterStored({ pragma: 'no-cache' }, 'max-age=3600', deaf)).count, 1);
      assert.equal((await afterStored({ 'cache-control': 'max-age=0' }, 'max-age=3600', deaf)).count, 1);
      assert.equal((await afterStored({ 'cache-control': 'max-stale' }, 'max-age=0', deaf)).count, 2);
      const path = freshPath('deaf-no-store');
      origin.script(path, { headers: [['Cache-Control', 'max-age=3600']] });
      await deaf.get(path, { 'cache-control': 'no-store' });
      await deaf.get(path);
      assert.equal(origin.count(path), 1, 'no-store ignored: stored');
    } finally {
      await deaf.stop();
    }
  });

  it('§5.2.1 a request whose Cache-Control asks nothing this cache honours is answered as one without it: stale-while-revalidate serves it stale', async () => {
    const deaf = await startProxy(origin, {}, { cacheOptions: { requestDirectives: false } });
    try {
      // Turned off (a browser reload's max-age=0), or none that asks anything of a stored answer (no-transform, an extension).
      for (const [via, cc] of [[deaf, 'max-age=0'], [deaf, 'no-cache'], [proxy, 'no-transform'], [proxy, 'x-ext=1']] as const) {
        const path = freshPath('asks-nothing');
        origin.script(path, { headers: [['Cache-Control', 'max-age=0, stale-while-revalidate=60']], delayMs: 50 });
        await via.get(path);
        const answer = await via.get(path, { 'cache-control': cc });
        // Before, it waited for the origin's answer (the refresh ran in its path), or ran a request of its own.
        assert.match(String(answer.headers['cache-status']), /^tiercache; hit; ttl=-\d+; detail=L1$/, `Cache-Control: ${cc} (${via === deaf ? 'requestDirectives: false' : 'default'}) was answered '${answer.headers['cache-status']}'`);
        assert.equal(answer.body, `${path} #1`);
      }
    } finally {
      await deaf.stop();
    }
  });

  it('§5.2.1 a single directive can be turned off ({ noCache: false })', async () => {
    const some = await startProxy(origin, {}, { cacheOptions: { requestDirectives: { noCache: false, forcedRefreshInterval: 0 } } });
    try {
      assert.equal((await afterStored({ 'cache-control': 'no-cache' }, 'max-age=3600', some)).count, 1);
      assert.equal((await afterStored({ 'cache-control': 'max-age=0' }, 'max-age=3600', some)).count, 2);
    } finally {
      await some.stop();
    }
  });

  it('§5.2.1 refreshes forced by requests are rate-limited per key (forcedRefreshInterval, default 1 s)', async () => {
    const limited = await startProxy(origin);
    try {
      const path = freshPath('forced');
      origin.script(path, { headers: [['Cache-Control', 'max-age=3600']] });
      await limited.get(path);
      for (let i = 0; i < 5; i++) await limited.get(path, { 'cache-control': 'no-cache' });
      assert.equal(origin.count(path), 2, 'one forced refresh within the interval, the rest served from the cache');
      const other = freshPath('forced-other');
      origin.script(other, { headers: [['Cache-Control', 'max-age=3600']] });
      await limited.get(other);
      await limited.get(other, { 'cache-control': 'no-cache' });
      assert.equal(origin.count(other), 2, 'another key has its own budget');
    } finally {
      await limited.stop();
    }
  });
});
