// Request Cache-Control (RFC 9111 §5.2.1) and Pragma (§5.4) in origin mode:
// the options that turn each directive off, what a request asks, and how a
// stored answer of a given age and freshness fits it.
import assert from 'node:assert/strict';
import { TierCacheConfigError } from '../../../../src/errors.js';
import { fit, Fit, HONOUR_ALL, requestNeeds, resolveRequestDirectives, type RequestNeeds, type ResolvedRequestDirectives } from '../../../../src/middleware/origin/request-directives.js';

const FLAGS = ['noStore', 'noCache', 'maxAge', 'maxStale', 'minFresh', 'onlyIfCached', 'pragma'] as const;
const NONE: RequestNeeds = { noCache: false, maxAge: undefined, maxStale: undefined, minFresh: undefined, onlyIfCached: false };
const needsOf = (cacheControl: string, o: ResolvedRequestDirectives = HONOUR_ALL) => requestNeeds({ 'cache-control': cacheControl }, o);
const without = (flag: (typeof FLAGS)[number]) => resolveRequestDirectives('requestDirectives', { [flag]: false });

describe('middleware: origin request directives, unit', () => {
  describe('resolveRequestDirectives (options)', () => {
    it('honours every directive by default and with true, forced refreshes limited to one a second', () => {
      for (const input of [undefined, true]) {
        const r = resolveRequestDirectives('requestDirectives', input);
        for (const flag of FLAGS) assert.equal(r[flag], true, flag);
        assert.equal(r.forcedRefreshInterval, 1_000);
      }
    });

    it('honours none with false, keeping the default interval', () => {
      const r = resolveRequestDirectives('requestDirectives', false);
      for (const flag of FLAGS) assert.equal(r[flag], false, flag);
      assert.equal(r.forcedRefreshInterval, 1_000);
      assert.ok(Object.isFrozen(r));
    });

    it('turns off only the directives an object names, and reads the interval as a duration', () => {
      const r = resolveRequestDirectives('requestDirectives', { noCache: false, pragma: undefined, forcedRefreshInterval: '5s' });
      assert.equal(r.noCache, false);
      for (const flag of FLAGS.filter((f) => f !== 'noCache')) assert.equal(r[flag], true, flag);
      assert.equal(r.forcedRefreshInterval, 5_000);
      assert.ok(Object.isFrozen(r));
      assert.equal(resolveRequestDirectives('requestDirectives', { forcedRefreshInterval: undefined }).forcedRefreshInterval, 1_000);
      assert.equal(resolveRequestDirectives('requestDirectives', { forcedRefreshInterval: 0 }).forcedRefreshInterval, 0);
      assert.equal(resolveRequestDirectives('requestDirectives', { maxStale: true }).maxStale, true);
    });

    it('does not change the caller\'s object', () => {
      const o = { noStore: false };
      resolveRequestDirectives('requestDirectives', o);
      assert.deepEqual(o, { noStore: false });
    });

    it('rejects what is neither a boolean nor an object, naming the option', () => {
      for (const input of [null, 'yes', 1, ['noCache']]) {
        assert.throws(() => resolveRequestDirectives('requestDirectives', input), (e: unknown) => e instanceof TierCacheConfigError && e.option === 'requestDirectives', String(input));
      }
    });

    it('rejects a flag that is not a boolean, and an unknown key, naming it', () => {
      assert.throws(() => resolveRequestDirectives('rd', { noCache: 'no' }), (e: unknown) => e instanceof TierCacheConfigError && e.option === 'rd.noCache' && /must be a boolean/.test(e.message));
      assert.throws(() => resolveRequestDirectives('rd', { noCahce: false }), (e: unknown) => e instanceof TierCacheConfigError && e.option === 'rd.noCahce' && /noStore, noCache.*forcedRefreshInterval/.test(e.message));
      assert.throws(() => resolveRequestDirectives('rd', { forcedRefreshInterval: 'soon' }), (e: unknown) => e instanceof TierCacheConfigError && e.option === 'rd.forcedRefreshInterval');
    });
  });

  describe('requestNeeds', () => {
    it('asks nothing of a request without Cache-Control or Pragma', () => {
      assert.equal(requestNeeds({}, HONOUR_ALL), undefined);
      assert.equal(requestNeeds({ pragma: 'x-foo' }, HONOUR_ALL), undefined);
    });

    it('reads Pragma: no-cache as no-cache when there is no Cache-Control (§5.4), case-insensitively, in a list', () => {
      for (const pragma of ['no-cache', 'No-Cache', 'x, no-cache', 'no-cache , x', ' no-cache ']) {
        assert.deepEqual(requestNeeds({ pragma }, HONOUR_ALL), { ...NONE, noCache: true }, pragma);
      }
    });

    it('takes no other Pragma element for no-cache', () => {
      for (const pragma of ['no-cache-x', 'x-no-cache', 'no-cachex, y', 'nocache']) assert.equal(requestNeeds({ pragma }, HONOUR_ALL), undefined, pragma);
    });

    it('ignores Pragma when Cache-Control is present (§5.4), and when turned off', () => {
      assert.deepEqual(requestNeeds({ pragma: 'no-cache', 'cache-control': 'max-age=5' }, HONOUR_ALL), { ...NONE, maxAge: 5_000 });
      assert.equal(requestNeeds({ pragma: 'no-cache' }, without('pragma')), undefined);
    });

    it('reads each request directive (§5.2.1), times in ms', () => {
      assert.deepEqual(needsOf('no-cache'), { ...NONE, noCache: true });
      assert.deepEqual(needsOf('max-age=5'), { ...NONE, maxAge: 5_000 });
      assert.deepEqual(needsOf('max-age=0'), { ...NONE, maxAge: 0 });
      assert.deepEqual(needsOf('max-stale=7'), { ...NONE, maxStale: 7_000 });
      assert.deepEqual(needsOf('min-fresh=9'), { ...NONE, minFresh: 9_000 });
      assert.deepEqual(needsOf('only-if-cached'), { ...NONE, onlyIfCached: true });
      assert.deepEqual(needsOf('NO-CACHE, Only-If-Cached, MAX-AGE=1'), { ...NONE, noCache: true, maxAge: 1_000, onlyIfCached: true });
    });

    it('reads a bare max-stale as any staleness (§5.2.1.2)', () => {
      assert.equal(needsOf('max-stale')!.maxStale, Infinity);
    });

    it('ignores a directive whose argument is no delta-seconds: asking nothing else, the request asks nothing', () => {
      assert.equal(needsOf('max-age=soon, min-fresh=-1, max-stale=1.5'), undefined);
      assert.deepEqual(needsOf('max-age=soon, no-cache'), { ...NONE, noCache: true });
    });

    it('asks nothing for directives it does not know, or does not read (no-transform, no-store)', () => {
      assert.equal(needsOf('x-foo=1'), undefined);
      assert.equal(needsOf('no-transform, no-store'), undefined);
    });

    it('drops each directive whose option is off', () => {
      // Asking nothing else, the request asks nothing.
      for (const [cc, flag] of [['no-cache', 'noCache'], ['max-age=5', 'maxAge'], ['max-stale=5', 'maxStale'], ['max-stale', 'maxStale'], ['min-fresh=5', 'minFresh'], ['only-if-cached', 'onlyIfCached']] as const) {
        assert.equal(needsOf(cc, without(flag)), undefined, cc);
      }
      assert.deepEqual(needsOf('no-cache, max-age=5', without('noCache')), { ...NONE, maxAge: 5_000 });
    });
  });

  describe('fit (§4.2, §5.2.1)', () => {
    const NOW = 100_000;
    // An entry created 10 s ago, fresh for 5 s more.
    const created = NOW - 10_000;
    const freshUntil = NOW + 5_000;

    it('without needs: fresh while the freshness lifetime exceeds the age, stale from the moment they are equal', () => {
      assert.equal(fit(undefined, created, freshUntil, NOW, false), Fit.Fresh);
      assert.equal(fit(undefined, created, NOW + 1, NOW, false), Fit.Fresh);
      assert.equal(fit(undefined, created, NOW, NOW, false), Fit.Stale);
      assert.equal(fit(undefined, created, NOW - 1, NOW, false), Fit.Stale);
    });

    it('no-cache: a fresh entry is revalidated (forced), a stale one is stale', () => {
      assert.equal(fit({ ...NONE, noCache: true }, created, freshUntil, NOW, false), Fit.Forced);
      assert.equal(fit({ ...NONE, noCache: true }, created, NOW, NOW, false), Fit.Stale);
      assert.equal(fit({ ...NONE, noCache: true, maxStale: Infinity }, created, NOW - 1, NOW, false), Fit.Stale);
    });

    it('max-age: an age up to and including N seconds fits; older is forced when fresh, stale otherwise (§5.2.1.1)', () => {
      assert.equal(fit({ ...NONE, maxAge: 10_000 }, created, freshUntil, NOW, false), Fit.Fresh);
      assert.equal(fit({ ...NONE, maxAge: 9_999 }, created, freshUntil, NOW, false), Fit.Forced);
      assert.equal(fit({ ...NONE, maxAge: 0 }, created, freshUntil, NOW, false), Fit.Forced);
      assert.equal(fit({ ...NONE, maxAge: 9_999 }, created, NOW, NOW, false), Fit.Stale);
      assert.equal(fit({ ...NONE, maxAge: 9_999, maxStale: Infinity }, created, NOW - 1, NOW, false), Fit.Stale);
    });

    it('min-fresh: fits while fresh for at least N more seconds (§5.2.1.3)', () => {
      assert.equal(fit({ ...NONE, minFresh: 5_000 }, created, freshUntil, NOW, false), Fit.Fresh);
      assert.equal(fit({ ...NONE, minFresh: 5_001 }, created, freshUntil, NOW, false), Fit.Forced);
      assert.equal(fit({ ...NONE, minFresh: 1 }, created, NOW - 1, NOW, false), Fit.Stale);
    });

    it('max-stale: accepts an entry stale by no more than N seconds (§5.2.1.2)', () => {
      assert.equal(fit({ ...NONE, maxStale: 3_000 }, created, NOW - 3_000, NOW, false), Fit.StaleAccepted);
      assert.equal(fit({ ...NONE, maxStale: 3_000 }, created, NOW - 3_001, NOW, false), Fit.Stale);
      assert.equal(fit({ ...NONE, maxStale: 0 }, created, NOW, NOW, false), Fit.StaleAccepted);
      assert.equal(fit({ ...NONE, maxStale: Infinity }, created, NOW - 1e9, NOW, false), Fit.StaleAccepted);
    });

    it('max-stale: a fresh entry is simply fresh', () => {
      assert.equal(fit({ ...NONE, maxStale: 3_000 }, created, freshUntil, NOW, false), Fit.Fresh);
    });

    it('max-stale: never accepts a stale entry whose response forbids stale answers (§5.2.2.2)', () => {
      assert.equal(fit({ ...NONE, maxStale: Infinity }, created, NOW - 1, NOW, true), Fit.Stale);
    });

    it('needs that ask for nothing in particular leave freshness to decide', () => {
      assert.equal(fit({ ...NONE, onlyIfCached: true }, created, freshUntil, NOW, false), Fit.Fresh);
      assert.equal(fit(NONE, created, NOW - 1, NOW, false), Fit.Stale);
    });
  });
});
