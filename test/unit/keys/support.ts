// Shared generators and reference implementations for the src/keys tests.
// Not a test file itself (no `.test.ts` suffix), so mocha does not load it as one.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TierCacheConfigError, TierCacheError } from '../../../src/errors.js';

/**
 * fast-check parameters used by every property in these tests: a fixed seed,
 * so a CI run is reproducible, and the runs a failure printed reproduce it.
 * On demand, more runs or other seeds: TIERCACHE_PROP_RUNS=100000
 * TIERCACHE_PROP_SEED=random (or a number, the seed a failure printed).
 */
const seedSetting = process.env['TIERCACHE_PROP_SEED'];
export const RUNS = {
  numRuns: Number(process.env['TIERCACHE_PROP_RUNS'] ?? 1000),
  seed: seedSetting === 'random' ? Date.now() ^ (Math.random() * 0x7fffffff) : seedSetting !== undefined ? Number(seedSetting) : 20261202,
} as const;

/** Characters that act as separators somewhere (URL, query, key format, Redis Cluster hash tags). */
export const SEPARATORS = [':', '?', '&', '=', '%', '/', ',', '{', '}', '#', '+', ';', ' ', '"', '\\', '[', ']'] as const;

/** Multi-character pieces that look like escapes, valid or not. */
export const ESCAPE_LIKE = ['%3A', '%3a', '%25', '%2F', '%2f', '%41', '%61', '%20', '%FF', '%C3%A9', '%zz', '%', ':u=', ':v=', '#'] as const;

/** Letters whose case matters (ASCII and not), and caseless non-ASCII characters. */
export const LETTERS = ['a', 'A', 'z', 'Z', 'é', 'É', 'ß', '日', '😀', '\u0301'] as const;

/**
 * One "unit" of generated text: mostly separators and escape look-alikes, some
 * letters, some arbitrary code points (never a lone surrogate, so every string
 * can go through encodeURIComponent).
 */
export const nastyUnit: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom(...SEPARATORS), weight: 5 },
  { arbitrary: fc.constantFrom(...ESCAPE_LIKE), weight: 2 },
  { arbitrary: fc.constantFrom(...LETTERS), weight: 3 },
  { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), weight: 2 },
);

/** Text full of separators and unicode. */
export function nastyText(maxLength = 12, minLength = 0): fc.Arbitrary<string> {
  return fc.string({ unit: nastyUnit, minLength, maxLength });
}

/**
 * A request path: '/' + segments, each either arbitrary text percent-encoded
 * with encodeURIComponent, or raw text without '?' and '#' (which may itself
 * contain '/', '%', ':' ...). Sometimes one segment is long enough that the
 * key goes over MAX_KEY_LENGTH and gets hashed.
 */
export const requestPath: fc.Arbitrary<string> = fc
  .array(
    fc.oneof(
      { arbitrary: nastyText().map(encodeURIComponent), weight: 4 },
      { arbitrary: nastyText().map(stripQueryAndFragment), weight: 4 },
      { arbitrary: nastyText(500, 300).map(stripQueryAndFragment), weight: 1 },
    ),
    { maxLength: 5 },
  )
  .map((segments) => '/' + segments.join('/'));

