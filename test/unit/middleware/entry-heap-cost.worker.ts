// The measurements of entry-heap-cost.test.ts, run in a process of their own
// (forked by that test, asked one case at a time over IPC). A full
// collection walks the whole heap: inside the test run's process, which holds
// every test file loaded before it, each one cost about 0.5 s and the file
// over two minutes; here the heap holds only the entries being measured, and
// nothing another test left behind lands in a batch.
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { httpValueOf, manifestEntry, PreparedResponse, responseEntry, VaryManifest, type StaleRules } from '../../../src/middleware/http-entry.js';
import type { StoredEntry } from '../../../src/store/entry.js';
import { sharedHeaderName } from '../../../src/middleware/header-names.js';

/** Set when this module runs as the worker (the test imports it only for the names of its cases). */
let collectGarbage: () => void = () => {
  throw new Error('entry-heap-cost.worker.ts measures only in the process forked to serve the cases');
};

// Now and then about 200 KB lands in the old space inside a batch, whatever its size
// (seen on a 2-core AMD EPYC: 30 bytes an entry at 6,000 entries, one batch in
// two); at 24,000 it is under 9 bytes an entry, and the median drops it.
const COUNT = 24_000;
const stamp = { epoch: 1, tags: ['key:k'], versions: [1] };
const life = { createdAt: 1_000, freshUntil: 61_000, staleUntil: 61_000 };

/** Heap in use by objects: old and large-object spaces, not the code space (compiled code lands there whenever a compiler thread is done). */
function objectHeapUsed(): number {
  let used = 0;
  for (const space of getHeapSpaceStatistics()) if (space.space_name === 'old_space' || space.space_name === 'large_object_space') used += space.space_used_size;
  return used;
}

/** Heap and its growth per entry for decoding COUNT fresh entries (their PreparedResponse or VaryManifest). */
function heapPerDecoded(makeEntry: () => StoredEntry, decode: (entry: StoredEntry) => unknown = httpValueOf): { perEntry: number; charged: number } {
  const entries = Array.from({ length: COUNT }, makeEntry);
  collectGarbage();
  collectGarbage();
  const before = objectHeapUsed();
  for (const entry of entries) decode(entry);
  collectGarbage();
  collectGarbage();
  const after = objectHeapUsed();
  if (!entries.every((entry) => entry.decoded !== undefined)) throw new Error('not every entry was decoded and kept');
  return { perEntry: (after - before) / COUNT, charged: (entries[0]!.decoded as PreparedResponse | VaryManifest).heapBytes };
}

export interface Measured {
  measured: number;
  charged: number;
}

/**
 * The median of five batches: code V8 compiles and optimizes on a thread of
 * its own lands in the heap whenever it is done, now and then inside one batch
 * (seen: 10% more, once in three batches).
 */
function measuredPerEntry(makeEntry: () => StoredEntry, decode?: (entry: StoredEntry) => unknown): Measured {
  const batches = Array.from({ length: 5 }, () => heapPerDecoded(makeEntry, decode));
  const measured = batches.map((b) => b.perEntry).sort((a, b) => a - b)[2]!;
  return { measured, charged: batches[0]!.charged };
}

/** Header values of their own (as parsed from a response), not literals V8 shares. */
const own = (text: string): string => JSON.parse(JSON.stringify(text)) as string;

export const RESPONSES: Array<{ name: string; status: number; headers: Array<[string, string]>; body: number; rules?: StaleRules }> = [
  {
    // 'Express' is shared by V8 (JSON.parse interns short strings): charged 24 bytes too many.
    name: 'an Express JSON answer',
    status: 200,
    headers: [['x-powered-by', 'Express'], ['content-type', 'application/json; charset=utf-8'], ['etag', 'W/"2a-1f3b0c9d2e4a5b6c7d8e9f0a1b2"']],
    body: 42,
  },
  { name: 'its own Content-Length and a 40-character field', status: 200, headers: [['content-length', '12345'], ['x-request-id', 'r'.repeat(40)]], body: 12_345 },
  { name: 'a 4 KB field', status: 200, headers: [['x-pad', 'p'.repeat(4096)]], body: 5 },
  { name: 'a name too long to share (70 characters)', status: 200, headers: [[`x-${'n'.repeat(68)}`, 'v'.repeat(30)]], body: 5 },
  { name: 'Last-Modified (a boxed time) and a 100-character field', status: 200, headers: [['last-modified', 'Tue, 01 Dec 2026 10:00:00 GMT'], ['x-trace', 't'.repeat(100)]], body: 5 },
  {
    name: 'origin mode: Date read as the time of the answer',
    status: 200,
    headers: [['date', 'Tue, 01 Dec 2026 10:00:00 GMT'], ['cache-control', 'max-age=60, stale-while-revalidate=30']],
    body: 5,
    rules: { noStale: false, staleWhileRevalidate: 30_000, staleIfError: 0 },
  },
];

