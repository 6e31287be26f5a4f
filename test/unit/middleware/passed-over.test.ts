// What decides whether an entry one middleware passed over is an orphan
// (passed-over.ts): which layers further in count as its owner (all of its
// kinds, its namespace, any watch of the chain), which answers tell an orphan
// (the entry's own status, or a 304; not a guard's, a redirect's), and how the
// mark that spares later watches is kept (per entry, per middleware
// generation). The integration file entries-of-a-former-config shows each rule
// on real apps; here each rule alone, so a changed operator or bit is seen.
import assert from 'node:assert/strict';
import type { TierCache } from '../../../src/index.js';
import { PreparedResponse, type StaleRules } from '../../../src/middleware/http-entry.js';
import { kindsOf, middlewareBuilt, ORIGIN_KIND, ownerSeen, PassedOver, PER_ROUTE_KIND, SCOPED_KIND, type OrphanRemover } from '../../../src/middleware/passed-over.js';
import type { StoredEntry } from '../../../src/store/entry.js';

const RULES: StaleRules = { noStale: false, staleWhileRevalidate: 0, staleIfError: 0 };
const response = (scoped: boolean, origin: boolean) => new PreparedResponse(200, [['content-type', 'text/plain']], Buffer.from('x'), false, origin ? RULES : undefined, scoped);
/** Stored by a middleware mounted on its route (StoredHead.w). */
const perRouteResponse = (scoped: boolean) => new PreparedResponse(200, [['content-type', 'text/plain']], Buffer.from('x'), false, undefined, scoped, undefined, undefined, false, true);
const cacheOf = (prefix: string) => ({ prefix }) as unknown as TierCache;
const ENTRY = {} as StoredEntry;

function remover(prefix = 'ns'): OrphanRemover & { removed: string[] } {
  const removed: string[] = [];
  return { cache: cacheOf(prefix), removed, removeOrphan: (key) => void removed.push(key) };
}

function watch(r: OrphanRemover, res: PreparedResponse, prev?: PassedOver, key = 'k'): PassedOver {
  return new PassedOver(r, key, ENTRY, res, kindsOf(res), prev);
}

describe('middleware: an entry passed over, and whether it is an orphan', () => {
  it('reads an entry\'s kinds from its scope and its stale rules', () => {
    assert.equal(kindsOf(response(false, false)), 0);
    assert.equal(kindsOf(response(true, false)), SCOPED_KIND);
    assert.equal(kindsOf(response(false, true)), ORIGIN_KIND);
    assert.equal(kindsOf(response(true, true)), SCOPED_KIND | ORIGIN_KIND);
  });

  it('keeps `scoped` beside the mark: marking changes neither', () => {
    for (const scoped of [false, true]) {
      const res = response(scoped, false);
      res.markOwnerSeen(7);
      assert.equal(res.scoped, scoped);
      assert.equal(res.ownerSeenIn(7), true);
      assert.equal(res.ownerSeenIn(8), false);
    }
  });

  it('is owned by a layer further in that has all of its kinds, in its namespace; removed otherwise', () => {
    const cases: Array<[entry: [boolean, boolean], seen: number, prefix: string, owned: boolean]> = [
      [[true, false], SCOPED_KIND, 'ns', true],
      [[true, false], SCOPED_KIND | ORIGIN_KIND, 'ns', true],
      [[true, false], ORIGIN_KIND, 'ns', false],
      [[false, true], ORIGIN_KIND, 'ns', true],
      [[false, true], SCOPED_KIND, 'ns', false],
      [[true, true], SCOPED_KIND, 'ns', false],
      [[true, true], ORIGIN_KIND, 'ns', false],
      [[true, true], SCOPED_KIND | ORIGIN_KIND, 'ns', true],
      [[false, true], ORIGIN_KIND, 'other', false],
    ];
    for (const [[scoped, origin], seen, prefix, owned] of cases) {
      const r = remover();
      const res = response(scoped, origin);
      const w = watch(r, res);
      w.seenBy(cacheOf(prefix), seen);
      w.decide(200);
      const what = JSON.stringify({ scoped, origin, seen, prefix });
      assert.deepEqual(r.removed, owned ? [] : ['k'], what);
    }
  });

  it('is owned, when a middleware mounted on its route stored it, only by one mounted on a route further in: an app-wide one of its other kinds is none', () => {
    for (const scoped of [false, true]) {
      const own = scoped ? SCOPED_KIND : 0;
      assert.equal(kindsOf(perRouteResponse(scoped)), own | PER_ROUTE_KIND);
      for (const [seen, owned] of [[own, false], [own | ORIGIN_KIND, false], [own | PER_ROUTE_KIND, true]] as const) {
        const r = remover();
        const w = watch(r, perRouteResponse(scoped));
        w.seenBy(cacheOf('ns'), seen);
        w.decide(200);
        assert.deepEqual(r.removed, owned ? [] : ['k'], JSON.stringify({ scoped, seen }));
      }
    }
  });

  it('tells every watch of the request, the ones set further out too', () => {
    const outer = remover();
    const inner = remover();
    const first = watch(outer, response(false, true), undefined, 'a');
    const second = watch(inner, response(true, false), first, 'b');
    second.seenBy(cacheOf('ns'), SCOPED_KIND | ORIGIN_KIND);
    first.decide(200);
    second.decide(200);
    assert.deepEqual([outer.removed, inner.removed], [[], []]);
  });

  it('takes only the answer the entry holds for an orphan (its status, or a 304), not a guard\'s, a redirect or an error', () => {
    for (const [status, removes] of [[200, true], [304, true], [203, false], [204, false], [300, false], [301, false], [308, false], [302, false], [401, false], [403, false], [404, false], [429, false], [500, false]] as const) {
      const r = remover();
      watch(r, response(false, true)).decide(status);
      assert.equal(r.removed.length, removes ? 1 : 0, String(status));
    }
    const moved = new PreparedResponse(301, [['location', '/new']], Buffer.alloc(0), false, RULES, false);
    for (const [status, removes] of [[301, true], [200, false], [308, false]] as const) {
      const r = remover();
      watch(r, moved).decide(status);
      assert.equal(r.removed.length, removes ? 1 : 0, `a 301 entry, answered ${status}`);
    }
  });

  it('marks an owned entry for this middleware generation only', () => {
    const res = response(false, true);
    const w = watch(remover(), res);
    w.seenBy(cacheOf('ns'), ORIGIN_KIND);
    w.decide(200);
    assert.equal(ownerSeen(res), true);
    middlewareBuilt();
    assert.equal(ownerSeen(res), false, 'a middleware built since: the owner may be gone');
  });

  it('marks nothing when it removes', () => {
    const res = response(false, true);
    watch(remover(), res).decide(200);
    assert.equal(ownerSeen(res), false);
  });
});
