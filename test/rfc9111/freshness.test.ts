// RFC 9111 §4.2 through the proxy example: the stored lifetime comes from the
// response (targeted fields, s-maxage, max-age, Expires - Date, heuristics),
// invalid and repeated directives make it stale, and upstream Age counts.
import assert from 'node:assert/strict';
import { freshPath, httpDate, sleep, startProxy, useOriginAndProxy } from './harness.js';

describe('RFC 9111 freshness (origin mode, proxy example)', function () {
  const { origin, proxy } = useOriginAndProxy();

  /** Two GETs; how many reached the origin. */
  async function twice(headers: ReadonlyArray<readonly [string, string]>, status = 200): Promise<number> {
    const path = freshPath('f');
    origin.script(path, { status, headers });
    await proxy.get(path);
    await proxy.get(path);
    return origin.count(path);
  }

  it('§4.2.1 max-age: a fresh response is reused, with Age', async () => {
    const path = freshPath('max-age');
    origin.script(path, { headers: [['Cache-Control', 'max-age=3600']] });
    const first = await proxy.get(path);
    const second = await proxy.get(path);
    assert.equal(origin.count(path), 1);
    assert.equal(second.body, first.body);
    assert.match(second.headers['cache-status'] as string, /hit/);
    assert.equal(second.headers.age, '0');
  });

  it('§4.2.1 max-age=0 is stale at once: not reused', async () => {
    assert.equal(await twice([['Cache-Control', 'max-age=0']]), 2);
  });

  it('§4.2.1 s-maxage beats max-age in a shared cache, both ways', async () => {
    assert.equal(await twice([['Cache-Control', 'max-age=3600, s-maxage=0']]), 2);
    assert.equal(await twice([['Cache-Control', 's-maxage=3600, max-age=0']]), 1);
    assert.equal(await twice([['Cache-Control', 'max-age=3600'], ['Cache-Control', 's-maxage=0']]), 2);
  });

  it('§4.2.1 Expires - Date: future Expires is fresh, past or invalid Expires is stale; max-age wins over Expires', async () => {
    assert.equal(await twice([['Date', httpDate(0)], ['Expires', httpDate(3600)]]), 1);
    assert.equal(await twice([['Date', httpDate(0)], ['Expires', httpDate(-10)]]), 2);
    assert.equal(await twice([['Date', httpDate(0)], ['Expires', '0']]), 2);
    assert.equal(await twice([['Cache-Control', 'max-age=0'], ['Expires', httpDate(3600)]]), 2);
    assert.equal(await twice([['Cache-Control', 'max-age=3600'], ['Expires', httpDate(-10)]]), 1);
  });

  it('§4.2.1 Expires is measured against the origin Date, not this clock', async () => {
    // The origin's clock is ahead: its Expires lies in our future, but before its own Date.
    assert.equal(await twice([['Date', httpDate(1000)], ['Expires', httpDate(500)]]), 2);
  });

  it('§4.2.1 / §5.2 invalid max-age values make the response stale (alpha, negative, decimal, space around =, single quotes)', async () => {
    for (const cc of ['max-age=a100', 'max-age=100a', 'max-age=-100', 'max-age=1.5', 'max-age =100', 'max-age= 100', "max-age='3600'"]) {
      assert.equal(await twice([['Cache-Control', cc]]), 2, cc);
    }
  });

  it('§5.2 directive arguments may be quoted, names are case-insensitive, extensions are ignored, quoted text is not a directive', async () => {
    assert.equal(await twice([['Cache-Control', 'max-age="3600"']]), 1);
    assert.equal(await twice([['Cache-Control', 'MaX-AgE=3600']]), 1);
    assert.equal(await twice([['Cache-Control', 'foo, max-age=3600, bar="x, y"']]), 1);
    assert.equal(await twice([['Cache-Control', 'extension="max-age=3600", max-age=0']]), 2);
  });

  it('§1.2.2 a delta-seconds too large counts as 2^31 (still fresh)', async () => {
    assert.equal(await twice([['Cache-Control', 'max-age=99999999999']]), 1);
  });

  it('§4.2.1 a repeated lifetime directive with conflicting values is treated as stale', async () => {
    assert.equal(await twice([['Cache-Control', 'max-age=3600, max-age=0']]), 2);
    assert.equal(await twice([['Cache-Control', 'max-age=3600'], ['Cache-Control', 'max-age=0']]), 2);
  });

  it('§4.2.3 upstream Age counts against freshness (max-age=10 with Age: 15 is stale)', async () => {
    assert.equal(await twice([['Cache-Control', 'max-age=10'], ['Age', '15']]), 2);
  });

  it('§4.2.3 / §5.1 Age from upstream is replaced, not copied: a hit says the age it computed, once', async () => {
    const path = freshPath('age');
    origin.script(path, { headers: [['Cache-Control', 'max-age=3600'], ['Age', '100']] });
    await proxy.get(path);
    const hit = await proxy.get(path);
    assert.equal(origin.count(path), 1);
    const ages = hit.fields.filter(([n]) => n === 'age');
    assert.equal(ages.length, 1);
    assert.ok(Number(ages[0]![1]) >= 100 && Number(ages[0]![1]) < 110, `Age ${ages[0]![1]}`);
  });

  it('§4.2.3 apparent age from Date counts: a response dated an hour ago with max-age=60 is stale', async () => {
    assert.equal(await twice([['Date', httpDate(-3600)], ['Cache-Control', 'max-age=60']]), 2);
  });

  it('§4.2.2 heuristic freshness: 10% of the time since Last-Modified for heuristically cacheable statuses only, none without Last-Modified', async () => {
    assert.equal(await twice([['Last-Modified', httpDate(-10 * 86400)]]), 1);
    assert.equal(await twice([['Last-Modified', httpDate(-10 * 86400)]], 404), 1);
    assert.equal(await twice([]), 2);
    assert.equal(await twice([['Last-Modified', httpDate(-10 * 86400)], ['Location', '/x']], 302), 2);
    // Explicit freshness makes any final status storable.
    assert.equal(await twice([['Cache-Control', 'max-age=3600'], ['Location', '/x']], 302), 1);
  });

  it('§4.2.2 a heuristic lifetime is capped by the table TTL', async () => {
    const capped = await startProxy(origin, { ttl: 1_500 });
    try {
      const path = freshPath('heuristic-cap');
      origin.script(path, { headers: [['Last-Modified', httpDate(-10 * 86400)]] });
      await capped.get(path);
      await capped.get(path);
      assert.equal(origin.count(path), 1, 'fresh within the cap');
      await sleep(2_600); // the Date's one-second resolution plus the 1.5 s cap
      await capped.get(path);
      assert.equal(origin.count(path), 2, '10% of ten days, but the table says 1.5 s');
    } finally {
      await capped.stop();
    }
  });

  it('RFC 9213 §2 Tiercache-Cache-Control replaces Cache-Control for this cache; an invalid one is ignored', async () => {
    assert.equal(await twice([['Tiercache-Cache-Control', 'max-age=3600'], ['Cache-Control', 'no-store']]), 1);
    assert.equal(await twice([['Tiercache-Cache-Control', 'no-store'], ['Cache-Control', 'max-age=3600']]), 2);
    assert.equal(await twice([['Tiercache-Cache-Control', 'max-age=3600, ('], ['Cache-Control', 'max-age=0']]), 2);
  });

  it('RFC 9213 §2 CDN-Cache-Control is read only when cdnCacheControl is on, after Tiercache-Cache-Control', async () => {
    assert.equal(await twice([['CDN-Cache-Control', 'max-age=3600'], ['Cache-Control', 'max-age=0']]), 2);
    const cdn = await startProxy(origin, {}, { cacheOptions: { cdnCacheControl: true } });
    try {
      const run = async (headers: Array<[string, string]>) => {
        const path = freshPath('cdn');
        origin.script(path, { headers });
        await cdn.get(path);
        await cdn.get(path);
        return origin.count(path);
      };
      assert.equal(await run([['CDN-Cache-Control', 'max-age=3600'], ['Cache-Control', 'max-age=0']]), 1);
      assert.equal(await run([['Tiercache-Cache-Control', 'max-age=0'], ['CDN-Cache-Control', 'max-age=3600']]), 2);
    } finally {
      await cdn.stop();
    }
  });
});