export function stripQueryAndFragment(text: string): string {
  return text.replace(/[?#]/g, '');
}

/** Query parameter names: a small pool (so duplicates happen) and arbitrary text. */
export const paramName: fc.Arbitrary<string> = fc.oneof(fc.constantFrom('id', 'a', 'A', 'q', ''), nastyText(6));

/** A list of decoded query pairs. */
export const queryPairs: fc.Arbitrary<Array<[string, string]>> = fc.array(fc.tuple(paramName, nastyText()), { maxLength: 6 });

/** Builds a query string from decoded pairs, encoding names and values with encodeURIComponent. */
export function encodeQuery(pairs: ReadonlyArray<readonly [string, string]>): string {
  return pairs.map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`).join('&');
}

/**
 * Makes raw text fit in a query component: no '#', and no raw NUL. Node's HTTP
 * parser answers 400 to a request target holding NUL, and canonicalQuery relies
 * on that (it marks undecodable names with a NUL prefix).
 */
export function asRawQuery(text: string): string {
  return text.replace(/[#\u0000]/g, '');
}

/**
 * The raw query component of a request (what follows the first '?'), or
 * undefined for a URL without '?': either encoded pairs or raw text.
 */
export const rawQuery: fc.Arbitrary<string | undefined> = fc.oneof(
  { arbitrary: fc.constant(undefined), weight: 1 },
  { arbitrary: queryPairs.map(encodeQuery), weight: 4 },
  { arbitrary: nastyText(24).map(asRawQuery), weight: 2 },
);

/** `vary` pairs: header name and value, undefined when the header is absent. */
export const varyPairs: fc.Arbitrary<Array<[string, string | undefined]>> = fc.array(
  fc.tuple(fc.oneof(fc.constantFrom('x-a', 'x-b', 'accept-language'), nastyText(6)), fc.option(nastyText(), { nil: undefined })),
  { maxLength: 3 },
);

export const userScope: fc.Arbitrary<string | undefined> = fc.option(fc.oneof(fc.constantFrom('1', '12', ''), nastyText()), { nil: undefined });

/** A request as the key builder sees it, kept in components so tests can perturb one of them. */
export interface Req {
  path: string;
  /** What follows the first '?' of the URL; undefined when the URL has no '?'. */
  query: string | undefined;
  vary: Array<[string, string | undefined]>;
  user: string | undefined;
}

/**
 * A request. Each component comes half the time from a tiny pool of look-alikes,
 * so two independently generated requests often agree on some components and
 * differ in one, where a collision would show.
 */
export const request: fc.Arbitrary<Req> = fc.record({
  path: fc.oneof(fc.constantFrom('/', '/a', '/A', '/a/', '/a:', '/a%3A', '/a:u=1', '/a:v=x-a=1', '/a%2Fb', '/a/b'), requestPath),
  query: fc.oneof(fc.constantFrom(undefined, '', 'a=1', 'a=1&b=2', 'b=2&a=1', 'id=1&id=2', 'id=2&id=1', 'id=1', 'id=1,2', 'id=1%2C2', 'id=%5B%221%22%2C%222%22%5D', '?a=1', 'a=1:u=1', 'a=%3A'), rawQuery),
  vary: fc.oneof(
    fc.constantFrom<Array<[string, string | undefined]>>([], [['x-a', undefined]], [['x-a', '']], [['x-a', 'a:b'], ['x-b', 'c']], [['x-a', 'a'], ['x-b', 'b:c']], [['x-a', '1:u=1']]),
    varyPairs,
  ),
  user: fc.oneof(fc.constantFrom(undefined, '', '1', '12', '1:u=1'), userScope),
});

export function urlOf(req: Req): string {
  return req.query === undefined ? req.path : `${req.path}?${req.query}`;
}

/** The root name qs files a parameter under: the part before the first '['. */
export function rootName(name: string): string {
  const bracket = name.indexOf('[');
  return bracket === -1 ? name : name.slice(0, bracket);
}

/**
 * Whether every parser reads the query's names alike, so only the order of
 * parameters of one root name matters: each name decodes, none starts with
 * '[' (qs files `[a]` under `a`), qs, which turns %5B / %5D into brackets and
 * splits at a ']=', splits every part at its first '=' as the others do, and
 * the query does not start with '?' (Koa 3's URLSearchParams drops it).
 */
export function namesReadAlike(query: string | undefined): boolean {
  if (query === undefined) return true;
  if (query.startsWith('?')) return false;
  return query.split('&').every((part) => {
    const eq = part.indexOf('=');
    let name: string;
    try {
      name = decodeURIComponent((eq === -1 ? part : part.slice(0, eq)).replace(/\+/g, ' '));
    } catch {
      return false;
    }
    const qsPart = part.replace(/%5B/gi, '[').replace(/%5D/gi, ']');
    const close = qsPart.indexOf(']=');
    return !name.startsWith('[') && (close === -1 || close + 1 === qsPart.indexOf('='));
  });
}

/**
 * The decoded query of a request: the URL standard's parsing of the query
 * component (what `new URL(...).searchParams` yields). When every parser reads
 * its names alike it is sorted stably by root name, so only the order among
 * parameters qs merges remains; otherwise it stays in request order.
 */
export function decodedQuery(query: string | undefined): Array<[string, string]> {
  if (query === undefined) return [];
  // The URLSearchParams constructor drops one leading '?', so give it one: the
  // query component itself may start with '?' ('/p??a=1' has the parameter '?a').
  const pairs = [...new URLSearchParams('?' + query)];
  if (!namesReadAlike(query)) return pairs;
  return pairs.sort((x, y) => {
    const [rx, ry] = [rootName(x[0]), rootName(y[0])];
    return rx < ry ? -1 : rx > ry ? 1 : 0; // Array#sort is stable
  });
}

/** What makes two requests "the same request" for the key: compare these strings. */
export function identityOf(req: Req): string {
  return JSON.stringify([
    req.path,
    decodedQuery(req.query),
    req.vary.map(([name, value]) => [name, value === undefined ? null : value]),
    req.user === undefined ? null : [req.user],
  ]);
}

/**
 * Reference route normalization, written from the contract: decode
 * percent-encoded unreserved characters, lower-case, resolve dot segments,
 * drop empty segments (repeated and trailing slashes).
 */
export function refNormalize(path: string): string {
  const decoded = path
    .replace(/%([0-9A-Fa-f]{2})/g, (match, hex: string) => {
      const ch = String.fromCharCode(parseInt(hex, 16));
      return /^[A-Za-z0-9\-._~]$/.test(ch) ? ch : match;
    })
    .toLowerCase();
  const out: string[] = [];
  for (const segment of decoded.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  return '/' + out.join('/');
}

/** True when `normalizedPrefix` covers `normalizedPath` on whole segments. */
export function refCovers(normalizedPrefix: string, normalizedPath: string): boolean {
  return normalizedPrefix === '/' || normalizedPath === normalizedPrefix || normalizedPath.startsWith(normalizedPrefix + '/');
}

/** True when the path, once its unreserved escapes are decoded, has a '.' or '..' segment. */
export function hasDotSegment(path: string): boolean {
  const decoded = path.replace(/%2e/gi, '.');
  return decoded.split('/').some((segment) => segment === '.' || segment === '..');
}

/**
 * Asserts that `fn` throws a TierCacheConfigError for `option` whose message
 * names the option, shows the rejected value as `shown` and, given `says`,
 * says what is expected instead.
 */
export function assertConfigError(fn: () => unknown, option: string, shown: string, says?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof TierCacheConfigError, `expected a TierCacheConfigError, got ${String(error)}`);
    assert.ok(error instanceof TierCacheError);
    assert.equal(error.code, 'TIERCACHE_CONFIG');
    assert.equal(error.option, option);
    assert.ok(error.message.includes(option), `message should name ${option}: ${error.message}`);
    assert.ok(error.message.includes(shown), `message should show the value ${shown}: ${error.message}`);
    if (says !== undefined) assert.match(error.message, says);
    return true;
  });
}

/**
 * Reference tag form of a path, written from the contract: the route form
 * (refNormalize), then every escaped UTF-8 sequence decoded except %2F, with
 * invalid bytes left escaped, then lower-cased again.
 */
export function refTagPath(path: string): string {
  const fatal = new TextDecoder('utf-8', { fatal: true });
  const decoded = refNormalize(path).replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    const bytes = Buffer.from(run.replace(/%/g, ''), 'hex');
    let out = '';
    for (let i = 0; i < bytes.length; ) {
      let taken = 0;
      // The shortest slice that decodes to exactly one character (never '/').
      for (let n = 1; n <= 4 && i + n <= bytes.length && taken === 0; n++) {
        try {
          const text = fatal.decode(bytes.subarray(i, i + n));
          if ([...text].length === 1 && text !== '/') {
            out += text;
            taken = n;
          }
        } catch {
          // not (yet) a whole character
        }
      }
      if (taken === 0) {
        out += '%' + bytes[i]!.toString(16).padStart(2, '0');
        taken = 1;
      }
      i += taken;
    }
    return out;
  });
  return decoded.toLowerCase();
}
