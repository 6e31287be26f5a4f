// A cache whose invalidation bus never subscribes: it connects as a Redis
// user allowed every command but not to hear the channel (SUBSCRIBE itself
// denied, or the channel). Its L2 works; its local version state can never
// vouch for an entry (the stale-if-error hold's tests).
import assert from 'node:assert/strict';
import { createCache, type CacheOptions, type TierCache } from '../../src/index.js';
import type { RedisCaches } from './cache-context.js';
import { eventually } from './eventually.js';

/** B for `ctx`'s namespace, as a user that cannot hear the channel (`how`), with L2 up and its bus down. */
export async function openDeafCache(ctx: RedisCaches, how: 'command' | 'channel' = 'command', options: CacheOptions = {}): Promise<TierCache> {
  const user = `deaf-${how}`;
  const rules = how === 'command' ? ['&*', '-subscribe', '-ssubscribe', '-psubscribe'] : ['resetchannels'];
  await ctx.admin.acl('SETUSER', user, 'reset', 'on', '>pw', '~*', '+@all', ...rules);
  const url = new URL(ctx.redis.url);
  url.username = user;
  url.password = 'pw';
  // Not ctx.open(): ready() would wait for a bus that never comes; L2 is what B needs.
  const b = ctx.track(createCache({ namespace: ctx.ns, ...options, redis: url.toString() }));
  b.on('error', () => undefined);
  await eventually(() => b.health().l2 === 'ok', 'B reaches Redis', 5_000);
  assert.notEqual(b.health().bus, 'ok', 'the premise: B hears no invalidations');
  return b;
}
