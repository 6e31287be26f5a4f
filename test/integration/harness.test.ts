// Proves the test harness itself: throwaway redis-server processes start,
// answer, restart on the same port, freeze and really go away; a 3-master
// cluster forms and serves through the ioredis Cluster client; the TCP proxy
// keeps bytes in order when its delay changes and holds nothing up after
// close().
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createConnection, createServer, type Socket } from 'node:net';
import { Cluster, Redis } from 'ioredis';
import { startRedisCluster, type RedisClusterHandle } from '../support/redis-cluster.js';
import { freePort, PORT_LOCKS, startRedisServer, type RedisServerHandle } from '../support/redis-server.js';
import { startTcpProxy } from '../support/tcp-proxy.js';

/** True when /proc says the process is gone or a zombie (`kill -0` lies while PID 1 is slow to reap). */
function processGone(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return true;
  try {
    // Format: "PID (comm) STATE ...": comm may contain spaces, so read after the last ')'.
    const text = readFileSync(stat, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** A client that reconnects quickly and fails fast, so tests don't wait on backoff. */
function connect(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 50, lazyConnect: true });
}

describe('test harness: redis-server', () => {
  let server: RedisServerHandle;
  const clients: Redis[] = [];

  beforeEach(async () => {
    server = await startRedisServer();
  });

  afterEach(async () => {
    clients.splice(0).forEach((c) => c.disconnect());
    await server.stop();
  });

  function client(): Redis {
    const c = connect(server.url);
    clients.push(c);
    return c;
  }

  it('starts a server on 127.0.0.1 in 20000-29999 that round-trips SET/GET', async () => {
    assert.equal(server.host, '127.0.0.1');
    assert.ok(server.port >= 20000 && server.port <= 29999, `port ${server.port}`);
    assert.equal(server.url, `redis://127.0.0.1:${server.port}`);
    assert.ok(server.pid > 0);
    const redis = client();
    await redis.connect();
    assert.equal(await redis.set('harness:k', 'v1'), 'OK');
    assert.equal(await redis.get('harness:k'), 'v1');
  });

  it('restarts on the same port with a new process and empty data', async () => {
    const redis = client();
    await redis.connect();
    await redis.set('harness:k', 'before');
    const { port, pid } = server;

    await server.restart();

    assert.equal(server.port, port);
    assert.notEqual(server.pid, pid);
    assert.ok(processGone(pid), `old PID ${pid} still alive after restart()`);
    // The same client reconnects by itself; nothing was persisted.
    assert.equal(await redis.get('harness:k'), null);
    await redis.set('harness:k', 'after');
    assert.equal(await redis.get('harness:k'), 'after');
  });

  it('restart() also brings back a server that was already killed', async () => {
    server.kill('SIGKILL');
    await server.exited();
    assert.equal(server.running, false);
    await server.restart();
    assert.equal(server.running, true);
    const redis = client();
    await redis.connect();
    assert.equal(await redis.ping(), 'PONG');
  });

  // mocha --parallel workers draw ports from the same range: a port a test left free to play an outage
  // (and will restart() on) must not go to another process's server, which would answer in its place.
  it('a killed server keeps its port reserved across processes until stop()', async () => {
    const lock = join(PORT_LOCKS, String(server.port));
    assert.equal(readFileSync(lock, 'utf8'), String(process.pid), 'no reservation for a running server');
    server.kill('SIGKILL');
    await server.exited();
    assert.equal(readFileSync(lock, 'utf8'), String(process.pid), 'the port of a killed server was given back');
    await server.stop();
    assert.equal(existsSync(lock), false, 'stop() kept the port reserved');
  });

  it('freeze() stops answering until thaw()', async () => {
    const redis = client();
    await redis.connect();
    server.freeze();
    let answered = false;
    const pending = redis.ping().then((r) => {
      answered = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(answered, false, 'a frozen server answered PING');
    server.thaw();
    assert.equal(await pending, 'PONG');
  });

  it('stop() leaves no process behind', async () => {
    const { pid } = server;
    assert.equal(processGone(pid), false);
    await server.stop();
    assert.ok(processGone(pid), `PID ${pid} still alive after stop()`);
    assert.equal(server.running, false);
    await server.stop(); // idempotent
  });

  it('freePort() returns a loopback port that refuses connections', async () => {
    const port = await freePort();
    const refused = await new Promise<string>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    assert.equal(refused, 'ECONNREFUSED');
  });

  it("freePort() keeps its port reserved across processes (no other test process's server or listen(0) can take it)", async () => {
    const port = await freePort();
    // Outside the kernel's ephemeral range, which listen(0) draws from.
    assert.ok(port >= 20000 && port <= 29999, `port ${port}`);
    assert.equal(readFileSync(join(PORT_LOCKS, String(port)), 'utf8'), String(process.pid), 'no reservation for the port');
  });
});

describe('test harness: redis-server start failures', () => {
  it("fails with the server's own reason when a fixed port is taken", async () => {
    const first = await startRedisServer();
    try {
      // A fixed port is not retried elsewhere, so the error must carry the server's log.
      await assert.rejects(startRedisServer({ port: first.port }), /Address already in use/);
    } finally {
      await first.stop();
    }
    assert.ok(processGone(first.pid));
  });

  it('reports a missing binary clearly', async () => {
    await assert.rejects(startRedisServer({ bin: 'redis-server-does-not-exist' }), /could not run redis-server-does-not-exist/);
  });
});

describe('test harness: redis cluster', function () {
  this.timeout(30_000);
  let cluster: RedisClusterHandle | undefined;
  let client: Cluster | undefined;

  after(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  it('starts 3 masters that serve SET/GET through the ioredis Cluster client', async () => {
    cluster = await startRedisCluster({ masters: 3 });
    assert.equal(cluster.nodes.length, 3);
    client = new Cluster(cluster.nodes, { clusterRetryStrategy: () => 50 });
    // Keys that hash to different slots, so more than one master is used.
    const keys = Array.from({ length: 30 }, (_, i) => `harness:cluster:${i}`);
    await Promise.all(keys.map((k) => client!.set(k, `v-${k}`)));
    assert.deepEqual(await Promise.all(keys.map((k) => client!.get(k))), keys.map((k) => `v-${k}`));
    const masters = client.nodes('master');
    assert.equal(masters.length, 3);
    const perMaster = await Promise.all(masters.map((m) => m.dbsize()));
    assert.ok(perMaster.filter((n) => n > 0).length >= 2, `keys landed on one master only: ${perMaster.join(',')}`);

    // A node's bus listens on its port + 10000: below the kernel's ephemeral range, where a listen(0) of another
    // process could hold it when a test restarts the node.
    for (const { port } of cluster.nodes) assert.ok(port + 10000 < 32768, `bus port ${port + 10000}`);
    const pids = cluster.servers.map((s) => s.pid);
    client.disconnect();
    client = undefined;
    await cluster.stop();
    cluster = undefined;
    for (const pid of pids) assert.ok(processGone(pid), `cluster node PID ${pid} still alive after stop()`);
  });
});

describe('test harness: TCP proxy', () => {
  it('a chunk sent after setDelay() lowered the delay never overtakes one held from before (20 rounds)', async () => {
    let received = '';
    const sockets: Socket[] = [];
    const target = createServer((socket) => {
      sockets.push(socket);
      socket.on('data', (d: Buffer) => (received += d.toString()));
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', () => resolve()));
    const proxy = await startTcpProxy((target.address() as { port: number }).port, '127.0.0.1', 30);
    const client = createConnection({ host: '127.0.0.1', port: proxy.port, noDelay: true });
    const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
    try {
      await new Promise<void>((resolve) => client.once('connect', () => resolve()));
      let sent = '';
      for (let i = 0; i < 20; i++) {
        proxy.setDelay(30);
        client.write(`a${i};`);
        sent += `a${i};`;
        await sleep(10);
        // Lowered while a${i} is held: b${i} is due no sooner than a${i}, and must come after it.
        proxy.setDelay(0);
        client.write(`b${i};`);
        sent += `b${i};`;
        await sleep(40);
      }
      assert.equal(received, sent);
    } finally {
      client.destroy();
      await proxy.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => target.close(() => resolve()));
    }
  });

  it('close() leaves nothing pending with chunks still held (setDelay(1e9)): a process that closed everything ends by itself', async function () {
    this.timeout(30_000);
    // In a process of its own: what keeps one alive is what mocha without --exit waited on forever.
    const proxyModule = pathToFileURL(fileURLToPath(new URL('../support/tcp-proxy.ts', import.meta.url))).href;
    const script = `
      import { createConnection, createServer } from 'node:net';
      import { startTcpProxy } from ${JSON.stringify(proxyModule)};
      const target = createServer(() => undefined);
      await new Promise((resolve) => target.listen(0, '127.0.0.1', resolve));
      const proxy = await startTcpProxy(target.address().port, '127.0.0.1', 0, true);
      const client = createConnection({ host: '127.0.0.1', port: proxy.port });
      await new Promise((resolve) => client.once('connect', resolve));
      proxy.setDelay(1e9);
      client.write('held');
      while (proxy.turns === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      client.destroy();
      await proxy.close();
      await new Promise((resolve) => target.close(resolve));
      console.log('closed');
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const ended = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    // Generous: the child starts tsx and then has nothing left to wait for.
    const still = await Promise.race([ended.then(() => false), new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 20_000).unref())]);
    if (still) {
      child.kill();
      await ended;
    }
    assert.match(out, /closed/, `the script did not get through: ${out}`);
    assert.equal(still, false, 'the process was still alive 20 s after closing everything: the proxy left something pending');
    assert.equal(child.exitCode, 0, out);
  });
});
