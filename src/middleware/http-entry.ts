// HTTP responses as store entries. `head` holds JSON with the status and the
// stored headers, or, for a response that varied on request headers, a
// manifest naming those headers (the variants live under their own keys).
// An L1 entry keeps a PreparedResponse: headers already flattened for one
// writeHead() call, so a hit parses nothing. L1 holds thousands of them, so
// each is kept small (arrays of exact length, the 304 headers built on
// first use) and says what it costs, for L1's byte bound.
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { EntryKind, type FillStamp, type StoredEntry } from '../store/entry.js';

interface StoredHead {
  /** Status of a stored response. */
  s?: number;
  /** Stored headers, lower-case names, in order. */
  h?: Array<[string, string]>;
  /** Manifest: request headers the response varies on. */
  m?: string[];
  /** Public: filled without credentials on a route keyed by the table alone; the front door may serve it. */
  p?: 1;
}

/** Headers sent with a 304 when the 200 would carry them (RFC 9110 §15.4.5). */
const NOT_MODIFIED_HEADERS = new Set(['cache-control', 'content-location', 'etag', 'expires', 'vary']);

// Heap sizes (64-bit V8, no pointer compression), for heapBytes.
/** The PreparedResponse object and its headers array's own words. */
const PREPARED_BYTES = 136;
/** The VaryManifest object and its array's own words. */
const MANIFEST_BYTES = 88;
const SLOT = 8;
const BOXED_NUMBER_BYTES = 16;

/** Heap of a header value: node keeps only Latin-1 in headers, one byte a character. */
function headerStringBytes(s: string): number {
  return (16 + s.length + 7) & ~7;
}

export class PreparedResponse {
  /** Flat [name, value, ...] for writeHead, content-length included. */
  readonly headers: string[];
  readonly etag: string | undefined;
  /** Last-Modified in ms since the epoch, for If-Modified-Since. */
  readonly lastModified: number | undefined;
  /**
   * Heap this object holds beyond the body: itself, its array and the
   * values (names are interned by node's header objects, shared by all).
   */
  readonly heapBytes: number;
  private notModified: string[] | undefined;

  constructor(
    readonly status: number,
    stored: ReadonlyArray<readonly [string, string]>,
    readonly body: Buffer,
    /** May be served by the front door (see StoredHead.p). */
    readonly isPublic: boolean,
  ) {
    const withLength = status !== 204 && status !== 304;
    const headers: string[] = new Array(2 * stored.length + (withLength ? 2 : 0));
    let size = PREPARED_BYTES + SLOT * headers.length;
    let etag: string | undefined;
    let lastModified: number | undefined;
    let i = 0;
    for (const [name, value] of stored) {
      headers[i++] = name;
      headers[i++] = value;
      size += headerStringBytes(value);
      if (name === 'etag') etag = value;
      else if (name === 'last-modified') {
        const t = Date.parse(value);
        if (!Number.isNaN(t)) {
          lastModified = t;
          size += BOXED_NUMBER_BYTES;
        }
      }
    }
    if (withLength) {
      const length = String(body.length);
      headers[i++] = 'content-length';
      headers[i++] = length;
      size += headerStringBytes(length);
    }
    this.headers = headers;
    this.etag = etag;
    this.lastModified = lastModified;
    this.heapBytes = size;
    this.notModified = undefined;
  }

  /** Flat headers of a 304 answer (built on the first one: most entries never send one). */
  get notModifiedHeaders(): string[] {
    if (this.notModified === undefined) {
      const notModified: string[] = [];
      for (let i = 0; i < this.headers.length; i += 2) {
        if (NOT_MODIFIED_HEADERS.has(this.headers[i]!)) notModified.push(this.headers[i]!, this.headers[i + 1]!);
      }
      this.notModified = notModified;
    }
    return this.notModified;
  }
}

/** What an HTTP entry decodes to: a response, or a manifest of the request headers it varies on. */
export type HttpEntryValue = PreparedResponse | VaryManifest;

