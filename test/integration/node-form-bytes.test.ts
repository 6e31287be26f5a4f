// A hit's head goes to node as the object node keeps headers set on a
// response in (HeaderSet.nodeFormWith), with the lines of fields node does not
// read by name joined into the value of the entry before them. The cases of
// front-door-head-form pick a few heads by hand; these draw many (seeded, so a
// failure names its seed and case), with what node reads by name in any case
// and place, repeated, and the ways node words a head differently (status,
// HEAD, HTTP/1.0, Connection, sendDate, strictContentLength,
// maxRequestsPerSocket, keepAliveTimeout), and compare the bytes with node's own writeHead of
// the flat array, which validates and reads every field as given.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PreparedResponse } from '../../src/middleware/http-entry.js';
import { OUT_HEADERS, writeStoredHead } from '../../src/middleware/replay.js';
import { useCleanup } from '../support/cache-context.js';
import { wireRaw } from '../support/http-wire.js';

const { serve } = useCleanup();

/** What node's _storeHeader reads by name or value, fields lookalike, and names an object files apart. */
const NAMES = ['connection', 'transfer-encoding', 'content-length', 'date', 'expect', 'trailer', 'keep-alive', 'content-disposition', 'age', 'cache-status', '7', '__proto__', 'constructor', 'content-type', 'etag', 'vary', 'link', 'x-a', 'set-cookie', 'upgrade', 'te', 'cookie', 'last-modified', 'content-length-x', 'dates'];
const VALUES: Record<string, readonly string[]> = {
  connection: ['close', 'keep-alive', 'upgrade', 'Close, x-a'],
  'transfer-encoding': ['chunked', 'gzip', 'gzip, chunked'],
  'content-length': ['2', '0', '5'],
  'content-disposition': ['attachment; filename="a.txt"', 'attachment; filename="caf\xe9.txt"', Buffer.from('inline; filename="日本"').toString('latin1')],
  expect: ['100-continue'],
  trailer: ['x-t'],
  'keep-alive': ['timeout=9', 'max=3'],
};
// 'close' and 'chunked': what node looks for in a Connection or Transfer-Encoding value, were a field joined to one.
const OTHER_VALUES = ['', 'v', 'a b', 'caf\xe9', '\xff\x80', 'x'.repeat(300), '7', '"q"', 'close', 'chunked'];

interface Case {
  readonly fields: Array<[string, string]>;
  readonly status: number;
  readonly method: string;
  readonly version: string;
  readonly connection: string;
  readonly sendDate: boolean;
  readonly strict: boolean;
  readonly cacheStatus: string | undefined;
  readonly age: number;
}

/** A seeded draw (an LCG): the same seed, the same cases. */
function cases(seed: number, count: number): Case[] {
  let state = seed;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) & 0x7fffffff) / 0x7fffffff;
  const pick = <T>(a: readonly T[]): T => a[Math.floor(next() * a.length)]!;
  const recase = (s: string) => [...s].map((c) => (next() < 0.4 ? c.toUpperCase() : c)).join('');
  const out: Case[] = [];
  for (let n = 0; n < count; n++) {
    const fields: Array<[string, string]> = [];
    for (let i = 1 + Math.floor(next() * 8); i > 0; i--) {
      const name = pick(NAMES);
      const values = Object.hasOwn(VALUES, name) ? VALUES[name] : undefined;
      fields.push([next() < 0.3 ? recase(name) : name, values !== undefined && next() < 0.8 ? pick(values) : pick(OTHER_VALUES)]);
    }
    out.push({
      fields,
      status: pick([200, 200, 200, 204, 304, 404]),
      method: pick(['GET', 'GET', 'HEAD']),
      version: pick(['1.1', '1.1', '1.0']),
      connection: pick(['', 'Connection: close\r\n', 'Connection: keep-alive\r\n']),
      sendDate: next() < 0.8,
      strict: next() < 0.3,
      cacheStatus: next() < 0.7 ? 'tiercache; hit; detail=L1' : undefined,
      age: Math.floor(next() * 3),
    });
  }
  return out;
}

/** Every line that says when the answer was made (node's Date, and a stored one) read alike. */
const withoutDates = (text: string) => text.replace(/\r\ndate: [^\r]*/gi, '\r\ndate: -');

describe('a hit head in the node form, byte for byte against node\'s own writeHead of the flat array', () => {
  for (const seed of [1, 2, 3]) {
    it(`sends the same bytes for 150 drawn heads (seed ${seed}), or sends where node's array path refuses a Content-Disposition it re-encoded`, async () => {
      let current: { c: Case; response: PreparedResponse } | undefined;
      const refused: string[] = [];
      // 'entries': each field an entry of node's own object, as an app's setHeader leaves them (node sends those
      // without validating), the reference where the array is refused.
      const serverOf = (form: 'form' | 'array' | 'entries') =>
        serve((req: IncomingMessage, res: ServerResponse) => {
          const { c, response } = current!;
          res.sendDate = c.sendDate;
          res.strictContentLength = c.strict;
          try {
            const raw = response.headers.rawWith(String(c.age), c.cacheStatus);
            if (form === 'form') writeStoredHead(res, c.status, response.headers, c.age, c.cacheStatus);
            else if (form === 'array') res.writeHead(c.status, raw);
            else {
              const entries: Record<string, [string, string]> = Object.create(null);
              for (let i = 0; i < raw.length; i += 2) entries[`${raw[i]} ${i}`] = [raw[i]!, raw[i + 1]!];
              (res as unknown as Record<symbol, unknown>)[OUT_HEADERS!] = entries;
              res.writeHead(c.status);
            }
            if (req.method === 'HEAD') res.end();
            else res.end(response.body);
          } catch (err) {
            refused.push(`${form} ${(err as { code?: string }).code}`);
            res.destroy();
          }
        });
      const [viaForm, viaArray, viaEntries] = await Promise.all([serverOf('form'), serverOf('array'), serverOf('entries')]);
      for (const s of [viaForm, viaArray, viaEntries]) {
        s.keepAliveTimeout = 4_000;
        s.maxRequestsPerSocket = 2;
      }
      for (const [i, c] of cases(seed, 150).entries()) {
        current = { c, response: new PreparedResponse(c.status, c.fields, Buffer.from('ok'), true, undefined, false) };
        refused.length = 0;
        // A second request on the connection: what node decided of keep-alive shows in whether it is answered.
        const raw = `${c.method} / HTTP/${c.version}\r\nHost: x\r\n${c.connection}\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
        const [form, array] = await Promise.all([wireRaw(viaForm, raw, 3_000, true), wireRaw(viaArray, raw, 3_000, true)]);
        const what = `seed ${seed} case ${i}: ${JSON.stringify(c)}`;
        const reencoded = c.fields.some(([name, value]) => name.toLowerCase() === 'content-disposition' && /[\x80-\xff]/.test(value));
        if (reencoded && refused.includes('array ERR_INVALID_CHAR')) {
          assert.ok(!refused.some((r) => r.startsWith('form')), `${what}: the form refused too (${refused.join()})`);
          const entries = await wireRaw(viaEntries, raw, 3_000, true);
          assert.equal(withoutDates(form), withoutDates(entries), what);
          continue;
        }
        assert.equal(withoutDates(form), withoutDates(array), what);
        assert.deepEqual(refused.filter((r) => r.startsWith('form')).map((r) => r.slice(5)), refused.filter((r) => r.startsWith('array')).map((r) => r.slice(6)), `${what}: refused ${refused.join()}`);
      }
    });
  }
});
