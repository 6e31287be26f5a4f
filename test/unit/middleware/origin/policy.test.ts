// Origin mode's decisions on a stored answer: serve it, serve it stale or
// refresh it (RFC 9111 §4, §5.2.1), the stale windows and lifetimes an entry
// is stored with, the per-key limit on forced refreshes, and which requests
// pass by the cache.
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { PreparedResponse, type StaleRules } from '../../../../src/middleware/http-entry.js';
import type { OriginLife } from '../../../../src/middleware/origin/freshness.js';
import {
  ForcedRefreshes,
  originBypassReason,
  originLifetimes,
  originPlan,
  revalidatable,
  staleRulesOf,
  staleWindow,
  Use,
  useOf,
} from '../../../../src/middleware/origin/policy.js';
import { HONOUR_ALL, resolveRequestDirectives } from '../../../../src/middleware/origin/request-directives.js';
import { hasValidator } from '../../../../src/middleware/origin/revalidation.js';

const TARGETED = { cdnCacheControl: false, surrogate: undefined };
const NOW = 1_000_000;
const FRESH = { createdAt: NOW - 10_000, freshUntil: NOW + 5_000 };
const STALE = { createdAt: NOW - 10_000, freshUntil: NOW - 1_000 };
const RULES: StaleRules = { noStale: false, staleWhileRevalidate: 0, staleIfError: 0 };
const response = (staleRules?: StaleRules) => new PreparedResponse(200, [['content-type', 'text/plain']], Buffer.from('x'), true, staleRules, false);
const plan = (headers: IncomingHttpHeaders, interval?: number) =>
  originPlan(headers, interval === undefined ? HONOUR_ALL : resolveRequestDirectives('requestDirectives', { forcedRefreshInterval: interval }), TARGETED, 60_000);

const LIFE: OriginLife = { createdAt: NOW, lifetime: 10_000, noStale: false, staleWhileRevalidate: 0, staleIfError: 0, withoutFields: [] };

