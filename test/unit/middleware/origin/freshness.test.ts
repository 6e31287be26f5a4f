// Origin mode's storage decision and freshness lifetime (RFC 9111 §3, §3.5,
// §4.2), computed from a response's head alone: no server, exact clocks.
import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { correctedInitialAge, originLife, type LifeInput, type OriginLife } from '../../../../src/middleware/origin/freshness.js';

const DATE = 'Tue, 01 Dec 2026 10:00:00 GMT';
const T = Date.parse(DATE);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const at = (ms: number): string => new Date(T + ms).toUTCString();
/** Headers as node may hold them at run time (setHeader takes a number or an array for any field), whatever its types say. */
const wire = (headers: Record<string, string | number | string[]>): OutgoingHttpHeaders => headers as unknown as OutgoingHttpHeaders;

function input(headers: OutgoingHttpHeaders, over: Partial<LifeInput> = {}): LifeInput {
  return {
    status: 200,
    headers,
    requestTime: T,
    responseTime: T,
    heuristicCap: 30 * DAY,
    targeted: { cdnCacheControl: false, surrogate: undefined },
    authorized: false,
    userScoped: false,
    ...over,
  };
}

/** The life of a response that must be storable. */
function life(headers: OutgoingHttpHeaders, over: Partial<LifeInput> = {}): OriginLife {
  const result = originLife(input(headers, over));
  assert.equal(typeof result, 'object', `stored, not '${String(result)}'`);
  return result as OriginLife;
}

const lifetime = (headers: OutgoingHttpHeaders, over: Partial<LifeInput> = {}): number => life(headers, over).lifetime;
const reason = (headers: OutgoingHttpHeaders, over: Partial<LifeInput> = {}): unknown => originLife(input(headers, over));

