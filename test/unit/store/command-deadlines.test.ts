// CommandDeadlines: each command's wait is bounded from its own start, with one
// shared timer; answers before the deadline pass through, late ones are ignored.
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { CommandDeadlines } from '../../../src/store/command-deadlines.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const never = () => new Promise<never>(() => undefined);

describe('CommandDeadlines', () => {
  it('rejects a command that never answers once the timeout passed, measured from its own start', async () => {
    const deadlines = new CommandDeadlines(100);
    const start = performance.now();
    const first = deadlines.bound(never, undefined);
    await sleep(60);
    const secondStart = performance.now();
    const second = deadlines.bound(never, undefined);
    await assert.rejects(first, /timed out after 100 ms/);
    const firstMs = performance.now() - start;
    await assert.rejects(second, /timed out after 100 ms/);
    const secondMs = performance.now() - secondStart;
    assert.ok(firstMs >= 99 && firstMs < 160, `the first waited ${firstMs.toFixed(1)} ms`);
    assert.ok(secondMs >= 99 && secondMs < 160, `the second waited ${secondMs.toFixed(1)} ms`);
  });

  it('passes answers and errors through, and ignores an answer after the deadline', async () => {
    const deadlines = new CommandDeadlines(50);
    assert.equal(await deadlines.bound((c: string) => Promise.resolve(`${c}!`), 'ok'), 'ok!');
    await assert.rejects(deadlines.bound(() => Promise.reject(new Error('ERR no')), undefined), /ERR no/);
    let late!: (v: string) => void;
    const bounded = deadlines.bound(() => new Promise<string>((resolve) => (late = resolve)), undefined);
    await assert.rejects(bounded, /timed out/);
    late('too late');
    await sleep(5);
  });

  it('keeps a command answered in time from being rejected when the timer passes it', async () => {
    const deadlines = new CommandDeadlines(40);
    const answered = deadlines.bound(() => sleep(10).then(() => 'a'), undefined);
    const slow = deadlines.bound(never, undefined);
    assert.equal(await answered, 'a');
    await assert.rejects(slow, /timed out/);
    assert.equal(await answered, 'a');
  });

  it('bounds a command sent after its timer found every command before it answered', async () => {
    const deadlines = new CommandDeadlines(30);
    assert.equal(await deadlines.bound(() => Promise.resolve('a'), undefined), 'a');
    // Past the timeout, and past the judgment it leads to (setImmediate after the timer): nothing left to wait for.
    await sleep(60);
    await new Promise((resolve) => setImmediate(resolve));
    await assert.rejects(deadlines.bound(never, undefined), /timed out after 30 ms/);
  });

  it('counts the wait of every command from the end of the turn that sent it: a turn blocked past the timeout before its commands went out times none of them out', async () => {
    const deadlines = new CommandDeadlines(100);
    // As write-batching.ts sends them: at the end of the turn (setImmediate), answered there or a little later,
    // well within the timeout. The first answered at once: the timer's judgment then looks past it, at the second.
    const sentAtTurnEnd = (answer: string, later: boolean) => () =>
      new Promise<string>((resolve) => setImmediate(() => (later ? setTimeout(resolve, 5, answer) : resolve(answer))));
    // Two turns one after the other, two commands each: every command of a turn is judged from that turn's end.
    for (const turn of ['first', 'second']) {
      const both = [deadlines.bound(sentAtTurnEnd(`${turn} a`, false), undefined), deadlines.bound(sentAtTurnEnd(`${turn} b`, true), undefined)];
      const until = performance.now() + 300;
      while (performance.now() < until) {
        // blocked: this process's own work, past the timeout, before the turn ends
      }
      assert.deepEqual(await Promise.all(both), [`${turn} a`, `${turn} b`], `the ${turn} turn's commands`);
    }
  });

  it('takes a reply that reached the socket in time while the event loop was blocked past the deadline: the process was late, not the server', async () => {
    // A loopback server that answers at once, then blocks this whole process three timeouts long: the reply waits
    // in the kernel, and the loop's next turn runs the deadline's timer before it reads the socket.
    const server = createServer((socket) => {
      socket.on('data', () => {
        socket.write('pong');
        const until = performance.now() + 300;
        while (performance.now() < until) {
          // blocked
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    try {
      await new Promise((resolve) => client.once('connect', resolve));
      const deadlines = new CommandDeadlines(100);
      const ask = (socket: Socket) =>
        new Promise<string>((resolve) => {
          socket.once('data', (d: Buffer) => resolve(d.toString()));
          socket.write('ping');
        });
      assert.equal(await deadlines.bound(ask, client), 'pong');
      // Nothing answered meanwhile: still timed out, at the first look after the deadline.
      await assert.rejects(deadlines.bound(never, client), /timed out after 100 ms/);
    } finally {
      client.destroy();
      server.close();
    }
  });
});
