// What a middleware learns of answers too large to store (h187): per key,
// per variant of a key whose answer varied, and per path; for a time, and for
// a bounded number of keys and paths however many a client makes too large.
import assert from 'node:assert/strict';
import { OVERSIZED_KEYS, OVERSIZED_MAX_PATH, OVERSIZED_MAX_TAG, OVERSIZED_MAX_VARY, OVERSIZED_TAGS_ASKED, OversizedAnswers } from '../../../src/middleware/oversized-answers.js';

const KEY = 'ns:GET:/file';
/** Paths no test learns, for what is known of keys alone. */
const NO_PATH = '/'.padEnd(OVERSIZED_MAX_PATH + 1, 'p');
/** The validators of the answers learned, and conditionals that revalidate them. */
const TAG = { etag: '"f1"', lastModified: undefined };
const ASK = { ifNoneMatch: '"f1"', ifModifiedSince: undefined };

describe('middleware: answers known too large to store, unit', () => {
  it('knows a key learned, and its path (any key on it), until its time is up, and then no more', () => {
    const known = new OversizedAnswers();
    assert.equal(known.known(KEY, '/file', undefined, {}, ASK, 0), false);
    known.learn(KEY, '/file', undefined, [], {}, TAG, 1_000, 0);
    assert.equal(known.known(KEY, '/file', undefined, {}, ASK, 999), true);
    assert.equal(known.known('ns:GET:/file?x=1', '/file', undefined, {}, ASK, 999), true, 'another key on its path');
    assert.equal(known.known('ns:GET:/other', '/other', undefined, {}, ASK, 999), false);
    assert.equal(known.known(KEY, '/file', undefined, {}, ASK, 1_000), false);
    assert.deepEqual(known.size, { keys: 0, paths: 0 }, 'what has run out is dropped as it is asked about');
  });

  it('knows a path only to conditionals its large answer meets: its ETag (weak, in a list, or *), else a Last-Modified no later than If-Modified-Since; its key to any (h189)', () => {
    const known = new OversizedAnswers();
    const DATE = 'Tue, 01 Dec 2026 10:00:00 GMT';
    known.learn(KEY, '/file', undefined, [], {}, { etag: '"f1"', lastModified: DATE }, 1_000, 0);
    const ask = (ifNoneMatch: string | undefined, ifModifiedSince?: string) => known.known('ns:GET:/file?x=1', '/file', undefined, {}, { ifNoneMatch, ifModifiedSince }, 0);
    assert.equal(ask('"f1"'), true);
    assert.equal(ask('W/"a", W/"f1"'), true);
    assert.equal(ask('*'), true);
    assert.equal(ask('"small"'), false, 'a revalidation of another answer on the path');
    assert.equal(ask('"small"', DATE), false, 'If-None-Match decides, as RFC 9110 §13.2.2 says');
    assert.equal(ask(undefined, DATE), true);
    // Set aside, it would have the app read the large answer whole for the cache's 304 (h178's attack, with any later date).
    assert.equal(ask(undefined, 'Wed, 02 Dec 2026 10:00:00 GMT'), true, 'a later date, which the large answer meets');
    assert.equal(ask(undefined, 'Mon, 30 Nov 2026 10:00:00 GMT'), false, 'an earlier date: its 200 goes whole to the client');
    assert.equal(ask(undefined, 'not a date'), false);
    assert.equal(known.known(KEY, '/file', undefined, {}, { ifNoneMatch: '"small"', ifModifiedSince: undefined }, 0), true, 'its own key, any validator');
    known.learn('ns:GET:/bare', '/bare', undefined, [], {}, { etag: undefined, lastModified: undefined }, 1_000, 0);
    assert.equal(known.known('ns:GET:/bare?x=1', '/bare', undefined, {}, { ifNoneMatch: undefined, ifModifiedSince: 'Tue, 01 Dec 2026 10:00:00 GMT' }, 0), false, 'an answer without validators');
  });

  it('knows a path to revalidations of each of its large answers, not only of the last learned: two variants, two files by query (found by h189: alternating them, every request read one whole)', () => {
    const known = new OversizedAnswers();
    const ask = (ifNoneMatch: string | undefined, ifModifiedSince?: string) => known.known(`ns:GET:/file?x=${Math.random()}`, '/file', undefined, {}, { ifNoneMatch, ifModifiedSince }, 0);
    known.learn('ns:GET:/file?f=en', '/file', undefined, [], {}, { etag: '"en"', lastModified: 'Tue, 01 Dec 2026 10:00:00 GMT' }, 1_000, 0);
    known.learn('ns:GET:/file?f=fr', '/file', undefined, [], {}, { etag: 'W/"fr"', lastModified: 'Thu, 03 Dec 2026 10:00:00 GMT' }, 1_000, 0);
    assert.deepEqual([ask('"en"'), ask('"fr"'), ask('"de", W/"en"')], [true, true, true], 'revalidations of the first answer learned, of the second, in a list');
    assert.equal(ask('"de"'), false);
    assert.equal(ask(undefined, 'Wed, 02 Dec 2026 10:00:00 GMT'), true, 'a date the earlier answer meets');
    assert.equal(ask(undefined, 'Mon, 30 Nov 2026 10:00:00 GMT'), false);
    assert.equal(known.size.paths, 1, 'one path');
  });

  it('a path learned again once its time is up takes the Last-Modified of the answer learned now, not the earlier one of an answer whose time is up (found by h190: that date kept the conditionals of revalidations no held answer meets)', () => {
    const known = new OversizedAnswers();
    known.learn('ns:GET:/file?f=old', '/file', undefined, [], {}, { etag: undefined, lastModified: 'Tue, 01 Dec 2026 10:00:00 GMT' }, 1_000, 0);
    // Learned at 2,000, past the first answer's time (no request on the path in between to drop it).
    known.learn('ns:GET:/file?f=new', '/file', undefined, [], {}, { etag: undefined, lastModified: 'Thu, 03 Dec 2026 10:00:00 GMT' }, 3_000, 2_000);
    const ask = (ifModifiedSince: string) => known.known(`ns:GET:/file?x=${Math.random()}`, '/file', undefined, {}, { ifNoneMatch: undefined, ifModifiedSince }, 2_500);
    assert.equal(ask('Wed, 02 Dec 2026 10:00:00 GMT'), false, 'a date only the answer whose time is up meets');
    assert.equal(ask('Fri, 04 Dec 2026 10:00:00 GMT'), true, 'a date the answer held meets');
  });

  it('tells a key’s variants apart by the fields its answer varied on', () => {
    const known = new OversizedAnswers();
    known.learn(KEY, NO_PATH, undefined, ['accept-language'], { 'accept-language': 'en' }, TAG, 1_000, 0);
    assert.equal(known.known(KEY, NO_PATH, undefined, { 'accept-language': 'en' }, ASK, 0), true);
    assert.equal(known.known(KEY, NO_PATH, undefined, { 'accept-language': 'fr' }, ASK, 0), false);
    assert.equal(known.known(KEY, NO_PATH, undefined, {}, ASK, 0), false);
    known.learn(KEY, NO_PATH, undefined, ['accept-language'], { 'accept-language': 'fr' }, TAG, 1_000, 0);
    assert.equal(known.known(KEY, NO_PATH, undefined, { 'accept-language': 'en' }, ASK, 0), true, 'learning one variant keeps the other');
    assert.equal(known.known(KEY, NO_PATH, undefined, { 'accept-language': 'fr' }, ASK, 0), true);
    assert.equal(known.size.paths, 0, `a path over ${OVERSIZED_MAX_PATH} characters is not learned`);
  });

  it('the app’s 304 renews what was learned of its key and variant, not of its path alone, and teaches nothing new', () => {
    const known = new OversizedAnswers();
    known.learn(KEY, '/file', undefined, ['accept-language'], { 'accept-language': 'en' }, TAG, 1_000, 0);
    known.notModified(KEY, '/file', undefined, { 'accept-language': 'en' }, TAG, 5_000, 0);
    known.notModified(KEY, '/file', undefined, { 'accept-language': 'fr' }, TAG, 5_000, 0);
    known.notModified('ns:GET:/file?x=1', '/file', undefined, {}, TAG, 5_000, 0);
    assert.equal(known.known(KEY, '/file', undefined, { 'accept-language': 'en' }, ASK, 4_000), true);
    assert.equal(known.known(KEY, '/file', undefined, { 'accept-language': 'fr' }, ASK, 4_000), false);
    assert.equal(known.known('ns:GET:/file?x=1', '/file', undefined, {}, ASK, 4_000), false);
  });

  it('forgets the variant of a request whose answer was stored, and only that one; its path stays known', () => {
    const known = new OversizedAnswers();
    known.learn(KEY, '/file', undefined, ['x-v'], { 'x-v': 'a' }, TAG, 1_000, 0);
    known.learn(KEY, '/file', undefined, ['x-v'], { 'x-v': 'b' }, TAG, 1_000, 0);
    known.forget(KEY, { 'x-v': 'a' });
    assert.equal(known.known(KEY, NO_PATH, undefined, { 'x-v': 'a' }, ASK, 0), false);
    assert.equal(known.known(KEY, NO_PATH, undefined, { 'x-v': 'b' }, ASK, 0), true);
    assert.equal(known.known(KEY, '/file', undefined, { 'x-v': 'a' }, ASK, 0), true);
    known.forget('ns:GET:/never', {});
  });

  it('a path learned for a user is known for that user alone; one learned for nobody (anonymous, or not user-scoped) for nobody', () => {
    const known = new OversizedAnswers();
    known.learn('ns:GET:/file:u=a', '/file', 'a', [], {}, TAG, 1_000, 0);
    assert.equal(known.known('ns:GET:/file?x=1:u=a', '/file', 'a', {}, ASK, 0), true);
    assert.equal(known.known('ns:GET:/file:u=b', '/file', 'b', {}, ASK, 0), false);
    assert.equal(known.known(KEY, '/file', undefined, {}, ASK, 0), false);
    // An id is told from the path after it by its length: no user's entry is another's, or nobody's.
    known.learn('ns:GET:/x', '/file', '3:a/', [], {}, TAG, 1_000, 0);
    assert.equal(known.known('ns:GET:/y', '/file', '3:a', {}, ASK, 0), false);
    known.learn('ns:GET:/z', '/file', undefined, [], {}, TAG, 1_000, 0);
    assert.equal(known.known(KEY, '/file', undefined, {}, ASK, 0), true);
    assert.equal(known.known('ns:GET:/file:u=c', '/file', 'c', {}, ASK, 0), false);
  });

  it(`holds ${OVERSIZED_KEYS} keys and paths at most, however many are learned: the least recently learned go first`, () => {
    const known = new OversizedAnswers();
    for (let i = 0; i < 3 * OVERSIZED_KEYS; i++) known.learn(`ns:GET:/f${i}`, `/f${i}`, undefined, [], {}, TAG, 1_000, 0);
    assert.deepEqual(known.size, { keys: OVERSIZED_KEYS, paths: OVERSIZED_KEYS });
    assert.equal((known as unknown as { tags: Map<string, unknown> }).tags.size, OVERSIZED_KEYS, 'paths’ ETags');
    const last = 2 * OVERSIZED_KEYS;
    assert.equal(known.known(`ns:GET:/f${last - 1}`, `/f${last - 1}`, undefined, {}, ASK, 0), false);
    assert.equal(known.known(`ns:GET:/f${last}`, `/f${last}`, undefined, {}, ASK, 0), true);
    // Learned again, a key is the most recent: the next one learned pushes out another.
    known.learn(`ns:GET:/f${last}`, `/f${last}`, undefined, [], {}, TAG, 1_000, 0);
    known.learn('ns:GET:/new', '/new', undefined, [], {}, TAG, 1_000, 0);
    assert.equal(known.known(`ns:GET:/f${last}`, `/f${last}`, undefined, {}, ASK, 0), true);
    assert.equal(known.known(`ns:GET:/f${last + 1}`, `/f${last + 1}`, undefined, {}, ASK, 0), false);
  });

  it(`learns no path whose user's id makes it longer than ${OVERSIZED_MAX_PATH} characters: an id is the app's, as long as a request's head allows (found by h189: 1,024 ids of 16 KiB held 16 MiB)`, () => {
    const known = new OversizedAnswers();
    const long = 'u'.repeat(16 * 1024);
    known.learn(`ns:GET:/file:u=#digest`, '/file', long, [], {}, TAG, 1_000, 0);
    assert.equal(known.size.paths, 0, 'paths held for a user whose id is 16 KiB long');
    assert.equal(known.known('ns:GET:/file?x=1:u=#digest', '/file', long, {}, ASK, 0), false);
    assert.equal(known.known('ns:GET:/file:u=#digest', '/file', long, {}, ASK, 0), true, 'its key is learned');
    known.learn('ns:GET:/file:u=a', '/file', 'a', [], {}, TAG, 1_000, 0);
    assert.equal(known.size.paths, 1, 'a short id is');
  });

  it("tells the app's 304 to any of a path's large answers dated alike, however many the path has (a download area of files chosen by query): none of them is read again under a new query", () => {
    const known = new OversizedAnswers();
    const day = (d: number) => new Date(Date.UTC(2026, 0, 1 + d)).toUTCString();
    for (let d = 0; d < 40; d++) known.learn(`ns:GET:/dl?f=${d}`, '/dl', undefined, [], {}, { etag: undefined, lastModified: day(d) }, 1_000, 0);
    for (let d = 0; d < 40; d++) known.notModified(`ns:GET:/dl?f=${d}&x=1`, '/dl', undefined, {}, { etag: undefined, lastModified: day(d) }, 1_000, 0);
    const kept = Array.from({ length: 40 }, (_, d) => known.known(`ns:GET:/dl?f=${d}&x=1`, '/dl', undefined, {}, { ifNoneMatch: undefined, ifModifiedSince: day(d) }, 0));
    assert.deepEqual(kept.map((k, d) => (k ? -1 : d)).filter((d) => d >= 0), [], 'files whose revalidation under a new query would be set aside (read whole)');
  });

  it(`holds an entity tag longer than ${OVERSIZED_MAX_TAG} characters as its digest: 1,024 paths with 64 KiB tags hold no more than with short ones, and each is still told from the others (the app or an upstream chooses its tags: they were held whole, 64 MiB)`, () => {
    const known = new OversizedAnswers();
    const long = (i: number, last = 'x') => `W/"${String(i).padStart(64 * 1024, 'é')}${last}"`;
    for (let i = 0; i < OVERSIZED_KEYS; i++) known.learn(`ns:GET:/f${i}`, `/f${i}`, undefined, [], {}, { etag: long(i), lastModified: undefined }, 1_000, 0);
    const tags = (known as unknown as { tags: Map<string, unknown> }).tags;
    let chars = 0;
    for (const key of tags.keys()) chars += key.length;
    assert.ok(chars <= OVERSIZED_KEYS * (`/f${OVERSIZED_KEYS}`.length + 2 + OVERSIZED_MAX_TAG), `characters held for the paths' tags: ${chars}`);
    const ask = (i: number, ifNoneMatch: string) => known.known(`ns:GET:/f${i}?x=1`, `/f${i}`, undefined, {}, { ifNoneMatch, ifModifiedSince: undefined }, 0);
    assert.equal(ask(7, long(7)), true, 'a revalidation of the long tag learned');
    assert.equal(ask(7, long(7).slice(2)), true, 'its strong form (weak comparison)');
    assert.equal(ask(7, `"a", ${long(7)}`), true, 'in a list');
    assert.equal(ask(7, long(7, 'y')), false, 'a long tag that differs in its last character');
    assert.equal(ask(7, long(8)), false, "another path's");
  });

  it(`looks up ${OVERSIZED_TAGS_ASKED} of a revalidation's entity tags at most: a longer list keeps its conditionals, as \`*\` does (found by h198: each of a hostile list's thousands was looked up with the path, up to 512 characters, before it: milliseconds of CPU a request)`, () => {
    const known = new OversizedAnswers();
    const path = '/'.padEnd(OVERSIZED_MAX_PATH - 8, 'p');
    known.learn(`ns:GET:${path}`, path, undefined, [], {}, TAG, 1_000, 0);
    const tags = (known as unknown as { tags: Map<string, number> }).tags;
    const get = tags.get.bind(tags);
    let looked = 0;
    tags.get = (key: string) => (looked++, get(key));
    const list = (n: number, last = '"f1"') => [...Array.from({ length: n - 1 }, (_, i) => `"t${i}"`), last].join(', ');
    const ask = (ifNoneMatch: string) => known.known(`ns:GET:${path}?x=1`, path, undefined, {}, { ifNoneMatch, ifModifiedSince: undefined }, 0);
    assert.equal(ask(list(2_000)), true, "a list of 2,000 with the large answer's tag last");
    assert.ok(looked <= OVERSIZED_TAGS_ASKED, `tags looked up for one revalidation: ${looked}`);
    assert.equal(ask(list(2_000, '"t-none"')), true, "a list of 2,000 with none of the path's tags: the app answers it");
    looked = 0;
    assert.deepEqual([ask(list(OVERSIZED_TAGS_ASKED)), ask(list(OVERSIZED_TAGS_ASKED, '"t-none"'))], [true, false], 'lists up to the bound are looked up tag by tag');
    assert.equal(looked, 2 * OVERSIZED_TAGS_ASKED);
  });

  it(`holds a key whose answer varied on more than ${OVERSIZED_MAX_VARY} characters of field names for all its variants, as for Vary: *`, () => {
    const known = new OversizedAnswers();
    const names = Array.from({ length: 64 }, (_, i) => `x-field-number-${i}`);
    known.learn(KEY, NO_PATH, undefined, names, { 'x-field-number-0': 'a' }, TAG, 1_000, 0);
    assert.deepEqual((known as unknown as { varyOn: Map<string, unknown> }).varyOn.get(KEY), []);
    assert.equal(known.known(KEY, NO_PATH, undefined, { 'x-field-number-0': 'b' }, ASK, 0), true, 'another variant');
  });

  it("the app's 304 to conditionals kept for the path alone: naming none of the path's large answers (their tags, their dates), its key's next conditional miss is set aside and filled; naming one, or none at all, nothing is learned (h189's date-only paths, left open)", () => {
    const known = new OversizedAnswers();
    const LARGE = 'Tue, 01 Dec 2026 10:00:00 GMT';
    const SMALL = 'Thu, 03 Dec 2026 10:00:00 GMT';
    known.learn('ns:GET:/items?n=5000', '/items', undefined, [], {}, { etag: '"big"', lastModified: LARGE }, 1_000, 0);
    const dated = { ifNoneMatch: undefined, ifModifiedSince: SMALL };
    const ask = (key: string, at = 0) => known.known(key, '/items', undefined, {}, dated, at);
    assert.equal(ask('ns:GET:/items?n=3'), true, 'a date the large answer meets');
    known.notModified('ns:GET:/items?n=3', '/items', undefined, {}, { etag: undefined, lastModified: SMALL }, 1_000, 0);
    assert.equal(ask('ns:GET:/items?n=3'), false, "a page whose 304 is dated as no large answer");
    assert.equal(ask('ns:GET:/items?n=4'), true, 'another key on the path');
    known.notModified('ns:GET:/items?n=5000&x=1', '/items', undefined, {}, { etag: undefined, lastModified: LARGE }, 1_000, 0);
    known.notModified('ns:GET:/items?n=5000&x=2', '/items', undefined, {}, { etag: '"big"', lastModified: undefined }, 1_000, 0);
    known.notModified('ns:GET:/items?n=5000&x=3', '/items', undefined, {}, { etag: 'W/"big"', lastModified: SMALL }, 1_000, 0);
    known.notModified('ns:GET:/items?n=5000&x=4', '/items', undefined, {}, { etag: undefined, lastModified: 'not a date' }, 1_000, 0);
    assert.deepEqual([1, 2, 3, 4].map((x) => ask(`ns:GET:/items?n=5000&x=${x}`)), [true, true, true, true], "304s dated or tagged as the large answer, or naming none");
    known.notModified('ns:GET:/items?n=7', '/items', undefined, {}, { etag: '"small"', lastModified: LARGE }, 1_000, 0);
    assert.equal(ask('ns:GET:/items?n=7'), true, 'a 304 with the large answer’s date and another tag');
    // A second large answer on the path, dated later: its 304 names it too (not only the earliest date held).
    known.learn('ns:GET:/items?n=6000', '/items', undefined, [], {}, { etag: undefined, lastModified: 'Fri, 04 Dec 2026 10:00:00 GMT' }, 1_000, 0);
    known.notModified('ns:GET:/items?n=6000&x=1', '/items', undefined, {}, { etag: undefined, lastModified: 'Fri, 04 Dec 2026 10:00:00 GMT' }, 1_000, 0);
    assert.equal(ask('ns:GET:/items?n=6000&x=1'), true, "a 304 dated as the path's second large answer");
    // Learned too large since, the key keeps its conditionals again; known to fit, it holds until its time is up.
    known.learn('ns:GET:/items?n=3', '/items', undefined, [], {}, { etag: undefined, lastModified: SMALL }, 1_000, 0);
    assert.equal(ask('ns:GET:/items?n=3'), true, 'a key learned too large after its 304');
    known.notModified('ns:GET:/items?n=9', '/items', undefined, {}, { etag: undefined, lastModified: 'Sat, 05 Dec 2026 10:00:00 GMT' }, 500, 0);
    assert.deepEqual([ask('ns:GET:/items?n=9', 499), ask('ns:GET:/items?n=9', 500)], [false, true]);
  });

  it('holds as many variants of one key at most, and as many keys’ fields', () => {
    const known = new OversizedAnswers();
    for (let i = 0; i < 2 * OVERSIZED_KEYS; i++) known.learn(KEY, '/file', undefined, ['x-v'], { 'x-v': String(i) }, TAG, 1_000, 0);
    for (let i = 0; i < 2 * OVERSIZED_KEYS; i++) known.learn(`ns:GET:/k${i}`, '/file', undefined, ['x-v'], { 'x-v': '1' }, TAG, 1_000, 0);
    assert.deepEqual(known.size, { keys: OVERSIZED_KEYS, paths: 1 });
    assert.equal((known as unknown as { varyOn: Map<string, unknown> }).varyOn.size, OVERSIZED_KEYS);
  });
});
