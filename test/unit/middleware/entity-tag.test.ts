import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import computeEtag from 'etag';
import { entityTag } from '../../../src/middleware/entity-tag.js';

describe('middleware: entityTag', () => {
  it('gives the strong ETag the etag package gives the same bytes', () => {
    const bodies = [Buffer.alloc(0), Buffer.from('a'), Buffer.from('{"ok":true}'), Buffer.from('héllo wörld ✓'), randomBytes(1536), randomBytes(70_000)];
    for (const body of bodies) assert.equal(entityTag(body), computeEtag(body), `${body.length} bytes`);
  });

  it('is a quoted length in hex and 27 characters of base64 SHA-1', () => {
    // sha1('abc') = qZk+NkcGgWq6PiVxeFDCbJzQ2J0= in base64.
    assert.equal(entityTag(Buffer.from('abc')), '"3-qZk+NkcGgWq6PiVxeFDCbJzQ2J0"');
  });

  it('tells bodies of one length apart', () => {
    assert.notEqual(entityTag(Buffer.from('abcd')), entityTag(Buffer.from('abce')));
  });
});