export const UTF8_VALUES = ['café crème', 'é'.repeat(400)];

const MANIFEST_NAMES = ['accept-language', 'x-tenant-identifier', 'accept-encoding'];

const makers: Array<() => StoredEntry> = [
  ...RESPONSES.map(({ status, headers, body, rules }) => () => responseEntry(stamp, life, status, headers.map(([n, v]) => [n, own(v)]), Buffer.alloc(body, 'b'), true, rules).entry),
  () => manifestEntry(stamp, life, MANIFEST_NAMES, false).entry,
];

function utf8Maker(value: string): () => StoredEntry {
  const headers: Array<[string, string]> = [['content-type', 'text/plain; charset=utf-8'], ['x-name', value], ['x-request-id', 'r'.repeat(40)]];
  return () => responseEntry(stamp, life, 200, headers.map(([n, v]) => [n, own(v)]), Buffer.alloc(5, 'b'), true, undefined, false, undefined, undefined, true).entry;
}

/** What the test asks for, one case a message; the cases that fill the table of shared names come last. */
export type HeapCase =
  | { kind: 'response'; index: number }
  | { kind: 'utf8'; index: number }
  | { kind: 'manifest' }
  | { kind: 'fill-shared-names' }
  | { kind: 'unshared-response' }
  | { kind: 'unshared-manifest' };

export type HeapReply = ({ ok: true } & Partial<Measured> & { utf8Head?: boolean }) | { ok: false; error: string };

function measure(c: HeapCase): Exclude<HeapReply, { ok: false }> {
  switch (c.kind) {
    case 'response':
      return { ok: true, ...measuredPerEntry(makers[c.index]!) };
    case 'utf8': {
      const make = utf8Maker(UTF8_VALUES[c.index]!);
      return { ok: true, utf8Head: (httpValueOf(make()) as PreparedResponse).utf8Head, ...measuredPerEntry(make) };
    }
    case 'manifest':
      return { ok: true, ...measuredPerEntry(makers[RESPONSES.length]!) };
    case 'fill-shared-names':
      for (let i = 0; sharedHeaderName(`x-filler-name-${i}`) !== undefined; i++) if (i >= 100_000) throw new Error('the table of shared names is not bounded');
      return { ok: true };
    case 'unshared-response': {
      const unshared: Array<[string, string]> = [['x-not-shared-first', own('a'.repeat(30))], ['x-not-shared-second', own('b'.repeat(30))]];
      return { ok: true, ...measuredPerEntry(() => responseEntry(stamp, life, 200, unshared.map(([n, v]) => [own(n), v]), Buffer.alloc(5, 'b'), true).entry) };
    }
    case 'unshared-manifest':
      return { ok: true, ...measuredPerEntry(() => manifestEntry(stamp, life, ['x-not-shared-vary-one', 'x-not-shared-vary-two'], false).entry) };
  }
}

/** The argument the test forks this module with: importing it elsewhere (a mocha worker has an IPC channel too) starts nothing. */
export const SERVE_FLAG = '--serve-heap-cases';

if (process.argv.includes(SERVE_FLAG) && process.send) {
  setFlagsFromString('--expose-gc');
  // A collection may otherwise drop the bytecode of functions not run lately, which shrinks the heap under a measurement.
  setFlagsFromString('--no-flush-bytecode');
  collectGarbage = runInNewContext('gc') as () => void;
  // Every shape decoded a few thousand times first: V8 compiles, optimizes and
  // deoptimizes the code for each, and that code is heap too.
  for (let round = 0; round < 3; round++) for (const make of makers) for (let i = 0; i < 1_000; i++) httpValueOf(make());
  process.on('message', (c: HeapCase) => {
    let reply: HeapReply;
    try {
      reply = measure(c);
    } catch (err) {
      reply = { ok: false, error: String((err as Error)?.stack ?? err) };
    }
    process.send!(reply);
  });
  // The test process gone (or done): nothing more will be asked.
  process.on('disconnect', () => process.exit(0));
  process.send({ ok: true } satisfies HeapReply);
}
