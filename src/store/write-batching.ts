// Commands that concurrent requests send in one turn of the event loop leave
// in one write: the first command sent while the connection is ready corks its
// socket, and the socket is uncorked once the turn's I/O callbacks have run
// (setImmediate), so every command queued meanwhile goes out in one writev.
//
// Why not ioredis's enableAutoPipelining, which batches the same way: it keeps
// one batch in flight per connection, the next waiting until every reply of
// the last has come, so an instance under load idles while Redis works
// through a batch (a Koa L2 miss ran at 85% of its core), and each batch
// builds a Pipeline with a promise and a callback per command. Corked writes
// keep ioredis's plain path: each command is written and queued for its reply
// at once, and batches overlap; a command's deadline runs from the end of the
// turn that wrote it (command-deadlines.ts).
//
// A command that carries a Buffer (a fill's store step) is also encoded in
// fewer pieces than ioredis would (command-bytes.ts says why).
import type { Redis } from 'ioredis';
import { packedWritable } from './command-bytes.js';

type Send = Redis['sendCommand'];

/** Makes `client`'s commands of one event-loop turn share one write to its socket, and its Buffer-carrying commands cheaper to encode. */
export function batchWrites(client: Redis): void {
  const send: Send = client.sendCommand;
  let corked: NodeJS.WritableStream & { uncork(): void } | undefined;
  const flush = () => {
    const stream = corked;
    corked = undefined;
    // The socket of a connection since lost: uncorked all the same (node drops what a destroyed socket holds).
    stream?.uncork();
  };
  client.sendCommand = function (this: Redis, command, stream) {
    const socket = (this as unknown as { stream?: (NodeJS.WritableStream & { cork(): void; uncork(): void; writable: boolean }) }).stream;
    // Only a ready connection's: the handshake's commands and those of a reconnect go as ioredis sends them.
    if (corked === undefined && stream === undefined && socket !== undefined && socket.writable && this.status === 'ready') {
      socket.cork();
      corked = socket;
      setImmediate(flush);
    }
    // ioredis marks a command with a Buffer argument (its own field: a client of another version leaves it unset).
    if ((command as unknown as { bufferMode?: boolean }).bufferMode === true) command.toWritable = packedWritable;
    return send.call(this, command, stream);
  } as Send;
}
