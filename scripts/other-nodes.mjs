// The other node lines npm test checks (scripts/test-suite.mjs): tiercache reads
// node's internals (the head node builds and when, writeHead/_storeHeader hooks,
// the form a head takes for node, HTTP/2's compatibility API) and V8's (hidden
// classes, heap sizes), and those change between node versions: node 24 called
// writeHead twice where 20 called it once, kept Express's objects fast where 20
// made them dictionaries, and made a Buffer view 8 bytes bigger. The suite runs
// on the machine's node; the files that depend on those internals run again on
// each current LTS line here, from the npm registry's node-<os>-<cpu> packages
// (`npm pack`, then untarred), kept under .node-versions/ (gitignored).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The LTS lines users run; one the machine's node is already on is not run twice. */
export const LINES = [22, 24];

/**
 * Files whose outcome depends on node's or V8's internals: bytes and late errors compared with the app
 * alone's, heads built through hooks, the node form of a head, HTTP/2, V8's object modes and heap sizes.
 */
export const NODE_INTERNALS = [
  'test/integration/middleware/writehead-hook-further-in.test.ts',
  'test/integration/middleware/late-writehead.test.ts',
  'test/integration/middleware/writehead-no-reason.test.ts',
  'test/integration/middleware/handler-writes.test.ts',
  'test/integration/middleware/reason-phrase.test.ts',
  'test/integration/middleware/head-refused-at-end.test.ts',
  'test/integration/middleware/head-changed-after-capture.test.ts',
  'test/integration/middleware/head-flushed-in-front.test.ts',
  'test/integration/middleware/header-value-bytes.test.ts',
  'test/integration/middleware/replay.test.ts',
  'test/integration/middleware/koa-hit-after-upstream.test.ts',
  'test/integration/middleware/filling-304-own-head.test.ts',
  'test/integration/middleware/fill-end-bytes.test.ts',
  'test/integration/middleware/te-chunked.test.ts',
  'test/integration/middleware/http2.test.ts',
  'test/integration/middleware/http2-large-hits.test.ts',
  'test/integration/middleware/http2-peer-reset.test.ts',
  'test/integration/middleware/http2-store-before-end.test.ts',
  'test/integration/middleware/http2-trailer-hold.test.ts',
  'test/integration/node-form-bytes.test.ts',
  'test/integration/front-door-head-form.test.ts',
  'test/integration/front-door-prototype-writehead.test.ts',
  'test/unit/middleware/capture-head.test.ts',
  'test/unit/middleware/outgoing-field.test.ts',
  'test/unit/middleware/outgoing-field-set.test.ts',
  'test/unit/middleware/replay.test.ts',
  'test/unit/middleware/slot-ready.test.ts',
  'test/unit/store/packed-entry.test.ts',
  'test/unit/middleware/entry-heap-cost.test.ts',
];

/** The registry's package of node's binary for this machine (the `node` package's own naming). */
function packageName(line) {
  const os = process.platform === 'win32' ? 'win' : process.platform;
  return `node-${os}-${process.arch}@${line}`;
}

/** The version a binary says it is, or undefined when it does not run. */
function versionOf(bin) {
  const r = spawnSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** The npm that runs this (npm test), else the one on PATH. */
function npm(args, options) {
  const cli = process.env.npm_execpath;
  return cli && cli.endsWith('.js') ? execFileSync(process.execPath, [cli, ...args], options) : execFileSync('npm', args, options);
}

/**
 * The node binary of `line`, fetched into .node-versions/<line>/ the first time: `{ bin, version }`, or
 * `{ failure }`, one line saying what could not be had and why.
 */
export function fetchNode(line) {
  const dir = join(root, '.node-versions', String(line));
  const bin = join(dir, 'package', 'bin', process.platform === 'win32' ? 'node.exe' : 'node');
  const cached = existsSync(bin) ? versionOf(bin) : undefined;
  if (cached?.startsWith(`${line}.`)) return { bin, version: cached };
  const name = packageName(line);
  const failure = (why) => ({ failure: `node ${line}: could not fetch ${name} from the npm registry (${why}), so the node-internals files cannot run on it: npm test fails` });
  mkdirSync(dir, { recursive: true });
  const scratch = mkdtempSync(join(dir, 'fetch-'));
  try {
    // --json: npm's answer, a tarball or an error, on stdout whether or not it failed.
    let said;
    try {
      said = npm(['pack', name, '--pack-destination', scratch, '--json', '--loglevel=error'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
    } catch (err) {
      said = err.stdout || JSON.stringify({ error: { summary: String(err.message).split('\n')[0] } });
    }
    let answer;
    try {
      answer = JSON.parse(said);
    } catch {
      return failure(`npm pack said ${JSON.stringify(String(said).trim().slice(0, 200))}`);
    }
    if (!Array.isArray(answer)) return failure(`npm pack: ${answer?.error?.summary ?? answer?.error?.code ?? 'failed'}`);
    const tarball = answer[0]?.filename;
    if (typeof tarball !== 'string' || !existsSync(join(scratch, tarball))) return failure(`npm pack named no tarball it made (${tarball})`);
    try {
      execFileSync('tar', ['-xzf', join(scratch, tarball), '-C', scratch], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
    } catch (err) {
      return failure(`tar: ${String(err.stderr || err.message).trim().split('\n')[0]}`);
    }
    rmSync(join(dir, 'package'), { recursive: true, force: true });
    renameSync(join(scratch, 'package'), join(dir, 'package'));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const version = existsSync(bin) ? versionOf(bin) : undefined;
  if (!version?.startsWith(`${line}.`)) return failure(`the binary it holds ${version === undefined ? 'does not run here' : `is node ${version}`}`);
  return { bin, version };
}