describe('middleware: origin policy, unit', () => {
  describe('originPlan', () => {
    it('asks nothing of a plain request and keeps what it was given', () => {
      const p = originPlan({}, HONOUR_ALL, TARGETED, 42);
      assert.equal(p.needs, undefined);
      assert.equal(p.directives, HONOUR_ALL);
      assert.equal(p.targeted, TARGETED);
      assert.equal(p.keep, 42);
    });

    it('reads the request directives', () => {
      assert.equal(originPlan({ 'cache-control': 'no-cache' }, HONOUR_ALL, TARGETED, 1).needs!.noCache, true);
    });
  });

  describe('useOf', () => {
    it('serves a fresh entry as a hit and refreshes a stale one', () => {
      assert.equal(useOf(plan({}), FRESH, response(RULES), NOW), Use.Hit);
      assert.equal(useOf(plan({}), STALE, response(RULES), NOW), Use.Refresh);
    });

    it('serves a stale entry stale to a request that accepts it (max-stale), unless the response forbids it', () => {
      assert.equal(useOf(plan({ 'cache-control': 'max-stale' }), STALE, response(RULES), NOW), Use.Stale);
      assert.equal(useOf(plan({ 'cache-control': 'max-stale' }), STALE, response({ ...RULES, noStale: true }), NOW), Use.Refresh);
      assert.equal(useOf(plan({ 'cache-control': 'max-stale' }), STALE, response(), NOW), Use.Stale);
    });

    it('leaves a refresh the request forces on a fresh entry undecided (Refresh) without a limiter', () => {
      assert.equal(useOf(plan({ 'cache-control': 'no-cache' }), FRESH, response(RULES), NOW), Use.Refresh);
    });

    // Each request has its own plan: `noCache()` is a new one.
    const noCache = (interval?: number) => plan({ 'cache-control': 'no-cache' }, interval);

    it('allows one forced refresh per key per interval; past that the fresh entry is served', () => {
      const limiter = new ForcedRefreshes();
      assert.equal(useOf(noCache(), FRESH, response(RULES), NOW, limiter, 'k'), Use.Refresh);
      assert.equal(useOf(noCache(), FRESH, response(RULES), NOW + 999, limiter, 'k'), Use.Hit);
      assert.equal(useOf(noCache(), FRESH, response(RULES), NOW + 999, limiter, 'other'), Use.Refresh);
      assert.equal(useOf(noCache(), FRESH, response(RULES), NOW + 1_000, limiter, 'k'), Use.Refresh);
    });

    it('asks the limit once per request: a second look at the same request keeps the verdict of the first', () => {
      const limiter = new ForcedRefreshes();
      const allowed = noCache();
      assert.equal(useOf(allowed, FRESH, response(RULES), NOW, limiter, 'k'), Use.Refresh);
      assert.equal(useOf(allowed, FRESH, response(RULES), NOW + 1, limiter, 'k'), Use.Refresh, 'the refresh allowed a moment before was refused');
      const refused = noCache();
      assert.equal(useOf(refused, FRESH, response(RULES), NOW + 2, limiter, 'k'), Use.Hit);
      assert.equal(useOf(refused, FRESH, response(RULES), NOW + 1_000, limiter, 'k'), Use.Hit);
      // Without a limiter (a waiter judging another's answer) nothing is decided, whatever was.
      assert.equal(useOf(allowed, FRESH, response(RULES), NOW + 3), Use.Refresh);
    });

    it('a stale entry is refreshed whatever the limiter says, and does not use up its allowance', () => {
      const limiter = new ForcedRefreshes();
      const p = noCache();
      assert.equal(useOf(p, STALE, response(RULES), NOW, limiter, 'k'), Use.Refresh);
      assert.equal(useOf(p, FRESH, response(RULES), NOW, limiter, 'k'), Use.Refresh);
      assert.equal(useOf(noCache(), STALE, response(RULES), NOW, limiter, 'k'), Use.Refresh);
    });

    it('never limits with an interval of 0', () => {
      const limiter = new ForcedRefreshes();
      for (let i = 0; i < 3; i++) assert.equal(useOf(noCache(0), FRESH, response(RULES), NOW, limiter, 'k'), Use.Refresh);
    });
  });

  describe('staleWindow', () => {
    it('is the route\'s window for an entry without response rules', () => {
      assert.equal(staleWindow(undefined, 5_000, 'staleWhileRevalidate'), 5_000);
    });

    it('is none when the response forbids stale answers (must-revalidate, s-maxage)', () => {
      assert.equal(staleWindow({ noStale: true, staleWhileRevalidate: 9_000, staleIfError: 9_000 }, 5_000, 'staleIfError'), 0);
    });

    it('is the larger of the response\'s own window (RFC 5861) and the route\'s', () => {
      const rules = { noStale: false, staleWhileRevalidate: 30_000, staleIfError: 1_000 };
      assert.equal(staleWindow(rules, 5_000, 'staleWhileRevalidate'), 30_000);
      assert.equal(staleWindow(rules, 5_000, 'staleIfError'), 5_000);
    });
  });

  describe('originLifetimes', () => {
    it('is fresh for the lifetime from when its age was zero', () => {
      const t = originLifetimes({ ...LIFE, createdAt: NOW - 3_000 }, false, 60_000, 0, 0);
      assert.deepEqual(t, { createdAt: NOW - 3_000, freshUntil: NOW + 7_000, staleUntil: NOW + 7_000 });
    });

    it('keeps an entry past its freshness for the largest stale window, the response\'s or the route\'s', () => {
      assert.equal(originLifetimes({ ...LIFE, staleWhileRevalidate: 4_000, staleIfError: 2_000 }, false, 60_000, 1_000, 3_000).staleUntil, NOW + 14_000);
      assert.equal(originLifetimes({ ...LIFE, staleWhileRevalidate: 4_000, staleIfError: 6_000 }, false, 60_000, 1_000, 3_000).staleUntil, NOW + 16_000);
      assert.equal(originLifetimes(LIFE, false, 60_000, 7_000, 3_000).staleUntil, NOW + 17_000);
      assert.equal(originLifetimes(LIFE, false, 60_000, 1_000, 8_000).staleUntil, NOW + 18_000);
    });

    it('keeps an entry with a validator for the table\'s TTL, to revalidate it (DESIGN §3)', () => {
      assert.equal(originLifetimes(LIFE, true, 60_000, 0, 0).staleUntil, NOW + 70_000);
      assert.equal(originLifetimes(LIFE, true, 60_000, 90_000, 0).staleUntil, NOW + 100_000);
    });

    it('grants no stale window when the response forbids stale answers, but still keeps it for revalidation', () => {
      const noStale = { ...LIFE, noStale: true, staleWhileRevalidate: 4_000, staleIfError: 6_000 };
      assert.equal(originLifetimes(noStale, false, 60_000, 1_000, 3_000).staleUntil, NOW + 10_000);
      assert.equal(originLifetimes(noStale, true, 60_000, 1_000, 3_000).staleUntil, NOW + 70_000);
    });
  });

  it('staleRulesOf keeps the response\'s stale rules', () => {
    assert.deepEqual(staleRulesOf({ ...LIFE, noStale: true, staleWhileRevalidate: 1, staleIfError: 2 }), { noStale: true, staleWhileRevalidate: 1, staleIfError: 2 });
  });

  it('revalidatable is whether the entry has a validator', () => {
    assert.equal(revalidatable, hasValidator);
  });

  describe('ForcedRefreshes', () => {
    it('allows the first forced refresh of a key, then none until the interval has passed', () => {
      const f = new ForcedRefreshes();
      assert.equal(f.allowed('k', 0, 1_000), true);
      assert.equal(f.allowed('k', 1, 1_000), false);
      assert.equal(f.allowed('k', 999, 1_000), false);
      assert.equal(f.allowed('k', 1_000, 1_000), true);
    });

    it('counts the interval from the last refresh it allowed, not from a refused one', () => {
      const f = new ForcedRefreshes();
      assert.equal(f.allowed('k', 0, 1_000), true);
      assert.equal(f.allowed('k', 900, 1_000), false);
      assert.equal(f.allowed('k', 1_000, 1_000), true);
      assert.equal(f.allowed('k', 1_500, 1_000), false);
    });

    it('limits each key on its own', () => {
      const f = new ForcedRefreshes();
      assert.equal(f.allowed('a', 0, 1_000), true);
      assert.equal(f.allowed('b', 0, 1_000), true);
      assert.equal(f.allowed('a', 1, 1_000), false);
    });

    it('never refuses with an interval of 0 or less', () => {
      const f = new ForcedRefreshes();
      for (const interval of [0, -1]) {
        assert.equal(f.allowed('k', 10, interval), true);
        assert.equal(f.allowed('k', 10, interval), true);
        assert.equal(f.allowed('k', 5, interval), true, 'not even when the clock steps back');
      }
    });

    it('stays bounded: when full it forgets every key', () => {
      const f = new ForcedRefreshes(2);
      assert.equal(f.allowed('a', 0, 1_000), true);
      assert.equal(f.allowed('b', 0, 1_000), true);
      assert.equal(f.allowed('a', 1, 1_000), false, 'a and b fit');
      assert.equal(f.allowed('c', 2, 1_000), true);
      assert.equal(f.allowed('a', 3, 1_000), true, 'a was forgotten when c came');
    });
  });

  describe('originBypassReason', () => {
    it('lets a plain request through', () => {
      assert.equal(originBypassReason({}, 'GET', undefined, false, '/a'), undefined);
    });

    it('does not bypass for Authorization: the response decides (RFC 9111 §3.5)', () => {
      assert.equal(originBypassReason({ authorization: 'Bearer x' }, 'GET', undefined, false, '/a'), undefined);
    });

    it('still bypasses other credentials sent with Authorization: a cookie, a token in the query', () => {
      assert.equal(originBypassReason({ authorization: 'Bearer x', cookie: 'a=1' }, 'GET', undefined, false, '/a'), 'cookie');
      assert.equal(originBypassReason({ authorization: 'Bearer x' }, 'GET', undefined, false, '/a?access_token=1'), 'access-token');
      assert.equal(originBypassReason({ cookie: 'a=1' }, 'GET', undefined, false, '/a'), 'cookie');
    });

    it('passes Range requests through: no partial content is stored or served', () => {
      assert.equal(originBypassReason({ range: 'bytes=0-1' }, 'GET', undefined, false, '/a'), 'range');
      assert.equal(originBypassReason({ range: 'bytes=0-1', authorization: 'Bearer x' }, 'GET', undefined, false, '/a'), 'range');
    });

    it('keeps the table-mode reasons for everything else', () => {
      assert.equal(originBypassReason({ range: 'bytes=0-1' }, 'GET', 'POST', false, '/a'), 'method-override');
      assert.equal(originBypassReason({ 'transfer-encoding': 'chunked' }, 'GET', undefined, false, '/a'), 'body');
    });
  });
});
