import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  MAX_KEY_LENGTH,
  buildRequestKey,
  canonicalQuery,
  escapeKeyComponent,
  methodClass,
  normalizedHeaderValue,
  variantKey,
  type RequestKeyInput,
} from '../../../src/keys/index.js';
import { requestHeader, requestHost } from '../../../src/keys/request-key.js';
import {
  RUNS,
  asRawQuery,
  encodeQuery,
  identityOf,
  namesReadAlike,
  nastyText,
  nastyUnit,
  paramName,
  request,
  requestPath,
  rootName,
  urlOf,
  userScope,
  varyPairs,
  type Req,
} from './support.js';

const NS = 'shop';

function key(url: string, extra: Partial<RequestKeyInput> = {}): string {
  return buildRequestKey({ namespace: NS, method: 'GET', url, ...extra });
}

function keyOf(req: Req): string {
  return buildRequestKey({ namespace: NS, method: 'GET', url: urlOf(req), vary: req.vary, user: req.user });
}

describe('keys: buildRequestKey', () => {
  describe('format', () => {
    it('is namespace:GET:/path?canonical-query, the query sorted by name', () => {
      assert.equal(canonicalQuery('b=2&a=1'), 'a=1&b=2');
      assert.equal(key('/api/movies?b=2&a=1'), 'shop:GET:/api/movies?a=1&b=2');
      assert.equal(key('/api/movies?q=a:b%26c'), 'shop:GET:/api/movies?q=a%3Ab%26c', 'names and values are escaped');
      assert.ok(key('/api/movies?b=2&a=1').startsWith('shop:GET:/api/movies?'));
    });

    it('is namespace:GET:/path for a URL without a query', () => {
      assert.equal(key('/api/movies'), 'shop:GET:/api/movies');
    });

    it('treats an empty query (/a? and /a?&) like no query', () => {
      assert.equal(key('/a?'), key('/a'));
      assert.equal(key('/a?&'), key('/a'));
    });

    it('appends vary values and then the user scope', () => {
      assert.equal(key('/api/search', { vary: [['accept-language', 'en']], user: '42' }), 'shop:GET:/api/search:v=accept-language=en:u=42');
    });

    it('keeps separators out of components by escaping them', () => {
      const k = key('/a:b/{c}', { vary: [['x-a', 'p,q=r']], user: 'u:1' });
      assert.equal(k, 'shop:GET:/a%3Ab/%7Bc%7D:v=x-a=p%2Cq%3Dr:u=u%3A1');
      assert.equal(k.split(':').length, 5);
    });

    it('keeps the raw path: /a%2Fb, /a/b and /A/b are three keys', () => {
      assert.equal(new Set([key('/a%2Fb'), key('/a/b'), key('/A/b')]).size, 3);
    });
  });

  describe('method class', () => {
    it('gives HEAD and GET the same key', () => {
      assert.equal(buildRequestKey({ namespace: NS, method: 'HEAD', url: '/x?a=1' }), buildRequestKey({ namespace: NS, method: 'GET', url: '/x?a=1' }));
      assert.equal(methodClass('HEAD'), 'GET');
      assert.equal(methodClass('GET'), 'GET');
    });

    it('gives other methods their own key', () => {
      assert.equal(buildRequestKey({ namespace: NS, method: 'POST', url: '/x' }), 'shop:POST:/x');
      assert.notEqual(buildRequestKey({ namespace: NS, method: 'POST', url: '/x' }), key('/x'));
    });
  });

  describe('query', () => {
    it('gives ?a=1&b=2 and ?b=2&a=1 the same key', () => {
      assert.equal(key('/x?a=1&b=2'), key('/x?b=2&a=1'));
    });

    it('gives ?id=1&id=2, ?id=2&id=1 and ?id=1 three different keys', () => {
      assert.equal(canonicalQuery('id=1&id=2'), 'id=1&id=2');
      assert.equal(new Set([key('/x?id=1&id=2'), key('/x?id=2&id=1'), key('/x?id=1')]).size, 3);
    });

    it('keeps duplicate order while sorting names: ?id=1&a=0&id=2 == ?a=0&id=1&id=2', () => {
      assert.equal(key('/x?id=1&a=0&id=2'), key('/x?a=0&id=1&id=2'));
      assert.notEqual(key('/x?id=1&a=0&id=2'), key('/x?a=0&id=2&id=1'));
    });

    it('compares decoded values: ?q=a%20b, ?q=a+b and ?q=%61 b-equivalents share a key', () => {
      assert.equal(key('/x?q=a%20b'), key('/x?q=a+b'));
      assert.equal(key('/x?q=%61'), key('/x?q=a'));
      assert.notEqual(key('/x?q=a%2Bb'), key('/x?q=a+b'));
    });

    // The frameworks parse req.url with the fragment cut off (url.parse / parseurl), so
    // '?q=C#x' is q=C to the handler; keyed as q='C#x' it shared the entry of '?q=C%23x'.
    it("drops a raw '#' and what follows, as the frameworks do: /search?q=C#x is keyed as /search?q=C, not as ?q=C%23x", () => {
      assert.equal(key('/search?q=C#x'), key('/search?q=C'));
      assert.notEqual(key('/search?q=C#x'), key('/search?q=C%23x'));
      assert.equal(key('/search?q=C#'), key('/search?q=C'));
      assert.equal(key('/search#x?q=1'), key('/search'));
      assert.equal(key('/a#b'), key('/a'));
    });

    it('tells a single value from a list holding it: ?id=1 vs ?id=1&id=1', () => {
      assert.notEqual(key('/x?id=1'), key('/x?id=1&id=1'));
    });

    it('drops parameters outside the queryAllow list', () => {
      const allow = new Set(['page']);
      assert.equal(key('/list?page=2&utm_source=x', { queryAllow: allow }), key('/list?page=2', { queryAllow: allow }));
      assert.equal(key('/list?utm_source=x&page=2&fbclid=y', { queryAllow: allow }), key('/list?page=2', { queryAllow: allow }));
      assert.notEqual(key('/list?page=2', { queryAllow: allow }), key('/list?page=3', { queryAllow: allow }));
      assert.equal(key('/list?utm_source=x', { queryAllow: allow }), key('/list', { queryAllow: allow }));
      assert.equal(key('/list?utm_source=x', { queryAllow: allow }), 'shop:GET:/list:a=page');
      assert.equal(key('/list?b=1&page=2', { queryAllow: new Set(['page', 'b']) }), 'shop:GET:/list:a=b,page?b=1&page=2');
    });

    // Keys built with a list are not keys built without one, or with another: a middleware that drops
    // parameters would otherwise find what one keying them had stored for another request.
    it('keeps keys built with an allow-list apart from keys built without it or with another list', () => {
      const allow = new Set(['page']);
      assert.notEqual(key('/list?page=2&q=x', { queryAllow: allow }), key('/list?page=2'));
      assert.notEqual(key('/list?q=x', { queryAllow: allow }), key('/list'));
      assert.notEqual(key('/list?page=2&q=x', { queryAllow: allow }), key('/list?page=2', { queryAllow: new Set(['page', 'q']) }));
      assert.equal(key('/list?page=2', { queryAllow: new Set(['q', 'page']) }), key('/list?page=2', { queryAllow: new Set(['page', 'q']) }));
      assert.notEqual(key('/list', { queryAllow: new Set(['a,b']) }), key('/list', { queryAllow: new Set(['a', 'b']) }));
    });

    // Regression (found by these tests, fixed in 8d23c41): `new URLSearchParams(query)`
    // strips one leading '?', but for '/p??a=1' the query component is '?a=1', i.e.
    // the parameter '?a' (URL standard, node:querystring and qs all agree).
    it('keys a query carrying access_token (any spelling a parser reads as it) by a digest, never the token', () => {
      const secret = 'SECRETtoken123';
      const spellings = [`/s?access_token=${secret}&page=1`, `/s?page=1&access%5Ftoken=${secret}`, `/s?access_token[]=${secret}`, `/s?[access_token]=${secret}`, `/s??access%5Ftoken=${secret}`, `/s?%FF=1&acc%65ss_token=${secret}`, `/s?a=b[c]=d&access%5Ftoken=x${secret}`];
      for (const url of spellings) {
        for (const allow of [undefined, new Set(['page'])]) {
          const k = key(url, { queryAllow: allow });
          assert.ok(!k.includes(secret), `${url}: ${k}`);
          assert.match(k, /:t=[A-Za-z0-9_-]{43}$/, k);
        }
      }
      // Parameter order still does not matter, the same token shares the key, another token does not.
      assert.equal(key(`/s?access_token=${secret}&page=1`), key(`/s?page=1&access_token=${secret}`));
      assert.notEqual(key(`/s?access_token=${secret}&page=1`), key(`/s?access_token=${secret}x&page=1`));
      assert.notEqual(key(`/s?access_token=${secret}&page=1`), key(`/s?access_token=${secret}&page=2`));
      // Never the key of a path, nor of a query without the token.
      assert.notEqual(key(`/s?access_token=${secret}`), key('/s'));
      assert.ok(!key(`/s:t=x`).includes(':t='), 'a path cannot spell the mark');
      // Other queries stay readable.
      assert.equal(key('/s?page=1&q=x'), 'shop:GET:/s?page=1&q=x');
    });

    it("tells /p??a=1 (parameter '?a') from /p?a=1 (parameter 'a')", () => {
      assert.deepEqual([...new URL('http://h/p??a=1').searchParams], [['?a', '1']]);
      assert.notEqual(key('/p??a=1'), key('/p?a=1'));
    });

    // Regression (found by these tests, fixed in 8d23c41): decoding invalid UTF-8
    // escapes to U+FFFD collapsed different raw values into one key, while
    // Express 4's default query parser (qs) keeps them raw (req.query.q is '%FF'
    // vs '%FE', 'caf%E9' vs 'caf%E8') and any handler reading req.url sees them
    // differ: one request would be answered with the other's cached response.
    it('tells apart query values that are not valid UTF-8: ?q=%FF vs ?q=%FE, ?q=caf%E9 vs ?q=caf%E8', () => {
      assert.notEqual(key('/search?q=%FF'), key('/search?q=%FE'));
      assert.notEqual(key('/search?q=caf%E9'), key('/search?q=caf%E8'));
    });
  });

  describe('vary and user scope', () => {
    it("tells [['x-a','a:b'],['x-b','c']] from [['x-a','a'],['x-b','b:c']]", () => {
      assert.notEqual(
        key('/x', { vary: [['x-a', 'a:b'], ['x-b', 'c']] }),
        key('/x', { vary: [['x-a', 'a'], ['x-b', 'b:c']] }),
      );
      assert.notEqual(
        key('/x', { vary: [['x-a', 'a,x-b=b'], ['x-b', 'c']] }),
        key('/x', { vary: [['x-a', 'a'], ['x-b', 'b,x-b=c']] }),
      );
    });

    it('tells an absent vary header from an empty one', () => {
      assert.notEqual(key('/x', { vary: [['x-a', undefined]] }), key('/x', { vary: [['x-a', '']] }));
    });

    it('tells vary values apart by header name and order', () => {
      assert.notEqual(key('/x', { vary: [['x-a', '1']] }), key('/x', { vary: [['x-b', '1']] }));
      assert.notEqual(key('/x', { vary: [['x-a', '1'], ['x-b', '2']] }), key('/x', { vary: [['x-a', '2'], ['x-b', '1']] }));
    });

    it("tells user '1' from user '12'", () => {
      assert.notEqual(key('/me', { user: '1' }), key('/me', { user: '12' }));
    });

    it("tells no user from the empty user ''", () => {
      assert.notEqual(key('/me', { user: undefined }), key('/me', { user: '' }));
    });

    it('cannot be forged by putting separators in the path, the vary values or the user', () => {
      assert.notEqual(key('/me:u=1'), key('/me', { user: '1' }));
      assert.notEqual(key('/me:v=x-a=1'), key('/me', { vary: [['x-a', '1']] }));
      assert.notEqual(key('/me', { vary: [['x-a', '1:u=2']] }), key('/me', { vary: [['x-a', '1']], user: '2' }));
      assert.notEqual(key('/me', { user: '1:u=2' }), key('/me', { user: '1' }));
      assert.notEqual(key('/a?x=1:u=2'), key('/a?x=1', { user: '2' }));
    });
  });

  describe('custom key', () => {
    it('replaces the path and query', () => {
      assert.equal(key('/a?x=1', { customKey: 'movies' }), key('/b', { customKey: 'movies' }));
      assert.equal(key('/a?x=1', { customKey: 'movies' }), 'shop:GET:movies');
    });

    it('still applies the method class, vary values and user scope', () => {
      assert.notEqual(key('/a', { customKey: 'm', user: '1' }), key('/a', { customKey: 'm', user: '2' }));
      assert.notEqual(key('/a', { customKey: 'm', user: '1' }), key('/a', { customKey: 'm' }));
      assert.equal(key('/a', { customKey: 'm', user: '1' }), 'shop:GET:m:u=1');
      assert.notEqual(key('/a', { customKey: 'm', vary: [['x-a', '1']] }), key('/a', { customKey: 'm', vary: [['x-a', '2']] }));
      assert.equal(buildRequestKey({ namespace: NS, method: 'HEAD', url: '/a', customKey: 'm' }), key('/b', { customKey: 'm' }));
    });

    it('escapes the custom key so it cannot forge a user scope', () => {
      assert.notEqual(key('/a', { customKey: 'm:u=1' }), key('/a', { customKey: 'm', user: '1' }));
    });
  });

  describe('long keys', () => {
    const longPath = '/' + 'a'.repeat(2000);

    it(`hashes keys longer than MAX_KEY_LENGTH (${MAX_KEY_LENGTH}) to a bounded length`, () => {
      const k = key(longPath);
      assert.ok(k.length <= MAX_KEY_LENGTH, `length ${k.length}`);
      assert.ok(k.length < 100, `a hashed key should be short, got ${k.length}`);
      assert.ok(k.startsWith('shop:GET:'));
      assert.equal(key(longPath), k, 'hashing is deterministic');
    });

    it('keeps a key of exactly MAX_KEY_LENGTH as is', () => {
      const path = '/' + 'a'.repeat(MAX_KEY_LENGTH - 'shop:GET:/'.length);
      assert.equal(key(path), `shop:GET:${path}`);
      assert.equal(key(path).length, MAX_KEY_LENGTH);
      assert.notEqual(key(path + 'a'), `shop:GET:${path}a`);
    });

    it('still tells two different long requests apart', () => {
      assert.notEqual(key(longPath + 'b'), key(longPath + 'c'));
      assert.notEqual(key(`/x?q=${'v'.repeat(2000)}`), key(`/x?q=${'v'.repeat(2001)}`));
      assert.notEqual(key(longPath, { user: '1' }), key(longPath, { user: '12' }));
      assert.notEqual(key(longPath, { user: '' }), key(longPath));
      assert.notEqual(key(longPath, { vary: [['x-a', undefined]] }), key(longPath, { vary: [['x-a', '']] }));
      assert.notEqual(key('/x', { user: 'u'.repeat(2000) }), key('/x', { user: 'u'.repeat(1999) }));
    });

    it('never gives a hashed key the value of a short one', () => {
      const hashed = key(longPath);
      const rest = hashed.slice('shop:GET:'.length);
      assert.notEqual(key('/x', { customKey: rest }), hashed);
      assert.notEqual(key(rest), hashed);
    });

    // Regression (found by these tests, fixed in 8d23c41): the hash input (and a
    // Redis key) is UTF-8, where every lone surrogate becomes U+FFFD, so these
    // two users shared a hashed key.
    it('escapes an unpaired surrogate apart from any text: never the same as its code written out', () => {
      for (const [lone, text] of [['\uD800', 'D800'], ['\uDFFF', 'DFFF'], ['x\uDBFF', 'xDBFF']]) {
        assert.notEqual(escapeKeyComponent(lone!), escapeKeyComponent(text!));
        assert.notEqual(escapeKeyComponent(lone!), escapeKeyComponent('%' + text!));
      }
    });

    it('tells apart users whose ids differ only in unpaired surrogates, once the key is hashed', () => {
      assert.notEqual(key('/x', { user: '\uD800' }), key('/x', { user: '\uDBFF' }));
      assert.notEqual(key(longPath, { user: '\uD800' }), key(longPath, { user: '\uDBFF' }));
    });
  });

  describe('response variants (variantKey) and header values', () => {
    const base = key('/api/search?q=x');

    it('normalizes a header value: repeated values joined, whitespace around list separators dropped (list fields only, not in quotes), absent stays absent', () => {
      assert.equal(normalizedHeaderValue('accept-language', undefined), undefined);
      assert.equal(normalizedHeaderValue('accept-language', ''), '');
      assert.equal(normalizedHeaderValue('accept-language', ' en '), 'en');
      assert.equal(normalizedHeaderValue('accept-language', 'en, fr'), 'en,fr');
      assert.equal(normalizedHeaderValue('accept', 'a, b'), 'a,b', 'a comma at index 1');
      assert.equal(normalizedHeaderValue('accept', 'a ,\tb, ,'), 'a,b');
      assert.equal(normalizedHeaderValue('accept-language', ['en', 'fr']), normalizedHeaderValue('accept-language', 'en,fr'));
      // Quoted strings keep their commas and spaces; fields that are not lists only lose their ends' whitespace.
      assert.equal(normalizedHeaderValue('sec-ch-ua', '"A, B";v="1", "C";v="2"'), '"A, B";v="1","C";v="2"');
      assert.equal(normalizedHeaderValue('user-agent', ' Foo (X, Y) '), 'Foo (X, Y)');
      assert.equal(normalizedHeaderValue('x-tenant', 'a, b'), 'a, b');
    });

    it("reads an HTTP/2 request's :authority as its Host, and as no other header it lacks", () => {
      const h2 = { ':authority': 'shop.example', ':path': '/a', 'accept-language': 'fr' };
      assert.equal(requestHeader(h2, 'host'), 'shop.example');
      assert.equal(requestHost(h2), 'shop.example');
      assert.equal(requestHeader(h2, 'accept-language'), 'fr');
      // A varied header the request does not send is absent from its key, over HTTP/2 as over HTTP/1.1.
      assert.equal(requestHeader(h2, 'accept-encoding'), undefined);
      assert.equal(requestHeader(h2, 'x-tenant'), undefined);
      // Koa's ctx.host reads :authority first: a Host beside it is not the host (RFC 9113 §8.3.1).
      assert.equal(requestHeader({ host: 'a.example', ':authority': 'b.example' }, 'host'), 'b.example', ':authority, when sent, is the host');
      assert.equal(requestHeader({ host: 'a.example' }, 'host'), 'a.example', 'Host, without :authority, is the host');
    });

    it('extends the base key with the varied header values', () => {
      const v = variantKey(base, [['accept-encoding', 'gzip']]);
      assert.ok(v.startsWith(base), v);
      assert.notEqual(v, base);
      assert.notEqual(v, variantKey(base, [['accept-encoding', 'br']]));
    });

    it('tells an absent varied header from an empty one, and one base from another', () => {
      assert.notEqual(variantKey(base, [['x-a', undefined]]), variantKey(base, [['x-a', '']]));
      assert.notEqual(variantKey(base, [['x-a', '1']]), variantKey(key('/api/search?q=y'), [['x-a', '1']]));
      assert.notEqual(variantKey(base, [['x-a', '1:u=2']]), variantKey(key('/api/search?q=x', { user: '2' }), [['x-a', '1']]));
    });

    it('keys credential fields (Authorization, Proxy-Authorization, Cookie) by a digest of their value, the same for every instance of a namespace', () => {
      const token = 'Bearer abc.def-secret';
      for (const name of ['authorization', 'proxy-authorization', 'cookie']) {
        const routeVary = key('/me', { vary: [[name, token]] });
        const variant = variantKey(base, [[name, token]]);
        for (const k of [routeVary, variant]) {
          assert.ok(!k.includes('secret') && !k.includes('abc'), k);
          assert.match(k, new RegExp(`${name}=#[A-Za-z0-9_-]{43}$`));
        }
        assert.equal(key('/me', { vary: [[name, token]] }), routeVary, 'computed again (another instance): the same key');
        assert.equal(variantKey(base, [[name, token]]), variant);
        assert.notEqual(key('/me', { vary: [[name, token + 'x']] }), routeVary);
        assert.notEqual(variantKey(base, [[name, token + 'x']]), variant);
        // Keyed by the namespace: another namespace's digest of the same value differs.
        const other = buildRequestKey({ namespace: 'other', method: 'GET', url: '/me', vary: [[name, token]] });
        assert.notEqual(other.slice(other.indexOf('=#')), routeVary.slice(routeVary.indexOf('=#')));
        // Absent stays the bare name, so the front door (which serves no request with credentials) keys as before.
        assert.equal(variantKey(base, [[name, undefined]]), base + ':r=' + name);
      }
      // Pinned: instances on node versions with and without crypto.hash (20.12) must compute the same digest.
      const pinned = createHash('sha256').update(`tiercache-credential:${NS}\0${token}`).digest('base64url');
      assert.equal(variantKey(base, [['authorization', token]]), `${base}:r=authorization=#${pinned}`);
      // Other fields keep their value in the key (debuggable), even one that reads like a digest.
      assert.equal(variantKey(base, [['accept-language', 'fr']]), base + ':r=accept-language=fr');
      assert.notEqual(variantKey(base, [['x-a', '#' + 'a'.repeat(43)]]).slice(base.length), ':r=x-a=#' + 'a'.repeat(43));
    });

    it('stays within MAX_KEY_LENGTH and keeps the head', () => {
      const v = variantKey(base, [['x-a', 'v'.repeat(2000)]]);
      assert.ok(v.length <= MAX_KEY_LENGTH);
      assert.ok(v.startsWith('shop:GET:#'), v);
      assert.notEqual(v, variantKey(base, [['x-a', 'v'.repeat(2001)]]));
      const hashedBase = key('/' + 'a'.repeat(2000));
      assert.ok(variantKey(hashedBase, [['x-a', '1']]).startsWith('shop:GET:'));
      assert.notEqual(variantKey(hashedBase, [['x-a', '1']]), hashedBase);
    });
  });

  describe('properties', function () {
    this.timeout(120_000);

    it('gives response variants keys of their own: never a request key, never another variant of another (request, values) pair', () => {
      fc.assert(
        fc.property(request, request, varyPairs, varyPairs, (a, b, pa, pb) => {
          const ka = keyOf(a);
          const kb = keyOf(b);
          const va = variantKey(ka, pa);
          assert.notEqual(va, kb, 'a variant key equals a request key');
          assert.notEqual(va, ka);
          const sameInputs = ka === kb && JSON.stringify(pa.map(([n, v]) => [n, v ?? null])) === JSON.stringify(pb.map(([n, v]) => [n, v ?? null]));
          assert.equal(va === variantKey(kb, pb), sameInputs);
        }),
        RUNS,
      );
    });

    it('never changes when query parameters with distinct root names are reordered', () => {
      // Root name: the part before the first '[' (qs merges a, a[] and a[x] into one a). A name
      // starting with '[' may join any root, so such a query is keyed in request order.
      const pairs = fc.uniqueArray(fc.tuple(nastyText().filter((n) => !n.startsWith('[')), nastyText()), { selector: (p) => rootName(p[0]), maxLength: 8 });
      const reordered = pairs.chain((list) => fc.tuple(fc.constant(list), fc.shuffledSubarray(list, { minLength: list.length, maxLength: list.length })));
      fc.assert(
        fc.property(reordered, requestPath, varyPairs, userScope, ([original, shuffled], path, vary, user) => {
          const a = { path, query: encodeQuery(original), vary, user };
          const b = { path, query: encodeQuery(shuffled), vary, user };
          assert.equal(keyOf(a), keyOf(b), `${urlOf(a)} vs ${urlOf(b)}`);
        }),
        RUNS,
      );
    });

    it('never changes when parameters move around, as long as parameters of the same root name keep their order', () => {
      const pairs = fc.array(fc.tuple(paramName.filter((n) => !n.startsWith('[')), nastyText()), { maxLength: 8 });
      const withOrder = pairs.chain((list) => fc.tuple(fc.constant(list), fc.array(fc.double({ noNaN: true }), { minLength: list.length, maxLength: list.length })));
      fc.assert(
        fc.property(withOrder, requestPath, ([original, priorities], path) => {
          // Shuffle by priority, then give each name's slots back its values in their original order.
          const shuffled = original.map((pair, i) => ({ pair, p: priorities[i]! })).sort((x, y) => x.p - y.p).map((x) => x.pair);
          const queues = new Map<string, Array<[string, string]>>();
          for (const pair of original) queues.set(rootName(pair[0]), [...(queues.get(rootName(pair[0])) ?? []), pair]);
          const moved = shuffled.map(([name]) => queues.get(rootName(name))!.shift()!);
          assert.equal(keyOf({ path, query: encodeQuery(original), vary: [], user: undefined }), keyOf({ path, query: encodeQuery(moved), vary: [], user: undefined }));
        }),
        RUNS,
      );
    });

    it('gives two independently generated requests the same key only when path, decoded query, vary values and user are all equal', () => {
      // b is generated on its own, then takes some of a's components (a random subset),
      // so the pair differs in any combination of components, each one generated independently.
      const shared = fc.record({ path: fc.boolean(), query: fc.boolean(), vary: fc.boolean(), user: fc.boolean() });
      fc.assert(
        fc.property(request, request, shared, (a, other, share) => {
          const b: Req = {
            path: share.path ? a.path : other.path,
            query: share.query ? a.query : other.query,
            vary: share.vary ? a.vary : other.vary,
            user: share.user ? a.user : other.user,
          };
          assertKeysFollowIdentity(a, b);
        }),
        RUNS,
      );
    });

    it('never lets one component forge the boundary to the next: text that ends a component with a separator and the next component never shares a key with that next component', () => {
      // Each forgery moves a component's content into the one before it, behind the separator
      // the key format puts between them; no escape may be missing for any separator.
      const forgeries = (text: string, name: string, value: string, user: string): Array<[Req, Req]> => [
        [{ path: `/a${text}:u=${user}`, query: undefined, vary: [], user: undefined }, { path: `/a${text}`, query: undefined, vary: [], user }],
        [{ path: `/a${text}:v=${name}=${value}`, query: undefined, vary: [], user: undefined }, { path: `/a${text}`, query: undefined, vary: [[name, value]], user: undefined }],
        [{ path: '/a', query: `q=${encodeURIComponent(text + ':u=' + user)}`, vary: [], user: undefined }, { path: '/a', query: `q=${encodeURIComponent(text)}`, vary: [], user }],
        [{ path: '/a', query: undefined, vary: [['x-a', `${text},${name}=${value}`]], user: undefined }, { path: '/a', query: undefined, vary: [['x-a', text], [name, value]], user: undefined }],
        [{ path: '/a', query: undefined, vary: [['x-a', `${text},${name}`]], user: undefined }, { path: '/a', query: undefined, vary: [['x-a', text], [name, undefined]], user: undefined }],
        [{ path: '/a', query: undefined, vary: [['x-a', `${text}:u=${user}`]], user: undefined }, { path: '/a', query: undefined, vary: [['x-a', text]], user }],
        [{ path: '/a', query: undefined, vary: [[`x-a=${text}`, undefined]], user: undefined }, { path: '/a', query: undefined, vary: [['x-a', text]], user: undefined }],
        [{ path: '/a', query: undefined, vary: [], user: `${text}%3A${user}` }, { path: '/a', query: undefined, vary: [], user: `${text}:${user}` }],
      ];
      fc.assert(
        fc.property(nastyText(6), fc.constantFrom('x-b', 'x-c'), nastyText(6), nastyText(6, 1), (text, name, value, user) => {
          for (const [a, b] of forgeries(text, name, value, user)) {
            if (identityOf(a) === identityOf(b)) continue;
            assert.notEqual(keyOf(a), keyOf(b), `forged boundary:\n  ${JSON.stringify(a)}\n  ${JSON.stringify(b)}`);
          }
        }),
        RUNS,
      );
    });

    it('gives a request and a near copy of it (one component perturbed) different keys unless the perturbation left it the same request', () => {
      fc.assert(
        fc.property(request, fc.array(mutation, { minLength: 1, maxLength: 2 }), (a, mutations) => {
          const b = mutations.reduce(mutate, a);
          assertKeysFollowIdentity(a, b);
        }),
        RUNS,
      );
    });
  });
});

