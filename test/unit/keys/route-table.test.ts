import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RouteTable, normalizeRoutePath, parentPath, pathOf, type RouteRuleInput } from '../../../src/keys/index.js';
import {
  RUNS,
  assertConfigError,
  hasDotSegment,
  nastyText,
  nastyUnit,
  refCovers,
  refNormalize,
  stripQueryAndFragment,
} from './support.js';

/** What the table refuses as router pattern syntax: a ':param' segment, '*', '?', '(', ')', '[', ']', '{', '}', '#'. */
const ROUTER_PATTERN = /(^|\/):|[*?()[\]{}#]/;

describe('keys: RouteTable', () => {
  describe('matching', () => {
    const table = new RouteTable({
      '/api': '1m',
      '/api/movies': '5m',
      '/api/movies/meta': { ttl: '10m', staleWhileRevalidate: '1m', staleIfError: '1h' },
      '/api/admin': false,
    });

    it('picks the longest matching prefix', () => {
      assert.equal(table.match('/api/movies/7')?.ttl, 300_000);
      assert.equal(table.match('/api/movies/meta/7')?.ttl, 600_000);
      assert.equal(table.match('/api/movies/meta')?.ttl, 600_000);
      assert.equal(table.match('/api/movies')?.ttl, 300_000);
      assert.equal(table.match('/api/other')?.ttl, 60_000);
      assert.equal(table.match('/api')?.ttl, 60_000);
    });

    it('matches on whole path segments only: /api/moviesX and /api/movies-1 fall back to the /api rule', () => {
      assert.equal(table.match('/api/moviesX')?.prefix, '/api');
      assert.equal(table.match('/api/movies-1')?.prefix, '/api');
      assert.equal(table.match('/api/movies%20')?.prefix, '/api');
      assert.equal(table.match('/api/movies.json')?.prefix, '/api');
      assert.equal(table.match('/apix'), undefined);
      assert.equal(table.match('/ap'), undefined);
    });

    it('matches a prefix beyond ASCII, or with a space, as clients send the path: percent-encoded UTF-8 (found by helper-70)', () => {
      const t = new RouteTable({ '/': '1m', '/café': false, '/price list': false, '/😀': false });
      for (const path of ['/caf%C3%A9', '/caf%c3%a9/menu', '/price%20list', '/price%20list/2026', '/%F0%9F%98%80']) assert.equal(t.match(path)?.cache, false, path);
      assert.equal(t.match('/cafe')?.cache, true);
      assert.equal(t.match('/caf%C3%A9')?.prefix, '/café');
      assertConfigError(() => new RouteTable({ '/\uD800': '1m' }), "routes['/\uD800']", 'lone surrogate');
    });

    it('returns no rule for a path no prefix covers', () => {
      assert.equal(table.match('/'), undefined);
      assert.equal(table.match('/static/app.js'), undefined);
    });

    it('turns a false entry into a rule with cache === false', () => {
      const rule = table.match('/api/admin/users');
      assert.equal(rule?.cache, false);
      assert.equal(rule?.ttl, undefined);
      assert.equal(table.match('/api/movies')?.cache, true);
    });

    it('keeps the prefix as written and the durations in milliseconds', () => {
      const rule = table.match('/api/movies/meta/1');
      assert.deepEqual({ ...rule }, { prefix: '/api/movies/meta', cache: true, ttl: 600_000, staleWhileRevalidate: 60_000, staleIfError: 3_600_000 });
      assert.ok(Object.isFrozen(rule));
    });

    it('treats /ADMIN/, /admin/ and /%61dmin as the /admin rule', () => {
      const t = new RouteTable({ '/admin': false, '/': '1m' });
      for (const path of ['/admin', '/ADMIN/', '/admin/', '/%61dmin', '/%61DMIN', '/%41dmin', '/Admin/users', '/%61dmin/users', '//admin', '/admin//', '/./admin', '/x/../admin']) {
        assert.equal(t.match(path)?.cache, false, `${path} should hit the /admin rule`);
      }
    });

    it('matches case-insensitively whichever side is upper case', () => {
      const t = new RouteTable({ '/API/Movies': '5m' });
      assert.equal(t.match('/api/movies/7')?.ttl, 300_000);
      assert.equal(t.match('/API/MOVIES')?.ttl, 300_000);
    });

    it('ignores a trailing slash on the prefix and on the path', () => {
      const t = new RouteTable({ '/api/movies/': '5m' });
      assert.equal(t.match('/api/movies')?.ttl, 300_000);
      assert.equal(t.match('/api/movies/')?.ttl, 300_000);
      assert.equal(t.match('/api/moviesX'), undefined);
    });

    it('decodes only unreserved characters: %2F is not a segment separator', () => {
      const t = new RouteTable({ '/api/movies': '5m', '/api': '1m' });
      assert.equal(t.match('/api%2Fmovies'), undefined);
      assert.equal(t.match('/api/movies%2F7')?.prefix, '/api');
      assert.equal(t.match('/api/m%6Fvies/7')?.prefix, '/api/movies');
      assert.equal(t.match('/api/%6D%6F%76%69%65%73')?.prefix, '/api/movies');
    });

    it('decodes exactly the escapes of unreserved characters (RFC 3986: ALPHA, DIGIT, - . _ ~), whatever the hex case', () => {
      const unreserved = /^[A-Za-z0-9\-._~]$/;
      for (let code = 0; code < 256; code++) {
        const hex = code.toString(16).padStart(2, '0');
        const ch = String.fromCharCode(code);
        const expected = '/a' + (unreserved.test(ch) ? ch.toLowerCase() : '%' + hex);
        for (const escape of [hex.toUpperCase(), hex.toLowerCase()]) {
          assert.equal(normalizeRoutePath(`/a%${escape}`), expected, `/a%${escape}`);
        }
      }
    });

    it("always gives a path starting with '/', also for one that comes without it", () => {
      assert.equal(normalizeRoutePath('api'), '/api');
      assert.equal(normalizeRoutePath('api/x'), '/api/x');
      assert.equal(normalizeRoutePath(''), '/');
    });

    it("gives the parent of a normalized path: '/' for a top-level one, none for '/'", () => {
      assert.equal(parentPath('/a/b/c'), '/a/b');
      assert.equal(parentPath('/a'), '/');
      assert.equal(parentPath('/'), undefined);
    });

    it('lets a root rule / match every path, and longer rules still win', () => {
      const t = new RouteTable({ '/': '1m', '/api': false });
      assert.equal(t.match('/')?.prefix, '/');
      assert.equal(t.match('')?.prefix, '/');
      assert.equal(t.match('/anything/at/all')?.prefix, '/');
      assert.equal(t.match('/apix')?.prefix, '/');
      assert.equal(t.match('/api/x')?.cache, false);
    });

    it('does not match on the query string: pathOf() strips it before lookup', () => {
      const t = new RouteTable({ '/api/admin': false, '/api': '1m' });
      assert.equal(pathOf('/api/movies?next=/api/admin'), '/api/movies');
      assert.equal(pathOf('/api/admin?x=1#frag'), '/api/admin');
      assert.equal(pathOf('/api/admin#frag'), '/api/admin');
      assert.equal(t.match(pathOf('/api/movies?next=/api/admin'))?.prefix, '/api');
      assert.equal(t.match(pathOf('/api/admin?x=1'))?.cache, false);
      assert.equal(t.match(pathOf('/api?/admin'))?.prefix, '/api');
    });

    it('matches nothing when the table is empty or undefined', () => {
      assert.equal(new RouteTable(undefined).match('/api'), undefined);
      assert.equal(new RouteTable(undefined).size, 0);
      assert.equal(new RouteTable({}).match('/'), undefined);
    });

    // Regression (found by these tests, fixed in 8d23c41): normalizeRoutePath's
    // fast path skipped lower-casing when the path had no ASCII upper case, while
    // the slow path lower-cases every letter, so '/É' stayed '/É' but '/É/' and
    // '/É/X' became '/é' and '/é/x'.
    it('applies a rule with a non-ASCII upper-case letter (/É) to /É/ and /É/X as it does to /É/x', () => {
      const t = new RouteTable({ '/É': '5m' });
      assert.equal(t.match('/É/x')?.ttl, 300_000);
      assert.equal(t.match('/É/')?.ttl, 300_000, "'/É/' (trailing slash) should hit the '/É' rule");
      assert.equal(t.match('/É/X')?.ttl, 300_000, "'/É/X' should hit the '/É' rule like '/É/x' does");
      assert.equal(normalizeRoutePath('/É/'), normalizeRoutePath('/É'));
    });
  });

  describe('validation', () => {
    it("throws naming routes['api'] for a prefix that does not start with '/'", () => {
      assertConfigError(() => new RouteTable({ api: '5m' }), "routes['api']", '"api"', /must be a path prefix starting with '\/'/);
      assertConfigError(() => new RouteTable({ '/ok': '1m', 'api/movies': '5m' }), "routes['api/movies']", '"api/movies"');
      assertConfigError(() => new RouteTable({ '': '5m' }), "routes['']", '""');
      assertConfigError(() => new RouteTable({ 'http://x/api': '5m' }), "routes['http://x/api']", '"http://x/api"');
    });

    it('uses the option name it was given in its errors', () => {
      assertConfigError(() => new RouteTable({ api: '5m' }, 'cache.routes'), "cache.routes['api']", '"api"');
    });

    it('throws when routes is not a plain object', () => {
      for (const [routes, shown] of [[null, 'null'], [[], 'an array'], ['x', '"x"'], [5, '5']] as const) {
        assertConfigError(() => new RouteTable(routes as never), 'routes', shown, /must be an object mapping path prefixes to a TTL, false, or a rule object/);
      }
    });

    it('throws for prefixes that are the same after normalization, naming the second one', () => {
      assertConfigError(() => new RouteTable({ '/api': '1m', '/API/': '5m' }), "routes['/API/']", '"/API/"', /must not repeat the prefix '\/api' \(prefixes match case-insensitively, trailing slash ignored\)/);
      assertConfigError(() => new RouteTable({ '/api/movies': '1m', '/api//movies/': '5m' }), "routes['/api//movies/']", '"/api//movies/"');
      assertConfigError(() => new RouteTable({ '/api': '1m', '/%61pi': false }), "routes['/%61pi']", '"/%61pi"');
      assert.equal(new RouteTable({ '/api': '1m', '/apis': '5m', '/api/x': 1 }).size, 3);
    });

    it('throws naming the rule and key for an unknown key in a rule object', () => {
      assertConfigError(() => new RouteTable({ '/x': { ttl: '1m', tll: '5m' } as never }), "routes['/x'].tll", '"5m"', /is not a known rule option \(known: ttl, staleWhileRevalidate, staleIfError, vary, negativeTtl, shared, query, freshness, jitter\)/);
      assertConfigError(() => new RouteTable({ '/x': null as never }), "routes['/x']", 'null', /must be a TTL \(number of ms or a string like "5m"\), false, or a rule object/);
    });

    it('throws naming the field for a bad duration in a rule', () => {
      assertConfigError(() => new RouteTable({ '/x': '-1s' }), "routes['/x']", '"-1s"');
      assertConfigError(() => new RouteTable({ '/x': -5 }), "routes['/x']", '-5');
      assertConfigError(() => new RouteTable({ '/x': { ttl: 'soon' as never } }), "routes['/x'].ttl", '"soon"');
      assertConfigError(() => new RouteTable({ '/x': { ttl: '1m', staleWhileRevalidate: -1 } }), "routes['/x'].staleWhileRevalidate", '-1');
      assertConfigError(() => new RouteTable({ '/x': { staleIfError: 'abc' as never } }), "routes['/x'].staleIfError", '"abc"');
      assertConfigError(() => new RouteTable({ '/x': { negativeTtl: Number.NaN } }), "routes['/x'].negativeTtl", 'NaN');
    });

    it('lower-cases vary header names and drops duplicates', () => {
      const t = new RouteTable({ '/search': { ttl: '30s', vary: ['Accept-Language', 'X-Tenant', 'accept-language'] } });
      assert.deepEqual(t.match('/search')?.vary, ['accept-language', 'x-tenant']);
    });

    it('rejects a vary list that is not a list of header names', () => {
      assertConfigError(() => new RouteTable({ '/x': { vary: ['bad header'] } }), "routes['/x'].vary", 'an array');
      assertConfigError(() => new RouteTable({ '/x': { vary: 'accept' as never } }), "routes['/x'].vary", '"accept"');
      assertConfigError(() => new RouteTable({ '/x': { vary: [''] } }), "routes['/x'].vary", 'an array');
    });

    it('validates shared, freshness and query', () => {
      assertConfigError(() => new RouteTable({ '/x': { shared: 'yes' as never } }), "routes['/x'].shared", '"yes"');
      assertConfigError(() => new RouteTable({ '/x': { freshness: 'maybe' as never } }), "routes['/x'].freshness", '"maybe"');
      assertConfigError(() => new RouteTable({ '/x': { query: 'page' as never } }), "routes['/x'].query", '"page"');
      const rule = new RouteTable({ '/x': { shared: true, freshness: 'origin', query: ['page', 'sort'] } }).match('/x');
      assert.equal(rule?.shared, true);
      assert.equal(rule?.freshness, 'origin');
      assert.deepEqual([...(rule?.query ?? [])], ['page', 'sort']);
    });

    it('rejects entries that are neither a duration, false, nor a rule object', () => {
      for (const [input, shown] of [[true, 'true'], [null, 'null'], [['5m'], 'an array']] as Array<[unknown, string]>) {
        assertConfigError(() => new RouteTable({ '/x': input as RouteRuleInput }), "routes['/x']", shown);
      }
    });

    it("refuses router patterns ('/api/movies/:id', '/api/*') that would never match, naming the literal prefix to write instead", () => {
      const cases: Array<[string, string]> = [
        ['/api/movies/:id', "'/api/movies'"],
        ['/api/*', "'/api'"],
        ['/api/movies/(\\d+)', "'/api/movies'"],
        ['/api/movies/:id?', "'/api/movies'"],
        ['/API/Movies/{:id}', "'/API/Movies'"],
        ['/api/[id]', "'/api'"],
        ['/*', "'/'"],
        ['/:lang/docs', "'/'"],
        ['/api/mov*', "'/api'"],
        ['/api/x*/y', "'/api'"],
        ['/api//:id/x', "'/api'"],
        ['/api///:id', "'/api'"],
        ['/a/:/b', "'/a'"],
      ];
      for (const [prefix, literal] of cases) {
        assertConfigError(() => new RouteTable({ '/ok': '1m', [prefix]: '5m' }), `routes['${prefix}']`, JSON.stringify(prefix));
        assert.throws(() => new RouteTable({ [prefix]: '5m' }), (e: Error) => e.message.includes('router pattern') && e.message.includes(literal), `${prefix}: the message should say to write ${literal}`);
      }
      // The message names the pattern character itself.
      assert.throws(() => new RouteTable({ '/api/:id': '5m' }), /is a router pattern \(':'\)/);
      assert.throws(() => new RouteTable({ '/api/*': '5m' }), /is a router pattern \('\*'\)/);
      // Literal prefixes with ':' inside a segment or '+' are fine.
      assert.equal(new RouteTable({ '/files/v1:batch': '1m', '/tags/c++': '1m', '/a-b_c.d~e': '1m' }).size, 3);
    });

    it('refuses a TTL of 0 (stored, never served) in every spelling, saying to use false to never cache', () => {
      for (const [input, option, shown] of [
        [0, "routes['/x']", '0'],
        ['0s', "routes['/x']", '"0s"'],
        [0.4, "routes['/x']", '0.4'],
        [{ ttl: 0 }, "routes['/x'].ttl", '0'],
        [{ ttl: '0ms', staleWhileRevalidate: '1m' }, "routes['/x'].ttl", '"0ms"'],
      ] as Array<[RouteRuleInput, string, string]>) {
        assertConfigError(() => new RouteTable({ '/x': input }), option, shown);
        assert.throws(() => new RouteTable({ '/x': input }), /use false to never cache/);
      }
      assertConfigError(() => new RouteTable({ '/x': { ttl: '1m', negativeTtl: 0 } }), "routes['/x'].negativeTtl", '0');
      assert.throws(() => new RouteTable({ '/x': { negativeTtl: 0 } }), /leave negativeTtl out/);
      // Stale windows of 0 mean "none" and stay allowed.
      assert.equal(new RouteTable({ '/x': { ttl: 1, staleWhileRevalidate: 0, staleIfError: 0 } }).size, 1);
    });

    it('accepts a duration string, a number of milliseconds, false and an empty rule object', () => {
      const t = new RouteTable({ '/a': '5m', '/b': 1500, '/c': false, '/d': {} });
      assert.deepEqual({ ...t.match('/a') }, { prefix: '/a', cache: true, ttl: 300_000 });
      assert.deepEqual({ ...t.match('/b') }, { prefix: '/b', cache: true, ttl: 1500 });
      assert.deepEqual({ ...t.match('/c') }, { prefix: '/c', cache: false });
      assert.deepEqual({ ...t.match('/d') }, { prefix: '/d', cache: true });
    });
  });

  describe('properties', function () {
    this.timeout(120_000);

    /** Segment text: lots of case, escapes and separators, never '?' or '#'. */
    const suffixText = (minLength: number) => nastyText(16, minLength).map(stripQueryAndFragment);

    /** Path segments that collide often: case variants, escapes of unreserved characters, dots. */
    const poolSegment = fc.constantFrom(
      'api', 'API', 'Api', '%61pi', '%41PI', 'movies', 'Movies', 'm%6Fvies', 'moviesx', 'movies-1', 'x', 'X', '%78',
      'a.b', '~', '%7E', '-', '_', '%2F', '%2f', '%20', 'é', 'É', '日', '😀', 'v1', 'V1',
    );
    const pathSegment = fc.oneof(
      { arbitrary: poolSegment, weight: 8 },
      { arbitrary: fc.constantFrom('', '.', '..', '%2e', '%2E%2e'), weight: 1 },
      { arbitrary: suffixText(1).map((s) => s.replace(/\//g, '')), weight: 1 },
    );
    const path = fc
      .tuple(fc.array(pathSegment, { maxLength: 6 }), fc.boolean())
      .map(([segments, trailingSlash]) => '/' + segments.join('/') + (trailingSlash ? '/' : ''));

    /** A table of distinct (after normalization) literal prefixes, each rule told apart by its ttl (its index). */
    function tableOf(prefixes: string[], normalize: (p: string) => string): { routes: Record<string, number>; normalized: Map<string, number> } {
      const routes: Record<string, number> = {};
      const normalized = new Map<string, number>();
      for (const prefix of prefixes) {
        if (ROUTER_PATTERN.test(prefix)) continue; // refused by the table (see 'validation')
        const n = normalize(prefix);
        if (normalized.has(n) || Object.hasOwn(routes, prefix)) continue;
        const ttl = normalized.size + 1;
        normalized.set(n, ttl);
        routes[prefix] = ttl;
      }
      return { routes, normalized };
    }

    it("never applies the '/api/movies' rule to '/api/movies' + a suffix that does not start with '/', and applies it to '/api/movies/<anything>'", () => {
      const MOVIES_TTL = 1_000_000;
      const otherPrefixes = fc.array(path, { maxLength: 6 });
      const notSlash = nastyUnit.filter((u) => !u.startsWith('/') && !u.startsWith('?') && !u.startsWith('#'));
      const badSuffix = fc.tuple(notSlash, suffixText(0)).map(([first, rest]) => first + rest).filter((s) => !hasDotSegment('/api/movies' + s));
      const subPath = suffixText(0).filter((s) => !hasDotSegment('/api/movies/' + s));
      fc.assert(
        fc.property(otherPrefixes, fc.constantFrom('/api/movies', '/API/Movies/', '/api/m%6Fvies'), badSuffix, subPath, (others, moviesPrefix, suffix, below) => {
          const { routes } = tableOf(others.filter((p) => normalizeRoutePath(p) !== '/api/movies'), normalizeRoutePath);
          routes[moviesPrefix] = MOVIES_TTL;
          const table = new RouteTable(routes);

          const outside = table.match('/api/movies' + suffix);
          assert.notEqual(outside?.ttl, MOVIES_TTL, `'/api/movies${suffix}' must not hit the '/api/movies' rule`);

          const inside = table.match('/api/movies/' + below);
          assert.ok(inside !== undefined, `'/api/movies/${below}' must hit a rule`);
          assert.ok(
            inside.ttl === MOVIES_TTL || normalizeRoutePath(inside.prefix).startsWith('/api/movies/'),
            `'/api/movies/${below}' hit '${inside.prefix}', neither '/api/movies' nor a longer rule under it`,
          );
        }),
        RUNS,
      );
    });

    it('finds the same rule as a reference longest-whole-segment-prefix lookup', () => {
      fc.assert(
        fc.property(fc.array(path, { maxLength: 8 }), fc.array(path, { minLength: 1, maxLength: 5 }), (prefixes, paths) => {
          const { routes, normalized } = tableOf(prefixes, refNormalize);
          const table = new RouteTable(routes);
          // Also look up paths under each prefix, so deep and competing matches are common.
          const lookups = [...paths, ...Object.keys(routes).flatMap((prefix) => paths.map((p) => prefix + p))];
          for (const p of lookups) {
            const target = refNormalize(p);
            let expected: number | undefined;
            let expectedLength = -1;
            for (const [prefix, ttl] of normalized) {
              if (refCovers(prefix, target) && prefix.length > expectedLength) {
                expected = ttl;
                expectedLength = prefix.length;
              }
            }
            const actual = table.match(p);
            assert.equal(actual?.ttl, expected, `path ${JSON.stringify(p)} in table ${JSON.stringify(routes)}: got rule ${JSON.stringify(actual?.prefix)}`);
          }
        }),
        RUNS,
      );
    });
  });
});
