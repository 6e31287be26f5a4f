// RFC 9111 §4.3 (validation) and §5.2.2 (no-cache, must-revalidate) through the proxy example.
import assert from 'node:assert/strict';
import { freshPath, httpDate, useOriginAndProxy, type Scripted, type Seen } from './harness.js';

/** An origin answer that honours If-None-Match / If-Modified-Since for `etag` / `lastModified`. */
function validating(headers: Array<[string, string]>, opts: { etag?: string; lastModified?: string; body?: string; notModifiedHeaders?: Array<[string, string]> } = {}) {
  return (req: Seen, n: number): Scripted => {
    const all: Array<[string, string]> = [...headers];
    if (opts.etag !== undefined) all.push(['ETag', opts.etag]);
    if (opts.lastModified !== undefined) all.push(['Last-Modified', opts.lastModified]);
    const inm = req.headers['if-none-match'];
    const ims = req.headers['if-modified-since'];
    if ((opts.etag !== undefined && inm === opts.etag) || (inm === undefined && opts.lastModified !== undefined && ims === opts.lastModified)) {
      return { status: 304, headers: [...all.filter(([name]) => !(opts.notModifiedHeaders ?? []).some(([m]) => m === name)), ...(opts.notModifiedHeaders ?? [])] };
    }
    return { headers: all, body: opts.body ?? `full #${n}` };
  };
}

