// HTTP responses as store entries. `head` holds JSON with the status and the
// stored headers, or, for a response that varied on request headers, a
// manifest naming those headers (the variants live under their own keys).
// An L1 entry keeps a PreparedResponse: headers already flattened for one
// writeHead() call, so a hit parses nothing. L1 holds thousands of them, so
// each is kept small (arrays of exact length, the 304 headers built on
// first use) and says what it costs, for L1's byte bound. Every stored field
// is replayed as the handler sent it: repetitions, order and the origin's Date.
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
  /** Origin mode (RFC 9111): [no stale answers (1/0), stale-while-revalidate ms, stale-if-error ms]. */
  o?: [number, number, number];
}

/** What an origin-mode response says about serving it stale (see origin/freshness.ts); absent in table mode. */
export interface StaleRules {
  /** must-revalidate, proxy-revalidate or s-maxage: never served stale. */
  readonly noStale: boolean;
  readonly staleWhileRevalidate: number;
  readonly staleIfError: number;
}

/** Headers sent with a 304 when the 200 would carry them (RFC 9110 §15.4.5). */
const NOT_MODIFIED_HEADERS = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary']);

// Heap sizes (64-bit V8, no pointer compression), for heapBytes.
/** The PreparedResponse object's own words. */
const PREPARED_BYTES = 112;
/** The HeaderSet object and its array's header. */
const HEADER_SET_BYTES = 72;
/** The VaryManifest object and its array's own words. */
const MANIFEST_BYTES = 88;
const SLOT = 8;
const BOXED_NUMBER_BYTES = 16;

/** Heap of a header value: node keeps only Latin-1 in headers, one byte a character. */
function headerStringBytes(s: string): number {
  return (16 + s.length + 7) & ~7;
}

export class PreparedResponse {
  /** The stored fields, with Content-Length, ready for writeHead (see HeaderSet). */
  readonly headers: HeaderSet;
  readonly etag: string | undefined;
  /** Last-Modified in ms since the epoch, for If-Modified-Since. */
  readonly lastModified: number | undefined;
  /**
   * Heap this object holds beyond the body: itself, its header array and the
   * values (names are interned by node's header objects, shared by all).
   */
  readonly heapBytes: number;
  private notModified: HeaderSet | undefined;

  constructor(
    readonly status: number,
    stored: ReadonlyArray<readonly [string, string]>,
    readonly body: Buffer,
    /** May be served by the front door (see StoredHead.p). */
    readonly isPublic: boolean,
    /** Origin mode only. */
    readonly staleRules?: StaleRules,
  ) {
    // Content-Length says what this body is, in the place the handler's answer had it (else last).
    const hasLength = stored.some(([name]) => name === 'content-length');
    const withLength = !hasLength && status !== 204 && status !== 304;
    const length = String(body.length);
    const flat: string[] = new Array(2 * stored.length + (withLength ? 2 : 0) + HeaderSet.SLOTS);
    let size = PREPARED_BYTES + HEADER_SET_BYTES + SLOT * flat.length;
    let etag: string | undefined;
    let lastModified: number | undefined;
    let i = 0;
    for (const [name, raw] of stored) {
      const value = name === 'content-length' ? length : raw;
      flat[i++] = name;
      flat[i++] = value;
      size += headerStringBytes(value);
      if (name === 'etag') etag = value;
      else if (name === 'last-modified' || (name === 'date' && staleRules !== undefined && lastModified === undefined)) {
        const t = Date.parse(value);
        if (!Number.isNaN(t)) {
          lastModified = t;
          size += BOXED_NUMBER_BYTES;
        }
      }
    }
    if (withLength) {
      flat[i++] = 'content-length';
      flat[i++] = length;
      size += headerStringBytes(length);
    }
    this.headers = new HeaderSet(flat, i);
    this.etag = etag;
    this.lastModified = lastModified;
    this.heapBytes = size;
    this.notModified = undefined;
  }

  /** The headers of a 304 answer (RFC 9110 §15.4.5), built on the first one: most entries never send one. */
  get notModifiedHeaders(): HeaderSet {
    if (this.notModified === undefined) {
      const fields = this.headers.fields();
      const kept: string[] = [];
      for (let i = 0; i < fields.length; i += 2) if (NOT_MODIFIED_HEADERS.has(fields[i]!)) kept.push(fields[i]!, fields[i + 1]!);
      const n = kept.length;
      for (let s = 0; s < HeaderSet.SLOTS; s++) kept.push('');
      this.notModified = new HeaderSet(kept, n);
    }
    return this.notModified;
  }
}

/**
 * Stored header fields ready for node's writeHead, in a flat array that ends
 * with four slots for Age and Cache-Status, written just before each use. The
 * raw array reaches the wire as given (repetitions and order kept) only when
 * nothing was set on the response before; once a middleware has called
 * setHeader, node merges an array through setHeader (the last value of a
 * repeated field would win), so the fields are then set one name at a time:
 * directly when no name repeats (most responses), else grouped by name.
 */
