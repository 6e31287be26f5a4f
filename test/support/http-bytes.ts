// Response bodies as the bytes that came over the wire: superagent decodes
// text and inflates gzip on its own, which hides what the cache stored and
// replayed. Shared by the middleware tests that check bodies byte for byte.
import type { IncomingMessage } from 'node:http';
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
