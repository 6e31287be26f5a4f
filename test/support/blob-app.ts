// Large bodies over HTTP, byte for byte: an app that sends one prebuilt body
// behind the cache, and supertest's parser that keeps what came as bytes.
import express from 'express';
import type { TierCache } from '../../src/index.js';
import { expressCache, type ExpressCacheOptions } from '../../src/express.js';

/** An Express app whose GET /api/blob sends `body` (application/octet-stream) behind expressCache(cache, options). */
export function blobApp(cache: TierCache, body: Buffer, options?: ExpressCacheOptions): express.Express {
  return express()
    .use(expressCache(cache, options))
    .get('/api/blob', (_req, res) => void res.type('application/octet-stream').send(body));
}

/** supertest's parser for a binary body: `.buffer(true).parse(collectBytes)` gives the bytes as sent. */
export function collectBytes(res: unknown, done: (err: Error | null, body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  const stream = res as NodeJS.ReadableStream;
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('end', () => done(null, Buffer.concat(chunks)));
}