export class VaryManifest {
  /** Heap this object holds: itself, its array and the names. */
  readonly heapBytes: number;

  constructor(
    readonly headers: readonly string[],
    readonly isPublic: boolean,
  ) {
    let size = MANIFEST_BYTES + SLOT * headers.length;
    for (const name of headers) size += headerStringBytes(name);
    this.heapBytes = size;
  }
}

/** Decodes (once, cached on the entry) the HTTP value of an entry; undefined if it is not one. */
export function httpValueOf(entry: StoredEntry): HttpEntryValue | undefined {
  if (entry.decoded instanceof PreparedResponse || entry.decoded instanceof VaryManifest) return entry.decoded;
  if (entry.kind !== EntryKind.Http) return undefined;
  let head: StoredHead;
  try {
    head = JSON.parse(entry.head.toString('utf8')) as StoredHead;
  } catch {
    return undefined;
  }
  let value: HttpEntryValue | undefined;
  const isPublic = head.p === 1;
  if (Array.isArray(head.m) && head.m.every((h) => typeof h === 'string')) value = new VaryManifest(head.m, isPublic);
  else if (Number.isInteger(head.s) && head.s! >= 200 && head.s! <= 599 && Array.isArray(head.h) && head.h.every(isWritableHeader)) {
    value = new PreparedResponse(head.s!, head.h, entry.body, isPublic);
  }
  if (value !== undefined) entry.decoded = value;
  return value;
}

/** Whether node would write this header: foreign or damaged entries must be a miss, never a 500. */
function isWritableHeader(pair: unknown): pair is [string, string] {
  if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') return false;
  try {
    validateHeaderName(pair[0]);
    validateHeaderValue(pair[0], pair[1]);
    return true;
  } catch {
    return false;
  }
}

const EMPTY = Buffer.alloc(0);

interface Lifetimes {
  readonly createdAt: number;
  readonly freshUntil: number;
  readonly staleUntil: number;
}

/** An entry for both tiers: L2 gets the head bytes, L1 the decoded form instead. */
export interface TieredEntry {
  readonly entry: StoredEntry;
  readonly l1Entry: StoredEntry;
}

/**
 * Both tiers' entries for a decoded value, built whole (a property added
 * later moves an object's fields out of line) with tag and version arrays
 * of exact length: L1 keeps them for as long as the entry lives.
 */
function tieredEntry(stamp: FillStamp, life: Lifetimes, stored: StoredHead, body: Buffer, decoded: HttpEntryValue): TieredEntry {
  const { createdAt, freshUntil, staleUntil } = life;
  const { epoch } = stamp;
  const tags = stamp.tags.slice();
  const versions = stamp.versions.slice();
  const head = Buffer.from(JSON.stringify(stored), 'utf8');
  return {
    entry: { kind: EntryKind.Http, createdAt, freshUntil, staleUntil, epoch, tags, versions, head, body, decoded },
    l1Entry: { kind: EntryKind.Http, createdAt, freshUntil, staleUntil, epoch, tags, versions, head: EMPTY, body, decoded },
  };
}

/** A response; `body` should own its bytes (ownBytes): L1 may keep it long. */
export function responseEntry(stamp: FillStamp, life: Lifetimes, status: number, headers: Array<[string, string]>, body: Buffer, isPublic: boolean): TieredEntry {
  const stored: StoredHead = { s: status, h: headers };
  if (isPublic) stored.p = 1;
  return tieredEntry(stamp, life, stored, body, new PreparedResponse(status, headers, body, isPublic));
}

export function manifestEntry(stamp: FillStamp, life: Lifetimes, varyOn: readonly string[], isPublic: boolean): TieredEntry {
  const stored: StoredHead = { m: [...varyOn] };
  if (isPublic) stored.p = 1;
  return tieredEntry(stamp, life, stored, EMPTY, new VaryManifest(varyOn, isPublic));
}
