// headJson replaces JSON.stringify for the stored head of every fill: the
// bytes L1 keeps and L2 shares with other instances (whose JSON.parse reads
// them) must be exactly the ones JSON.stringify wrote, escapes included.
import assert from 'node:assert/strict';
import { headJson } from '../../../src/middleware/head-json.js';

const VALUES = [
  '',
  'application/json; charset=utf-8',
  '"615-qKd6jCMnXYZabcdefghijklmnop"',
  'W/"a\\b"',
  'tab\there',
  'latin1 \u00e9\u00ff and DEL \u007f',
  'beyond latin1 \u20ac \u{1f600}',
  'lone \ud800 high',
  'lone \udc00 low',
  'ctl \u0001\u001f',
  '</script>',
];

describe('middleware: headJson, the stored head as JSON', () => {
  it('writes what JSON.stringify writes for every field a fill head holds, escapes included', () => {
    for (const v of VALUES) {
      const heads: object[] = [
        { s: 200, h: [['content-type', v], ['etag', '"1-x"']] },
        { s: 203, h: [[v, 'x']], u: 1, p: 1, r: 1, w: 1, o: [1, 30000, 0], t: v, l: v },
        { s: 404, h: [], t: v },
        { m: ['accept-encoding', v], p: 1, r: 1 },
        { s: 200, h: [['a', v], ['b', v], ['c', v]], o: [0, Infinity, NaN] },
      ];
      for (const head of heads) assert.equal(headJson(head), JSON.stringify(head), JSON.stringify(head));
    }
  });

  it('keeps the order the fields were set in, and leaves out undefined ones as JSON.stringify does', () => {
    const head = { p: 1, s: 500, t: undefined, h: [['x', 'y']], l: '/api' };
    assert.equal(headJson(head), '{"p":1,"s":500,"h":[["x","y"]],"l":"/api"}');
    assert.equal(headJson(head), JSON.stringify(head));
    assert.equal(headJson({}), '{}');
  });
});