describe('middleware: origin freshness, unit', () => {
  describe('whether a response may be stored (§3)', () => {
    it('does not store no-store, in any case', () => {
      assert.equal(reason({ 'cache-control': 'no-store' }), 'no-store');
      assert.equal(reason({ 'cache-control': 'max-age=60, NO-STORE' }), 'no-store');
    });

    it('must-understand: stores a status it understands in spite of no-store (§5.2.2.3)', () => {
      assert.equal(lifetime({ 'cache-control': 'must-understand, no-store, max-age=60' }), 60_000);
      assert.equal(lifetime({ 'cache-control': 'must-understand, no-store, max-age=60' }, { status: 404 }), 60_000);
    });

    it('must-understand: stores nothing with a status it does not understand', () => {
      assert.equal(reason({ 'cache-control': 'must-understand, max-age=60' }, { status: 299 }), 'status');
      assert.equal(reason({ 'cache-control': 'must-understand, no-store, max-age=60' }, { status: 299 }), 'status');
    });

    it('a shared cache does not store a bare private answer (§5.2.2.7) unless the route is user-scoped (DESIGN §3)', () => {
      assert.equal(reason({ 'cache-control': 'private, max-age=60' }), 'private');
      assert.equal(lifetime({ 'cache-control': 'private, max-age=60' }, { userScoped: true }), 60_000);
    });

    it('stores a qualified private answer without the fields it names', () => {
      const l = life({ 'cache-control': 'private="X-User, x-plan", max-age=60' });
      assert.equal(l.lifetime, 60_000);
      assert.deepEqual(l.withoutFields, ['x-user', 'x-plan']);
    });

    it('does not store an answer that sets a cookie (DESIGN §3)', () => {
      assert.equal(reason({ 'cache-control': 'max-age=60', 'set-cookie': ['a=1'] }), 'set-cookie');
    });

    it('does not store Vary: * (DESIGN §3)', () => {
      assert.equal(reason({ 'cache-control': 'max-age=60', vary: '*' }), 'vary-star');
      assert.equal(reason({ 'cache-control': 'max-age=60', vary: 'accept, *' }), 'vary-star');
      assert.equal(lifetime({ 'cache-control': 'max-age=60', vary: 'accept' }), 60_000);
    });

    it('stores an answer to an authorized request only when public, s-maxage or must-revalidate allow it (§3.5)', () => {
      assert.equal(reason({ 'cache-control': 'max-age=60' }, { authorized: true }), 'authorization');
      assert.equal(reason({}, { authorized: true }), 'authorization');
      assert.equal(lifetime({ 'cache-control': 'public, max-age=60' }, { authorized: true }), 60_000);
      assert.equal(lifetime({ 'cache-control': 's-maxage=60' }, { authorized: true }), 60_000);
      assert.equal(lifetime({ 'cache-control': 'must-revalidate, max-age=60' }, { authorized: true }), 60_000);
      assert.equal(lifetime({ 'cache-control': 'max-age=60' }, { authorized: false }), 60_000);
    });

    it('stores no partial content, no 304 and no status that is not final (§3)', () => {
      for (const status of [100, 199, 206, 304, 600]) assert.equal(reason({ 'cache-control': 'max-age=60' }, { status }), 'status', String(status));
    });

    it('stores any final status with explicit freshness, from 200 to 599', () => {
      for (const status of [200, 201, 302, 404, 500, 599]) assert.equal(lifetime({ 'cache-control': 'max-age=60' }, { status }), 60_000, String(status));
    });

    it('without explicit freshness, stores only heuristically cacheable statuses (RFC 9110 §15.1) or public answers', () => {
      for (const status of [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]) assert.equal(typeof reason({}, { status }), 'object', String(status));
      for (const status of [201, 302, 303, 307, 400, 403, 500, 503]) assert.equal(reason({}, { status }), 'status', String(status));
      assert.equal(typeof reason({ 'cache-control': 'public' }, { status: 302 }), 'object');
      assert.equal(typeof reason({ expires: at(HOUR), date: DATE }, { status: 302 }), 'object');
    });
  });

  describe('freshness lifetime (§4.2.1)', () => {
    it('a shared cache takes s-maxage first, then max-age, then Expires minus Date', () => {
      const expires = { expires: at(2 * HOUR), date: DATE };
      assert.equal(lifetime({ ...expires, 'cache-control': 's-maxage=30, max-age=60' }), 30_000);
      assert.equal(lifetime({ ...expires, 'cache-control': 'max-age=60' }), 60_000);
      assert.equal(lifetime(expires), 2 * HOUR);
    });

    it('reads max-age=0 as stale at once', () => {
      assert.equal(lifetime({ 'cache-control': 'max-age=0', expires: at(HOUR), date: DATE }), 0);
    });

    it('reads an Expires that is no HTTP-date as already expired (§5.3), however Date.parse would read it', () => {
      for (const expires of ['2026-12-01T11:00:00Z', 'TUE, 01 DEC 2026 11:00:00 GMT', 'Tue, 1 Dec 2026 11:00:00 GMT', '0', 'Tue Dec 01 2026 11:00:00 GMT+0000']) {
        assert.equal(lifetime({ expires, date: DATE }), 0, `Expires: ${expires}`);
      }
      // The obsolete forms are HTTP-dates (RFC 9110 §5.6.7).
      assert.equal(lifetime({ expires: 'Tuesday, 01-Dec-26 11:00:00 GMT', date: DATE }), HOUR);
      assert.equal(lifetime({ expires: 'Tue Dec  1 11:00:00 2026', date: DATE }), HOUR);
    });

    it('counts Expires from the time of receipt when Date is absent or invalid', () => {
      assert.equal(lifetime({ expires: at(HOUR) }, { responseTime: T + 10_000 }), HOUR - 10_000);
      assert.equal(lifetime({ expires: at(HOUR), date: 'yesterday' }, { responseTime: T + 10_000 }), HOUR - 10_000);
      assert.equal(lifetime({ expires: at(HOUR), date: '1700000000' }, { responseTime: T + 10_000 }), HOUR - 10_000);
    });

    it('counts Expires from Date, not from the time of receipt, when Date is valid', () => {
      assert.equal(lifetime({ expires: at(HOUR), date: DATE }, { responseTime: T + 10_000 }), HOUR);
    });

    it('reads an invalid Expires, "0" above all, as already expired (§5.3)', () => {
      for (const expires of ['0', '-1', 'soon', '2030', '']) {
        assert.equal(lifetime({ expires, date: DATE, 'last-modified': at(-10 * DAY) }), 0, `Expires: ${expires}`);
      }
    });

    it('reads an Expires before Date as stale', () => {
      assert.equal(lifetime({ expires: at(-HOUR), date: DATE }), 0);
    });

    it('reads two Expires field lines as stale (§4.2.1), one line in an array as itself', () => {
      assert.equal(lifetime(wire({ expires: [at(HOUR), at(2 * HOUR)], date: DATE })), 0);
      assert.equal(lifetime(wire({ expires: [at(HOUR)], date: DATE })), HOUR);
    });

    it('reads an invalid max-age or s-maxage as stale, without falling back to Expires (§4.2.1)', () => {
      assert.equal(lifetime({ 'cache-control': 'max-age=abc', expires: at(HOUR), date: DATE }), 0);
      assert.equal(lifetime({ 'cache-control': 'max-age=-1', expires: at(HOUR), date: DATE }), 0);
      assert.equal(lifetime({ 'cache-control': 's-maxage=1.5, max-age=60' }), 0);
    });

    it('reads a lifetime directive repeated with different values as stale (§4.2.1)', () => {
      assert.equal(lifetime({ 'cache-control': 'max-age=60, max-age=120' }), 0);
      assert.equal(lifetime({ 'cache-control': 's-maxage=60, s-maxage=120' }), 0);
    });

    it('no-cache: stored, but never fresh (§5.2.2.4), and never served stale', () => {
      const l = life({ 'cache-control': 'no-cache, max-age=60' });
      assert.equal(l.lifetime, 0);
      assert.deepEqual(l.withoutFields, []);
      assert.equal(l.noStale, true);
    });

    it('qualified no-cache: fresh as the response says, without the fields it names, and may be served stale', () => {
      const l = life({ 'cache-control': 'no-cache="Set-Cookie2, x-a", private="x-b", max-age=60' });
      assert.equal(l.lifetime, 60_000);
      assert.deepEqual([...l.withoutFields].sort(), ['set-cookie2', 'x-a', 'x-b']);
      assert.equal(l.noStale, false, 'a no-cache naming fields forbade stale answers of the whole response');
    });

    it('a valid Tiercache-Cache-Control governs instead of Cache-Control (RFC 9213)', () => {
      assert.equal(lifetime({ 'tiercache-cache-control': 'max-age=600', 'cache-control': 'no-store' }), 600_000);
      assert.equal(reason({ 'tiercache-cache-control': 'no-store', 'cache-control': 'max-age=600' }), 'no-store');
    });

    it('reads CDN-Cache-Control only when asked to', () => {
      const headers = { 'cdn-cache-control': 'max-age=600', 'cache-control': 'max-age=60' };
      assert.equal(lifetime(headers), 60_000);
      assert.equal(lifetime(headers, { targeted: { cdnCacheControl: true, surrogate: undefined } }), 600_000);
    });
  });

  describe('heuristic freshness (§4.2.2)', () => {
    it('gives a tenth of the time since Last-Modified, counted from Date', () => {
      assert.equal(lifetime({ date: DATE, 'last-modified': at(-10 * DAY) }), DAY);
      assert.equal(lifetime({ date: DATE, 'last-modified': at(-10 * DAY) }, { status: 404 }), DAY);
    });

    it('rounds down to whole milliseconds', () => {
      assert.equal(lifetime({ date: DATE, 'last-modified': at(-15_000) }), 1_500);
      assert.equal(lifetime({ date: DATE, 'last-modified': at(-1_000) }, { responseTime: T }), 100);
      assert.equal(lifetime({ 'last-modified': at(-1_000) }, { responseTime: T + 5 }), 100);
    });

    it('never exceeds the cap (the table TTL, DESIGN §3)', () => {
      assert.equal(lifetime({ date: DATE, 'last-modified': at(-100 * DAY) }, { heuristicCap: HOUR }), HOUR);
      assert.equal(lifetime({ date: DATE, 'last-modified': at(-10 * HOUR) }, { heuristicCap: HOUR }), HOUR);
      assert.equal(lifetime({ date: DATE, 'last-modified': at(-5 * HOUR) }, { heuristicCap: HOUR }), HOUR / 2);
    });

    it('counts from the time of receipt when Date is absent', () => {
      assert.equal(lifetime({ 'last-modified': at(-10 * DAY) }, { responseTime: T + 10 * DAY }), 2 * DAY);
    });

    it('gives nothing without a Last-Modified, or with one that is not before Date', () => {
      assert.equal(lifetime({ date: DATE }), 0);
      assert.equal(lifetime({ date: DATE, 'last-modified': DATE }), 0);
      assert.equal(lifetime({ date: DATE, 'last-modified': at(DAY) }), 0);
      assert.equal(lifetime({ date: DATE, 'last-modified': 'not a date' }), 0);
    });

    it('is not used when the response gives explicit freshness', () => {
      assert.equal(lifetime({ date: DATE, 'last-modified': at(-10 * DAY), 'cache-control': 'max-age=5' }), 5_000);
      assert.equal(lifetime({ date: DATE, 'last-modified': at(-10 * DAY), expires: at(7_000) }), 7_000);
    });

    it('applies to a public answer of a status that is not heuristically cacheable', () => {
      assert.equal(lifetime({ date: DATE, 'last-modified': at(-10 * DAY), 'cache-control': 'public' }, { status: 302 }), DAY);
    });
  });

  describe('age (§4.2.3)', () => {
    it('starts the entry at the response time minus its corrected initial age', () => {
      // Age 30 s, a response that took 2 s: age_value + response_delay beats the apparent age.
      const l = life({ date: DATE, age: '30', 'cache-control': 'max-age=60' }, { requestTime: T - 2_000, responseTime: T });
      assert.equal(l.createdAt, T - 32_000);
    });

    it('corrected initial age is the larger of the apparent age and Age plus the response delay', () => {
      assert.equal(correctedInitialAge({ date: at(-5_000) }, T - 1_000, T), 5_000);
      assert.equal(correctedInitialAge({ date: at(-5_000), age: '10' }, T - 1_000, T), 11_000);
      assert.equal(correctedInitialAge({ date: at(-5_000), age: '4' }, T - 1_000, T), 5_000);
      assert.equal(correctedInitialAge({ date: at(-5_000), age: '4' }, T - 2_000, T), 6_000);
      assert.equal(correctedInitialAge(wire({ age: 3 }), T, T), 3_000);
    });

    it('reads Age without the whitespace around a field value (RFC 9110 §5.5)', () => {
      assert.equal(correctedInitialAge({ age: ' 10 ' }, T, T), 10_000);
      assert.equal(correctedInitialAge(wire({ age: ['7'] }), T, T), 7_000);
    });

    it('has no apparent age from a Date after the response time, or an absent or invalid one', () => {
      assert.equal(correctedInitialAge({ date: at(60_000) }, T - 1_000, T), 1_000);
      assert.equal(correctedInitialAge({}, T - 1_000, T), 1_000);
      assert.equal(correctedInitialAge({ date: 'not a date' }, T, T), 0);
    });

    it('uses the first member of a list-based Age, and ignores an invalid one (§5.1): the lifetime stands', () => {
      assert.equal(correctedInitialAge({ age: '10, 20' }, T, T), 10_000);
      assert.equal(correctedInitialAge(wire({ age: ['10', '20'] }), T, T), 10_000);
      for (const age of ['10a', '-5', '1.5', '', 'ten', ', 10']) assert.equal(correctedInitialAge({ age }, T, T), 0, `Age: ${age}`);
      const listed = life({ date: DATE, age: '10, 20', 'cache-control': 'max-age=60' });
      assert.deepEqual([listed.lifetime, listed.createdAt], [60_000, T - 10_000]);
      const invalid = life({ date: DATE, age: '10a', 'cache-control': 'max-age=60' });
      assert.deepEqual([invalid.lifetime, invalid.createdAt], [60_000, T]);
    });

    it('caps an Age too large to represent at 2^31 seconds (§1.2.2)', () => {
      assert.equal(correctedInitialAge({ age: '99999999999' }, T, T), 2 ** 31 * 1000);
      assert.equal(correctedInitialAge({ age: '2147483647' }, T, T), 2_147_483_647_000);
    });
  });

  describe('stale rules', () => {
    it('forbids stale answers with must-revalidate, proxy-revalidate or s-maxage (§5.2.2.2, §5.2.2.8, §5.2.2.10)', () => {
      assert.equal(life({ 'cache-control': 'max-age=60, must-revalidate' }).noStale, true);
      assert.equal(life({ 'cache-control': 'max-age=60, proxy-revalidate' }).noStale, true);
      assert.equal(life({ 'cache-control': 's-maxage=60' }).noStale, true);
      assert.equal(life({ 'cache-control': 'max-age=60' }).noStale, false);
      assert.equal(life({ 'cache-control': 'public' }).noStale, false);
    });

    it('takes stale-while-revalidate and stale-if-error windows from the response (RFC 5861), in ms', () => {
      const l = life({ 'cache-control': 'max-age=60, stale-while-revalidate=30, stale-if-error=600' });
      assert.equal(l.staleWhileRevalidate, 30_000);
      assert.equal(l.staleIfError, 600_000);
    });

    it('gives no window when the directive is absent or its argument invalid', () => {
      const none = life({ 'cache-control': 'max-age=60' });
      assert.equal(none.staleWhileRevalidate, 0);
      assert.equal(none.staleIfError, 0);
      const invalid = life({ 'cache-control': 'max-age=60, stale-while-revalidate=soon, stale-if-error=-5' });
      assert.equal(invalid.staleWhileRevalidate, 0);
      assert.equal(invalid.staleIfError, 0);
    });

    it('keeps the fields to leave out empty when nothing is qualified', () => {
      assert.deepEqual(life({ 'cache-control': 'max-age=60' }).withoutFields, []);
    });
  });
});
