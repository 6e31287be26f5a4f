// Answers a request from a stored response: prebuilt headers, one writeHead,
// one end(buffer). Conditional requests get a 304 with the headers RFC 9110
// asks for and no body; HEAD gets the headers only.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { conditionsOf, isNotModified } from './conditional.js';
import type { PreparedResponse } from './http-entry.js';

export function replay(req: IncomingMessage, res: ServerResponse, response: PreparedResponse, createdAt: number, now: number, cacheStatus: string | undefined): void {
  if (cacheStatus !== undefined) res.setHeader('cache-status', cacheStatus);
  res.setHeader('age', now > createdAt ? Math.floor((now - createdAt) / 1000) : 0);
  if (response.status === 200 && (req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined)) {
    const conditions = conditionsOf(req.headers);
    if (conditions !== undefined && isNotModified(conditions, response.etag, response.lastModified)) {
      res.writeHead(304, response.notModifiedHeaders);
      res.end();
      return;
    }
  }
  res.writeHead(response.status, response.headers);
  if (req.method === 'HEAD') res.end();
  else res.end(response.body);
}
