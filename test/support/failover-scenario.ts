// A failover under steady traffic, the same for a Cluster and for Sentinel:
// two app processes (app-process.ts) get a mix of hot-key hits, misses and
// watched URLs from this process; one watched entry is invalidated (and heard
// by the other instance) before `kill`, another after `takeover` resolves.
// Checked: no answer is an error, no request waits longer than the command
// timeout plus the failover time (plus room for a loaded machine), nobody
// serves the entry invalidated before the kill after it, and the other
// instance stops serving what was invalidated after the takeover (through the
// message, or through the gap its bus saw if the message was lost).
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import type { AppProcess } from './app-process.js';

/** Room for a loaded 2-core machine (several redis-servers, 3 node processes) on top of the bound. */
const SLACK_MS = 500;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Sample {
  readonly app: string;
  readonly url: string;
  readonly start: number;
  readonly ms: number;
  readonly status: number;
  readonly body: string;
}

/** Keeps app processes under traffic, recording every answer. */
class Load {
  readonly samples: Sample[] = [];
  private running = true;
  private readonly workers: Array<Promise<void>> = [];
  private n = 0;

  constructor(apps: readonly AppProcess[], urls: { hot: string; watched: readonly string[] }, perApp: number) {
    for (const app of apps) for (let w = 0; w < perApp; w++) this.workers.push(this.work(app, urls));
  }

  private async work(app: AppProcess, urls: { hot: string; watched: readonly string[] }): Promise<void> {
    while (this.running) {
      const roll = this.n++ % 8;
      // Half hot-key hits, some watched URLs, new URLs (misses) and a small rotating set (hits).
      const url = roll < 4 ? urls.hot : roll < 5 ? urls.watched[this.n % urls.watched.length]! : roll < 6 ? `/api/movies/new${this.n}` : `/api/movies/c${this.n % 20}`;
      const start = performance.now();
      let status = -1;
      let body = '';
      try {
        const res = await fetch(`http://127.0.0.1:${app.port}${url}`);
        status = res.status;
        body = await res.text();
      } catch (err) {
        body = String(err);
      }
      this.samples.push({ app: app.name, url, start, ms: performance.now() - start, status, body });
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
  }
}

export interface FailoverScenario {
  readonly a: AppProcess;
  readonly b: AppProcess;
  /** A URL most requests ask for (its entry ideally on the master that dies). */
  readonly hot: string;
  /** A URL invalidated (tag movie:<last segment, without the query>) before the kill. */
  readonly pre: string;
  /** A URL invalidated after the takeover. */
  readonly post: string;
  readonly commandTimeoutMs: number;
  /** Kills the master; resolves once it is dead. */
  kill(): Promise<void>;
  /** Resolves once a replica took over (as the servers see it). */
  takeover(): Promise<void>;
}

export interface FailoverReport {
  readonly requests: number;
  readonly errors: number;
  readonly failoverMs: number;
  readonly worstMs: number;
}

export async function runFailoverUnderLoad(scenario: FailoverScenario): Promise<FailoverReport> {
  const { a, b, hot, pre, post } = scenario;
  for (const url of [hot, pre, post]) {
    await a.get(url);
    await b.get(url);
  }
  const oldPre = (await b.get(pre)).body;
  assert.equal((await a.get(pre)).body, oldPre);
  const load = new Load([a, b], { hot, watched: [pre, post] }, 2);
  try {
    await sleep(300);
    // Invalidated before the kill, and heard by B: from here on, nobody may serve oldPre.
    const heardBefore = (await b.health()).received;
    await a.invalidate({ tag: pre.replace('/api/movies/', 'movie:').replace(/\?.*/, '') });
    for (const deadline = performance.now() + 2000; (await b.health()).received === heardBefore; ) {
      assert.ok(performance.now() < deadline, 'B did not hear the invalidation made before the kill');
      await sleep(2);
    }
    const invalidated = performance.now();
    const killedAt = performance.now();
    await scenario.kill();
    await scenario.takeover();
    const failoverMs = performance.now() - killedAt;

    // After the takeover: an invalidation on A reaches B: B stops serving its old answer for `post`,
    // through the message or, if the message was lost in the move, through the gap B's bus then sees.
    const oldPost = (await b.get(post)).body;
    const before = await b.health();
    await a.invalidate({ tag: 'movie:post' });
    let reached = false;
    const sentAt = performance.now();
    for (const deadline = sentAt + 5_000; performance.now() < deadline; await sleep(10)) {
      if ((await b.get(post)).body !== oldPost) {
        reached = true;
        break;
      }
    }
    const reachedMs = performance.now() - sentAt;
    const after = await b.health();
    const how = after.received > before.received ? 'its message' : after.flushes > before.flushes ? 'a gap B saw (the message was lost)' : 'a check in Redis (its bus not trusted yet)';
    await sleep(500);
    await load.stop();

    const samples = load.samples;
    const errors = samples.filter((s) => s.status !== 200);
    const worst = samples.reduce((w, s) => (s.ms > w.ms ? s : w), samples[0]!);
    const stalePre = samples.filter((s) => s.url === pre && s.start > invalidated && s.body === oldPre);
    const afterKill = samples.filter((s) => s.start >= killedAt).length;
    console.log(
      `      ${samples.length} requests (${afterKill} after the kill), ${errors.length} errors; failover ${failoverMs.toFixed(0)} ms; worst request ${worst.ms.toFixed(0)} ms (${worst.app} ${worst.url}); bound ${scenario.commandTimeoutMs} + ${failoverMs.toFixed(0)} ms; the invalidation after the takeover reached B in ${reachedMs.toFixed(0)} ms through ${how}`,
    );
    const slowest = [...samples].sort((x, y) => y.ms - x.ms).slice(0, 5);
    console.log(`      slowest: ${slowest.map((x) => `${x.ms.toFixed(0)} ms ${x.app} ${x.url} at ${(x.start - killedAt).toFixed(0)} ms from the kill`).join('; ')}`);
    assert.deepEqual(errors.slice(0, 3).map((s) => `${s.app} ${s.url}: ${s.status} ${s.body.slice(0, 200)}`), []);
    assert.ok(worst.ms <= scenario.commandTimeoutMs + failoverMs + SLACK_MS, `${worst.app} ${worst.url} took ${worst.ms.toFixed(0)} ms`);
    assert.deepEqual(stalePre.map((s) => `${s.app} at +${(s.start - killedAt).toFixed(0)} ms`), [], 'the entry invalidated before the kill was served after it');
    assert.ok(reached, `B still serves what A invalidated after the takeover: A ${JSON.stringify(await a.health())} B ${JSON.stringify(await b.health())}\nA: ${a.stderr().slice(-2000)}`);
    assert.ok(afterKill > 50, `too little traffic after the kill (${afterKill} requests)`);
    return { requests: samples.length, errors: errors.length, failoverMs, worstMs: worst.ms };
  } finally {
    await load.stop();
  }
}
