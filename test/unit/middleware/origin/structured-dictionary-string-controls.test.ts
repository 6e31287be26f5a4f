// Why this test exists: an RFC 8941 String takes printable ASCII only (%x20-7E,
// §3.3.3). The existing tests check the upper edge (DEL, non-ASCII); mutation
// testing showed nothing checked the lower one. A tab is the control character
// a response header can carry (node refuses the others), and a targeted field
// holding one in a string is no Dictionary: ignored as a whole (RFC 9213 §2.1).
import assert from 'node:assert/strict';
import { parseDictionary } from '../../../../src/middleware/origin/structured-dictionary.js';
import { responseDirectives } from '../../../../src/middleware/origin/directives.js';

describe('middleware: RFC 8941 strings refuse control characters', () => {
  it('a string holding a tab, or another character below a space, is no Dictionary', () => {
    assert.equal(parseDictionary('a="x\ty"'), undefined, 'a tab');
    assert.equal(parseDictionary('a="x\u001fy"'), undefined, 'U+001F, just below a space');
    assert.deepEqual(Object.fromEntries(parseDictionary('a="x y"')!), { a: { type: 'string', value: 'x y' } }, 'a space is printable');
  });

  it('so a CDN-Cache-Control with a tab in a string leaves Cache-Control in charge', () => {
    const directives = responseDirectives({ 'cdn-cache-control': 'max-age=600, x="a\tb"', 'cache-control': 'max-age=5' }, { cdnCacheControl: true, surrogate: undefined });
    assert.deepEqual(Object.fromEntries(directives.values), { 'max-age': '5' });
  });
});
