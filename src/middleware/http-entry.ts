// HTTP responses as store entries. `head` holds JSON with the status and the
// stored headers, or, for a response that varied on request headers, a
// manifest naming those headers (the variants live under their own keys).
// An entry is stored as bytes alone: head and body in one buffer of their
// own, one allocation. Its PreparedResponse (headers already flattened for
// one writeHead() call, so a hit parses nothing) is built on its first hit
// and kept on the entry: most entries of a scan are never hit, and each
// object an entry keeps pins V8 heap pages among the garbage of the request
// that filled it (bench/l1-memory.ts). It is kept small (arrays of exact
// length, the 304 headers built on first use) and says what it costs, for
// L1's byte bound. Every stored field is replayed as the handler sent it:
// repetitions, order and the origin's Date.
import { STATUS_CODES, validateHeaderName, validateHeaderValue } from 'node:http';
import { EntryCodecError, encodeOwn, ownBytes } from '../store/entry-codec.js';
import { EntryKind, type FillStamp, type StoredEntry } from '../store/entry.js';
import { PackedEntry, VIEW_BYTES } from '../store/packed-entry.js';
import { sharedHeaderName } from './header-names.js';
import { parseHttpDate } from './http-date.js';
import { HOP_BY_HOP } from './storage-rules.js';

interface StoredHead {
  /** Status of a stored response. */
  s?: number;
  /** Stored headers, lower-case names, in order. */
  h?: Array<[string, string]>;
  /** Manifest: request headers the response varies on. */
  m?: string[];
  /** Public: filled without credentials on a route keyed by the table alone; the front door may serve it. */
  p?: 1;
  /**
   * Scoped: stored by a middleware with a `user` option (per route, inside an app-wide one), also when
   * it found no user: only a middleware with a `user` option of its own serves it. One without
   * builds the same key for every user, and never asked who this one is.
   */
  r?: 1;
  /**
   * Per route: stored by a middleware mounted on the route itself. An app-wide middleware in front
   * passes it over to that one, whose bypass, stale windows and request directives decide.
   */
  w?: 1;
  /** Origin mode (RFC 9111): [no stale answers (1/0), stale-while-revalidate ms, stale-if-error ms]. */
  o?: [number, number, number];
  /** The reason phrase the handler sent, when it is not node's own for the status. */
  t?: string;
  /**
   * The handler's head went out as UTF-8 (node joined it to a string body): `h` and `t`
   * hold its bytes, one character a byte, which a hit's head (latin1) sends
   * again. A head without a body (HEAD, 304) went as latin1: see PreparedResponse.utf8Head.
   */
  u?: 1;
  /**
   * Public entries only: the route label of its fill when the framework's
   * route pattern gave it (no table prefix matched), for the front door's
   * hit events, which run before the framework routes anything.
   */
  l?: string;
}

/** What an origin-mode response says about serving it stale (see origin/freshness.ts); absent in table mode. */
export interface StaleRules {
  /** must-revalidate, proxy-revalidate or s-maxage: never served stale. */
  readonly noStale: boolean;
  readonly staleWhileRevalidate: number;
  readonly staleIfError: number;
}

/**
 * Headers sent with a 304 when the 200 would carry them (RFC 9110 §15.4.5),
 * and an upstream's Cache-Status, which ours follows on a 304 as on a 200.
 */
const NOT_MODIFIED_HEADERS = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary', 'cache-status']);

// Heap sizes (64-bit V8, no pointer compression), for heapBytes (its body, a view of its own: packed-entry.ts VIEW_BYTES).
/** The PreparedResponse object's own words. */
const PREPARED_BYTES = 136;
/** The HeaderSet object and its array's header. */
const HEADER_SET_BYTES = 72;
/** The VaryManifest object and its array's own words. */
const MANIFEST_BYTES = 104;
/**
 * A StaleRules object: three fields in the object, and two of them boxed once
 * any window in the process has exceeded a small integer (2^31 ms, 25 days):
 * counted always, too many bytes rather than too few.
 */
const STALE_RULES_BYTES = 48 + 2 * 16;
const SLOT = 8;
const BOXED_NUMBER_BYTES = 16;

/** Heap of a header value of `length` characters: node keeps only Latin-1 in headers, one byte a character. */
function headerStringBytes(length: number): number {
  return (16 + length + 7) & ~7;
}

