// Why this test exists: queryHasAccessToken returns early when the target has
// no '?'. Without that early return, the whole target would be read as the
// query, and a path segment such as `/a&access_token=1` (no query at all)
// would count as a credential. The request would then bypass the cache for no
// reason. The other queryHasAccessToken tests use paths without '&', where
// hasAccessToken also answers no, so they do not see this.
import assert from 'node:assert/strict';
import { queryHasAccessToken, requestBypassReason } from '../../../src/middleware/storage-rules.js';

describe('middleware: storage rules, an access_token after & in the path of a target with no query', () => {
  it('is no token: without a ? there is no query, whatever the path holds after &', () => {
    for (const target of ['/a&access_token=1', '/a&%61ccess_token=1', '/a/b&access_token']) assert.equal(queryHasAccessToken(target), false, target);
  });

  it('does not make the request bypass the cache', () => {
    assert.equal(requestBypassReason({ host: 'x' }, 'GET', undefined, false, '/a&access_token=1'), undefined);
  });

  it('still finds the token once a query follows', () => {
    assert.equal(queryHasAccessToken('/a&x?access_token=1'), true);
  });
});
