import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { queryHasAccessToken, requestBypassReason, requestForbidsStore, ttlForStatus, varyOf } from '../../../src/middleware/storage-rules.js';

describe('middleware: storage rules, unit', () => {
  describe('queryHasAccessToken (RFC 6750 §2.3: a credential in the query)', () => {
    it('finds access_token in the query, plain or escaped', () => {
      for (const target of ['/a?access_token=1', '/a?x=1&access_token=1', '/a?%61ccess_token=1', '/a?access%5Ftoken=1', '/a?access_token']) {
        assert.equal(queryHasAccessToken(target), true, target);
      }
    });

    it('needs a query: none, or the name only in the path, is no token', () => {
      for (const target of ['/access_token', '/a', '/a/access_token=1', '/%61ccess_token']) assert.equal(queryHasAccessToken(target), false, target);
    });

    it('reads the query up to a raw #: a token in the fragment is none, one before it is', () => {
      assert.equal(queryHasAccessToken('/a?x=1#access_token=1'), false);
      assert.equal(queryHasAccessToken('/a?x=1#&access_token=1'), false);
      assert.equal(queryHasAccessToken('/a?x=1#&%61ccess_token=1'), false);
      assert.equal(queryHasAccessToken('/a?x=1#%61ccess_token=1'), false);
      assert.equal(queryHasAccessToken('/a?access_token=1#frag'), true);
      assert.equal(queryHasAccessToken('/a?x=1&access_token=1#'), true);
    });

    it('a # before the ? ends the target there: what follows is no query', () => {
      assert.equal(queryHasAccessToken('/a#frag?access_token=1'), false);
      assert.equal(queryHasAccessToken('/a#?%61ccess_token=1'), false);
    });

    it('does not take a value or a longer name for the token', () => {
      for (const target of ['/a?q=access_token', '/a?access_tokens=1', '/a?my_access_token=1', '/a?q=%61ccess_token']) assert.equal(queryHasAccessToken(target), false, target);
    });
  });

  describe('requestBypassReason', () => {
    const plain = { host: 'x' };
    it('passes a plain GET', () => {
      assert.equal(requestBypassReason(plain, 'GET', undefined, false, '/a'), undefined);
    });

    it('bypasses a token in the query unless the route is user-scoped or shared', () => {
      assert.equal(requestBypassReason(plain, 'GET', undefined, false, '/a?access_token=1'), 'access-token');
      assert.equal(requestBypassReason(plain, 'GET', undefined, true, '/a?access_token=1'), undefined);
      assert.equal(requestBypassReason(plain, 'GET', undefined, false, '/a#x?access_token=1'), undefined);
    });

    it('bypasses Range (range) and the preconditions only the app can judge, If-Match and If-Unmodified-Since (precondition), on user-scoped or shared routes too', () => {
      for (const scoped of [false, true]) {
        assert.equal(requestBypassReason({ range: 'bytes=0-1' }, 'GET', undefined, scoped, '/a'), 'range', `scoped: ${scoped}`);
        assert.equal(requestBypassReason({ 'if-match': '"x"' }, 'GET', undefined, scoped, '/a'), 'precondition', `scoped: ${scoped}`);
        assert.equal(requestBypassReason({ 'if-unmodified-since': 'Mon, 07 Dec 2026 00:00:00 GMT' }, 'GET', undefined, scoped, '/a'), 'precondition', `scoped: ${scoped}`);
        // The ones a stored answer can judge (a 304 from its validators) are the cache's.
        assert.equal(requestBypassReason({ 'if-none-match': '"x"', 'if-modified-since': 'Mon, 07 Dec 2026 00:00:00 GMT' }, 'GET', undefined, scoped, '/a'), undefined, `scoped: ${scoped}`);
      }
    });

    it('says why, in order: method override, a body, credentials', () => {
      assert.equal(requestBypassReason(plain, 'GET', 'POST', false, '/a'), 'method-override');
      assert.equal(requestBypassReason({ 'x-http-method-override': 'DELETE' }, 'GET', undefined, true, '/a'), 'method-override');
      assert.equal(requestBypassReason({ 'x-http-method': 'DELETE' }, 'GET', undefined, true, '/a'), 'method-override');
      assert.equal(requestBypassReason({ 'x-method-override': 'PUT' }, 'GET', undefined, true, '/a'), 'method-override');
      assert.equal(requestBypassReason({ 'content-length': '3' }, 'GET', undefined, true, '/a'), 'body');
      assert.equal(requestBypassReason({ 'content-length': '0' }, 'GET', undefined, false, '/a'), undefined);
      assert.equal(requestBypassReason({ 'transfer-encoding': 'chunked' }, 'GET', undefined, true, '/a'), 'body');
      assert.equal(requestBypassReason({ authorization: 'Bearer x', cookie: 'a=1' }, 'GET', undefined, false, '/a'), 'authorization');
      assert.equal(requestBypassReason({ cookie: 'a=1' }, 'GET', undefined, false, '/a?access_token=1'), 'cookie');
      assert.equal(requestBypassReason({ authorization: 'Bearer x' }, 'GET', undefined, true, '/a'), undefined);
    });
  });

  it('only no-store in the request forbids storing: other directives (a browser reload\'s max-age=0, no-cache) do not', () => {
    assert.equal(requestForbidsStore({}), false);
    assert.equal(requestForbidsStore({ 'cache-control': 'max-age=0' }), false);
    assert.equal(requestForbidsStore({ 'cache-control': 'no-cache' }), false);
    assert.equal(requestForbidsStore({ 'cache-control': 'no-store' }), true);
    assert.equal(requestForbidsStore({ 'cache-control': 'max-age=0, No-Store' }), true);
  });

  it('a status is stored for the TTL when storable, for negativeTtl only when it is one of the negative ones and negativeTtl is set', () => {
    assert.equal(ttlForStatus(200, 60_000, undefined), 60_000);
    assert.equal(ttlForStatus(301, 60_000, 5_000), 60_000);
    assert.equal(ttlForStatus(404, 60_000, 5_000), 5_000);
    assert.equal(ttlForStatus(404, 60_000, undefined), undefined);
    assert.equal(ttlForStatus(500, 60_000, 5_000), undefined, 'a 500 stored for negativeTtl');
    assert.equal(ttlForStatus(302, 60_000, 5_000), undefined);
  });

  it('varyOf: the names lower-cased, once each and sorted, so two fills that list them differently vary alike; * wins', () => {
    assert.deepEqual(varyOf({}), []);
    assert.deepEqual(varyOf({ vary: 'User-Agent, Accept-Language' }), ['accept-language', 'user-agent']);
    // node takes an array for any header (res.setHeader('Vary', [...])), though its type says string.
    assert.deepEqual(varyOf({ vary: ['accept-language', 'USER-AGENT, Accept-Language'] } as unknown as OutgoingHttpHeaders), ['accept-language', 'user-agent']);
    assert.deepEqual(varyOf({ vary: 'Accept, *' }), '*');
  });
});