/** Heap a name costs its entry: nothing when shared (header-names.ts). */
function nameBytes(name: string): number {
  return sharedHeaderName(name) === undefined ? headerStringBytes(name.length) : 0;
}

/** Whether a PreparedResponse adds Content-Length (the handler's answer had none; 204 and 304 never carry one). */
function addsLength(status: number, stored: ReadonlyArray<readonly [string, string]>): boolean {
  return status !== 204 && status !== 304 && !stored.some(([name]) => name === 'content-length');
}

const SCOPED_MARK = 1;
const PER_ROUTE_MARK = 2;
/** The marks below the generation an owner was seen in (see ownerSeenIn). */
const MARK_BITS = 2;

export class PreparedResponse {
  /** The stored fields, with Content-Length, ready for writeHead (see HeaderSet). */
  readonly headers: HeaderSet;
  readonly etag: string | undefined;
  /** Last-Modified in ms since the epoch, for If-Modified-Since. */
  readonly lastModified: number | undefined;
  /**
   * Heap this object holds beyond the body: itself, its header array, the
   * values, names not shared (header-names.ts) and its stale rules.
   */
  readonly heapBytes: number;
  private notModified: HeaderSet | undefined;
  /**
   * SCOPED_MARK and PER_ROUTE_MARK, and above them the generation its owner was seen in
   * (see ownerSeenIn): one field for all (a field more cost every decoded entry 16 bytes).
   */
  private marks: number;
  /** A HEAD's fields when they differ (see utf8Head), built on the first; null when they do not. One slot for both. */
  private bodiless: HeaderSet | undefined | null;

  constructor(
    readonly status: number,
    stored: ReadonlyArray<readonly [string, string]>,
    readonly body: Buffer,
    /** May be served by the front door (see StoredHead.p). */
    readonly isPublic: boolean,
    /** Origin mode only. */
    readonly staleRules: StaleRules | undefined,
    /** Served only by a middleware with a `user` option (see StoredHead.r). */
    scoped: boolean,
    /** The handler's own reason phrase (see StoredHead.t); undefined: node's for the status. */
    readonly reason?: string,
    /** See StoredHead.l. */
    readonly route?: string,
    /**
     * Stored values are the bytes of a UTF-8 head (StoredHead.u). node sends a head
     * without a body as latin1 (a HEAD, a 304): the handler's own characters then.
     */
    utf8Head = false,
    /** Stored by a middleware mounted on its route (see StoredHead.w). */
    perRoute = false,
  ) {
    // Content-Length says what this body is, in the place the handler's answer had it (else last).
    const withLength = addsLength(status, stored);
    const length = String(body.length);
    // Stryker disable next-line ArrayDeclaration: preallocated for speed; every index is assigned, in order
    const flat: string[] = new Array(2 * stored.length + (withLength ? 2 : 0) + HeaderSet.SLOTS);
    let etag: string | undefined;
    let lastModified: number | undefined;
    let i = 0;
    for (const [own, raw] of stored) {
      const name = sharedHeaderName(own) ?? own;
      // Stryker disable next-line ConditionalExpression: only a body of exactly the stored Content-Length is ever stored (capture checks it), so both are the same
      const value = name === 'content-length' ? length : raw;
      flat[i++] = name;
      flat[i++] = value;
      if (name === 'etag') etag = value;
      else if (name === 'last-modified' || (name === 'date' && staleRules !== undefined && lastModified === undefined)) {
        const t = parseHttpDate(value);
        if (!Number.isNaN(t)) lastModified = t;
      }
    }
    if (withLength) {
      flat[i++] = 'content-length';
      flat[i++] = length;
    }
    this.headers = new HeaderSet(flat, i);
    this.etag = etag;
    this.lastModified = lastModified;
    this.heapBytes = PreparedResponse.heapBytesOf(status, stored, body.length, staleRules, reason, route);
    this.notModified = undefined;
    this.bodiless = utf8Head ? undefined : null;
    this.marks = (scoped ? SCOPED_MARK : 0) | (perRoute ? PER_ROUTE_MARK : 0);
  }

  /**
   * Stored by a middleware mounted on its route (StoredHead.w): served only by
   * one, which decides with its own options (DESIGN §3: the innermost
   * decides); an app-wide middleware passes it over (http-cache.ts, notOurs).
   */
  get perRoute(): boolean {
    return (this.marks & PER_ROUTE_MARK) !== 0;
  }

