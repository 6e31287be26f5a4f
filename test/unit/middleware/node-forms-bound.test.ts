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
    // Fields node does not look at go out joined to the entry before them, Age last.
    assert.deepEqual(form['content-type'], ['content-type', 'text/plain\r\nx-n: -1\r\nage: 2']);
    // Whatever the map held before, 1,024 HeaderSets more fill it past its bound at least once.
    for (let i = 0; i < 1_024; i++) assert.ok(headerSet(i).nodeFormWith('0', undefined) !== undefined);
    const again = first.nodeFormWith('3', undefined);
    assert.notEqual(again, form, 'the form of a HeaderSet not hit among the last 1,024 is still held');
    assert.deepEqual(again && Object.entries(again), [['content-type', ['content-type', 'text/plain\r\nx-n: -1\r\nage: 3']]]);
  });

  it('are kept apart with and without Cache-Status: hits of one HeaderSet may take either (a front door and a middleware told otherwise)', () => {
    const set = headerSet(-2);
    const plain = set.nodeFormWith('1', undefined);
    const withStatus = set.nodeFormWith('1', 'tiercache; hit; detail=L1');
    assert.deepEqual(plain && Object.values(plain), [['content-type', 'text/plain\r\nx-n: -2\r\nage: 1']]);
    assert.deepEqual(withStatus && Object.values(withStatus), [['content-type', 'text/plain\r\nx-n: -2\r\nage: 1\r\ncache-status: tiercache; hit; detail=L1']]);
    assert.equal(set.nodeFormWith('2', undefined), plain);
    assert.deepEqual(Object.values(plain!), [['content-type', 'text/plain\r\nx-n: -2\r\nage: 2']]);
  });
});
