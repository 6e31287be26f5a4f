// HTTP responses as store entries. `head` holds JSON with the status and the
// stored headers, or, for a response that varied on request headers, a
// manifest naming those headers (the variants live under their own keys).
// An L1 entry keeps a PreparedResponse: headers already flattened for one
// writeHead() call, so a hit parses nothing.
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
const NOT_MODIFIED_HEADERS = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary']);

export class PreparedResponse {
  /** Stored headers (name, value), repetitions in order, then content-length. */
  private readonly pairs: ReadonlyArray<readonly [string, string]>;
  readonly etag: string | undefined;
  /** Last-Modified in ms since the epoch, for If-Modified-Since. */
  readonly lastModified: number | undefined;
  // Built on first use: most entries are only ever answered one way.
  private full: HeaderSet | undefined;
  private notModified: HeaderSet | undefined;

  constructor(
    readonly status: number,
    stored: ReadonlyArray<readonly [string, string]>,
    readonly body: Buffer,
    /** May be served by the front door (see StoredHead.p). */
    readonly isPublic: boolean,
  ) {
    let etag: string | undefined;
    let lastModified: number | undefined;
    for (const [name, value] of stored) {
      if (name === 'etag') etag = value;
      else if (name === 'last-modified') {
        const t = Date.parse(value);
        if (!Number.isNaN(t)) lastModified = t;
      }
    }
    // Content-Length says what this body is, in the place the handler's answer had it (else last).
    const length = String(body.length);
    const at = stored.findIndex(([name]) => name === 'content-length');
    if (at !== -1) this.pairs = stored.map((pair, i) => (i === at ? ['content-length', length] : pair));
    else this.pairs = status !== 204 && status !== 304 ? [...stored, ['content-length', length]] : stored;
    this.etag = etag;
    this.lastModified = lastModified;
  }

  /** The headers of the full answer. */
  get headers(): HeaderSet {
    return (this.full ??= new HeaderSet(this.pairs));
  }

  /** The headers of a 304 answer (RFC 9110 §15.4.5). */
  get notModifiedHeaders(): HeaderSet {
    return (this.notModified ??= new HeaderSet(this.pairs.filter(([name]) => NOT_MODIFIED_HEADERS.has(name))));
  }
}

/**
 * Stored header fields in the two forms node's writeHead takes. A flat raw
 * array is written exactly as given, repetitions and order kept, but only when
 * nothing was set on the response before; once a middleware has called
 * setHeader, node's writeHead merges an array with setHeader (the last value of
 * a repeated field wins), so the fields are then set one name at a time, each
 * with all its values in order.
 */
export class HeaderSet {
  /** [name, value, ..., 'age', _, 'cache-status', _]: the last two slots are written just before each use. */
  private raw: string[] | undefined;
  /** The same without the cache-status slot. */
  private rawNoStatus: string[] | undefined;
  private grouped: Array<[string, string | string[]]> | undefined;

  constructor(private readonly pairs: ReadonlyArray<readonly [string, string]>) {}

  /** Flat raw headers with Age (and Cache-Status unless undefined) filled in; valid until the next call. */
  rawWith(age: string, cacheStatus: string | undefined): string[] {
    if (cacheStatus === undefined) {
      const raw = (this.rawNoStatus ??= [...this.pairs.flat(), 'age', '']);
      raw[raw.length - 1] = age;
      return raw;
    }
    const raw = (this.raw ??= [...this.pairs.flat(), 'age', '', 'cache-status', '']);
    raw[raw.length - 3] = age;
    raw[raw.length - 1] = cacheStatus;
    return raw;
  }

  /** Field names with all their values in order, for setHeader(). */
  byName(): ReadonlyArray<readonly [string, string | string[]]> {
    if (this.grouped === undefined) {
      const grouped = new Map<string, string[]>();
      for (const [name, value] of this.pairs) {
        const values = grouped.get(name);
        if (values === undefined) grouped.set(name, [value]);
        else values.push(value);
      }
      this.grouped = [...grouped].map(([name, values]) => [name, values.length === 1 ? values[0]! : values]);
    }
    return this.grouped;
  }
}

/** What an HTTP entry decodes to: a response, or a manifest of the request headers it varies on. */
export type HttpEntryValue = PreparedResponse | VaryManifest;

export class VaryManifest {
  constructor(
    readonly headers: readonly string[],
    readonly isPublic: boolean,
  ) {}
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

export function responseEntry(stamp: FillStamp, life: Lifetimes, status: number, headers: Array<[string, string]>, body: Buffer, isPublic: boolean): StoredEntry {
  const stored: StoredHead = { s: status, h: headers };
  if (isPublic) stored.p = 1;
  const head = Buffer.from(JSON.stringify(stored), 'utf8');
  const entry: StoredEntry = { kind: EntryKind.Http, ...life, epoch: stamp.epoch, tags: stamp.tags, versions: stamp.versions, head, body };
  entry.decoded = new PreparedResponse(status, headers, body, isPublic);
  return entry;
}

export function manifestEntry(stamp: FillStamp, life: Lifetimes, varyOn: readonly string[], isPublic: boolean): StoredEntry {
  const stored: StoredHead = { m: [...varyOn] };
  if (isPublic) stored.p = 1;
  const head = Buffer.from(JSON.stringify(stored), 'utf8');
  const entry: StoredEntry = { kind: EntryKind.Http, ...life, epoch: stamp.epoch, tags: stamp.tags, versions: stamp.versions, head, body: EMPTY };
  entry.decoded = new VaryManifest(varyOn, isPublic);
  return entry;
}
