// RFC 9111 §3 (what a shared cache stores) through the proxy example.
import assert from 'node:assert/strict';
import { freshPath, useOriginAndProxy } from './harness.js';

describe('RFC 9111 storing responses (origin mode, proxy example)', function () {
  const { origin, proxy } = useOriginAndProxy();

  async function twice(headers: ReadonlyArray<readonly [string, string]>, request: Record<string, string> = {}, status = 200): Promise<number> {
    const path = freshPath('s');
    origin.script(path, { status, headers });
    await proxy.get(path, request);
    await proxy.get(path, request);
    return origin.count(path);
  }

  it('§5.2.2.5 no-store is never stored', async () => {
    assert.equal(await twice([['Cache-Control', 'max-age=3600, no-store']]), 2);
  });

  it('§5.2.2.7 private is never stored by a shared cache', async () => {
    assert.equal(await twice([['Cache-Control', 'max-age=3600, private']]), 2);
  });

  it('§5.2.2.7 private="field" stores the response without that field', async () => {
    const path = freshPath('private-field');
    origin.script(path, { headers: [['Cache-Control', 'max-age=3600, private="x-secret"'], ['X-Secret', 'for one user'], ['X-Other', 'kept']] });
    const first = await proxy.get(path);
    assert.equal(first.headers['x-secret'], 'for one user', 'the answer that filled keeps it');
    const hit = await proxy.get(path);
    assert.equal(origin.count(path), 1);
    assert.equal(hit.headers['x-secret'], undefined);
    assert.equal(hit.headers['x-other'], 'kept');
  });

  it('§5.2.2.7 / §5.2.2.4 a qualified private or no-cache that names no field is the bare directive', async () => {
    // private="," or private=" " lists no field name: read as a list of names, it would free the whole answer for everyone.
    assert.equal(await twice([['Cache-Control', 'max-age=3600, private=","']]), 2, 'private=","');
    assert.equal(await twice([['Cache-Control', 'max-age=3600, private=" "']]), 2, 'private=" "');
    assert.equal(await twice([['Cache-Control', 'max-age=3600, no-cache=", ,"']]), 2, 'no-cache=", ," (no validator: revalidating means fetching)');
  });

  it('§5.2.2.4 no-cache="field" stores the response without that field, and reuses it without revalidation', async () => {
    const path = freshPath('no-cache-field');
    origin.script(path, { headers: [['Cache-Control', 'max-age=3600, no-cache="x-token, x-two"'], ['X-Token', 'abc'], ['X-Two', '2']] });
    await proxy.get(path);
    const hit = await proxy.get(path);
    assert.equal(origin.count(path), 1);
    assert.equal(hit.headers['x-token'], undefined);
    assert.equal(hit.headers['x-two'], undefined);
  });

  it('a Surrogate-Control with no caching directive (content="ESI/1.0") leaves private and no-store in charge', async () => {
    // The proxy reads Surrogate-Control addressed to it; an ESI marker alone says nothing about storing.
    const old = ['Last-Modified', new Date(Date.now() - 10 * 86_400_000).toUTCString()] as const;
    assert.equal(await twice([['Cache-Control', 'private'], ['Surrogate-Control', 'content="ESI/1.0"'], old]), 2, 'private');
    assert.equal(await twice([['Cache-Control', 'no-store'], ['Surrogate-Control', 'content="ESI/1.0";tiercache'], old]), 2, 'no-store');
    assert.equal(await twice([['Cache-Control', 'max-age=3600'], ['Surrogate-Control', 'content="ESI/1.0"']]), 1, 'max-age of Cache-Control still counts');
    assert.equal(await twice([['Cache-Control', 'private'], ['Surrogate-Control', 'content="ESI/1.0", max-age=3600']]), 1, 'a lifetime for surrogates still replaces Cache-Control');
  });

  it('§3.5 a response to a request with Authorization is stored only with public, s-maxage or must-revalidate', async () => {
    const auth = { authorization: 'Bearer x' };
    assert.equal(await twice([['Cache-Control', 'max-age=3600']], auth), 2);
    assert.equal(await twice([['Cache-Control', 'max-age=3600, public']], auth), 1);
    assert.equal(await twice([['Cache-Control', 's-maxage=3600']], auth), 1);
    assert.equal(await twice([['Cache-Control', 'max-age=3600, must-revalidate']], auth), 1);
  });

  it('§3 a status that is not heuristically cacheable is stored only with explicit freshness; 206 never', async () => {
    assert.equal(await twice([], {}, 500), 2);
    assert.equal(await twice([['Cache-Control', 'max-age=3600']], {}, 500), 1);
    assert.equal(await twice([['Cache-Control', 'max-age=3600'], ['Content-Range', 'bytes 0-3/10']], {}, 206), 2);
  });

  it('§3.4 / RFC 9110 §14.2 Range requests pass through untouched (never served from or stored as the full response)', async () => {
    const path = freshPath('range');
    origin.script(path, (req) =>
      req.headers.range !== undefined
        ? { status: 206, headers: [['Cache-Control', 'max-age=3600'], ['Content-Range', 'bytes 0-1/10']], body: 'pa' }
        : { headers: [['Cache-Control', 'max-age=3600']], body: 'full body!' },
    );
    assert.equal((await proxy.get(path)).body, 'full body!');
    const partial = await proxy.get(path, { range: 'bytes=0-1' });
    assert.equal(partial.status, 206);
    assert.equal(partial.body, 'pa');
    assert.equal(origin.last(path).headers.range, 'bytes=0-1');
    assert.equal((await proxy.get(path)).body, 'full body!');
    assert.equal(origin.count(path), 2, 'the full response stayed stored; the 206 replaced nothing');
  });

  it('§4.1 Vary: each variant is stored apart, an absent header is a value of its own, and values are normalised', async () => {
    const path = freshPath('vary');
    origin.script(path, (req) => ({ headers: [['Cache-Control', 'max-age=3600'], ['Vary', 'Accept-Language']], body: `lang ${req.headers['accept-language'] ?? 'none'}` }));
    assert.equal((await proxy.get(path, { 'accept-language': 'en' })).body, 'lang en');
    assert.equal((await proxy.get(path, { 'accept-language': 'fr' })).body, 'lang fr');
    assert.equal((await proxy.get(path)).body, 'lang none');
    assert.equal(origin.count(path), 3);
    assert.equal((await proxy.get(path, { 'accept-language': 'en' })).body, 'lang en');
    assert.equal((await proxy.get(path)).body, 'lang none');
    assert.equal((await proxy.get(path, { 'accept-language': '  fr ' })).body, 'lang fr');
    assert.equal(origin.count(path), 3);
  });

  it('§4.1 Vary: * is never reused', async () => {
    assert.equal(await twice([['Cache-Control', 'max-age=3600'], ['Vary', '*']]), 2);
  });

  it('§5.2.1.5 a request with no-store stores nothing', async () => {
    const path = freshPath('req-no-store');
    origin.script(path, { headers: [['Cache-Control', 'max-age=3600']] });
    await proxy.get(path, { 'cache-control': 'no-store' });
    await proxy.get(path);
    assert.equal(origin.count(path), 2);
  });
});
