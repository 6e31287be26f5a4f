// canonicalQuery returns a lone plain parameter (`?page=2`) as it is, without
// splitting or decoding it: these pin that this shortcut gives what the full
// reading gives, allow-lists and access_token included.
import assert from 'node:assert/strict';
import { canonicalQuery } from '../../../src/keys/canonical-query.js';

describe('keys: canonicalQuery of a lone plain parameter', () => {
  it('is the parameter itself, an empty value too', () => {
    for (const q of ['page=2', 'miss=123', 'a_b.c~d-e=x.y_z~-', 'page=']) assert.equal(canonicalQuery(q), q);
  });

  it('reads anything else in full: no value, escapes, +, brackets, a leading ?', () => {
    assert.equal(canonicalQuery('page'), 'page=');
    assert.equal(canonicalQuery('a=%41'), 'a=A');
    assert.equal(canonicalQuery('a=b+c'), 'a=b c');
    assert.equal(canonicalQuery('a[b]=1'), 'a[b]=1');
    assert.equal(canonicalQuery('?a=1'), ',,#%3Fa%3D1');
  });

  it('keeps it only when the allow-list has its name, or it is access_token', () => {
    const allow = new Set(['q', 'a[]']);
    assert.equal(canonicalQuery('q=1', allow), 'q=1');
    assert.equal(canonicalQuery('a=1', allow), 'a=1');
    assert.equal(canonicalQuery('page=2', allow), '');
    assert.equal(canonicalQuery('qq=2', allow), '');
    assert.equal(canonicalQuery('access_token=abc', allow), 'access_token=abc');
    assert.equal(canonicalQuery('access_tokens=abc', allow), '');
  });
});