/**
 * Different requests (by identityOf) must not share a key. The converse (one
 * request, one key, however its query is percent-encoded) is checked only when
 * every query name and value is valid percent-encoded UTF-8: an undecodable
 * escape is deliberately kept raw in the key (so '%FF' and '%FE' stay apart),
 * which may also keep '?%' apart from '?%25' -- a missed hit, never a wrong one;
 * and only when every parser reads the names alike (otherwise the query is
 * keyed as sent, in order: again a missed hit at worst), and when neither sends
 * raw a character browsers always escape (`"'<>`: such a part keeps its
 * spelling, since apps reflect the target as sent).
 */
function assertKeysFollowIdentity(a: Req, b: Req): void {
  const ka = keyOf(a);
  const kb = keyOf(b);
  const same = identityOf(a) === identityOf(b);
  if (!same) assert.notEqual(ka, kb, `different requests share the key ${JSON.stringify(ka)}:\n  ${JSON.stringify(a)}\n  ${JSON.stringify(b)}`);
  else if (decodesCleanly(a.query) && decodesCleanly(b.query) && namesReadAlike(a.query) && namesReadAlike(b.query) && !/["'<>]/.test(a.query ?? '') && !/["'<>]/.test(b.query ?? '')) {
    assert.equal(ka, kb, `the same request must have one key:\n  ${JSON.stringify(a)}\n  ${JSON.stringify(b)}`);
  }
}

function decodesCleanly(query: string | undefined): boolean {
  if (query === undefined) return true;
  return query.split('&').every((part) =>
    part.split('=').every((piece) => {
      try {
        decodeURIComponent(piece.replace(/\+/g, ' '));
        return true;
      } catch {
        return false;
      }
    }),
  );
}

// ---------------------------------------------------------------------------
// Near-miss pairs: small edits to one component (or text moved across the
// boundary between two adjacent components).

interface Mutation {
  kind: number;
  slot: number;
  at: number;
  unit: string;
  /** Separator-like text used when one component absorbs the next (kinds 8 and 9). */
  sep: string;
  count: number;
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  // Kinds 0-7 are small edits; kinds 8 and 9 (absorbing the next component or parameter) are weighted up
  // because it is what would forge a boundary if components were not escaped.
  kind: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 7 }), weight: 8 }, { arbitrary: fc.constantFrom(8, 9), weight: 4 }),
  slot: fc.nat(),
  at: fc.nat(),
  unit: nastyUnit,
  sep: fc.constantFrom('', ':', ':u=', ':v=', '=', ',', '?', '&', '/', '#', '%', '{', '}'),
  count: fc.integer({ min: 1, max: 4 }),
});

