import assert from 'node:assert/strict';
import {
  BYPASS,
  BYPASS_REASONS,
  bypassStatus,
  CACHE_STATUS,
  HIT_L1,
  HIT_L2,
  MISS,
  MISS_COLLAPSED,
  MISS_REASONS,
  MISS_STORED,
  missStatus,
  QUIET_BYPASS_REASONS,
  REVALIDATED,
  staleHit,
} from '../../../src/middleware/cache-status.js';

// RFC 9211 §2: a List member, the cache's name as a Token with parameters;
// each parameter a key (RFC 8941 §3.1.2) and a Boolean (bare: true), Integer or Token.
const SF_TOKEN = /^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*$/;
const SF_KEY = /^[a-z*][a-z0-9_\-.*]*$/;
function parseMember(value: string): { name: string; params: Map<string, string> } {
  const [name, ...params] = value.split('; ');
  assert.match(name!, SF_TOKEN, value);
  const out = new Map<string, string>();
  for (const p of params) {
    const [key, v, ...rest] = p.split('=');
    assert.equal(rest.length, 0, value);
    assert.match(key!, SF_KEY, value);
    if (v !== undefined) assert.match(v, /^(?:-?[0-9]{1,15}|[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*)$/, value);
    assert.ok(!out.has(key!), `${key} once in ${value}`);
    out.set(key!, v ?? '?1');
  }
  return { name: name!, params: out };
}

describe('middleware: staleHit', () => {
  it('gives the seconds past freshness as a negative ttl, rounded up, at least -1 (RFC 9211)', () => {
    assert.equal(staleHit('L1', 0), 'tiercache; hit; ttl=-1; detail=L1');
    assert.equal(staleHit('L1', 0.2), 'tiercache; hit; ttl=-1; detail=L1');
    assert.equal(staleHit('L2', 1), 'tiercache; hit; ttl=-1; detail=L2');
    assert.equal(staleHit('L2', 3.4), 'tiercache; hit; ttl=-4; detail=L2');
    assert.equal(staleHit('L1', 90), 'tiercache; hit; ttl=-90; detail=L1');
  });

  it('rounds a fraction past a whole second up to the next second', () => {
    assert.equal(staleHit('L1', 1.01), 'tiercache; hit; ttl=-2; detail=L1');
  });
});

describe('middleware: Cache-Status values (RFC 9211, DESIGN §3)', () => {
  it('names the header field cache-status', () => {
    assert.equal(CACHE_STATUS, 'cache-status');
  });

  it('says the documented values for hits, misses, collapsed fills, bypasses and revalidations', () => {
    assert.equal(HIT_L1, 'tiercache; hit; detail=L1');
    assert.equal(HIT_L2, 'tiercache; hit; detail=L2');
    assert.equal(MISS, 'tiercache; fwd=miss');
    assert.equal(MISS_STORED, 'tiercache; fwd=miss; stored');
    assert.equal(MISS_COLLAPSED, 'tiercache; fwd=miss; collapsed');
    assert.equal(BYPASS, 'tiercache; fwd=bypass');
    assert.equal(REVALIDATED, 'tiercache; fwd=stale; fwd-status=304; stored');
  });

  it('includes every detail token DESIGN §3 lists', () => {
    const all = new Set<string>([...BYPASS_REASONS, ...MISS_REASONS]);
    for (const token of ['authorization', 'cookie', 'set-cookie', 'no-store', 'private', 'status', 'too-large', 'vary-star', 'method-override', 'body', 'disabled']) {
      assert.ok(all.has(token), token);
    }
  });

  it('bypassStatus: fwd=bypass with the reason as detail, for every reason', () => {
    for (const reason of BYPASS_REASONS) {
      assert.equal(bypassStatus(reason), `tiercache; fwd=bypass; detail=${reason}`);
      const m = parseMember(bypassStatus(reason));
      assert.equal(m.params.get('fwd'), 'bypass');
      assert.equal(m.params.get('detail'), reason);
    }
  });

  it('missStatus: fwd=miss with the reason as detail, for every reason', () => {
    for (const reason of MISS_REASONS) {
      assert.equal(missStatus(reason), `tiercache; fwd=miss; detail=${reason}`);
      const m = parseMember(missStatus(reason));
      assert.equal(m.params.get('fwd'), 'miss');
      assert.equal(m.params.get('detail'), reason);
    }
  });

  it('every value is one well-formed RFC 9211 member named tiercache, with RFC 9211 parameters', () => {
    const values = [HIT_L1, HIT_L2, MISS, MISS_STORED, MISS_COLLAPSED, BYPASS, REVALIDATED, staleHit('L1', 5), ...BYPASS_REASONS.map(bypassStatus), ...MISS_REASONS.map(missStatus)];
    for (const value of values) {
      const m = parseMember(value);
      assert.equal(m.name, 'tiercache', value);
      for (const key of m.params.keys()) assert.ok(['hit', 'fwd', 'fwd-status', 'ttl', 'stored', 'collapsed', 'key', 'detail'].includes(key), `${key} in ${value}`);
      // A hit is not forwarded, a forwarded request is no hit (RFC 9211 §2.1, §2.2).
      assert.ok(m.params.has('hit') !== m.params.has('fwd'), value);
    }
  });

  it('says only the verbose-only reasons quietly: no-rule, method, disabled, closed', () => {
    assert.deepEqual([...QUIET_BYPASS_REASONS].sort(), ['closed', 'disabled', 'method', 'no-rule']);
    for (const reason of QUIET_BYPASS_REASONS) assert.ok((BYPASS_REASONS as readonly string[]).includes(reason));
  });
});
