// Makes a framework's per-request object cheap to hang tiercache's own
// properties on (the request key, the active fill, the response's captures
// and method wrappers).
//
// Why: Express gives every request's req and res a prototype of its own app
// (Object.setPrototypeOf, per request, then properties of its own), and V8
// shares no hidden class between such objects: every property added after
// that copies the object's whole map, and every read of one that is not
// there misses the inline caches and walks the prototype chain. Measured
// in-process (bench/miss-inprocess.ts, Express 5, Node 20): five more
// symbol properties on res cost a miss 24 µs; with res turned into a
// dictionary first a miss took 175 -> 150 µs, with req as well 179 -> 125 µs.
// In dictionary mode an added property is a hash insert and a missing one a
// hash probe. node's own objects (Koa, the front door) keep shared hidden
// classes and are left alone: their properties are cheap already.
//
// An L1 hit needs req readied too, though it writes nothing on req itself:
// leaving req alone on hits measured 67 -> 55 µs per hit in-process, but
// under wrk the hit fell from 1.00x to 0.92-0.96x the bare route (app-level)
// and 0.96x to 0.80-0.89x (per route), side by side on 2026-12-03: probably
// node's own later writes on req with a real socket, which the in-process
// bench's sockets do not cause. Trust bench/http/run.mjs here.
//
// The same holds for res on a hit, which adds no property to it: readied
// before the lookup, the hit ran 1.14x the bare route per route and 1.20x
// app-level, against 0.96x and 0.98x without (bench/http/run.mjs, 4 rounds
// interleaved in one run, every round of one above every round of the
// other, 2026-12-05): node's own writeHead, end and finish handling, which
// read and write res, run faster on it.
import { IncomingMessage, ServerResponse } from 'node:http';

const MARK = Symbol('tiercache.slot-ready');

/** The mark's accessors: its value is never read, and a second ready() of the same object sets it harmlessly. */
function marked(): boolean {
  return true;
}
function unchanged(): void {}
/**
 * Up to V8 12 (node 22) changing the added property's attributes makes the dictionary: that way stays there,
 * the one every hit and miss figure of node 20 was measured with (with the accessor's dictionary an app-level
 * hit on node 20 took 196 and 196 µs of server CPU in two runs, this way 168 and 190: not told apart by
 * 3 rounds of wrk, 2026-12-07). node 24's V8 (13.6) needs the accessor.
 */
const MARK_DESCRIPTOR: PropertyDescriptor = Number.parseInt(process.versions.v8, 10) < 13 ? { enumerable: false } : { get: marked, set: unchanged, enumerable: false };

/**
 * Turns `target` into a dictionary-mode object when a framework has given it
 * a prototype of its own. V8 does that when an own property's attributes
 * change (ours, added, then made non-enumerable: hidden from spreads and
 * Object.assign) up to node 22 (V8 12.4); node 24's V8 gives the object
 * another hidden class for that and keeps it fast, and needs the property made
 * an accessor (see MARK_DESCRIPTOR). Both ways cost about 4.5 µs an
 * Express-like res on node 20 (cpuUsage, 2026-12-07). Deleting a property added before another also works everywhere,
 * but cost node 20 more. A second call on the same object is a few hash operations.
 */
function ready(target: object, nodeProto: object): void {
  if (Object.getPrototypeOf(target) === nodeProto) return;
  // Stryker disable next-line BooleanLiteral: the value is never read; adding the property and making it an accessor is what counts
  (target as Record<symbol, unknown>)[MARK] = true;
  Object.defineProperty(target, MARK, MARK_DESCRIPTOR);
}

export function readyRequest(req: IncomingMessage): void {
  ready(req, IncomingMessage.prototype);
}

export function readyResponse(res: ServerResponse): void {
  ready(res, ServerResponse.prototype);
}
