// Why this test exists: the node-form heads of HeaderSets (nodeFormWith) are kept
// in a process-wide map beside the entries, bounded by count (1,024) and emptied
// when full, so that what L1 no longer holds is let go. The integration tests hit
// a few entries only: nothing checked that the map is ever emptied (s38 hand
// mutation: the emptying dropped survived).
import assert from 'node:assert/strict';
import { HeaderSet } from '../../../src/middleware/http-entry.js';

/** A HeaderSet of two fields, with its SLOTS free slots. */
const headerSet = (n: number) => new HeaderSet(['content-type', 'text/plain', 'x-n', String(n), '', '', '', ''], 4);

describe('middleware: the node-form heads kept beside the entries', () => {
  it('are shared by the hits of one HeaderSet, and let go once 1,024 others were hit since', () => {
    const first = headerSet(-1);
    const form = first.nodeFormWith('1', undefined);
    assert.ok(form !== undefined);
    assert.equal(first.nodeFormWith('2', undefined), form, 'a second hit built its own form');
    assert.deepEqual(form['age'], ['age', '2']);
    // Whatever the map held before, 1,024 HeaderSets more fill it past its bound at least once.
    for (let i = 0; i < 1_024; i++) assert.ok(headerSet(i).nodeFormWith('0', undefined) !== undefined);
    const again = first.nodeFormWith('3', undefined);
    assert.notEqual(again, form, 'the form of a HeaderSet not hit among the last 1,024 is still held');
    assert.deepEqual(again && Object.entries(again), [['content-type', ['content-type', 'text/plain']], ['x-n', ['x-n', '-1']], ['age', ['age', '3']]]);
  });

  it('are kept apart with and without Cache-Status: hits of one HeaderSet may take either (a front door and a middleware told otherwise)', () => {
    const set = headerSet(-2);
    const plain = set.nodeFormWith('1', undefined);
    const withStatus = set.nodeFormWith('1', 'tiercache; hit; detail=L1');
    assert.deepEqual(plain && Object.keys(plain), ['content-type', 'x-n', 'age']);
    assert.deepEqual(withStatus && Object.keys(withStatus), ['content-type', 'x-n', 'age', 'cache-status']);
    assert.deepEqual(withStatus?.['cache-status'], ['cache-status', 'tiercache; hit; detail=L1']);
    assert.equal(set.nodeFormWith('2', undefined), plain);
  });
});
