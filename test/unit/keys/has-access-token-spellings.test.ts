// Why these tests exist: hasAccessToken reads a name leniently where it is
// not valid UTF-8 (valid escapes of ASCII characters decoded, '+' a space), and
// skips the work only for a query holding neither 'access_token' nor '%'.
// Mutation testing found each of these untested: an escape at the name's
// second character, an escaped name whose bracket part is not UTF-8 (qs with
// charset 'iso-8859-1', which an app may set as its query parser, reads it as
// access_token), and a '+' in such a name.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { reportedTarget } from '../../../src/keys/canonical-query.js';
import { hasAccessToken } from '../../../src/keys/index.js';
import { QUERY_PARSERS } from '../../support/query-parsers.js';

// qs as Express ships it (a dependency of express).
const requireFromExpress = createRequire(createRequire(import.meta.url).resolve('express'));
const qs = requireFromExpress('qs') as { parse(query: string, options: { charset: string }): Record<string, unknown> };

describe('keys: hasAccessToken, spellings of the name', () => {
  it("finds a%63cess_token, an escape at the name's second character", () => {
    for (const { name, parse } of QUERY_PARSERS) assert.equal((parse('a%63cess_token=x') as Record<string, unknown>).access_token, 'x', name);
    assert.equal(hasAccessToken('a%63cess_token=x'), true);
    assert.equal(hasAccessToken('page=1&a%63cess_token=x'), true);
  });

  it('finds access%5Ftoken[%FF], an escaped name whose bracket part is not UTF-8 (qs with charset iso-8859-1 reads it as access_token)', () => {
    assert.deepEqual(qs.parse('access%5Ftoken[%FF]=x', { charset: 'iso-8859-1' }), { access_token: { '\u00ff': 'x' } });
    assert.equal(hasAccessToken('access%5Ftoken[%FF]=x'), true);
    assert.equal(hasAccessToken('access%5Ftoken%5B%FF%5D=x'), true);
  });

  it("reads '+' as a space there too: access+_token[%FF] is no access_token", () => {
    for (const { name, parse } of QUERY_PARSERS) assert.equal((parse('access+_token[%FF]=x') as Record<string, unknown>).access_token, undefined, name);
    assert.equal(qs.parse('access+_token[%FF]=x', { charset: 'iso-8859-1' }).access_token, undefined);
    assert.equal(hasAccessToken('access+_token[%FF]=x'), false);
  });
});

describe('keys: reportedTarget, the request target a bypass event and the debug log carry', () => {
  it('redacts the value of every access_token parameter, in each spelling hasAccessToken reads, and leaves the rest as it was', () => {
    const cases: Array<[target: string, reported: string]> = [
      ['/p', '/p'],
      ['/p?page=2', '/p?page=2'],
      ['/p?access_token=s3cret&page=2#top', '/p?access_token=redacted&page=2#top'],
      ['/p?access_token=a&x=1&access_token=b', '/p?access_token=redacted&x=1&access_token=redacted'],
      ['/p?x=1&access_token=s3cret#top', '/p?x=1&access_token=redacted#top'],
      ['/p?%61ccess_token=s3cret', '/p?%61ccess_token=redacted'],
      ['/p?access_token[0]=s3cret', '/p?access_token[0]=redacted'],
      // No value to hide; parsers read other names and other cases apart.
      ['/p?access_token', '/p?access_token'],
      ['/p?ACCESS_TOKEN=s&access_tokens=t', '/p?ACCESS_TOKEN=s&access_tokens=t'],
      ['/p?access_tokenX&access_token=s', '/p?access_tokenX&access_token=redacted'],
      // A '#' before the '?' (a fragment no client sends): the access_token after it is redacted all the same.
      ['/p#top?access_token=s3cret', '/p#top?access_token=redacted'],
    ];
    for (const [target, reported] of cases) assert.equal(reportedTarget(target), reported, target);
  });
});
