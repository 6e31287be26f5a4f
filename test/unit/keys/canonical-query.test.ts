import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ACCESS_TOKEN, MAX_QUERY_PARTS, buildRequestKey, canonicalQuery, hasAccessToken } from '../../../src/keys/index.js';
import { QUERY_PARSERS } from '../../support/query-parsers.js';

function key(url: string, queryAllow?: ReadonlySet<string>): string {
  return buildRequestKey({ namespace: 'shop', method: 'GET', url, queryAllow });
}

/** Asserts that every parser apps use reads `a` and `b` differently (so they must not share a key). */
function assertSomeParserDisagrees(a: string, b: string): void {
  assert.ok(
    QUERY_PARSERS.some(({ parse }) => !isDeepStrictEqual(parse(a), parse(b))),
    `no parser tells ${a} from ${b}: the test case is pointless`,
  );
}

function isDeepStrictEqual(x: unknown, y: unknown): boolean {
  try {
    assert.deepStrictEqual(x, y);
    return true;
  } catch {
    return false;
  }
}

describe('keys: canonicalQuery', () => {
  describe('parameters qs merges into one value keep their order', () => {
    it('keys ?sort[]=price&sort=name and ?sort=name&sort[]=price apart (qs reads [price, name] vs [name, price])', () => {
      assertSomeParserDisagrees('sort[]=price&sort=name', 'sort=name&sort[]=price');
      assert.notEqual(key('/s?sort[]=price&sort=name'), key('/s?sort=name&sort[]=price'));
    });

    it('keys them apart when the brackets are percent-encoded, as qs decodes %5B / %5D first', () => {
      assertSomeParserDisagrees('sort%5B%5D=price&sort=name', 'sort=name&sort%5B%5D=price');
      assert.notEqual(key('/s?sort%5B%5D=price&sort=name'), key('/s?sort=name&sort%5B%5D=price'));
      assert.notEqual(key('/s?a%5bx%5d=1&a=2'), key('/s?a=2&a%5bx%5d=1'));
      assert.equal(key('/s?sort%5B%5D=price'), key('/s?sort[]=price'));
    });

    it('keeps a[0], a[b] and a in order, and still sorts by root: ?b=1&a[0]=x&a=y == ?a[0]=x&a=y&b=1', () => {
      assert.notEqual(key('/s?a[0]=x&a=y'), key('/s?a=y&a[0]=x'));
      assert.notEqual(key('/s?a[b]=x&a=y'), key('/s?a=y&a[b]=x'));
      assert.equal(key('/s?b=1&a[0]=x&a=y'), key('/s?a[0]=x&a=y&b=1'));
      assert.equal(key('/s?a[]=1&b[]=2'), key('/s?b[]=2&a[]=1'));
    });

    it("keeps a query in request order when a name starts with '[' (qs reads [a]=1 as a=1)", () => {
      assertSomeParserDisagrees('[a]=1&a=2', 'a=2&[a]=1');
      assert.notEqual(key('/s?[a]=1&a=2'), key('/s?a=2&[a]=1'));
    });

    it("keeps a query starting with '?' in request order, its first part apart (Koa 3's URLSearchParams drops that '?')", () => {
      assertSomeParserDisagrees('?a&', '&?a');
      assert.notEqual(key('/s??a&'), key('/s?&?a'));
      assertSomeParserDisagrees('?%FF=1', '&?%FF=1');
      assert.notEqual(key('/s??%FF=1'), key('/s?&?%FF=1'));
    });

    it("keeps a query in request order when qs splits a part elsewhere: a=b[c]=d is a=b[c] to qs, a to the others", () => {
      assertSomeParserDisagrees('a=b[]=1&a%3Db[]=2', 'a%3Db[]=2&a=b[]=1');
      assert.notEqual(key('/s?a=b[]=1&a%3Db[]=2'), key('/s?a%3Db[]=2&a=b[]=1'));
      assert.notEqual(key('/s?a=b%5D=1&a%3Db%5D=2'), key('/s?a%3Db%5D=2&a=b%5D=1'));
      assert.notEqual(canonicalQuery('a=b[c]=d'), canonicalQuery('a=b%5Bc%5D%3Dd'));
    });

    it('keeps a query with an undecodable name in request order (node reads %FF and %FE as one name, U+FFFD)', () => {
      assertSomeParserDisagrees('%FF=1&%FE=2', '%FE=2&%FF=1');
      assert.notEqual(key('/s?%FF=1&%FE=2'), key('/s?%FE=2&%FF=1'));
    });

    it(`keeps a query of more than MAX_QUERY_PARTS (${MAX_QUERY_PARTS}) parts as sent: the parsers stop reading there`, () => {
      const filler = Array.from({ length: MAX_QUERY_PARTS - 1 }, (_, i) => `p${i}=1`).join('&');
      const a = `${filler}&x=1&y=2`;
      const b = `${filler}&y=2&x=1`;
      assertSomeParserDisagrees(a, b);
      assert.notEqual(key('/s?' + a), key('/s?' + b));
      // At the limit, every part is read: sorting is safe again.
      assert.equal(key(`/s?${filler}&x=1`), key(`/s?x=1&${filler}`));
    });

    it("keeps a value that is not UTF-8 apart from the value its escapes spell: ?a=%FF is not ?a=%25FF", () => {
      assert.notEqual(key('/s?a=%FF'), key('/s?a=%25FF'));
      assert.notEqual(key('/s?a=%FF&b=1'), key('/s?a=%25FF&b=1'));
    });

    it("decodes every part after a leading '?' as usual: only the first is kept as sent", () => {
      assert.equal(key('/s??x=1&b=%41'), key('/s??x=1&b=A'));
      assert.notEqual(key('/s??x=1&b=1'), key('/s??x=1&b=2'));
    });

    it("gives the empty query '' (no parameters), as no query at all", () => {
      assert.equal(canonicalQuery(''), '');
      assert.equal(key('/s?'), key('/s'));
    });
  });

  describe("a part holding a character browsers always escape (\" ' < >), sent raw", () => {
    it('keeps that part as sent, apart from the escaped spelling browsers send', () => {
      for (const [raw, escaped] of [['q=<b', 'q=%3Cb'], ['q="', 'q=%22'], ["q='", 'q=%27'], ['q=a>b', 'q=a%3Eb']]) {
        assert.notEqual(canonicalQuery(raw!), canonicalQuery(escaped!), `${raw} shares a key with ${escaped}`);
      }
    });

    it('decodes the other parts as usual: ?q=<b>&p=%41 and ?q=<b>&p=A are one request', () => {
      assert.equal(canonicalQuery('q=<b>&p=%41'), canonicalQuery('q=<b>&p=A'));
      assert.notEqual(canonicalQuery('q=<b>&p=A'), canonicalQuery('p=A&q=<b>'), 'the parts around a raw one are kept in order');
    });
  });

  describe('merges only what every parser merges', () => {
    it("gives ?a and ?a= one key (every parser reads '')", () => {
      assert.equal(key('/s?a'), key('/s?a='));
      assert.equal(key('/s?a[]'), key('/s?a[]='));
    });

    it("decodes names and values, '+' as a space", () => {
      assert.equal(key('/s?%61=x+y'), key('/s?a=x%20y'));
      assert.notEqual(key('/s?a=x%2By'), key('/s?a=x+y'));
    });

    it('tells an empty name from no parameter (node:querystring reads ?=x as { "": "x" })', () => {
      assert.notEqual(key('/s?=x'), key('/s'));
      assert.notEqual(key('/s?=x'), key('/s?=y'));
    });
  });

  describe('query allow-list', () => {
    it('keeps every parameter of an allowed root: query [sort] keeps sort[] and sort[by]', () => {
      const allow = new Set(['sort']);
      assert.notEqual(key('/s?sort=name&sort[]=price', allow), key('/s?sort=name', allow));
      assert.notEqual(key('/s?sort[by]=x', allow), key('/s', allow));
      assert.equal(key('/s?sort=name&utm=1', allow), key('/s?sort=name', allow));
    });

    it('keeps the whole root of an allowed bracketed name: query [a[b]] keeps a (qs merges it into a)', () => {
      assertSomeParserDisagrees('a=x&a[b]=1', 'a[b]=1');
      assert.notEqual(key('/s?a=x&a[b]=1', new Set(['a[b]'])), key('/s?a[b]=1', new Set(['a[b]'])));
    });

    it('never drops access_token (RFC 6750 §2.3), in any spelling a parser reads as that name', () => {
      const allow = new Set(['page']);
      assert.notEqual(key('/s?page=1&access_token=A', allow), key('/s?page=1', allow));
      assert.notEqual(key('/s?page=1&access_token=A', allow), key('/s?page=1&access_token=B', allow));
      assert.notEqual(key('/s?page=1&access%5Ftoken=A', allow), key('/s?page=1', allow));
      assert.notEqual(key('/s?page=1&access_token[]=A', allow), key('/s?page=1', allow));
    });
  });

  describe('hasAccessToken', () => {
    it('finds access_token as every parser reads it: plain, escaped, with brackets', () => {
      for (const query of ['access_token=x', 'a=1&access_token=x', 'access%5Ftoken=x', '%61ccess_token=x', 'access_token[]=x', '[access_token]=x', 'access_token', 'access%5Ftoken=%FF', '?access_token=x']) {
        assert.equal(hasAccessToken(query), true, query);
        assert.ok(QUERY_PARSERS.some(({ parse }) => (parse(query) as Record<string, unknown>)[ACCESS_TOKEN] !== undefined), `no parser reads ${query} as access_token`);
      }
    });

    it('does not take other names or values for it', () => {
      for (const query of ['', 'a=access_token', 'access_tokens=x', 'my_access_token=x', 'token=x', 'q=%61ccess_token']) {
        assert.equal(hasAccessToken(query), false, query);
      }
    });
  });

  // Queries from an alphabet of the characters parsers treat specially. Two
  // queries with one key must be read the same by every parser an app may use.
  describe('properties: equal keys mean equal req.query / ctx.query under every parser', function () {
    this.timeout(120_000);
    /** Fixed seed: a failure reproduces; 20k runs catch any one rule of canonical-query.ts being dropped (checked by removing each). */
    const PARAMS = { seed: 20_250_917, numRuns: 20_000 } as const;

    /** Units that mean something to some parser, with alternative spellings every parser decodes alike. */
    const SPELLINGS: ReadonlyArray<readonly string[]> = [
      ['a', '%61'], ['b', '%62'], ['A', '%41'], ['0', '%30'], ['1'], ['x'],
      ['[', '%5B', '%5b'], [']', '%5D', '%5d'], ['[]', '%5B%5D'], ['='], ['&'], ['&'], ['&'],
      [' ', '+', '%20'], ['%2B'], ['%25'], ['%'], ['%3D', '%3d'], ['%26'], ['%FF'], ['%C3%A9', 'é'], ['%ZZ'], ['%2'],
      ['?'], ['.'], ['__proto__'], ['toString'], ['access_token', 'access%5Ftoken'],
    ];
    const unit = fc.tuple(fc.nat(SPELLINGS.length - 1), fc.nat(3));
    const spell = (units: ReadonlyArray<readonly [number, number]>, respell: boolean) =>
      units.map(([u, s]) => (respell ? SPELLINGS[u]![s % SPELLINGS[u]!.length]! : SPELLINGS[u]![0]!)).join('');

    /** Moves '&'-separated parts around by priority. */
    function shuffleParts(query: string, priorities: readonly number[]): string {
      const parts = query.split('&');
      return parts
        .map((part, i) => ({ part, p: priorities[i % Math.max(priorities.length, 1)] ?? 0 }))
        .sort((x, y) => x.p - y.p)
        .map((x) => x.part)
        .join('&');
    }

    /** A query, and the same units re-spelled and with their parts moved around: often the same request, often not. */
    const unitPair = fc
      .tuple(fc.array(unit, { maxLength: 14 }), fc.boolean(), fc.array(fc.nat(20), { maxLength: 8 }))
      .map(([units, respell, priorities]): [string, string] => [spell(units, false), shuffleParts(spell(units, respell), priorities)]);

    /**
     * The same, built from parameters: a root, a bracket suffix and a value, each
     * from a pool of the spellings that parsers read apart ('a=b' as a root, ']='
     * in a value, undecodable names, a name starting with '[').
     */
    const ROOTS = ['a', 'b', '', '[a]', '[', '?a', 'a%3Db', 'a=b', '%FF', '%FE', '%ZZ', 'access_token'];
    const SUFFIXES = ['', '', '[]', '[0]', '[1]', '[b]', '%5B%5D', '%5Bb%5D', ']', '[b'];
    const VALUES = [undefined, '', '1', '2', 'b[]=1', 'b]=2', 'b%5D=3', '%FF', '%ZZ', 'x+y', 'x%20y', '='];
    const param = fc.tuple(fc.constantFrom(...ROOTS), fc.constantFrom(...SUFFIXES), fc.constantFrom(...VALUES)).map(([root, suffix, value]) => root + suffix + (value === undefined ? '' : '=' + value));
    const paramPair = fc
      .tuple(fc.array(param, { maxLength: 6 }), fc.array(fc.nat(20), { maxLength: 6 }), fc.boolean())
      .map(([params, priorities, leadingAmp]): [string, string] => {
        const query = params.join('&');
        return [query, (leadingAmp ? '&' : '') + shuffleParts(query, priorities)];
      });
    const nearPair = fc.oneof(unitPair, paramPair);

    /** Two short queries drawn independently from a tiny alphabet: chance collisions. */
    const tinyQuery = fc.array(fc.constantFrom('a', 'b', '[', ']', '=', '&', '%5B', '+', ' ', '%2B', '?'), { maxLength: 7 }).map((u) => u.join(''));
    const independentPair = fc.tuple(tinyQuery, tinyQuery);

    function assertSameReading(a: string, b: string): void {
      for (const { name, parse } of QUERY_PARSERS) {
        assert.deepStrictEqual(parse(a), parse(b), `${name} reads ?${a} and ?${b} differently, yet they share the key ${key('/p?' + a)}`);
      }
    }

    const generators = [
      { label: 'a query and a near copy of it', pairs: nearPair, minShared: PARAMS.numRuns / 10 },
      { label: 'two independent short queries', pairs: independentPair, minShared: PARAMS.numRuns / 100 },
    ];
    for (const { label, pairs, minShared } of generators) {
      it(`gives ${label} one key only when every parser reads them the same`, () => {
        let shared = 0;
        fc.assert(
          fc.property(pairs, ([a, b]) => {
            if (key('/p?' + a) !== key('/p?' + b)) return;
            shared++;
            assertSameReading(a, b);
          }),
          PARAMS,
        );
        // The property says nothing unless many pairs do share a key.
        assert.ok(shared > minShared, `only ${shared} of ${PARAMS.numRuns} pairs shared a key`);
      });
    }

    it('gives two queries one key under an allow-list only when every parser reads the allowed names (and access_token) the same', () => {
      const allowList = fc.subarray(['a', 'b', 'a[]', 'b[x]', 'x'], { minLength: 1 });
      let shared = 0;
      fc.assert(
        fc.property(nearPair, allowList, ([a, b], names) => {
          const allow = new Set(names);
          if (key('/p?' + a, allow) !== key('/p?' + b, allow)) return;
          shared++;
          const read = [...names, ...names.map((n) => n.replace(/\[.*$/, '')), ACCESS_TOKEN];
          for (const { name, parse } of QUERY_PARSERS) {
            const [qa, qb] = [parse(a), parse(b)] as Array<Record<string, unknown>>;
            for (const n of read) assert.deepStrictEqual(qa![n], qb![n], `${name}: ${n} of ?${a} and ?${b} differ under allow ${JSON.stringify(names)}`);
          }
        }),
        PARAMS,
      );
      assert.ok(shared > PARAMS.numRuns / 10, `only ${shared} of ${PARAMS.numRuns} pairs shared a key`);
    });
  });
});
