// A load generator that counts instead of timing: sends exactly N GETs of
// one path over C keep-alive connections (each waits for its answer before
// the next, as wrk does), checks every answer is a 200 with a body, and exits.
// For counting a server's instructions per request (bench/front-instructions.sh):
// the client runs outside the measured process.
//   node bench/http/keepalive-client.mjs <port> <requests> [connections=16] [path=/api/catalog]
import { connect } from 'node:net';

const [port, total, conns = '16', path = '/api/catalog'] = process.argv.slice(2);
const request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n`, 'latin1');
let left = Number(total);

/** Resolves once this connection has no request left to send and its last answer is in. */
function run() {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    socket.setNoDelay(true);
    let buffered = Buffer.alloc(0);
    const next = () => {
      if (left <= 0) {
        socket.end();
        resolve();
        return;
      }
      left--;
      socket.write(request);
    };
    socket.on('connect', next);
    socket.on('data', (chunk) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buffered.subarray(0, end).toString('latin1');
        if (!head.startsWith('HTTP/1.1 200 ')) return reject(new Error(`not a 200: ${head.slice(0, 60)}`));
        const m = /\r\ncontent-length: *(\d+)/i.exec(head);
        if (m === null) return reject(new Error(`no content-length: ${head}`));
        const size = end + 4 + Number(m[1]);
        if (buffered.length < size) return;
        buffered = buffered.subarray(size);
        next();
      }
    });
    socket.on('error', reject);
  });
}

await Promise.all(Array.from({ length: Number(conns) }, run));
