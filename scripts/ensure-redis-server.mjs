#!/usr/bin/env node
// Makes sure a `redis-server` binary is available before the test suite runs.
// CI runs on a fresh Debian machine as root, so there we install the Debian
// package; anywhere else we say, in one line, how to get it.
import { execFileSync, spawnSync } from 'node:child_process';

function findRedisServer() {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function hasAptGet() {
  return spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
}

const found = findRedisServer();
if (found) process.exit(0);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (!isRoot || !hasAptGet()) {
  console.error(
    'redis-server not found on PATH: install it (Debian/Ubuntu: `sudo apt-get install redis-server`, macOS: `brew install redis`) and run npm test again.',
  );
  process.exit(1);
}

console.log('redis-server not found on PATH: installing the Debian package redis-server with apt-get ...');
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
try {
  execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'], env });
  // --no-install-recommends keeps the install small; the package's service is
  // stopped below because tests start their own throwaway servers.
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'redis-server'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env,
  });
} catch (err) {
  console.error(`redis-server could not be installed with apt-get (${err.message.split('\n')[0]}); install the Debian package redis-server and run npm test again.`);
  process.exit(1);
}
// The Debian package may have started a system service on 6379; we never use it.
spawnSync('service', ['redis-server', 'stop'], { stdio: 'ignore' });
const installed = findRedisServer();
if (!installed) {
  console.error('redis-server was installed but is still not on PATH; add /usr/bin to PATH and run npm test again.');
  process.exit(1);
}
console.log(`installed ${installed}`);
