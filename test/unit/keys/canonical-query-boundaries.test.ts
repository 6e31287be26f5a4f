// Why these tests exist: two boundaries in a canonical query that mutation
// testing found untested. A value that is not valid UTF-8 enters the key as
// sent, and its '=#' marker is what keeps the name/value boundary: without it
// ?ab=%FF and ?a=b%FF met. And qs's ']=' split rule is read after %5B / %5D
// turn into brackets: ']%5B=' becomes '][=', no ']=', so such a query is read
// alike by every parser and may be sorted.
import assert from 'node:assert/strict';
import { buildRequestKey, canonicalQuery } from '../../../src/keys/index.js';
import { QUERY_PARSERS } from '../../support/query-parsers.js';

function key(url: string): string {
  return buildRequestKey({ namespace: 'shop', method: 'GET', url });
}

describe('keys: canonicalQuery, name/value and split boundaries', () => {
  it('keys ?ab=%FF apart from ?a=b%FF: a value that is not UTF-8 keeps its boundary with the name', () => {
    for (const { name, parse } of QUERY_PARSERS) assert.notDeepEqual(parse('ab=%FF'), parse('a=b%FF'), name);
    assert.notEqual(canonicalQuery('ab=%FF'), canonicalQuery('a=b%FF'));
    assert.notEqual(key('/s?ab=%FF'), key('/s?a=b%FF'));
  });

  it("sorts a query whose value holds ']' before an encoded '[' (']%5B=' is no ']=' to qs): ?z=1&a=b]%5B=c == ?a=b]%5B=c&z=1", () => {
    for (const { name, parse } of QUERY_PARSERS) assert.deepEqual({ ...(parse('z=1&a=b]%5B=c') as object) }, { z: '1', a: 'b][=c' }, name);
    assert.equal(key('/s?z=1&a=b]%5B=c'), key('/s?a=b]%5B=c&z=1'));
  });
});