describe('RFC 9111 validation (origin mode, proxy example)', function () {
  const { origin, proxy } = useOriginAndProxy();

  it('§4.3.1 a stale entry with an ETag is revalidated with If-None-Match; the 304 serves the stored body (§4.3.3)', async () => {
    const path = freshPath('etag');
    origin.script(path, validating([['Cache-Control', 'max-age=0']], { etag: '"v1"' }));
    const first = await proxy.get(path);
    assert.equal(first.body, 'full #1');
    const second = await proxy.get(path);
    assert.equal(origin.count(path), 2);
    assert.equal(origin.last(path).headers['if-none-match'], '"v1"');
    assert.equal(second.status, 200);
    assert.equal(second.body, 'full #1');
    assert.match(second.headers['cache-status'] as string, /fwd=stale; fwd-status=304/);
  });

  it('§4.3.1 a stale entry with only Last-Modified is revalidated with If-Modified-Since', async () => {
    const path = freshPath('lm');
    const lm = httpDate(-86400);
    origin.script(path, validating([['Cache-Control', 'max-age=0']], { lastModified: lm }));
    await proxy.get(path);
    const second = await proxy.get(path);
    assert.equal(origin.last(path).headers['if-modified-since'], lm);
    assert.equal(origin.last(path).headers['if-none-match'], undefined);
    assert.equal(second.body, 'full #1');
  });

  it('§4.3.4 / §3.2 a 304 updates the stored header fields (for this answer and the next), Content-Length excepted', async () => {
    const path = freshPath('update');
    let round = 0;
    origin.script(path, (req) => {
      round++;
      if (req.headers['if-none-match'] === '"a"') return { status: 304, headers: [['Cache-Control', 'max-age=3600'], ['ETag', '"a"'], ['X-Test', 'B'], ['Content-Length', '999']] };
      return { headers: [['Cache-Control', 'max-age=0'], ['ETag', '"a"'], ['X-Test', 'A'], ['Content-Type', 'text/plain']], body: 'stored body' };
    });
    await proxy.get(path);
    const refreshed = await proxy.get(path);
    assert.equal(refreshed.headers['x-test'], 'B');
    assert.equal(refreshed.headers['content-type'], 'text/plain');
    assert.equal(refreshed.body, 'stored body');
    assert.equal(refreshed.headers['content-length'], String('stored body'.length));
    const hit = await proxy.get(path);
    assert.equal(round, 2, 'max-age=3600 from the 304 made the entry fresh');
    assert.equal(hit.headers['x-test'], 'B');
    assert.match(hit.headers['cache-status'] as string, /hit/);
  });

  it('§4.3.4 a 304 with another strong ETag refreshes nothing: the client gets the full answer of an unconditional retry, which is stored', async () => {
    const path = freshPath('strong-mismatch');
    origin.script(path, (req, n) => {
      // An origin whose 304 names another representation (say, a sibling server that judged If-Modified-Since).
      if (req.headers['if-none-match'] !== undefined) return { status: 304, headers: [['Cache-Control', 'max-age=3600'], ['ETag', '"v2"']] };
      return { headers: [['Cache-Control', n === 1 ? 'max-age=0' : 'max-age=3600'], ['ETag', `"v${n === 1 ? 1 : 2}"`], ['Last-Modified', httpDate(-86400)]], body: n === 1 ? 'version 1' : 'version 2' };
    });
    assert.equal((await proxy.get(path)).body, 'version 1');
    const second = await proxy.get(path);
    assert.equal(second.status, 200);
    assert.equal(second.body, 'version 2', 'the stored body was not validated by that 304');
    assert.equal(second.headers.etag, '"v2"');
    assert.equal(origin.count(path), 3);
    assert.equal(origin.last(path).headers['if-none-match'], undefined, 'the retry is unconditional');
    assert.equal(origin.last(path).headers['if-modified-since'], undefined);
    const third = await proxy.get(path);
    assert.equal(third.body, 'version 2');
    assert.match(third.headers['cache-status'] as string, /hit/);
    assert.equal(origin.count(path), 3);
  });

  it('§4.3.4 a 304 whose weak validators match the stored ones refreshes it; one whose weak ETag or Last-Modified match nothing is retried', async () => {
    const lm = httpDate(-86400);
    const cases: Array<{ stored: Array<[string, string]>; answer: Array<[string, string]>; refreshes: boolean }> = [
      { stored: [['ETag', '"w"']], answer: [['ETag', 'W/"w"']], refreshes: true },
      { stored: [['ETag', 'W/"w"']], answer: [['ETag', 'W/"w"']], refreshes: true },
      { stored: [['ETag', 'W/"w"']], answer: [['ETag', '"w"']], refreshes: false },
      { stored: [['ETag', 'W/"w"']], answer: [['ETag', 'W/"other"']], refreshes: false },
      { stored: [['Last-Modified', lm]], answer: [['Last-Modified', lm]], refreshes: true },
      { stored: [['Last-Modified', lm]], answer: [['Last-Modified', httpDate(-3600)]], refreshes: false },
      // No validator at all: the 304 answers the one stored response the cache asked about.
      { stored: [['Last-Modified', lm]], answer: [], refreshes: true },
      { stored: [['ETag', '"s"']], answer: [], refreshes: true },
    ];
    for (const { stored, answer, refreshes } of cases) {
      const path = freshPath('weak');
      origin.script(path, (req, n) => {
        if (req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined) return { status: 304, headers: [['Cache-Control', 'max-age=3600'], ...answer] };
        return { headers: [['Cache-Control', n === 1 ? 'max-age=0' : 'max-age=3600'], ...stored], body: `full #${n}` };
      });
      await proxy.get(path);
      const second = await proxy.get(path);
      const why = `stored ${JSON.stringify(stored)}, 304 with ${JSON.stringify(answer)}`;
      assert.equal(second.status, 200, why);
      assert.equal(second.body, refreshes ? 'full #1' : 'full #3', why);
      assert.equal(origin.count(path), refreshes ? 2 : 3, why);
    }
  });

  it('§4.3.3 a 200 answering the revalidation replaces the stored response', async () => {
    const path = freshPath('replace');
    origin.script(path, (_req, n) => ({ headers: [['Cache-Control', n === 1 ? 'max-age=0' : 'max-age=3600'], ['ETag', `"v${n}"`]], body: `version ${n}` }));
    await proxy.get(path);
    assert.equal((await proxy.get(path)).body, 'version 2');
    assert.equal((await proxy.get(path)).body, 'version 2');
    assert.equal(origin.count(path), 2);
  });

  it('§4.3.2 the client gets its own 304 when its conditional matches the refreshed entry', async () => {
    const path = freshPath('client-304');
    origin.script(path, validating([['Cache-Control', 'max-age=0']], { etag: '"v1"' }));
    await proxy.get(path);
    const conditional = await proxy.get(path, { 'if-none-match': '"v1"' });
    assert.equal(conditional.status, 304);
    assert.equal(conditional.body, '');
    assert.equal(origin.last(path).headers['if-none-match'], '"v1"', 'the cache asked with its own validator');
  });

  it('§4.3.2 client conditionals are evaluated against a fresh entry: weak comparison, lists, *, If-None-Match before If-Modified-Since', async () => {
    const path = freshPath('conditionals');
    const lm = httpDate(-86400);
    origin.script(path, { headers: [['Cache-Control', 'max-age=3600'], ['ETag', 'W/"x"'], ['Last-Modified', lm]] });
    await proxy.get(path);
    assert.equal((await proxy.get(path, { 'if-none-match': '"x"' })).status, 304);
    assert.equal((await proxy.get(path, { 'if-none-match': '"a", W/"x"' })).status, 304);
    assert.equal((await proxy.get(path, { 'if-none-match': '*' })).status, 304);
    assert.equal((await proxy.get(path, { 'if-none-match': '"other"' })).status, 200);
    assert.equal((await proxy.get(path, { 'if-modified-since': httpDate(0) })).status, 304);
    assert.equal((await proxy.get(path, { 'if-modified-since': httpDate(-10 * 86400) })).status, 200);
    // If-None-Match decides when both are there (RFC 9110 §13.2.2).
    assert.equal((await proxy.get(path, { 'if-none-match': '"other"', 'if-modified-since': httpDate(0) })).status, 200);
    assert.equal(origin.count(path), 1);
  });

  it('§5.2.2.4 a no-cache response is stored but revalidated on every use', async () => {
    const path = freshPath('no-cache');
    origin.script(path, validating([['Cache-Control', 'max-age=3600, no-cache']], { etag: '"n"' }));
    await proxy.get(path);
    for (let i = 0; i < 3; i++) assert.equal((await proxy.get(path)).body, 'full #1');
    assert.equal(origin.count(path), 4);
    for (const seen of origin.seen.get(path)!.slice(1)) assert.equal(seen.headers['if-none-match'], '"n"');
  });

  it('§4.2.4 a stale response may be served when the origin fails (stale-if-error=N, RFC 5861)', async () => {
    const path = freshPath('stale-if-error');
    origin.script(path, (_req, n) => (n === 1 ? { headers: [['Cache-Control', 'max-age=0, stale-if-error=60'], ['ETag', '"s"']], body: 'good' } : { status: 500, body: 'broken' }));
    await proxy.get(path);
    const second = await proxy.get(path);
    assert.equal(second.status, 200);
    assert.equal(second.body, 'good');
  });

  it('RFC 9211 §2.2: a revalidation whose answer is not stored says fwd=stale, the status it got and why (not fwd=miss: a response was found)', async () => {
    for (const [second, said] of [
      [{ status: 500, body: 'broken' }, 'tiercache; fwd=stale; fwd-status=500; detail=status'],
      [{ headers: [['Cache-Control', 'no-store']], body: 'secret' }, 'tiercache; fwd=stale; fwd-status=200; detail=no-store'],
      [{ status: 404, headers: [['Cache-Control', 'private']] }, 'tiercache; fwd=stale; fwd-status=404; detail=private'],
    ] as const) {
      const path = freshPath('unstored-revalidation');
      origin.script(path, (_req, n) => (n === 1 ? { headers: [['Cache-Control', 'max-age=0'], ['ETag', '"u"']], body: 'good' } : (second as Scripted)));
      await proxy.get(path);
      const answer = await proxy.get(path);
      assert.equal(origin.last(path).headers['if-none-match'], '"u"', 'the stale entry was revalidated');
      assert.equal(answer.headers['cache-status'], said);
    }
  });

  for (const directive of ['must-revalidate', 'proxy-revalidate', 's-maxage=0']) {
    it(`§5.2.2.2 / §5.2.2.8 / §5.2.2.10 ${directive} forbids serving stale, even where stale-if-error would allow it`, async () => {
      const path = freshPath('no-stale');
      const cc = directive.startsWith('s-maxage') ? `${directive}, stale-if-error=60` : `max-age=0, ${directive}, stale-if-error=60`;
      origin.script(path, (_req, n) => (n === 1 ? { headers: [['Cache-Control', cc], ['ETag', '"m"']], body: 'good' } : { status: 500, body: 'broken' }));
      await proxy.get(path);
      const second = await proxy.get(path);
      assert.equal(second.status, 500);
      assert.equal(second.body, 'broken');
      // Nor with a request that would take any stale answer.
      const third = await proxy.get(path, { 'cache-control': 'max-stale' });
      assert.equal(third.status, 500);
    });
  }
});