export class HeaderSet {
  /** 'age', value, 'cache-status', value. */
  static readonly SLOTS = 4;
  readonly repeated: boolean;
  private grouped: Array<[string, string | string[]]> | undefined;
  private rawNoStatus: string[] | undefined;

  constructor(
    /** Fields, then SLOTS free slots. */
    private readonly flat: string[],
    /** How many entries of `flat` are fields (names and values). */
    private readonly count: number,
  ) {
    flat[count] = 'age';
    flat[count + 2] = 'cache-status';
    let repeated = false;
    for (let i = 2; i < count && !repeated; i += 2) {
      for (let j = 0; j < i; j += 2) {
        if (flat[j] === flat[i]) {
          repeated = true;
          break;
        }
      }
    }
    this.repeated = repeated;
  }

  /** The fields alone ([name, value, ...]); a fresh array. */
  fields(): string[] {
    return this.flat.slice(0, this.count);
  }

  /** Flat raw headers with Age (and Cache-Status unless undefined) filled in; valid until the next call. */
  rawWith(age: string, cacheStatus: string | undefined): string[] {
    if (cacheStatus === undefined) {
      const raw = (this.rawNoStatus ??= [...this.fields(), 'age', '']);
      raw[raw.length - 1] = age;
      return raw;
    }
    const flat = this.flat;
    flat[this.count + 1] = age;
    flat[this.count + 3] = cacheStatus;
    return flat;
  }

  /** Sets every field on `res` (which already has headers of its own), repetitions kept. */
  setOn(res: { setHeader(name: string, value: string | readonly string[]): unknown }): void {
    if (!this.repeated) {
      const flat = this.flat;
      for (let i = 0; i < this.count; i += 2) res.setHeader(flat[i]!, flat[i + 1]!);
      return;
    }
    if (this.grouped === undefined) {
      const byName = new Map<string, string[]>();
      for (let i = 0; i < this.count; i += 2) {
        const values = byName.get(this.flat[i]!);
        if (values === undefined) byName.set(this.flat[i]!, [this.flat[i + 1]!]);
        else values.push(this.flat[i + 1]!);
      }
      this.grouped = [...byName].map(([name, values]) => [name, values.length === 1 ? values[0]! : values]);
    }
    for (const [name, value] of this.grouped) res.setHeader(name, value);
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
    const o = head.o;
    const rules = Array.isArray(o) && o.length === 3 && o.every((n) => typeof n === 'number' && n >= 0) ? { noStale: o[0] === 1, staleWhileRevalidate: o[1], staleIfError: o[2] } : undefined;
    value = new PreparedResponse(head.s!, head.h, entry.body, isPublic, rules);
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
function tieredEntry(stamp: FillStamp, life: Lifetimes, stored: StoredHead | undefined, body: Buffer, decoded: HttpEntryValue): TieredEntry {
  const { createdAt, freshUntil, staleUntil } = life;
  const { epoch } = stamp;
  const tags = stamp.tags.slice();
  const versions = stamp.versions.slice();
  const l1Entry: StoredEntry = { kind: EntryKind.Http, createdAt, freshUntil, staleUntil, epoch, tags, versions, head: EMPTY, body, decoded };
  // Without an L2 nothing is ever encoded: no head bytes to build.
  if (stored === undefined) return { entry: l1Entry, l1Entry };
  const head = Buffer.from(JSON.stringify(stored), 'utf8');
  return { entry: { kind: EntryKind.Http, createdAt, freshUntil, staleUntil, epoch, tags, versions, head, body, decoded }, l1Entry };
}

/** A response; `body` should own its bytes (ownBytes): L1 may keep it long. `forL2`: build the head bytes L2 stores. */
export function responseEntry(stamp: FillStamp, life: Lifetimes, status: number, headers: Array<[string, string]>, body: Buffer, isPublic: boolean, forL2 = true, staleRules?: StaleRules): TieredEntry {
  let stored: StoredHead | undefined;
  if (forL2) {
    stored = { s: status, h: headers };
    if (isPublic) stored.p = 1;
    if (staleRules !== undefined) stored.o = [staleRules.noStale ? 1 : 0, staleRules.staleWhileRevalidate, staleRules.staleIfError];
  }
  return tieredEntry(stamp, life, stored, body, new PreparedResponse(status, headers, body, isPublic, staleRules));
}

export function manifestEntry(stamp: FillStamp, life: Lifetimes, varyOn: readonly string[], isPublic: boolean, forL2 = true): TieredEntry {
  let stored: StoredHead | undefined;
  if (forL2) {
    stored = { m: [...varyOn] };
    if (isPublic) stored.p = 1;
  }
  return tieredEntry(stamp, life, stored, EMPTY, new VaryManifest(varyOn, isPublic));
}
