// The request target as the cache may use it (RFC 9112 §3.2): origin form as
// is, absolute form only when its authority is the Host's own.
import assert from 'node:assert/strict';
import { parse } from 'node:url';
import fc from 'fast-check';
import { ownOriginForm } from '../../../src/middleware/request-target.js';

describe('middleware: request target, unit', () => {
  it('keeps an origin-form target as it is', () => {
    assert.equal(ownOriginForm('/a?b=1', 'x'), '/a?b=1');
    assert.equal(ownOriginForm('/', undefined), '/');
    // absolute-path = 1*( "/" segment ) with empty segments: a path, not an authority.
    assert.equal(ownOriginForm('//example.com/a', 'x'), '//example.com/a');
  });

  it('reduces an absolute-form target with the Host\'s own authority to its path and query', () => {
    assert.equal(ownOriginForm('http://example.com/a?b=1', 'example.com'), '/a?b=1');
    assert.equal(ownOriginForm('https://example.com:8443/a', 'example.com:8443'), '/a');
  });

  it('gives "/" for an absolute-form target without a path (RFC 9112 §3.2.1)', () => {
    assert.equal(ownOriginForm('http://example.com', 'example.com'), '/');
    assert.equal(ownOriginForm('http://example.com?q=1', 'example.com'), '/?q=1');
  });

  it('compares scheme and host case-insensitively (RFC 3986 §6.2.2.1), around Host\'s whitespace', () => {
    assert.equal(ownOriginForm('HTTP://Example.COM/a', 'example.com'), '/a');
    assert.equal(ownOriginForm('http://example.com/a', ' EXAMPLE.com '), '/a');
  });

  it('takes the scheme\'s default port as no port, on either side (RFC 3986 §6.2.3)', () => {
    assert.equal(ownOriginForm('http://example.com:80/a', 'example.com'), '/a');
    assert.equal(ownOriginForm('http://example.com/a', 'example.com:80'), '/a');
    assert.equal(ownOriginForm('https://example.com:443/a', 'example.com'), '/a');
    assert.equal(ownOriginForm('https://example.com/a', 'example.com:443'), '/a');
    assert.equal(ownOriginForm('HTTPS://example.com/a', 'example.com:443'), '/a');
  });

  it('knows no default port of a scheme it does not know: an authority that merely ends in "undefined" is not the Host', () => {
    assert.equal(ownOriginForm('gopher://hostundefined/a', 'host'), undefined);
    assert.equal(ownOriginForm('gopher://host/a', 'hostundefined'), undefined);
  });

  it('takes no other scheme\'s default port, nor another port', () => {
    assert.equal(ownOriginForm('http://example.com:443/a', 'example.com'), undefined);
    assert.equal(ownOriginForm('https://example.com:80/a', 'example.com'), undefined);
    assert.equal(ownOriginForm('http://example.com/a', 'example.com:443'), undefined);
    assert.equal(ownOriginForm('http://example.com:8080/a', 'example.com'), undefined);
    assert.equal(ownOriginForm('ftp://example.com:80/a', 'example.com'), undefined);
    assert.equal(ownOriginForm('ftp://example.com/a', 'example.com'), '/a');
  });

  it('refuses a foreign authority, a missing Host and userinfo', () => {
    assert.equal(ownOriginForm('http://evil.example/a', 'example.com'), undefined);
    assert.equal(ownOriginForm('http://example.com.evil/a', 'example.com'), undefined);
    assert.equal(ownOriginForm('http://example.com/a', undefined), undefined);
    assert.equal(ownOriginForm('http://user@example.com/a', 'example.com'), undefined);
    assert.equal(ownOriginForm('http://example.com@evil/a', 'example.com@evil'), undefined);
  });

  it('refuses what is neither form: asterisk, authority form, a relative or malformed target', () => {
    for (const target of ['*', 'example.com:80', 'a/b', '', '1http://example.com/a', 'http:/example.com/a']) {
      assert.equal(ownOriginForm(target, 'example.com'), undefined, target);
    }
  });

  it('accepts any scheme of letters, digits, + . - after the first letter', () => {
    assert.equal(ownOriginForm('web+x.y-z://example.com/a', 'example.com'), '/a');
  });

  it('ends the authority at "/", "?" or "#"', () => {
    assert.equal(ownOriginForm('http://example.com?x=/y', 'example.com'), '/?x=/y');
    assert.equal(ownOriginForm('http://example.com/a/b', 'example.com'), '/a/b');
  });

  // parseurl (Express 4 and 5, Koa 2 and 3) reads a target that does not start with '/' with node's url.parse.
  it("gives the path and query the apps read: a '\\' before the query is a '/', some characters are escaped", () => {
    assert.equal(ownOriginForm('http://example.com/api\\admin\\x?a\\b=1', 'example.com'), '/api/admin/x?a%5Cb=1');
    assert.equal(ownOriginForm('http://example.com/a{b}|"c"<d>^`e\'', 'example.com'), '/a%7Bb%7D%7C%22c%22%3Cd%3E%5E%60e%27');
    assert.equal(ownOriginForm('/api\\admin', 'example.com'), '/api\\admin', 'origin form is read as it is');
    // ... but with a '#', parseurl reads it with url.parse too
    assert.equal(ownOriginForm('/api\\admin#x', 'example.com'), '/api/admin#x');
    // where a path starting with '//' may turn into an authority: not taken
    assert.equal(ownOriginForm('//x@y/z#', 'example.com'), undefined);
    assert.equal(ownOriginForm('/\\x@y/z#', 'example.com'), undefined);
  });

  it('agrees with url.parse on every absolute-form target of the Host, and on every origin-form one it takes (property)', () => {
    // The characters node's parser lets into a request target that url.parse treats specially, and some plain ones.
    const char = fc.constantFrom(...'aB/\\?#=&%2F"\'<>^`{|}.;:~[]');
    fc.assert(
      fc.property(fc.string({ unit: char, maxLength: 14 }), fc.boolean(), (tail, absolute) => {
        const url = (absolute ? 'http://example.com/' : '/') + tail;
        const ours = ownOriginForm(url, 'example.com');
        // Refused: only an origin-form target that url.parse may read an authority into.
        if (ours === undefined) return assert.ok(!absolute && url.includes('#') && /^\/[\/\\]/.test(url), url);
        // parseurl reads an origin-form target without '#' as it is; any other with url.parse.
        if (!absolute && !url.includes('#')) return assert.equal(ours, url);
        const parsed = parse(url);
        const hash = ours.indexOf('#');
        // The fragment is no part of what the apps read (and keys drop it).
        assert.equal(hash === -1 ? ours : ours.slice(0, hash), (parsed.pathname ?? '/') + (parsed.search ?? ''));
      }),
      { numRuns: 2000 },
    );
  });
});
