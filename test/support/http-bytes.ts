// Response bodies as the bytes that came over the wire: superagent decodes
// text and inflates gzip on its own, which hides what the cache stored and
// replayed. Shared by the middleware tests that check bodies byte for byte.
import type { IncomingMessage, Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import request from 'supertest';

/** The first two bytes of every gzip stream. */
export const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

/** supertest parser that keeps the raw bytes, whatever the content type (superagent types `res` loosely; it is node's stream). */
export function binaryParser(response: object, callback: (err: Error | null, body: Buffer) => void): void {
  const res = response as IncomingMessage;
  const chunks: Buffer[] = [];
  res.on('data', (chunk: Buffer) => chunks.push(chunk));
  res.on('end', () => callback(null, Buffer.concat(chunks)));
  res.on('error', (err) => callback(err, Buffer.concat(chunks)));
}

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | undefined>;
  readonly bytes: Buffer;
}

/**
 * GET `path` with exactly this Accept-Encoding and the body bytes as they
 * came over the wire: superagent's own inflating of gzip bodies is switched
 * off for this request. `target` is what supertest takes (a server or a base URL).
 */
export async function fetchRaw(target: Parameters<typeof request>[0], path: string, acceptEncoding: string): Promise<RawResponse> {
  const test = request(target).get(path).set('Accept-Encoding', acceptEncoding).buffer(true).parse(binaryParser);
  (test as unknown as { _shouldDecompress: () => boolean })._shouldDecompress = () => false;
  const res = await test;
  return { status: res.status, headers: res.headers as Record<string, string | undefined>, bytes: res.body as Buffer };
}

/**
 * Sends `GET <target>` over a raw socket, exactly as written: no client
 * library re-encodes or cuts the target (a raw '#' reaches the server, as an
 * attacker would send it). `Connection: close`; the answer is read to the end.
 */
export async function rawGet(server: Server, target: string, headers: Readonly<Record<string, string>> = {}): Promise<RawResponse> {
  const { port } = server.address() as AddressInfo;
  const lines = [`GET ${target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  const bytes = await new Promise<Buffer>((resolve, reject) => {
    // write, not end: a client that half-closes makes node abort a request still being answered.
    const socket = connect(port, '127.0.0.1', () => socket.write(lines.join('\r\n') + '\r\n\r\n'));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
  });
  const split = bytes.indexOf('\r\n\r\n');
  const [statusLine, ...fields] = bytes.subarray(0, split).toString('latin1').split('\r\n');
  const parsed: Record<string, string | undefined> = {};
  for (const field of fields) {
    const colon = field.indexOf(':');
    parsed[field.slice(0, colon).trim().toLowerCase()] = field.slice(colon + 1).trim();
  }
  let body = bytes.subarray(split + 4);
  if (parsed['transfer-encoding'] === 'chunked') body = unchunk(body);
  return { status: Number(statusLine!.split(' ')[1]), headers: parsed, bytes: body };
}

/** Decodes a chunked body (RFC 9112 §7.1), without trailers. */
function unchunk(data: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = data.indexOf('\r\n', at);
    const size = parseInt(data.subarray(at, eol).toString('latin1'), 16);
    if (!(size > 0)) return Buffer.concat(out);
    out.push(data.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}
