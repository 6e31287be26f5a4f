// What a cache's Redis client is told, for tests of how large entries travel:
// the largest string a script replied (Redis copied it through Lua) and the
// plain GETs, with a hook run before one is sent (between the lookup script
// and the read of a large entry's bytes).
import type { TierCache } from '../../src/index.js';

type Method = (...args: unknown[]) => Promise<unknown>;

/** The most bytes one bulk string of `reply` (a script's, nested arrays and all) holds. */
function largestString(reply: unknown): number {
  if (Buffer.isBuffer(reply)) return reply.length;
  if (typeof reply === 'string') return Buffer.byteLength(reply);
  return Array.isArray(reply) ? Math.max(0, ...reply.map(largestString)) : 0;
}

/**
 * Watches `cache`'s Redis client: the largest string any script replied, and
 * a hook run before each plain GET of an entry is sent (the moment between
 * the lookup script and the read of a large entry's bytes).
 */
export function watch(cache: TierCache): { largestScriptReply: () => number; gets: () => number; beforeGet: (hook: ((key: string) => Promise<void>) | undefined) => void; hooked: () => number } {
  const client = cache.store.l2!.client as unknown as Record<string, Method>;
  let largest = 0;
  let gets = 0;
  let hook: ((key: string) => Promise<void>) | undefined;
  let hooked = 0;
  for (const name of ['evalshaBuffer', 'evalBuffer']) {
    const original = client[name]!.bind(client);
    client[name] = async (...args) => {
      const reply = await original(...args);
      largest = Math.max(largest, largestString(reply));
      return reply;
    };
  }
  const getBuffer = client.getBuffer!.bind(client);
  client.getBuffer = async (...args) => {
    gets++;
    const h = hook;
    hook = undefined;
    if (h !== undefined) {
      hooked++;
      await h(String(args[0]));
    }
    return getBuffer(...args);
  };
  return { largestScriptReply: () => largest, gets: () => gets, beforeGet: (h) => (hook = h), hooked: () => hooked };
}
