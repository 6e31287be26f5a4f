#!/usr/bin/env node
// Makes sure a Chromium is available for the status page's browser test
// (test/integration/observe/status-page.browser.test.ts). CI runs on a fresh
// Debian machine as root, so there we install the Debian package `chromium`,
// the way ensure-redis-server.mjs installs redis-server. Never fails the run:
// where it cannot be installed, that one test skips, and this says so in one line.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

if (existsSync(CHROMIUM)) process.exit(0);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasAptGet = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
if (!isRoot || !hasAptGet) {
  console.log(`chromium not found at ${CHROMIUM} and not installable here (needs root and apt-get): the status page's browser test will skip (Debian/Ubuntu: \`sudo apt-get install chromium\`, or set CHROMIUM_PATH).`);
  process.exit(0);
}

console.log('chromium not found: installing the Debian package chromium with apt-get (for the status page browser test) ...');
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
try {
  execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'], env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'chromium'], { stdio: ['ignore', 'ignore', 'inherit'], env });
} catch (err) {
  console.log(`chromium could not be installed with apt-get (${String(err.message).split('\n')[0]}): the status page's browser test will skip.`);
  process.exit(0);
}
console.log(existsSync(CHROMIUM) ? `installed ${CHROMIUM}` : `chromium was installed but ${CHROMIUM} is missing: the status page's browser test will skip (set CHROMIUM_PATH).`);