  /** Served only by a middleware with a `user` option (see StoredHead.r). */
  get scoped(): boolean {
    return (this.marks & SCOPED_MARK) !== 0;
  }

  /**
   * A middleware of its kind (`user`, origin mode: see passed-over.ts) saw a
   * request for it here, in middleware generation `generation` (a positive
   * Smi), while one not of its kind passed it over: it is no orphan, and such
   * a layer passes it over without watching again.
   */
  ownerSeenIn(generation: number): boolean {
    return this.marks >>> MARK_BITS === generation;
  }

  markOwnerSeen(generation: number): void {
    this.marks = (this.marks & (SCOPED_MARK | PER_ROUTE_MARK)) | (generation << MARK_BITS);
  }

  /** See the constructor's utf8Head. */
  get utf8Head(): boolean {
    return this.bodiless !== null;
  }

  /**
   * The headers of this answer without its body (a HEAD): as the handler sent them then (see utf8Head).
   * Built on the first HEAD and not charged to L1, as the 304 headers are not: most entries never build them.
   */
  get headHeaders(): HeaderSet {
    if (this.bodiless === null) return this.headers;
    // Stryker disable next-line ConditionalExpression: a cache: building them again gives the same fields
    if (this.bodiless === undefined) {
      const fields = this.bodilessFields();
      // Of exact length, as the entry's own set (pushing onto `fields` would leave spare capacity).
      const flat = new Array<string>(fields.length + HeaderSet.SLOTS);
      for (let i = 0; i < fields.length; i++) flat[i] = fields[i]!;
      this.bodiless = new HeaderSet(flat, fields.length);
    }
    return this.bodiless;
  }

  /** The reason phrase of this answer without its body (see headHeaders). */
  get headReason(): string | undefined {
    return this.utf8Head && this.reason !== undefined ? fromUtf8Bytes(this.reason) : this.reason;
  }

  /** The fields as node sends them in a head without a body. */
  private bodilessFields(): string[] {
    const fields = this.headers.fields();
    if (this.utf8Head) for (let i = 1; i < fields.length; i += 2) fields[i] = fromUtf8Bytes(fields[i]!);
    return fields;
  }

  /**
   * What a PreparedResponse of these fields holds (its heapBytes), known
   * before it is built: an entry is charged for it when stored, since it is
   * decoded on its first hit without telling L1. Counts a boxed Last-Modified
   * whenever a field may give one (a date that does not parse costs 16 bytes
   * too many, never too few).
   */
  static heapBytesOf(status: number, stored: ReadonlyArray<readonly [string, string]>, bodyLength: number, staleRules: StaleRules | undefined, reason?: string, route?: string): number {
    const withLength = addsLength(status, stored);
    const length = String(bodyLength).length;
    let size = PREPARED_BYTES + VIEW_BYTES + HEADER_SET_BYTES + SLOT * (2 * stored.length + (withLength ? 2 : 0) + HeaderSet.SLOTS);
    if (staleRules !== undefined) size += STALE_RULES_BYTES;
    if (reason !== undefined) size += headerStringBytes(reason.length);
    if (route !== undefined) size += headerStringBytes(route.length);
    let boxed = false;
    for (const [name, value] of stored) {
      size += nameBytes(name) + headerStringBytes(name === 'content-length' ? length : value.length);
      if (name === 'last-modified' || (name === 'date' && staleRules !== undefined)) boxed = true;
    }
    if (withLength) size += headerStringBytes(length);
    return boxed ? size + BOXED_NUMBER_BYTES : size;
  }

