// What a Koa app said in ctx.respond, read without being heard. koa.ts puts an
// accessor for respond on the app's context prototype (and, once a request
// says false, on that ctx), so that Koa's own read writes a waiting hit: a read
// of ours through it would write that hit, or decide a write, too early.
import type { ServerResponse } from 'node:http';

/** Where koa.ts's accessor on the prototype keeps the value set; that prototype holds the key too. */
export const OWN_RESPOND = Symbol('tiercache.respond');
/** Where the accessor of ctx's own keeps it (apart: a `delete ctx.respond` leaves the prototype's to read again). */
export const CTX_RESPOND = Symbol('tiercache.ctxRespond');

/**
 * ctx.respond as the app set it: on ctx itself, or once for every request on
 * its prototype (app.context.respond = false), before or after the cache's
 * accessor was put there.
 */
export function respondAsSet(ctx: object): unknown {
  const holder = ctx as { respond?: unknown; [OWN_RESPOND]?: unknown; [CTX_RESPOND]?: unknown };
  // Of ctx's own: ours, or a data property made before the accessor was on its prototype (nothing to hear).
  if (Object.hasOwn(ctx, 'respond')) return Object.hasOwn(ctx, CTX_RESPOND) ? holder[CTX_RESPOND] : holder.respond;
  return OWN_RESPOND in ctx ? holder[OWN_RESPOND] : holder.respond;
}

/** What hears that Koa read ctx.respond: every middleware, those in front of the cache too, is done. */
export interface ChainEnd {
  chainEnds(res: ServerResponse): void;
}

/** What the Koa adapter does for a fill about ctx.respond (koa.ts). */
export interface RespondWatch {
  /** A fill begins, before the app runs: Koa's read of ctx.respond (`ctx`) is to be heard on it. */
  beforeFill(ctx: unknown): void;
  /**
   * Tells `end` when Koa reads ctx.respond (a fill whose app answers by itself later, see FillCapture.appDone);
   * whether that read can be heard on `ctx` (not under another's accessor on app.context).
   */
  atChainEnd(ctx: unknown, end: ChainEnd): boolean;
}
