import assert from 'node:assert/strict';
import { staleHit } from '../../../src/middleware/cache-status.js';

describe('middleware: staleHit', () => {
  it('gives the seconds past freshness as a negative ttl, rounded up, at least -1 (RFC 9211)', () => {
    assert.equal(staleHit('L1', 0), 'tiercache; hit; ttl=-1; detail=L1');
    assert.equal(staleHit('L1', 0.2), 'tiercache; hit; ttl=-1; detail=L1');
    assert.equal(staleHit('L2', 1), 'tiercache; hit; ttl=-1; detail=L2');
    assert.equal(staleHit('L2', 3.4), 'tiercache; hit; ttl=-4; detail=L2');
    assert.equal(staleHit('L1', 90), 'tiercache; hit; ttl=-90; detail=L1');
  });
});
