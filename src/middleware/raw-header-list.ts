// The writeHead of an answer the cache passes through (a bypass, a HEAD miss)
// once our Cache-Status is set on it. node 20 merges a raw header list given
// to writeHead into fields set before with setHeader, one value at a time: the
// last line of a repeated field wins (two Set-Cookie lines a proxy forwards
// become one) and a list of pairs throws ERR_INVALID_ARG_VALUE. Where the app
// alone had set nothing (Koa, Express without X-Powered-By), node sent the list
// as given: it goes so here too, with ours after it (node 22 keeps every line
// either way).
import type { ServerResponse } from 'node:http';
import { CACHE_STATUS, saidBeforeApp } from './cache-status.js';
import { OUT_HEADERS, plainWriteHead } from './replay.js';

type WriteHead = ServerResponse['writeHead'];

/** Puts writeHeadAsAlone on `res` when ours is said and node's own writeHead is what the app would call. */
export function keepRawHeaderLists(res: ServerResponse): void {
  if (OUT_HEADERS === undefined || plainWriteHead === undefined || res.writeHead !== plainWriteHead || saidBeforeApp(res) === undefined) return;
  res.writeHead = writeHeadAsAlone as WriteHead;
}

function writeHeadAsAlone(this: ServerResponse, statusCode: number, reason?: unknown, headers?: unknown): ServerResponse {
  const given = typeof reason === 'string' ? headers : (headers ?? reason);
  const list = Array.isArray(given) && !this.headersSent ? (given as unknown[]) : undefined;
  const pairs = list !== undefined && list.length > 0 && Array.isArray(list[0]);
  const said = list !== undefined && (pairs || list.length % 2 === 0) ? oursAlone(this) : undefined;
  // Anything else goes as node takes it: an object, a list of odd length (node's own error), fields the app set too.
  if (said === undefined) return (plainWriteHead as (...a: unknown[]) => ServerResponse).apply(this, arguments as unknown as unknown[]);
  const withOurs = pairs ? [...list!, [CACHE_STATUS, said]] : [...list!, CACHE_STATUS, said];
  // As node holds a response with nothing set: the list is the head, as given.
  (this as unknown as Record<symbol, unknown>)[OUT_HEADERS!] = null;
  const write = plainWriteHead as (this: ServerResponse, ...a: unknown[]) => ServerResponse;
  return typeof reason === 'string' ? write.call(this, statusCode, reason, withOurs) : write.call(this, statusCode, withOurs);
}

/** Ours, when it is the only field set on `res` (as said: not changed since). */
function oursAlone(res: ServerResponse): string | undefined {
  const said = saidBeforeApp(res);
  if (said === undefined) return undefined;
  const names = res.getHeaderNames();
  return names.length === 1 && names[0] === CACHE_STATUS && res.getHeader(CACHE_STATUS) === said ? said : undefined;
}
