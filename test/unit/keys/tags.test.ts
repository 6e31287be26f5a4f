import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_PATH_TAG_DEPTH, implicitTags, pathTags, prefixTag, prefixTags, tagPath, userTag, wellFormedTag } from '../../../src/keys/index.js';
import { RUNS, nastyText, refCovers, refTagPath } from './support.js';

/** Whether invalidatePrefix(prefix) reaches an entry filled for `path`. */
function reaches(prefix: string, path: string): boolean {
  const tags = prefixTags(prefix);
  return tags === undefined || tags.some((t) => implicitTags(path).includes(t));
}

describe('keys: tags', () => {
  it("gives /api/movies/7 for user u1 the tags ['user:u1', 'path:/api', 'path:/api/movies', 'path:/api/movies/7']", () => {
    assert.deepEqual(implicitTags('/api/movies/7', 'u1'), ['user:u1', 'path:/api', 'path:/api/movies', 'path:/api/movies/7']);
  });

  it('gives no user tag without a user, and a user tag for the empty user', () => {
    assert.deepEqual(implicitTags('/api/movies'), ['path:/api', 'path:/api/movies']);
    assert.deepEqual(implicitTags('/api', ''), ['user:', 'path:/api']);
    assert.equal(userTag('42'), 'user:42');
  });

  it('gives the root path no path tag', () => {
    assert.deepEqual(implicitTags('/'), []);
    assert.deepEqual(implicitTags('/', 'u1'), ['user:u1']);
    assert.deepEqual(pathTags('/'), []);
  });

  it('normalizes like the route table: case, trailing slash, repeated slashes, unreserved escapes, dot segments', () => {
    const expected = ['path:/api', 'path:/api/movies', 'path:/api/movies/7'];
    for (const path of ['/API/Movies/7', '/api/movies/7/', '//api/movies//7', '/%61pi/m%6Fvies/7', '/api/x/../movies/./7']) {
      assert.deepEqual(implicitTags(path), expected, path);
    }
  });

  it("makes prefixTag('/api/movies/') 'path:/api/movies', the tag entries under it carry", () => {
    assert.equal(prefixTag('/api/movies/'), 'path:/api/movies');
    assert.equal(prefixTag('/API/Movies'), 'path:/api/movies');
    assert.equal(prefixTag('/api/m%6Fvies'), 'path:/api/movies');
    assert.ok(implicitTags('/api/movies/7').includes(prefixTag('/api/movies/')!));
  });

  it("gives prefixTag('/') no tag, since '/' covers everything", () => {
    assert.equal(prefixTag('/'), undefined);
    assert.equal(prefixTag('//'), undefined);
    assert.equal(prefixTag(''), undefined);
  });

  it("does not give /api/moviesX (or /api/movies-1) the tag 'path:/api/movies'", () => {
    assert.ok(!implicitTags('/api/moviesX').includes('path:/api/movies'));
    assert.ok(!implicitTags('/api/movies-1/2').includes('path:/api/movies'));
    assert.ok(!implicitTags('/api/movies%2F7').includes('path:/api/movies'));
    assert.ok(implicitTags('/api/movies/7').includes('path:/api/movies'));
  });

  it(`caps path tags at MAX_PATH_TAG_DEPTH (${MAX_PATH_TAG_DEPTH}) segments, and prefixTag of a deeper prefix returns the deepest tag`, () => {
    const segments = Array.from({ length: MAX_PATH_TAG_DEPTH + 4 }, (_, i) => `s${i}`);
    const deep = '/' + segments.join('/');
    const tags = implicitTags(deep);
    assert.equal(tags.length, MAX_PATH_TAG_DEPTH);
    const deepest = 'path:/' + segments.slice(0, MAX_PATH_TAG_DEPTH).join('/');
    assert.equal(tags.at(-1), deepest);
    for (let depth = MAX_PATH_TAG_DEPTH; depth <= segments.length; depth++) {
      assert.equal(prefixTag('/' + segments.slice(0, depth).join('/')), deepest, `depth ${depth}`);
    }
    assert.equal(prefixTag('/' + segments.slice(0, MAX_PATH_TAG_DEPTH - 1).join('/')), 'path:/' + segments.slice(0, MAX_PATH_TAG_DEPTH - 1).join('/'));
  });

  describe('encoded and decoded spellings of a path (invalidatePrefix with req.params values)', () => {
    it("gives '/api/users/john%20doe' the tags of '/api/users/john doe', so invalidatePrefix with the decoded id reaches it", () => {
      assert.deepEqual(implicitTags('/api/users/john%20doe'), implicitTags('/api/users/john doe'));
      assert.ok(reaches('/api/users/john doe', '/api/users/john%20doe'));
      assert.ok(reaches('/api/users/john%20doe', '/api/users/john%20doe/posts'));
    });

    it("gives '/api/users/jos%C3%A9', '/api/users/JOS%C3%89' and '/api/users/josé' one tag", () => {
      assert.equal(prefixTag('/api/users/jos%C3%A9'), 'path:/api/users/josé');
      assert.equal(prefixTag('/api/users/JOS%C3%89'), 'path:/api/users/josé');
      assert.equal(prefixTag('/api/users/José'), 'path:/api/users/josé');
      assert.ok(reaches('/api/users/josé', '/api/users/jos%C3%A9'));
    });

    it("keeps %2F encoded: '/a%2Fb' is one segment, and '/a' does not cover it", () => {
      assert.deepEqual(implicitTags('/a%2Fb'), ['path:/a%2fb']);
      assert.ok(!reaches('/a', '/a%2Fb'));
      assert.ok(reaches('/a%2fb', '/a%2Fb/c'));
    });

    it('leaves escapes that are not UTF-8 escaped: /a/%FF%C3%A9 -> /a/%ffé', () => {
      assert.equal(tagPath('/a/%FF%C3%A9'), '/a/%ffé');
      assert.equal(tagPath('/a/%C0%80'), '/a/%c0%80');
      assert.equal(tagPath('/a/%E2%82'), '/a/%e2%82');
    });

    it('decodes characters of every UTF-8 length, lead bytes at the ends of their ranges included', () => {
      const chars = ['\u0080', '£', '\u07ff', 'ߐ', '\u0800', 'अ', '\uffee', '😀', '\u{10ffff}'];
      for (const ch of chars) assert.equal(tagPath('/a/' + encodeURIComponent(ch)), '/a/' + ch.toLowerCase(), `U+${ch.codePointAt(0)!.toString(16)}`);
      // Bytes that start no sequence stay escaped: a lone continuation byte, C0/C1 (overlong), F5 and above.
      assert.equal(tagPath('/a/%80%C2%A3'), '/a/%80£');
      assert.equal(tagPath('/a/%C1%BF%DF%BF'), '/a/%c1%bf\u07ff');
      assert.equal(tagPath('/a/%F5%80%80%80x'), '/a/%f5%80%80%80x');
    });

    it("reads a prefix holding '%' also as decoded text: ids '100%' and '%41' reach /users/100%25 and /users/%2541", () => {
      assert.ok(reaches('/users/100%', '/users/100%25'));
      assert.ok(reaches('/users/%41', '/users/%2541'), 'the decoded id %41');
      assert.ok(reaches('/users/%41', '/users/A'), 'the encoded reading of %41');
      assert.deepEqual(prefixTags('/users/%41'), ['path:/users/a', 'path:/users/%41']);
      assert.deepEqual(prefixTags('/users/plain'), ['path:/users/plain']);
      assert.equal(prefixTags('/%2e'), undefined, "a reading that is '/' covers everything");
    });
  });

  it("reads a prefix holding '?' or '#' both as a request target (req.originalUrl: query and fragment cut) and as text of a decoded value", () => {
    assert.ok(reaches('/api/movies/7?x=1', '/api/movies/7'), 'the path of a request target');
    assert.ok(reaches('/api/movies/7#top', '/api/movies/7/cast'), 'the path of a request target, and what is under it');
    assert.ok(!reaches('/api/movies/7?x=1', '/api/movies/70'), 'whole segments still');
    assert.ok(reaches('/users/what?', '/users/what%3F'), "a decoded id holding '?'");
    assert.ok(reaches('/users/a#b', '/users/a%23b'), "a decoded id holding '#'");
    assert.deepEqual(prefixTags('/users/plain?x'), ['path:/users/plain?x', 'path:/users/plain']);
    assert.deepEqual(prefixTags('/?utm=1'), ['path:/?utm=1'], "the root's path is not widened to everything (invalidatePrefix('/') says so itself)");
    assert.deepEqual(prefixTags('/#top'), ['path:/#top']);
  });

  // Regression for the normalizeRoutePath fast-path bug (see route-table.test.ts):
  // invalidatePrefix('/É') bumped 'path:/É' while the entry for '/É/X' carried 'path:/é'.
  it("gives /É/X the tag prefixTag('/É') returns, as it does for /É/x", () => {
    assert.ok(implicitTags('/É/x').includes(prefixTag('/É')!));
    assert.ok(implicitTags('/É/X').includes(prefixTag('/É')!), `${JSON.stringify(implicitTags('/É/X'))} lacks ${prefixTag('/É')}`);
  });

  describe('properties', function () {
    this.timeout(120_000);

    it('lets invalidatePrefix(`/api/users/${id}`) with the decoded id reach the entries of every encoding of that id', () => {
      // An id as the app sees it in req.params (decoded), and how a client may have spelled it.
      const id = nastyText(10, 1).filter((t) => !t.includes('/') && !['.', '..'].includes(t));
      const spelling = fc.constantFrom<(t: string) => string>(
        encodeURIComponent,
        encodeURI,
        (t) => Array.from(t, (ch) => (/[A-Za-z0-9]/.test(ch) ? ch : encodeURIComponent(ch))).join(''),
        (t) => Array.from(new TextEncoder().encode(t), (b) => '%' + b.toString(16).padStart(2, '0')).join(''),
      );
      fc.assert(
        fc.property(id, spelling, fc.constantFrom('', '/posts', '/posts/7'), (value, spell, below) => {
          const sent = spell(value);
          fc.pre(decodeURIComponent(sent) === value && !sent.includes('/') && !sent.includes('?') && !sent.includes('#'));
          const path = `/api/users/${sent}${below}`;
          assert.ok(reaches(`/api/users/${value}`, path), `invalidatePrefix('/api/users/${value}') misses ${path}: ${JSON.stringify(prefixTags(`/api/users/${value}`))} vs ${JSON.stringify(implicitTags(path))}`);
          assert.ok(reaches(`/api/users/${sent}`, path), `invalidatePrefix('/api/users/${sent}') misses ${path}`);
        }),
        RUNS,
      );
    });

    /** Segments that never normalize away (no '', '.', '..', nor their escapes). */
    const segment = fc.oneof(
      { arbitrary: fc.constantFrom('api', 'API', 'Api', '%61pi', 'movies', 'Movies', 'x', 'X', '~', '%7E', '%2F', 'a.b', '..a', 'é', 'É', '日', '😀', 'v1'), weight: 4 },
      { arbitrary: nastyText(8, 1).map((t) => t.replace(/[/?#]/g, '')), weight: 1 },
    ).filter((s) => !['', '.', '..'].includes(s.replace(/%2e/gi, '.')));
    // Upper-cases ASCII letters only: toUpperCase is not undone by toLowerCase for every letter ('ß' -> 'SS').
    const variant = (path: string, upper: boolean, trailingSlash: boolean) => (upper ? path.replace(/[a-z]/g, (c) => c.toUpperCase()) : path) + (trailingSlash ? '/' : '');

    it('makes prefixTag(Q) one of implicitTags(P) for every path P and every whole-segment prefix Q of P', () => {
      fc.assert(
        fc.property(
          fc.array(segment, { minLength: 1, maxLength: MAX_PATH_TAG_DEPTH + 4 }),
          fc.nat(),
          fc.boolean(),
          fc.boolean(),
          fc.option(nastyText(), { nil: undefined }),
          (segments, cut, upper, trailingSlash, user) => {
            const p = '/' + segments.join('/');
            const depth = (cut % segments.length) + 1;
            // Q as written by whoever invalidates: maybe in another case, maybe with a trailing slash.
            const q = variant('/' + segments.slice(0, depth).join('/'), upper, trailingSlash);
            const tags = implicitTags(p, user);
            const tag = prefixTag(q);
            assert.ok(tag !== undefined && tags.includes(tag), `prefixTag(${JSON.stringify(q)}) = ${tag} is not among implicitTags(${JSON.stringify(p)}) = ${JSON.stringify(tags)}`);
          },
        ),
        RUNS,
      );
    });

    it('gives a path exactly its whole-segment prefixes (up to the depth cap) as path tags', () => {
      // Q is either unrelated to P or a prefix of P whose last segment may differ: the near misses.
      const pAndQ = fc.array(segment, { maxLength: MAX_PATH_TAG_DEPTH + 4 }).chain((pSegments) =>
        fc.tuple(
          fc.constant(pSegments),
          fc.oneof(
            fc.array(segment, { minLength: 1, maxLength: MAX_PATH_TAG_DEPTH }),
            fc.tuple(fc.integer({ min: 0, max: Math.min(pSegments.length, MAX_PATH_TAG_DEPTH - 1) }), segment, fc.boolean()).map(([k, last, keep]) =>
              keep && k < pSegments.length ? pSegments.slice(0, k + 1) : [...pSegments.slice(0, k), last],
            ),
          ),
        ),
      );
      fc.assert(
        fc.property(pAndQ, ([pSegments, qSegments]) => {
          const p = '/' + pSegments.join('/');
          const q = '/' + qSegments.join('/');
          const normalizedP = refTagPath(p);
          const normalizedQ = refTagPath(q);
          const expectedP = normalizedP === '/' ? [] : normalizedP.slice(1).split('/').slice(0, MAX_PATH_TAG_DEPTH).map((_, i, all) => 'path:/' + all.slice(0, i + 1).join('/'));
          assert.deepEqual(implicitTags(p), expectedP, p);
          // A prefix within the depth cap is tagged on P exactly when it covers P.
          const tag = prefixTag(q);
          assert.equal(tag !== undefined && implicitTags(p).includes(tag), refCovers(normalizedQ, normalizedP), `prefixTag(${JSON.stringify(q)}) vs ${JSON.stringify(p)}`);
        }),
        RUNS,
      );
    });
  });

  describe('wellFormedTag (tags as UTF-8 carries them)', () => {
    it('is the tag itself when it holds no lone surrogate, surrogate pairs included', () => {
      for (const tag of ['user:42', 'movie:é✓', 'user:\u{1F600}', '']) assert.equal(wellFormedTag(tag), tag);
    });

    it('turns each lone surrogate, high or low, at either end or between others, into U+FFFD', () => {
      assert.equal(wellFormedTag('u\uD800'), 'u\uFFFD');
      assert.equal(wellFormedTag('\uDC00u'), '\uFFFDu');
      assert.equal(wellFormedTag('\uDC00\uD800'), '\uFFFD\uFFFD');
      assert.equal(wellFormedTag('\uD800\uD83D\uDE00\uDC00'), '\uFFFD\u{1F600}\uFFFD');
      assert.equal(userTag('\uD800'), 'user:\uFFFD');
    });

    it('gives what a UTF-8 round trip (Redis, the bus, L2) gives, for any string of code units', () => {
      const units = fc.integer({ min: 0xd7f0, max: 0xe010 }).map((c) => String.fromCharCode(c));
      fc.assert(
        fc.property(fc.array(fc.oneof(units, fc.constantFrom('a', ':', '\u{1F600}')), { maxLength: 12 }), (parts) => {
          const tag = parts.join('');
          assert.equal(wellFormedTag(tag), Buffer.from(tag, 'utf8').toString('utf8'));
        }),
        RUNS,
      );
    });
  });
});
