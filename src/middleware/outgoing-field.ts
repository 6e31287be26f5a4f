// Reads of a response's outgoing header fields on a fill's path, by a name
// already in lower case. node's getHeader/hasHeader check the name's type and
// lower-case it on every call; a fill asks about twenty such questions, each
// of a literal lower-case name. While getHeader and hasHeader are node's own
// (not an HTTP/2 response's, nor a wrapper an app put on the response), the
// field is read where node keeps it, as node itself reads it.
import { IncomingMessage, OutgoingMessage, ServerResponse, type OutgoingHttpHeader, type OutgoingHttpHeaders } from 'node:http';
import { Http2ServerResponse } from 'node:http2';

type Fields = Record<string, [string, OutgoingHttpHeader] | undefined>;
type Slots = Record<symbol, Fields | null | undefined>;

/**
 * node's private slot for headers set with setHeader (null until the first
 * one), when it still keeps them as this module reads them: a field set on a
 * probe must read back by its lower-case name as [name, value]. Otherwise
 * (renamed, or kept another way by a later node) undefined, and every read
 * goes through getHeader/hasHeader: a wrong answer here (Vary missed) would
 * store a response under the wrong key.
 */
export const OUT_HEADERS = fieldSlotOf(new ServerResponse(new IncomingMessage(null as never)));
const nodeGetHeader = OutgoingMessage.prototype.getHeader;
const nodeHasHeader = OutgoingMessage.prototype.hasHeader;
const nodeSetHeader = OutgoingMessage.prototype.setHeader;
const nodeGetHeaders = OutgoingMessage.prototype.getHeaders;

/**
 * What outgoingFields copies into: an object with no property of its own until
 * given one and nothing inherited (no `constructor`, no `__proto__` accessor), as
 * getHeaders' copy. getHeaders makes `{ __proto__: null }`, a dictionary: about
 * 440 B for four fields, and adding two (the Date and ETag a fill stores) makes
 * its table again (+450 B, measured with node 20). This one keeps a shape V8 shares.
 */
const FieldCopy = function FieldCopy() {} as unknown as new () => OutgoingHttpHeaders;
(FieldCopy as unknown as { prototype: object }).prototype = Object.create(null) as object;

/** The slot `probe` keeps its fields in, if it keeps them as outgoingField reads them; `probe` is written to. */
export function fieldSlotOf(probe: ServerResponse): symbol | undefined {
  const slot = Object.getOwnPropertySymbols(probe).find((s) => s.description === 'kOutHeaders');
  if (slot === undefined) return undefined;
  probe.setHeader('X-Tiercache-Probe', ['a', 'b']);
  const pair = (probe as unknown as Slots)[slot]?.['x-tiercache-probe'];
  return Array.isArray(pair) && pair[0] === 'X-Tiercache-Probe' && pair[1] === probe.getHeader('x-tiercache-probe') ? slot : undefined;
}

/** res.getHeader(lower): `lower` must be in lower case. */
export function outgoingField(res: ServerResponse, lower: string): OutgoingHttpHeader | undefined {
  // Stryker disable next-line ConditionalExpression,LogicalOperator: a shortcut; getHeader gives the same answer
  if (OUT_HEADERS === undefined || res.getHeader !== nodeGetHeader) return res.getHeader(lower);
  const fields = (res as unknown as Slots)[OUT_HEADERS];
  if (fields === null) return undefined;
  // Stryker disable next-line ConditionalExpression: the same
  if (fields === undefined) return res.getHeader(lower);
  return fields[lower]?.[1];
}

/** res.hasHeader(lower): `lower` must be in lower case. */
export function hasOutgoingField(res: ServerResponse, lower: string): boolean {
  // Stryker disable next-line ConditionalExpression,LogicalOperator: a shortcut; hasHeader gives the same answer
  if (OUT_HEADERS === undefined || res.hasHeader !== nodeHasHeader) return res.hasHeader(lower);
  const fields = (res as unknown as Slots)[OUT_HEADERS];
  if (fields === null) return false;
  // Stryker disable next-line ConditionalExpression: the same
  if (fields === undefined) return res.hasHeader(lower);
  return fields[lower] !== undefined;
}

/** getHeaders(), without the field named `skip` (and `skipToo`). */
export function outgoingFields(res: ServerResponse, skip: string, skipToo: string | undefined): OutgoingHttpHeaders {
  const fields = OUT_HEADERS === undefined || res.getHeaders !== nodeGetHeaders ? undefined : (res as unknown as Slots)[OUT_HEADERS];
  if (fields === undefined) {
    const copy = res.getHeaders();
    delete copy[skip];
    if (skipToo !== undefined) delete copy[skipToo];
    return copy;
  }
  const copy = new FieldCopy();
  if (fields === null) return copy;
  for (const name in fields) {
    if (name !== skip && name !== skipToo) copy[name] = fields[name]![1];
  }
  return copy;
}

/**
 * res.setHeader(lower, value) for a value of the cache's own making, valid as
 * a field value (a Date, an ETag, a Cache-Status): written where node keeps
 * it, as node's setHeader does once it has checked the name and value (two
 * regexes, a lower-casing: about a third of what a Koa fill spends on the
 * three fields it adds). Through setHeader itself wherever it would do more:
 * one that is not node's (a wrapper must see the call), a head already built
 * (node throws), fields kept another way.
 */
export function setOutgoingField(res: ServerResponse, lower: string, value: string | string[]): void {
  const fields = OUT_HEADERS === undefined || res.setHeader !== nodeSetHeader || (res as unknown as { _header?: unknown })._header ? undefined : (res as unknown as Slots)[OUT_HEADERS];
  if (fields === undefined) res.setHeader(lower, value);
  else if (fields === null) (res as unknown as Slots)[OUT_HEADERS!] = { __proto__: null, [lower]: [lower, value] } as unknown as Fields;
  else fields[lower] = [lower, value];
}

/**
 * Whether trailer fields follow this answer's chunks (`res.addTrailers`, with or
 * without a Trailer field announcing them): a hit could not send them. node
 * sends them only after chunks, so an answer with a length drops them alike.
 * Over HTTP/2 (the compatibility API) they follow any body, framed or not.
 */
export function sendsTrailers(res: ServerResponse): boolean {
  const out = res as unknown as { chunkedEncoding?: unknown; _trailer?: unknown };
  if (out._trailer !== undefined) return out.chunkedEncoding === true && typeof out._trailer === 'string' && out._trailer !== '';
  return res instanceof Http2ServerResponse && http2Trailers(res);
}

/**
 * node's Http2ServerResponse keeps what addTrailers/setTrailer are given in a
 * null-prototype object under a private symbol, sent once the body is out.
 * Found by its name on the first response asked about (no probe: building one
 * needs a stream); if node renames it, an own object no other slot matches.
 */
let trailerSlot: symbol | undefined;

function http2Trailers(res: Http2ServerResponse): boolean {
  trailerSlot ??= Object.getOwnPropertySymbols(res).find((s) => s.description === 'trailers');
  const trailers = trailerSlot === undefined ? undefined : (res as unknown as Record<symbol, unknown>)[trailerSlot];
  if (typeof trailers !== 'object' || trailers === null) return false;
  for (const _ in trailers) return true;
  return false;
}
