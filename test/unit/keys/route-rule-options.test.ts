// A route rule's shared, freshness and query options at their edges: both
// freshness values are taken, every refusal says what the option takes, and
// a list with one bad element among good ones is refused as a whole.
import assert from 'node:assert/strict';
import { RouteTable } from '../../../src/keys/route-table.js';
import { assertConfigError } from './support.js';

describe('keys: route rule options', () => {
  it("takes freshness 'table' as well as 'origin'", () => {
    assert.equal(new RouteTable({ '/x': { freshness: 'table' } }).match('/x')?.freshness, 'table');
    assert.equal(new RouteTable({ '/x': { freshness: 'origin' } }).match('/x')?.freshness, 'origin');
  });

  it('says what shared and freshness take', () => {
    assertConfigError(() => new RouteTable({ '/x': { shared: 1 as never } }), "routes['/x'].shared", '1', /must be a boolean/);
    assertConfigError(() => new RouteTable({ '/x': { freshness: 'fresh' as never } }), "routes['/x'].freshness", '"fresh"', /must be 'table' or 'origin'/);
  });

  it('refuses a query list with one empty or non-string element among good ones', () => {
    assertConfigError(() => new RouteTable({ '/x': { query: ['page', ''] } }), "routes['/x'].query", 'an array', /must be an array of non-empty strings/);
    assertConfigError(() => new RouteTable({ '/x': { query: ['page', 7] as never } }), "routes['/x'].query", 'an array', /must be an array of non-empty strings/);
  });

  it('names the element of a vary list that is no header name', () => {
    assertConfigError(() => new RouteTable({ '/x': { vary: ['accept', 'bad header'] } }), "routes['/x'].vary", 'an array', /must hold HTTP header names; 'bad header' is not one/);
  });
});
