// Origin mode's reading of Cache-Control (RFC 9111 §5.2), of the targeted
// fields of RFC 9213 (RFC 8941 dictionaries) and of Surrogate-Control, tested
// on the parser itself rather than through a server.
import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import {
  deltaSeconds,
  DELTA_SECONDS_MAX,
  fieldNamesOf,
  parseDirectives,
  responseDirectives,
  type Directives,
  type TargetedFields,
} from '../../../../src/middleware/origin/directives.js';

const entries = (d: Directives): Record<string, string> => Object.fromEntries(d.values);
const cc = (value: string | string[]): Record<string, string> => entries(parseDirectives(value));

const PLAIN: TargetedFields = { cdnCacheControl: false, surrogate: undefined };
const CDN: TargetedFields = { cdnCacheControl: true, surrogate: undefined };
const SURROGATE: TargetedFields = { cdnCacheControl: false, surrogate: 'tiercache' };

const governing = (headers: OutgoingHttpHeaders, targeted: TargetedFields = PLAIN): Record<string, string> => entries(responseDirectives(headers, targeted));

describe('middleware: origin directives, unit', () => {
  describe('parseDirectives (RFC 9111 §5.2)', () => {
    it('reads nothing from an absent field', () => {
      const d = parseDirectives(undefined);
      assert.equal(d.values.size, 0);
      assert.equal(d.repeated.size, 0);
    });

    it('maps each directive, compared case-insensitively, to its argument, "" when it has none', () => {
      assert.deepEqual(cc('Public, MAX-AGE=60, s-maxage=30'), { public: '', 'max-age': '60', 's-maxage': '30' });
    });

    it('keeps the case of an argument: only names are case-insensitive', () => {
      assert.deepEqual(cc('private="X-Secret"'), { private: 'X-Secret' });
    });

    it('accepts a quoted-string argument as well as a token (§5.2), commas inside it included', () => {
      assert.deepEqual(cc('max-age="60", no-cache="set-cookie, x-a"'), { 'max-age': '60', 'no-cache': 'set-cookie, x-a' });
    });

    it('reads repeated field lines as one list', () => {
      assert.deepEqual(cc(['max-age=60', 'no-cache']), { 'max-age': '60', 'no-cache': '' });
    });

    it('keeps the first occurrence of a directive and remembers that it was repeated (§4.2.1)', () => {
      const d = parseDirectives('max-age=10, public, MAX-AGE=20');
      assert.equal(d.values.get('max-age'), '10');
      assert.deepEqual([...d.repeated], ['max-age']);
    });

    it('records no repetition when every directive appears once', () => {
      assert.equal(parseDirectives('max-age=10, public').repeated.size, 0);
    });

    it('takes no directive with whitespace before "=" or a quote in its name (token [ "=" ... ])', () => {
      assert.deepEqual(cc('max-age =5, s-maxage=7'), { 's-maxage': '7' });
      assert.deepEqual(cc('"max-age"=5, public'), { public: '' });
      assert.deepEqual(cc('max\tage, public'), { public: '' });
    });

    it('skips an element with no name at all', () => {
      assert.deepEqual(cc('=5, , public'), { public: '' });
    });

    it('keeps whitespace after "=": the argument is then no delta-seconds', () => {
      const d = parseDirectives('max-age= 5');
      assert.ok(Number.isNaN(deltaSeconds(d, 'max-age')));
    });
  });

  describe('deltaSeconds (RFC 9111 §1.2.2: 1*DIGIT)', () => {
    const secondsOf = (value: string) => deltaSeconds(parseDirectives(value), 'max-age');

    it('is undefined when the directive is absent', () => {
      assert.equal(secondsOf('public'), undefined);
    });

    it('reads digits, quoted or not, leading zeros included', () => {
      assert.equal(secondsOf('max-age=0'), 0);
      assert.equal(secondsOf('max-age=7'), 7);
      assert.equal(secondsOf('max-age=3600'), 3600);
      assert.equal(secondsOf('max-age="120"'), 120);
      assert.equal(secondsOf('max-age=007'), 7);
    });

    it('is NaN (invalid) for anything but digits: no argument, a sign, a fraction, a unit, spaces', () => {
      for (const value of ['max-age', 'max-age=', 'max-age=-5', 'max-age=+5', 'max-age=1.5', 'max-age=5s', 'max-age=s5', 'max-age=" 5"', 'max-age="5 "', 'max-age=abc', 'max-age=1e3', 'max-age=0x10']) {
        assert.ok(Number.isNaN(secondsOf(value)), value);
      }
    });

    it('caps a value too large to represent at 2^31 (§1.2.2)', () => {
      assert.equal(DELTA_SECONDS_MAX, 2 ** 31);
      assert.equal(secondsOf('max-age=2147483647'), 2147483647);
      assert.equal(secondsOf('max-age=2147483648'), 2 ** 31);
      assert.equal(secondsOf('max-age=2147483649'), 2 ** 31);
      assert.equal(secondsOf('max-age=99999999999999999999'), 2 ** 31);
    });

    it('reads the directive named, not another one', () => {
      assert.equal(deltaSeconds(parseDirectives('max-age=5, s-maxage=9'), 's-maxage'), 9);
    });
  });

  describe('fieldNamesOf (qualified no-cache / private, §5.2.2.4, §5.2.2.7)', () => {
    it('lists the field names of the argument, lower case', () => {
      assert.deepEqual(fieldNamesOf(parseDirectives('no-cache="Set-Cookie, X-Token"'), 'no-cache'), ['set-cookie', 'x-token']);
      assert.deepEqual(fieldNamesOf(parseDirectives('private=x-user'), 'private'), ['x-user']);
    });

    it('is undefined for the bare (unqualified) directive and for an absent one', () => {
      assert.equal(fieldNamesOf(parseDirectives('no-cache'), 'no-cache'), undefined);
      assert.equal(fieldNamesOf(parseDirectives('public'), 'private'), undefined);
    });

    it('is undefined for a qualified form that names no field (the bare directive)', () => {
      assert.equal(fieldNamesOf(parseDirectives('private=","'), 'private'), undefined);
      assert.equal(fieldNamesOf(parseDirectives('no-cache=" , "'), 'no-cache'), undefined);
    });
  });

  describe('responseDirectives: Tiercache-Cache-Control (RFC 9213, an RFC 8941 dictionary)', () => {
    it('replaces Cache-Control when it parses', () => {
      assert.deepEqual(governing({ 'tiercache-cache-control': 'max-age=60', 'cache-control': 'no-store, max-age=5' }), { 'max-age': '60' });
    });

    it('leaves Cache-Control in charge when absent', () => {
      assert.deepEqual(governing({ 'cache-control': 'max-age=5' }), { 'max-age': '5' });
      assert.deepEqual(governing({}), {});
    });

    it('is ignored when empty (RFC 9213 §2.1)', () => {
      assert.deepEqual(governing({ 'tiercache-cache-control': '', 'cache-control': 'max-age=5' }), { 'max-age': '5' });
      assert.deepEqual(governing({ 'tiercache-cache-control': ' , ', 'cache-control': 'max-age=5' }), { 'max-age': '5' });
    });

    it('reads a bare member and ?1 as a directive without argument (Boolean true)', () => {
      assert.deepEqual(governing({ 'tiercache-cache-control': 'no-store, must-revalidate=?1', 'cache-control': 'max-age=5' }), { 'no-store': '', 'must-revalidate': '' });
    });

    it('ignores parameters on a member (RFC 9213 §2.1)', () => {
      assert.deepEqual(governing({ 'tiercache-cache-control': 'max-age=60;a=1, public;b', 'cache-control': 'no-store' }), { 'max-age': '60', public: '' });
    });

    it('unquotes a String member value', () => {
      assert.deepEqual(governing({ 'tiercache-cache-control': 'private="x-a, x-b", no-cache="a\\"b"', 'cache-control': 'no-store' }), { private: 'x-a, x-b', 'no-cache': 'a"b' });
    });

    it('lets the last of duplicate members win (RFC 8941 §4.2.2) and records no repetition', () => {
      const d = responseDirectives({ 'tiercache-cache-control': 'max-age=10, max-age=20', 'cache-control': 'no-store' }, PLAIN);
      assert.deepEqual(entries(d), { 'max-age': '20' });
      assert.equal(d.repeated.size, 0);
    });

    it('reads repeated field lines as one dictionary, with whitespace around the commas', () => {
      assert.deepEqual(governing({ 'tiercache-cache-control': ['max-age=60', ' public ,  s-maxage=5'], 'cache-control': 'no-store' }), { 'max-age': '60', public: '', 's-maxage': '5' });
    });

    it('accepts every bare item kind as a value: integers, decimals, tokens, strings, booleans', () => {
      const valid = ['x=0', 'x=-7', 'x=123456789012345', 'x=1.5', 'x=-0.125', 'x=123456789012.125', 'x=a', 'x=*a', 'x=Tok:en/1.0', "x=a!#$%&'*+-.^_`|~z", 'x=""', 'x="a b"', 'x=?1', 'x=:aGk=:', 'x=::'];
      for (const value of valid) {
        const d = responseDirectives({ 'tiercache-cache-control': value, 'cache-control': 'no-store' }, PLAIN);
        assert.ok(d.values.has('x') && !d.values.has('no-store'), value);
      }
      // Boolean false and inner lists parse too (the field governs), but give no directive of that name.
      for (const value of ['x=?0', 'x=("a" "b")', 'x=()', 'x=(1 2);p', 'x=( a )']) {
        assert.deepEqual(governing({ 'tiercache-cache-control': value, 'cache-control': 'no-store' }), {}, value);
      }
    });

    it('reads only the argument type the Cache-Control syntax implies (RFC 9213 §2.1): other values of a known directive are not used', () => {
      const cases: Array<[string, Record<string, string>]> = [
        ['max-age=60', { 'max-age': '60' }],
        ['max-age=1.5, public', { public: '' }],
        ['max-age="60", public', { public: '' }],
        ['max-age=sixty, public', { public: '' }],
        ['max-age=-1, public', { public: '' }],
        ['s-maxage=?1, public', { 's-maxage': '', public: '' }],
        ['stale-if-error=:AA==:, stale-while-revalidate=30', { 'stale-while-revalidate': '30' }],
        ['no-store=?0, max-age=60', { 'max-age': '60' }],
        ['no-store=1, max-age=60', { 'max-age': '60' }],
        ['public="yes", must-revalidate=?1', { 'must-revalidate': '' }],
        ['private="a;b", max-age=60', { private: 'a;b', 'max-age': '60' }],
        ['no-cache=("a" "b"), max-age=60', { 'max-age': '60' }],
        ['no-cache=token, private=?1', { private: '' }],
      ];
      for (const [value, expected] of cases) assert.deepEqual(governing({ 'tiercache-cache-control': value, 'cache-control': 'max-age=5' }), expected, value);
    });

    it('accepts keys of lower-case letters, digits, _ - . * starting with a letter or *', () => {
      for (const key of ['a', 'max-age', 'a_b', 'a.b', 'a1', '*', '*a', 'a*']) {
        assert.deepEqual(governing({ 'tiercache-cache-control': `${key}=1`, 'cache-control': 'no-store' }), { [key]: '1' }, key);
      }
    });

    it('is ignored as a whole when a key is no RFC 8941 key (upper case, a leading digit or dash, empty)', () => {
      for (const value of ['Max-Age=60', 'max-Age=60', 'MAX-AGE', '1a=60', '-a=60', '_a=60', 'public, =60', 'a b=1', 'max-age=60, Public']) {
        assert.deepEqual(governing({ 'tiercache-cache-control': value, 'cache-control': 'max-age=5' }), { 'max-age': '5' }, value);
      }
    });

    it('is ignored as a whole when a value is no RFC 8941 bare item', () => {
      const invalid = [
        'max-age=60s', // integer followed by text
        'max-age=@60', // no item starts with @
        'max-age=1234567890123456', // 16 digits: integers have at most 15
        'max-age=1.2345', // decimals have at most 3 fraction digits
        'max-age=1.', // and at least one
        'max-age=.5',
        'max-age=--1',
        'max-age=?2', // booleans are ?0 and ?1
        'max-age=?',
        'max-age=a b', // a token has no space
        'max-age=1a',
        'private="x', // unterminated string
        'private="a"b"',
        'max-age=',
        'max-age = 60', // no whitespace around '='
        'max-age =60',
        'max-age= 60',
        'max-age=60 ;a', // nor before a parameter
        'max-age=60,', // a trailing comma
        'max-age=60,,public',
        'max-age=1234567890123.5', // decimals have at most 12 integer digits
        'max-age=-', // a sign alone
        'max-age=:a*b:', // no base64
        'max-age=:abc', // unterminated byte sequence
        'no-cache=("a" "b"', // unterminated inner list
        'no-cache=("a""b")', // items of an inner list are separated by spaces
        'private="\\x"y"', // a backslash escapes only DQUOTE and backslash
        'private="a\\qb"',
        'private="\u00e9"', // strings are ASCII
      ];
      for (const value of invalid) {
        assert.deepEqual(governing({ 'tiercache-cache-control': `public, ${value}`, 'cache-control': 'max-age=5' }), { 'max-age': '5' }, value);
      }
    });
  });

  describe('responseDirectives: CDN-Cache-Control (RFC 9213 §3), when enabled', () => {
    it('replaces Cache-Control when enabled, and is not read otherwise', () => {
      const headers = { 'cdn-cache-control': 'max-age=600', 'cache-control': 'max-age=5' };
      assert.deepEqual(governing(headers, CDN), { 'max-age': '600' });
      assert.deepEqual(governing(headers, PLAIN), { 'max-age': '5' });
    });

    it('comes after Tiercache-Cache-Control, the more specific field (RFC 9213 §2.2)', () => {
      assert.deepEqual(governing({ 'tiercache-cache-control': 'max-age=60', 'cdn-cache-control': 'max-age=600', 'cache-control': 'max-age=5' }, CDN), { 'max-age': '60' });
    });

    it('is used when Tiercache-Cache-Control does not parse, and ignored itself when it does not', () => {
      assert.deepEqual(governing({ 'tiercache-cache-control': 'Max-Age=60', 'cdn-cache-control': 'max-age=600', 'cache-control': 'max-age=5' }, CDN), { 'max-age': '600' });
      assert.deepEqual(governing({ 'cdn-cache-control': 'max-age=60s', 'cache-control': 'max-age=5' }, CDN), { 'max-age': '5' });
      assert.deepEqual(governing({ 'cdn-cache-control': '', 'cache-control': 'max-age=5' }, CDN), { 'max-age': '5' });
    });

    it('leaves Cache-Control in charge when enabled but absent', () => {
      assert.deepEqual(governing({ 'cache-control': 'max-age=5' }, CDN), { 'max-age': '5' });
    });
  });

  describe('responseDirectives: Surrogate-Control (W3C Edge Architecture), when a device name is set', () => {
    it('keeps the first value of a directive that comes again in a later element', () => {
      assert.deepEqual(governing({ 'surrogate-control': 'max-age=60, max-age=30;tiercache', 'cache-control': 'max-age=5' }, SURROGATE), { 'max-age': '60' });
    });

    it('takes max-age=0 from a structured field (CDN-Cache-Control) as 0, not as absent', () => {
      assert.deepEqual(governing({ 'cdn-cache-control': 'max-age=0', 'cache-control': 'max-age=5' }, CDN), { 'max-age': '0' });
    });

    it('replaces Cache-Control with the directives addressed to every surrogate', () => {
      assert.deepEqual(governing({ 'surrogate-control': 'max-age=60, no-store', 'cache-control': 'max-age=5' }, SURROGATE), { 'max-age': '60', 'no-store': '' });
    });

    it('is not read without a device name', () => {
      assert.deepEqual(governing({ 'surrogate-control': 'max-age=60', 'cache-control': 'max-age=5' }, PLAIN), { 'max-age': '5' });
    });

    it('takes the directives addressed to this device after ";" and skips those for other devices', () => {
      assert.deepEqual(governing({ 'surrogate-control': 'max-age=60;tiercache, no-store;other', 'cache-control': 'max-age=5' }, SURROGATE), { 'max-age': '60' });
      assert.deepEqual(governing({ 'surrogate-control': 'max-age=60; tiercache', 'cache-control': 'max-age=5' }, SURROGATE), { 'max-age': '60' });
    });

    it('leaves Cache-Control in charge when nothing in it is addressed to this device', () => {
      assert.deepEqual(governing({ 'surrogate-control': 'max-age=60;other', 'cache-control': 'max-age=5' }, SURROGATE), { 'max-age': '5' });
      assert.deepEqual(governing({ 'surrogate-control': '', 'cache-control': 'max-age=5' }, SURROGATE), { 'max-age': '5' });
    });

    it('takes a ";" inside a quoted argument as text, not as a device', () => {
      assert.deepEqual(governing({ 'surrogate-control': 'content="ESI/1.0;x", max-age=30', 'cache-control': 'max-age=5' }, SURROGATE), { content: 'ESI/1.0;x', 'max-age': '30' });
    });

    it('takes a ";" after a quoted argument as a device', () => {
      assert.deepEqual(governing({ 'surrogate-control': 'content="ESI/1.0";other, max-age=30', 'cache-control': 'max-age=5' }, SURROGATE), { 'max-age': '30' });
      assert.deepEqual(governing({ 'surrogate-control': 'content="a;b";other, max-age=30', 'cache-control': 'max-age=5' }, SURROGATE), { 'max-age': '30' });
      assert.deepEqual(governing({ 'surrogate-control': 'content="ESI/1.0";tiercache, max-age=30', 'cache-control': 'max-age=5' }, SURROGATE), { content: 'ESI/1.0', 'max-age': '30' });
    });

    it('replaces Cache-Control when it holds any one directive that says how long or whether to store, alone', () => {
      // One at a time: with several in one field, a directive the code forgot would still ride on the others.
      for (const directive of ['max-age=60', 's-maxage=60', 'no-store', 'no-cache', 'private', 'public', 'must-revalidate', 'proxy-revalidate', 'must-understand', 'stale-while-revalidate=30', 'stale-if-error=30']) {
        const [name, arg = ''] = directive.split('=');
        assert.deepEqual(governing({ 'surrogate-control': directive, 'cache-control': 'max-age=5' }, SURROGATE), { [name!]: arg }, directive);
      }
    });

    it('leaves Cache-Control in charge when what is addressed to this device says nothing about storing', () => {
      assert.deepEqual(governing({ 'surrogate-control': 'content="ESI/1.0"', 'cache-control': 'private' }, SURROGATE), { private: '' });
      assert.deepEqual(governing({ 'surrogate-control': 'content="ESI/1.0";tiercache, x-ext', 'cache-control': 'no-store' }, SURROGATE), { 'no-store': '' });
    });

    it('comes after the RFC 9213 fields', () => {
      assert.deepEqual(governing({ 'tiercache-cache-control': 'max-age=60', 'surrogate-control': 'max-age=600', 'cache-control': 'max-age=5' }, SURROGATE), { 'max-age': '60' });
      assert.deepEqual(
        governing({ 'cdn-cache-control': 'max-age=70', 'surrogate-control': 'max-age=600', 'cache-control': 'max-age=5' }, { cdnCacheControl: true, surrogate: 'tiercache' }),
        { 'max-age': '70' },
      );
    });
  });
});
