// What a Koa app said in ctx.respond, read without being heard. koa.ts puts an
// accessor for respond on the app's context prototype (and, once a request
// says false, on that ctx), so that Koa's own read writes a waiting hit: a read
// of ours through it would write that hit, or decide a write, too early.

/** Where koa.ts's accessors keep the value set; the prototype that has the accessor holds the key too. */
export const OWN_RESPOND = Symbol('tiercache.respond');

/**
 * ctx.respond as the app set it: on ctx itself, or once for every request on
 * its prototype (app.context.respond = false), before or after the cache's
 * accessor was put there.
 */
export function respondAsSet(ctx: object): unknown {
  const holder = ctx as { respond?: unknown; [OWN_RESPOND]?: unknown };
  // A data property of ctx's own, made before the accessor was on its prototype: nothing to hear.
  if (Object.hasOwn(ctx, 'respond') && !Object.hasOwn(ctx, OWN_RESPOND)) return holder.respond;
  return OWN_RESPOND in ctx ? holder[OWN_RESPOND] : holder.respond;
}
