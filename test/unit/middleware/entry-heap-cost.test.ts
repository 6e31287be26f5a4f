// L1's byte bound is only as honest as what each entry says it costs: a
// decoded response (PreparedResponse) or Vary manifest charges L1 its
// heapBytes, computed from its fields before it is built. Here that figure
// is held against what V8 really keeps for thousands of them, measured after
// full garbage collections (on Node 20: most cases to the byte; an Express
// answer 6% over, as V8 shares the short value 'Express'; origin mode 7%
// over, its stale rules counted as boxed). The bounds (3% under for the
// measurement's noise, 10% over for V8's own sharing) catch dropping any
// part of the sum: the object, its header array, the values, unshared
// names, the stale rules.
// The measurements run in a process of their own (entry-heap-cost.worker.ts):
// a full collection walks the whole heap, and in the test run's process,
// which holds every test file loaded before this one, that made this file
// take over two minutes.
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { forgetSharedHeaderNames, sharedHeaderName } from '../../../src/middleware/header-names.js';
import { RESPONSES, SERVE_FLAG, UTF8_VALUES, type HeapCase, type HeapReply, type Measured } from './entry-heap-cost.worker.js';

const WORKER = fileURLToPath(new URL('./entry-heap-cost.worker.ts', import.meta.url));

/** Own (as parsed from a response), not a literal V8 shares. */
const own = (text: string): string => JSON.parse(JSON.stringify(text)) as string;

/**
 * Charged at least what V8 holds (3% for the measurement's noise), and not
 * more than 10% above it: L1's bound must not be exceeded, and an entry must
 * not crowd out others.
 */
function assertCharged({ measured, charged }: Partial<Measured>, what: string): void {
  assert.ok(typeof measured === 'number' && typeof charged === 'number', `${what}: nothing measured`);
  assert.ok(charged >= 0.97 * measured && charged <= 1.1 * measured, `${what}: charged ${charged} bytes, V8 holds ${measured.toFixed(1)}`);
}

describe("middleware: what a decoded HTTP entry charges L1 is what V8 keeps for it", function () {
  // Each case runs 5 batches of 24,000 entries, two full collections each: more than mocha's default on a loaded machine,
  // and a test waits for the cases queued before its own in that process (one took 50 s in a serial run beside other
  // work, and 60 s was passed once beside the package test's tsc). The bound is on heap, not time.
  this.timeout(120_000);
  /**
   * Two measuring processes, each taking its cases one at a time in the order sent: every case is sent in
   * before(), so both work at once (a 2-core CI machine measured one case at a time before) while the tests
   * take the replies in order. A case's figures are its process's alone: the other only competes for CPU.
   */
  const workers: ChildProcess[] = [];
  const measured = new Map<string, Promise<HeapReply>>();

  /** The measuring process's answer to one case; a failure there (an assertion, a crash) fails the test. */
  async function ask(c: HeapCase): Promise<Exclude<HeapReply, { ok: false }>> {
    const reply = await measured.get(JSON.stringify(c));
    if (reply === undefined) assert.fail(`${JSON.stringify(c)} was not sent in before()`);
    if (!reply.ok) assert.fail(`the measuring process failed: ${reply.error}`);
    return reply;
  }

  /** A measuring process, ready (it decodes every shape a few thousand times first: V8's code for them is heap too), and how to ask it. */
  async function startWorker(): Promise<(c: HeapCase) => Promise<HeapReply>> {
    const child = fork(WORKER, [SERVE_FLAG], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    workers.push(child);
    let replies: Array<(reply: HeapReply) => void> = [];
    child.on('message', (reply: HeapReply) => replies.shift()?.(reply));
    child.on('exit', (code, signal) => {
      const waiting = replies;
      replies = [];
      for (const resolve of waiting) resolve({ ok: false, error: `exited (code ${code}, signal ${signal})` });
    });
    const ready = await new Promise<HeapReply>((resolve) => replies.push(resolve));
    if (!ready.ok) assert.fail(`the measuring process did not start: ${ready.error}`);
    return (c) =>
      new Promise<HeapReply>((resolve) => {
        replies.push(resolve);
        child.send(c);
      });
  }

  before(async () => {
    const [one, two] = await Promise.all([startWorker(), startWorker()]);
    const cases: HeapCase[] = [
      ...RESPONSES.map((_, index): HeapCase => ({ kind: 'response', index })),
      ...UTF8_VALUES.map((_, index): HeapCase => ({ kind: 'utf8', index })),
      { kind: 'manifest' },
    ];
    cases.forEach((c, i) => measured.set(JSON.stringify(c), (i % 2 === 0 ? one : two)(c)));
    // Filling the table of shared names changes what follows in that process: these go last, to one process, in order.
    for (const c of [{ kind: 'fill-shared-names' }, { kind: 'unshared-response' }, { kind: 'unshared-manifest' }] as const) measured.set(JSON.stringify(c), two(c));
  });

  after(async () => {
    await Promise.all(
      workers.splice(0).map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGKILL');
        await exited;
      }),
    );
  });

  for (const [index, { name }] of RESPONSES.entries()) {
    it(`a response with ${name}: charged at least the heap it holds, at most 10% more`, async () => {
      assertCharged(await ask({ kind: 'response', index }), 'response');
    });
  }

  for (const [index, value] of UTF8_VALUES.entries()) {
    it(`a response whose head went out as UTF-8 (a ${value.length}-character value beyond ASCII, stored as its bytes), decoded for GETs: charged at least the heap it holds, at most 10% more`, async () => {
      const reply = await ask({ kind: 'utf8', index });
      assert.ok(reply.utf8Head, 'the entry records its UTF-8 head');
      assertCharged(reply, 'response');
    });
  }

  it('a Vary manifest of three names: charged at least the heap it holds, at most 10% more', async () => {
    assertCharged(await ask({ kind: 'manifest' }), 'manifest');
  });

  it('shares names of up to 64 characters; a longer one is always its entry\'s own', () => {
    const name = 's'.repeat(64);
    assert.equal(sharedHeaderName(own(name)), name);
    const copy = own(name);
    assert.equal(sharedHeaderName(copy), name);
    assert.equal(sharedHeaderName(`${name}s`), undefined);
  });

  // The test above adds to this process's table of shared names (the worker fills its own): emptied again, for the tests that run later here.
  after(forgetSharedHeaderNames);

  it('past the bound of shared names, a new name is the entry\'s own: charged to it, at least the heap it holds, at most 10% more', async () => {
    // The worker's table is filled: the entries measured there are the ones whose names are their own.
    await ask({ kind: 'fill-shared-names' });
    assertCharged(await ask({ kind: 'unshared-response' }), 'response');
    assertCharged(await ask({ kind: 'unshared-manifest' }), 'manifest');
  });
});
