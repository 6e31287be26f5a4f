// originForm: absolute-form request targets (which node passes through as
// sent) are keyed and matched like their origin form.
import assert from 'node:assert/strict';
import { keyTag, originForm, pathOf } from '../../../src/keys/index.js';

describe('keys: originForm', () => {
  it('leaves origin-form targets as they are', () => {
    for (const url of ['/', '/a/b?c=d', '/a//b', '/%61dmin']) assert.equal(originForm(url), url);
  });

  it('strips scheme and authority from absolute-form targets, keeping path and query', () => {
    assert.equal(originForm('http://example.com/api/movies?x=1'), '/api/movies?x=1');
    assert.equal(originForm('HTTPS://user@example.com:8443/a/b'), '/a/b');
    assert.equal(originForm('http://example.com'), '/');
    assert.equal(originForm('http://example.com?q=1'), '/?q=1');
    assert.equal(pathOf(originForm('http://h/api/admin')), '/api/admin');
  });

  it('leaves other targets (asterisk form, garbage) alone', () => {
    assert.equal(originForm('*'), '*');
    assert.equal(originForm('not a url'), 'not a url');
  });
});

describe('keys: keyTag', () => {
  it('gives every key its own tag, distinct from user and path tags', () => {
    assert.equal(keyTag('ns:GET:/a'), 'key:ns:GET:/a');
    assert.notEqual(keyTag('ns:GET:/a'), keyTag('ns:GET:/a?b'));
  });
});
