// The status page in a real browser (headless Debian Chromium driven by
// playwright-core): the Express example runs on a real Redis with traffic,
// the page at /_tiercache draws its chart, the numbers it shows equal the
// app's cache.stats() (read through the example's /api/admin/stats), the page
// requests nothing outside its own origin, and a PNG screenshot is saved to
// test/artifacts/ (docs/status-page.png in the README is a copy of one).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { startExample, stopExample, type StartedExample } from '../../support/example-process.js';
import { startRedisServer, type RedisServerHandle } from '../../support/redis-server.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'artifacts');
export const SCREENSHOT = join(ARTIFACTS, 'status-page.png');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Requests of every kind against the example until stop() is called. */
function traffic(base: string): { stop(): Promise<number> } {
  let running = true;
  let sent = 0;
  const get = async (path: string, headers: Record<string, string> = {}) => {
    sent++;
    await (await fetch(base + path, { headers })).arrayBuffer();
  };
  const put = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    sent++;
    await (await fetch(base + path, { method: 'PUT', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })).arrayBuffer();
  };
  const loop = (async () => {
    for (let i = 0; running; i++) {
      await Promise.all([
        get('/api/movies'),
        get(`/api/movies/${1 + (i % 4)}`),
        get(`/api/search?q=${['sam', 'met', 'par'][i % 3]}`, { 'accept-language': i % 2 === 0 ? 'en' : 'fr' }),
        get(`/api/users/u${1 + (i % 2)}`),
        get('/api/me', { 'x-user': `u${1 + (i % 2)}` }),
        get('/api/movies', { authorization: 'Bearer demo' }),
        i % 7 === 0 ? get('/api/movies', { cookie: 'session=1' }) : undefined,
      ]);
      if (i % 15 === 14) await put(`/api/movies/${1 + (i % 4)}`, { rating: 8 + (i % 10) / 10 });
      if (i % 25 === 24) await put('/api/me', { name: `Ada ${i}` }, { 'x-user': 'u1' });
      await sleep(40);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return sent;
    },
  };
}

/** What page functions read of the page (this project's TypeScript has no DOM types). */
type PageDocument = { getElementById(id: string): { dataset: Record<string, string | undefined> }; body: { dataset: Record<string, string | undefined> } };

function pick(obj: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o === null || o === undefined ? undefined : (o as Record<string, unknown>)[k]), obj);
}

describe('tiercache/status in a browser', function () {
  this.timeout(120_000);
  let redis: RedisServerHandle | undefined;
  let example: StartedExample | undefined;
  let browser: Browser | undefined;

  before(function () {
    if (!existsSync(CHROMIUM)) {
      console.log(`    skipped: no Chromium at ${CHROMIUM} (scripts/ensure-chromium.mjs installs the Debian package chromium as root; or set CHROMIUM_PATH)`);
      this.skip();
    }
  });

  after(async () => {
    await browser?.close();
    if (example) await stopExample(example.child);
    await redis?.stop();
  });

  it('draws the live chart, shows the numbers stats() has, loads nothing from another origin, and is saved as a PNG', async () => {
    redis = await startRedisServer();
    example = await startExample('example:express', redis.url);
    const base = example.base;
    const load = traffic(base);
    await sleep(1_500);

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 }, deviceScaleFactor: 1 });
    const requested: string[] = [];
    page.on('request', (r) => requested.push(r.url()));
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(String(err)));
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(msg.text());
    });
    await page.goto(`${base}/_tiercache`);
    // The chart has drawn requests of several seconds.
    // Page functions run in the page, serialized: each reaches the document itself (its CSP forbids evaluating strings).
    await page.waitForFunction(() => {
      const canvas = (globalThis as unknown as { document: PageDocument }).document.getElementById('chart');
      return Number(canvas.dataset['drawn']) >= 3 && Number(canvas.dataset['points']) >= 3;
    }, undefined, { timeout: 30_000 });
    const sent = await load.stop();
    const stoppedAt = Date.now();
    // A feed taken after the last request: the numbers hold still from now on.
    await page.waitForFunction((after) => Number((globalThis as unknown as { document: PageDocument }).document.body.dataset['feedAt']) > after + 300, stoppedAt, { timeout: 10_000 });

    const shown = await page.$$eval('[data-stat]', (els) => els.map((e) => [e.getAttribute('data-stat')!, e.getAttribute('data-value')!, e.textContent!] as const));
    const { stats } = (await (await fetch(`${base}/api/admin/stats`)).json()) as { stats: Record<string, unknown> };
    assert.ok(shown.length >= 20, `the page shows ${shown.length} numbers`);
    for (const [path, value, text] of shown) {
      const expected = pick(stats, path);
      assert.notEqual(expected, undefined, `stats() has no ${path}`);
      assert.equal(value, String(expected), `${path}: the page shows ${value}, stats() has ${String(expected)}`);
      if (typeof expected === 'number' && !/bytes/i.test(path)) assert.equal(text.replace(/,/g, ''), String(expected));
    }
    assert.equal(pick(stats, 'l2.state'), 'ok');
    assert.ok((pick(stats, 'l1.hits') as number) > 10 && (pick(stats, 'invalidations') as number) > 0 && (pick(stats, 'bus.sent') as number) > 0, JSON.stringify(stats));

    // The route table and the invalidations list are filled in, user ids hidden.
    const routes = await page.$$eval('#routes tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
    const movies = routes.find((r) => r[0] === '/api/movies');
    assert.ok(movies && Number(movies[1]) > 0 && /authorization \d+/.test(movies[5]!), JSON.stringify(routes));
    const invalidations = await page.$$eval('#invalidations tr', (rows) => rows.map((r) => r.textContent ?? ''));
    assert.ok(invalidations.length > 0 && invalidations.length <= 50);
    assert.ok(invalidations.some((t) => t.includes('user:…')), 'invalidateUser is listed with its id hidden');
    assert.ok(!invalidations.some((t) => t.includes('user:u1')));
    const ratio = await page.textContent('#ratio');
    assert.match(ratio ?? '', /^\d+\.\d %$/);

    const origin = new URL(base).origin;
    assert.ok(requested.length >= 3, 'the page and its feed polls');
    assert.deepEqual(requested.filter((url) => new URL(url).origin !== origin), [], 'requests outside its own origin');
    assert.deepEqual(errors, []);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(existsSync(SCREENSHOT));
    console.log(`    ${sent} requests of traffic; screenshot: ${SCREENSHOT}`);
  });
});