type Slot = { kind: 'path' } | { kind: 'query' } | { kind: 'varyName'; i: number } | { kind: 'varyValue'; i: number } | { kind: 'user' };

function slotsOf(req: Req): Slot[] {
  return [
    { kind: 'path' },
    { kind: 'query' },
    ...req.vary.flatMap((_, i): Slot[] => [{ kind: 'varyName', i }, { kind: 'varyValue', i }]),
    { kind: 'user' },
  ];
}

function getSlot(req: Req, slot: Slot): string | undefined {
  switch (slot.kind) {
    case 'path': return req.path;
    case 'query': return req.query;
    case 'varyName': return req.vary[slot.i]![0];
    case 'varyValue': return req.vary[slot.i]![1];
    case 'user': return req.user;
  }
}

function setSlot(req: Req, slot: Slot, value: string | undefined): void {
  switch (slot.kind) {
    case 'path':
      // Keep it a path: leading '/', no '?' or '#'.
      value = (value ?? '').replace(/[?#]/g, '');
      req.path = value.startsWith('/') ? value : '/' + value;
      return;
    case 'query':
      req.query = value === undefined ? undefined : asRawQuery(value);
      return;
    case 'varyName':
      req.vary[slot.i] = [value ?? '', req.vary[slot.i]![1]];
      return;
    case 'varyValue':
      req.vary[slot.i] = [req.vary[slot.i]![0], value];
      return;
    case 'user':
      req.user = value;
      return;
  }
}

function clone(req: Req): Req {
  return { path: req.path, query: req.query, vary: req.vary.map(([n, v]) => [n, v] as [string, string | undefined]), user: req.user };
}

/** Code points, so edits never split a surrogate pair. */
function cps(text: string | undefined): string[] {
  return Array.from(text ?? '');
}

function mutate(original: Req, m: Mutation): Req {
  const req = clone(original);
  const slots = slotsOf(req);
  const slot = slots[m.slot % slots.length]!;
  const chars = cps(getSlot(req, slot));
  const pos = m.at % (chars.length + 1);
  switch (m.kind) {
    case 0: // insert a unit
      chars.splice(pos, 0, m.unit);
      setSlot(req, slot, chars.join(''));
      break;
    case 1: // delete some code points
      chars.splice(pos, m.count);
      setSlot(req, slot, chars.join(''));
      break;
    case 2: { // flip the case of one code point
      const ch = chars[pos % Math.max(chars.length, 1)];
      if (ch !== undefined) {
        chars[pos % chars.length] = ch === ch.toUpperCase() ? ch.toLowerCase() : ch.toUpperCase();
        setSlot(req, slot, chars.join(''));
      }
      break;
    }
    case 3: { // percent-encode one code point (or decode an escape back)
      const i = pos % Math.max(chars.length, 1);
      const ch = chars[i];
      if (ch !== undefined) {
        const encoded = encodeURIComponent(ch);
        chars[i] = encoded !== ch ? encoded : '%' + ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0');
        setSlot(req, slot, chars.join(''));
      }
      break;
    }
    case 4: { // swap two '&'-separated parts of the query (changes the order of duplicates, or nothing)
      const parts = (req.query ?? '').split('&');
      const i = m.at % parts.length;
      const j = (m.at + m.count) % parts.length;
      [parts[i], parts[j]] = [parts[j]!, parts[i]!];
      req.query = asRawQuery(parts.join('&'));
      break;
    }
    case 5: { // move text across the boundary between this slot and the next one
      const next = slots[(m.slot % slots.length) + 1];
      if (next === undefined) break;
      const nextChars = cps(getSlot(req, next));
      if (m.at % 2 === 0) {
        const moved = chars.splice(Math.max(chars.length - m.count, 0));
        setSlot(req, slot, chars.join(''));
        setSlot(req, next, moved.join('') + nextChars.join(''));
      } else {
        const moved = nextChars.splice(0, m.count);
        setSlot(req, slot, chars.join('') + moved.join(''));
        setSlot(req, next, nextChars.join(''));
      }
      break;
    }
    case 6: { // absent <-> empty (query '?', vary value, user)
      const value = getSlot(req, slot);
      if (slot.kind === 'query' || slot.kind === 'varyValue' || slot.kind === 'user') setSlot(req, slot, value === undefined ? '' : undefined);
      break;
    }
    case 7: { // add or drop a query parameter or a vary pair
      if (slot.kind === 'query' || slot.kind === 'path') {
        const parts = req.query === undefined || req.query === '' ? [] : req.query.split('&');
        if (m.at % 2 === 0 || parts.length === 0) parts.splice(pos % (parts.length + 1), 0, `${encodeURIComponent(m.unit)}=${encodeURIComponent(m.unit)}`);
        else parts.splice(pos % parts.length, 1);
        req.query = parts.join('&');
      } else if (m.at % 2 === 0 || req.vary.length === 0) {
        req.vary.splice(pos % (req.vary.length + 1), 0, [m.unit, m.count % 2 === 0 ? undefined : m.unit]);
      } else {
        req.vary.splice(pos % req.vary.length, 1);
      }
      break;
    }
    case 8: { // this component absorbs the next one, joined by separator-like text; the next one goes away
      const index = m.slot % slots.length;
      const next = slots[index + 1];
      if (next === undefined) break;
      let absorbed: string;
      if (next.kind === 'varyName') {
        const [name, value] = req.vary[next.i]!;
        absorbed = value === undefined ? name : `${name}=${value}`;
        req.vary.splice(next.i, 1);
      } else {
        absorbed = getSlot(req, next) ?? '';
        setSlot(req, next, next.kind === 'path' ? '/' : undefined);
      }
      setSlot(req, slot, chars.join('') + m.sep + absorbed);
      break;
    }
    case 9: { // in the query, a parameter absorbs the value of the next one: ?id=1&id=2 -> ?id=1,2
      const parts = (req.query ?? '').split('&');
      if (parts.length < 2) break;
      const i = m.at % (parts.length - 1);
      const next = parts[i + 1]!;
      const eq = next.indexOf('=');
      parts.splice(i, 2, parts[i]! + m.sep + (eq === -1 ? next : next.slice(eq + 1)));
      req.query = parts.join('&');
      break;
    }
  }
  return req;
}
