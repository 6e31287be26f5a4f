// Why this test exists: upstreamStatus decides which Cache-Status members a
// handler left are an upstream cache's (stored with the entry, replayed before
// ours on every hit) and which are the value a middleware in front of the
// cache set (never stored). The walk over field lines and members joined by
// hand (appendedTo, prependedTo, joinedAt, joinedBefore) was mutated by hand in
// session 33: lines read off by one, a member matched anywhere in a line or
// only by its end, whitespace or the comma not required. Each case below is a
// value one such mutant got wrong: an upstream's member dropped, the front
// layer's stored (replayed to every later client), or a TypeError out of the
// fill. Real ServerResponse objects; no server.
import assert from 'node:assert/strict';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { CACHE_STATUS, sayBeforeApp, upstreamStatus } from '../../../src/middleware/cache-status.js';

type Value = string | string[];

/** A response whose Cache-Status the handler left as `value`, with `front` set in front of the cache. */
function upstreamOf(front: Value, value: Value): { upstream: unknown; left: unknown } {
  const res = new ServerResponse(new IncomingMessage(new Socket()));
  res.setHeader(CACHE_STATUS, value);
  const upstream = upstreamStatus(res, front);
  return { upstream, left: res.getHeader(CACHE_STATUS) };
}

describe("Cache-Status: the upstream's members among what the handler left over a value set in front", () => {
  const cases: Array<[what: string, front: Value, value: Value, upstream: Value | undefined]> = [
    ["two front lines after the upstream's (set before them)", ['edge; a', 'edge; b'], ['up; hit', 'edge; a', 'edge; b'], 'up; hit'],
    ["the upstream's joined before two front lines, no space after its comma", ['edge; a', 'edge; b'], 'up; hit ,edge; a, edge; b', 'up; hit'],
    ["the upstream's second line joined before the front's one", 'edge; hit', ['up; a', 'up; b,edge; hit'], ['up; a', 'up; b']],
    ["the upstream's joined to the first of two front lines", ['edge; a', 'edge; b'], ['up; a,edge; a', 'edge; b'], 'up; a'],
    ['two front lines joined into one: a copy, no upstream', ['edge; a', 'edge; b'], 'edge; a, edge; b', undefined],
    ['the last front line alone: not the front value, kept', ['edge; a', 'edge; b'], 'edge; b', 'edge; b'],
    ["a member that only ends with the front's", 'edge; hit', 'up; hit,xedge; hit', 'up; hit,xedge; hit'],
    ["a front line that only begins the handler's member", 'edge; a, edge; b', 'edge; a, edge; bx,up; hit', 'edge; a, edge; bx,up; hit'],
    ['an empty list (setHeader with [])', 'edge; hit', [], []],
  ];
  for (const [what, front, value, upstream] of cases) {
    it(`${what}: ${JSON.stringify(value)} over ${JSON.stringify(front)}`, () => {
      const got = upstreamOf(front, value);
      assert.deepEqual(got.upstream, upstream);
      // What stays on the response is the upstream's alone (ours is added after it), or the value as it was.
      assert.deepEqual(got.left, upstream ?? value);
    });
  }
});

describe('Cache-Status: our member said before the app ran (a bypass), joined by hand to the upstream\'s, is taken off', () => {
  const ours = 'tiercache; fwd=bypass';
  const cases: Array<[what: string, value: Value, upstream: Value | undefined]> = [
    ['joined after and before, tabs around the commas', [`${ours}\t,\tup; a`, `up; b\t,\t${ours}`], ['up; a', 'up; b']],
    ["a member that only contains ours: not ours", `x${ours}, up; hit`, `x${ours}, up; hit`],
    ["a member that only ends with ours: not ours", `up; hit, x${ours}`, `up; hit, x${ours}`],
    // As long as ours: the comma after it is where one after ours would be.
    ["an upstream's member as long as ours, first", 'edge-cache; fwd=stale, up; hit', 'edge-cache; fwd=stale, up; hit'],
    ["an upstream's member as long as ours, last", 'up; hit, edge-cache; fwd=stale', 'up; hit, edge-cache; fwd=stale'],
  ];
  for (const [what, value, upstream] of cases) {
    it(`${what}: ${JSON.stringify(value)}`, () => {
      const res = new ServerResponse(new IncomingMessage(new Socket()));
      sayBeforeApp(res, ours);
      res.setHeader(CACHE_STATUS, value);
      assert.deepEqual(upstreamStatus(res, undefined), upstream);
      assert.deepEqual(res.getHeader(CACHE_STATUS), upstream);
    });
  }
});