  /** The headers of a 304 answer (RFC 9110 §15.4.5), built on the first one: most entries never send one. */
  get notModifiedHeaders(): HeaderSet {
    // Stryker disable next-line ConditionalExpression: a cache: building the 304 headers again gives the same fields
    if (this.notModified === undefined) {
      const fields = this.bodilessFields();
      const kept: string[] = [];
      // Stryker disable next-line EqualityOperator: one index past the end reads undefined, which is no header name
      for (let i = 0; i < fields.length; i += 2) if (NOT_MODIFIED_HEADERS.has(fields[i]!)) kept.push(fields[i]!, fields[i + 1]!);
      const n = kept.length;
      // Stryker disable next-line ConditionalExpression,EqualityOperator,StringLiteral: HeaderSet assigns its slots by index whether or not they were pushed
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
    // Stryker disable next-line BooleanLiteral: `repeated` only picks setOn's grouped path, which sends single fields the same
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

  /**
   * The fields with Age (and Cache-Status unless undefined) in the form node
   * keeps headers set on a response ({ name: [name, value] }), which its
   * writeHead sends without validating each field again: the array of
   * rawWith costs two regular expressions per field on every hit (about 1 µs
   * of the 2.5 µs a hit's head took, measured in process). Each field is
   * validated once here instead, as node would. The object sends what the
   * array sends, entry by entry in its order (see keyFor). Undefined only for
   * a field node would refuse: the array then throws as it did. Shared by
   * every hit of the entry; valid until the next call.
   *
   * Not validating again is also what keeps a hit's bytes those the app sent:
   * node re-encodes a Content-Disposition after a Content-Length (as latin1
   * bytes in a Buffer), and the array's validation reads that Buffer as UTF-8,
   * where a byte past 0x7f is U+FFFD: ERR_INVALID_CHAR on every hit of an
   * entry the app's own head (set by name, not validated again) sent fine.
   *
   * node writes each entry as `name: value` and a line end, so an entry's
   * value may hold the lines of the fields after it (see NodeHead): fields
   * node does not look at go out joined to the entry before them, once per
   * entry instead of once per hit. Age and Cache-Status join the last one,
   * made again when the age changes (once a second at most).
   */
  nodeFormWith(age: string, cacheStatus: string | undefined): NodeForm | undefined {
    let forms = nodeForms.get(this);
    if (forms === undefined) {
      if (nodeForms.size >= NODE_FORMS_MAX) nodeForms.clear();
      forms = { status: undefined, plain: undefined };
      nodeForms.set(this, forms);
    }
    const withStatus = cacheStatus !== undefined;
    const head = withStatus ? (forms.status ??= this.buildNodeHead()) : (forms.plain ??= this.buildNodeHead());
    if (head === null) return undefined;
    if (head.age !== age || head.status !== cacheStatus) {
      // A value seen first here is checked once, as the rest were.
      if (withStatus && head.status !== cacheStatus && !isValidField('cache-status', cacheStatus)) return undefined;
      head.tail[1] = withStatus ? `${head.before}${age}\r\ncache-status: ${cacheStatus}` : head.before + age;
      head.age = age;
      head.status = cacheStatus;
    }
    return head.form;
  }

  private buildNodeHead(): NodeHead | null {
    const flat = this.flat;
    const form: NodeForm = {};
    // The entry the next field may join: none after a field whose value node reads.
    let carrier: [string, string] | undefined;
    for (let i = 0; i < this.count; i += 2) {
      const name = flat[i]!;
      const value = flat[i + 1]!;
      if (!isValidField(name, value)) return null;
      const lower = name.toLowerCase();
      if (carrier !== undefined && !NODE_READS_NAME.has(lower)) {
        carrier[1] += `\r\n${name}: ${value}`;
        continue;
      }
      const entry: [string, string] = [name, value];
      form[keyFor(form, name, i)] = entry;
      carrier = NODE_READS_VALUE.has(lower) ? undefined : entry;
    }
    let before = '';
    if (carrier === undefined) form[keyFor(form, 'age', this.count)] = carrier = ['age', ''];
    else before = `${carrier[1]}\r\nage: `;
    // No prototype, as node's own (nothing inherited enters its for-in), set after the fields: an object
    // made without one is a dictionary, which a for-in walks several times slower.
    return { form: Object.setPrototypeOf(form, null) as NodeForm, tail: carrier, before, age: undefined, status: undefined };
  }

  /**
   * Cache-Status to set by name with these fields: `ours` after the stored
   * upstream members (stored fields named cache-status), when there are any;
   * else `ours` itself, without allocating. The raw array needs none of this:
   * its slot follows the stored lines.
   */
  statusAfterUpstream(ours: string): string | string[] {
    const flat = this.flat;
    let values: string[] | undefined;
    for (let i = 0; i < this.count; i += 2) if (flat[i] === 'cache-status') (values ??= []).push(flat[i + 1]!);
    if (values === undefined) return ours;
    values.push(ours);
    return values;
  }

  /**
   * Whether writing these fields (with Age, and Cache-Status if `withStatus`)
   * replaces every header named in `set` (node's lower-cased names of the
   * headers already set on a response), so that none of them would survive.
   */
  replacesAll(set: Record<string, unknown>, withStatus: boolean): boolean {
    const flat = this.flat;
    next: for (const name in set) {
      if (name === 'age' || (withStatus && name === 'cache-status')) continue;
      // Stryker disable next-line EqualityOperator: the index past the fields holds 'age', which is skipped above
      for (let i = 0; i < this.count; i += 2) if (flat[i] === name) continue next;
      return false;
    }
    return true;
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

/** Headers as node keeps those set on a response (its kOutHeaders slot): each name's own spelling and value. */
export type NodeForm = Record<string, [string, string]>;

/**
 * A HeaderSet's node form, in which an entry's value may carry the lines of
 * the fields after it: `{ 'x-powered-by': ['x-powered-by', 'Express\r\ncontent-type: text/html'] }`
 * goes out as the two fields. What node reads by name while it writes a head
 * (its matchHeader and processHeader: the framing, the connection, Date)
 * keeps an entry of its own, so node sees it as it would have; the rest
 * costs node one string each per entry instead of per hit.
 */
interface NodeHead {
  readonly form: NodeForm;
  /** The entry whose value ends with Age (and Cache-Status): the last field's, or Age's own. */
  readonly tail: [string, string];
  /** The tail's value up to the age. */
  readonly before: string;
  /** What the tail holds now. */
  age: string | undefined;
  status: string | undefined;
}

/**
 * Names node's _storeHeader looks at as it writes a head (matchHeader:
 * Connection, Transfer-Encoding, Content-Length, Date, Expect, Trailer,
 * Keep-Alive; processHeader: Content-Disposition): an entry of their own.
 */
const NODE_READS_NAME = new Set(['connection', 'transfer-encoding', 'content-length', 'date', 'expect', 'trailer', 'keep-alive', 'content-disposition']);
/** Of those, the ones whose value node reads too (a length, a 'close', 'chunked', a latin1 re-encoding): no field may join it. */
const NODE_READS_VALUE = new Set(['connection', 'transfer-encoding', 'content-length', 'content-disposition']);

/**
 * nodeFormWith's objects of the HeaderSets hit lately, with and without
 * Cache-Status (undefined until built, null when those fields have none).
 * Kept beside the entries, not on them: an entry's L1 charge is fixed when it
 * is stored, and a form built later (~70 bytes a field) would be heap L1's
 * maxBytes never counted. Bounded by count, emptied when full: about a MiB
 * at most, whatever L1 holds; an entry dropped from L1 is held here until
 * the next emptying at most.
 */
const nodeForms = new Map<HeaderSet, { status: NodeHead | null | undefined; plain: NodeHead | null | undefined }>();
const NODE_FORMS_MAX = 1_024;

/** A name a for-in visits before the others, whatever the order they were added in. */
const ARRAY_INDEX = /^(?:0|[1-9]\d*)$/;

/**
 * The key an entry of `form` is filed under. node's _storeHeader sends an
 * entry's own name (entry[0]) and reads the key only to walk the object, so a
 * key need only be new and walked in its turn: the name itself when it is, else
 * the name, a space and the field's index. No field name holds a space (a
 * token), so that key is never a field's, nor an array index (which a for-in
 * visits first), nor `__proto__` (which sets an object literal's prototype
 * instead). A name repeated, an array index, `__proto__`: each sent where the
 * stored fields have it, as the flat array sends it.
 */
function keyFor(form: NodeForm, name: string, index: number): string {
  return name === '__proto__' || ARRAY_INDEX.test(name) || Object.hasOwn(form, name) ? `${name} ${index}` : name;
}

/** Whether node takes this field as it is (its writeHead would throw otherwise). */
function isValidField(name: string, value: string): boolean {
  try {
    validateHeaderName(name);
    validateHeaderValue(name, value);
    return true;
  } catch {
    return false;
  }
}

/** What an HTTP entry decodes to: a response, or a manifest of the request headers it varies on. */
export type HttpEntryValue = PreparedResponse | VaryManifest;

export class VaryManifest {
  /** Heap this object holds: itself, its array and the names not shared (header-names.ts). */
  readonly heapBytes: number;
  readonly headers: readonly string[];

  constructor(
    headers: readonly string[],
    readonly isPublic: boolean,
    /** See PreparedResponse.scoped. */
    readonly scoped: boolean,
  ) {
    this.headers = headers.map((name) => sharedHeaderName(name) ?? name);
    this.heapBytes = VaryManifest.heapBytesOf(headers);
  }

  /** What a manifest of these names holds (its heapBytes), known before it is built. */
  static heapBytesOf(headers: readonly string[]): number {
    let size = MANIFEST_BYTES + SLOT * headers.length;
    for (const name of headers) size += nameBytes(name);
    return size;
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
  // Foreign or damaged: JSON null is no head either (other values read as one without fields).
  if (head === null) return undefined;
  let value: HttpEntryValue | undefined;
  const isPublic = head.p === 1;
  const scoped = head.r === 1;
  if (Array.isArray(head.m) && head.m.every((h) => typeof h === 'string')) value = new VaryManifest(head.m, isPublic, scoped);
  else if (Number.isInteger(head.s) && head.s! >= 200 && head.s! <= 599 && Array.isArray(head.h) && head.h.every(isWritableHeader)) {
    const o = head.o;
    const rules = Array.isArray(o) && o.length === 3 && o.every((n) => typeof n === 'number' && n >= 0) ? { noStale: o[0] === 1, staleWhileRevalidate: o[1], staleIfError: o[2] } : undefined;
    const reason = typeof head.t === 'string' && isSendableReason(head.t) ? head.t : undefined;
    const route = typeof head.l === 'string' ? head.l : undefined;
    // Bytes of a UTF-8 head must decode to what node writes in a latin1 one (HEAD and 304 hits send that).
    const utf8Head = head.u === 1;
    if (utf8Head && !(head.h.every(([name, v]) => isWritableHeader([name, fromUtf8Bytes(v)])) && (reason === undefined || isSendableReason(fromUtf8Bytes(reason))))) return undefined;
    value = new PreparedResponse(head.s!, head.h, entry.body, isPublic, rules, scoped, reason, route, utf8Head, head.w === 1);
  }
  if (value !== undefined) entry.decoded = value;
  return value;
}

// Regular expressions at module scope: a literal in a function body is a new RegExp object each time it runs.
const SENDABLE_REASON = /^[\t\x20-\x7e\x80-\xff]*$/;
const BEYOND_ASCII = /[^\x00-\x7f]/;

/** Whether node takes this reason phrase (no control characters but tab): a damaged one is left out, not a 500. */
function isSendableReason(reason: string): boolean {
  return SENDABLE_REASON.test(reason);
}

/**
 * Whether node would write this header, and tiercache would have stored it: foreign or damaged entries must be a
 * miss, never a 500 (DESIGN §4). A hop-by-hop field is never stored (storage-rules), and replayed one frames or
 * ends the answer in node's hands: Trailer made every hit throw (its body has a length, no chunks), out of the
 * front door's request listener; Transfer-Encoding went beside the hit's Content-Length, the body chunked.
 */
function isWritableHeader(pair: unknown): pair is [string, string] {
  if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') return false;
  return !HOP_BY_HOP.has(pair[0].toLowerCase()) && isValidField(pair[0], pair[1]);
}

const EMPTY = Buffer.alloc(0);

interface Lifetimes {
  readonly createdAt: number;
  readonly freshUntil: number;
  readonly staleUntil: number;
}

/**
 * An entry for both tiers: `l1Entry` is what L1 keeps, `entry` the same bytes
 * with the stamp's tags at hand, for the fill to read (and L2 to be sent).
 */
export interface TieredEntry {
  readonly entry: StoredEntry;
  readonly l1Entry: StoredEntry;
}

/**
 * The head's JSON and the body, with the entry's times and tags in front, in
 * one buffer of their own (packed-entry.ts): one allocation per entry, never
 * a view into a shared slab (which an L1 entry would keep alive whole), and
 * the bytes L2 stores. L1 decodes the tags on the entry's first hit, and the
 * response from the head then.
 */
function tieredEntry(stamp: FillStamp, life: Lifetimes, stored: StoredHead, body: Buffer, decodedBytes: number): TieredEntry {
  const { tags, versions } = stamp;
  const front = { kind: EntryKind.Http, createdAt: life.createdAt, freshUntil: life.freshUntil, staleUntil: life.staleUntil, epoch: stamp.epoch, tags, versions };
  const head = JSON.stringify(stored);
  let bytes: Buffer;
  try {
    bytes = encodeOwn(front, head, body);
  } catch (err) {
    if (!(err instanceof EntryCodecError)) throw err;
    // Tags the L2 format cannot hold (one over 64 KiB, more than 65,535): L1 keeps the entry
    // decoded, as before entries were packed; L2 skips it (its encoding fails the same way,
    // and a store L2 cannot take leaves L1's copy serving).
    const entry: StoredEntry = { ...front, tags: tags.slice(), versions: versions.slice(), head: ownBytes(Buffer.from(head, 'utf8')), body: ownBytes(body), decoded: undefined, decodedBytes };
    return { entry, l1Entry: entry };
  }
  return { entry: new PackedEntry(bytes, decodedBytes, tags, versions), l1Entry: new PackedEntry(bytes, decodedBytes) };
}

/** Whether a string has a character beyond ASCII, which latin1 and UTF-8 send as other bytes. */
function beyondAscii(text: string): boolean {
  return BEYOND_ASCII.test(text);
}

/** The bytes of `text` in UTF-8, one character a byte (a latin1 head sends them as they are). */
function asUtf8Bytes(text: string): string {
  return beyondAscii(text) ? Buffer.from(text, 'utf8').toString('latin1') : text;
}

/**
 * The characters whose UTF-8 bytes asUtf8Bytes gave. Bytes that are not
 * UTF-8, or chars past U+00FF, decode to what node refuses in a header (U+FFFD
 * and the like): a damaged entry, which httpValueOf turns away.
 */
function fromUtf8Bytes(bytes: string): string {
  return beyondAscii(bytes) ? Buffer.from(bytes, 'latin1').toString('utf8') : bytes;
}

/**
 * Header fields and reason phrase as stored and replayed: when the head goes
 * as UTF-8 (`utf8Head`) and something in it is beyond ASCII, the bytes
 * node sends, one character a byte (`bytes`: StoredHead.u).
 */
export function asSent(headers: Array<[string, string]>, reason: string | undefined, utf8Head: boolean): { headers: Array<[string, string]>; reason: string | undefined; bytes: boolean } {
  if (!utf8Head || !(headers.some(([, v]) => beyondAscii(v)) || (reason !== undefined && beyondAscii(reason)))) return { headers, reason, bytes: false };
  return { headers: headers.map(([n, v]) => [n, asUtf8Bytes(v)]), reason: reason === undefined ? undefined : asUtf8Bytes(reason), bytes: true };
}

/**
 * A response; the body bytes are copied (L1 may keep them long). `utf8Head`:
 * its head went out as UTF-8 (capture.ts, Capture.utf8Head), which changes the
 * bytes of a field beyond ASCII: those are stored as sent (StoredHead.u).
 */
export function responseEntry(stamp: FillStamp, life: Lifetimes, status: number, fields: Array<[string, string]>, body: Buffer, isPublic: boolean, staleRules?: StaleRules, scoped = false, ownReason?: string, route?: string, utf8Head = false, perRoute = false): TieredEntry {
  const { headers, reason, bytes } = asSent(fields, ownReason, utf8Head);
  const stored: StoredHead = { s: status, h: headers };
  if (bytes) stored.u = 1;
  if (isPublic) stored.p = 1;
  if (scoped) stored.r = 1;
  if (perRoute) stored.w = 1;
  if (staleRules !== undefined) stored.o = [staleRules.noStale ? 1 : 0, staleRules.staleWhileRevalidate, staleRules.staleIfError];
  if (reason !== undefined) stored.t = reason;
  if (route !== undefined && isPublic) stored.l = route;
  return tieredEntry(stamp, life, stored, body, PreparedResponse.heapBytesOf(status, headers, body.length, staleRules, reason, stored.l));
}

/** The reason phrase to store with an answer: the one sent, unless it is node's own for the status (most answers). */
export function ownReason(status: number, sent: string | undefined): string | undefined {
  return sent === undefined || sent === '' || sent === STATUS_CODES[status] ? undefined : sent;
}

export function manifestEntry(stamp: FillStamp, life: Lifetimes, varyOn: readonly string[], isPublic: boolean, scoped = false): TieredEntry {
  const stored: StoredHead = { m: [...varyOn] };
  if (isPublic) stored.p = 1;
  if (scoped) stored.r = 1;
  return tieredEntry(stamp, life, stored, EMPTY, VaryManifest.heapBytesOf(varyOn));
}

