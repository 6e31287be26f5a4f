// Must compile, strict and with exactOptionalPropertyTypes, against the
// published types (the packed tarball), as ESM and as CommonJS: what the
// README and a typical Express or Koa app write, with no cast and no generic.
import express, { type Request } from 'express';
import Koa from 'koa';
import Router, { type RouterContext } from '@koa/router';
import { createCache, TierCacheConfigError, type DataCache, type Duration, type HitEvent, type Serializer } from 'tiercache';
import { expressCache } from 'tiercache/express';
import { koaCache } from 'tiercache/koa';
import { front } from 'tiercache/node';
import { prometheusCollector } from 'tiercache/prometheus';
import { statusPage } from 'tiercache/status';
import { Registry } from 'prom-client';
import { createServer } from 'node:http';

interface User {
  id: number;
  name: string;
}

// How apps declare what authentication adds (passport declares req.user this way).
declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      account?: User;
    }
  }
}
declare module 'koa' {
  interface DefaultState {
    account?: User;
  }
}

/** true only when T is exactly Expected (not any, not wider, not narrower). */
type Exactly<T, Expected> = (<G>() => G extends T ? 1 : 2) extends <G>() => G extends Expected ? 1 : 2 ? true : false;
/** Compiles only for `true`: assertType<Exactly<typeof x, string>>(). */
function assertType<_Check extends true>(): void {}

// The README's own line: undefined where an option is optional.
const cache = createCache({
  namespace: 'shop',
  redis: process.env.REDIS_URL,
  l1: { maxEntries: 10_000, maxBytes: 64 * 1024 * 1024, ttl: '30s' },
  l2: { commandTimeout: process.env.REDIS_TIMEOUT === undefined ? undefined : 250 },
  ttl: process.env.NODE_ENV === 'test' ? undefined : '1m',
  jitter: '10%',
  routes: {
    '/api/movies': '5m',
    '/api/movies/meta': { ttl: '10m', staleWhileRevalidate: '1m', staleIfError: '1 hour', jitter: '5%' },
    '/api/search': { ttl: 30_000, vary: ['accept-language'] },
    '/api/admin': false,
  },
});

// Durations: every spelling of the ms format.
const durations: Duration[] = [250, '250', '30s', '5 minutes', '1.5h', '2 Days', '1 YEAR', '500ms'];

// Express: Request with what the app declared; a narrower request by annotation, no generic.
const app = express();
app.use(expressCache(cache));
app.get('/api/me', expressCache(cache, { user: (req) => req.account?.id, bypass: (req) => req.query.preview === '1' }), (req, res) => {
  res.json(req.account);
});
app.get('/api/movies/:id', expressCache(cache, { tags: (req: Request<{ id: string }>) => [`movie:${req.params.id}`], jitter: '20%' }), (req, res) => {
  assertType<Exactly<typeof req.params.id, string>>();
  res.end();
});
expressCache(cache, {
  user: (req) => {
    assertType<Exactly<typeof req.account, User | undefined>>();
    return req.account?.id;
  },
});

// Middleware options given as undefined (exactOptionalPropertyTypes).
app.use(expressCache(cache, { ttl: process.env.ROUTE_TTL === undefined ? undefined : '1m', tags: undefined, user: undefined, bypass: undefined, jitter: undefined }));
koaCache(cache, { ttl: undefined, vary: undefined, key: undefined, cacheStatus: process.env.VERBOSE === '1' ? 'verbose' : undefined });

// Koa: ctx.state from DefaultState, ctx.params from the router, no cast.
const koa = new Koa();
const router = new Router();
koa.use(koaCache(cache));
router.get('/api/movies/:id', koaCache(cache, { tags: (ctx) => [`movie:${ctx.params.id}`] }), (ctx) => {
  ctx.body = ctx.params.id;
});
router.get('/api/me', koaCache(cache, { user: (ctx) => ctx.state.account?.id }), (ctx) => {
  ctx.body = ctx.state.account;
});
koaCache(cache, {
  user: (ctx) => {
    assertType<Exactly<typeof ctx.state.account, User | undefined>>();
    assertType<Exactly<typeof ctx.params, Record<string, string>>>();
    return ctx.state.account?.id;
  },
});
// An app that types its state through Koa's generics annotates the callback instead.
interface AppState {
  session?: { userId: string };
}
const typedRouter = new Router<AppState>();
typedRouter.get('/api/session', koaCache(cache, { user: (ctx: RouterContext<AppState>) => ctx.state.session?.userId }), (ctx) => {
  ctx.body = ctx.state.session;
});
koa.use(router.routes()).use(typedRouter.routes());

// The front door.
front(cache, app, { bypass: (req) => req.headers['x-preview'] === '1' });
front(cache, koa.callback());

// Events, typed by name.
cache.on('hit', (e: HitEvent) => e.tier);
cache.on('bypass', (e) => e.reason.toUpperCase());
cache.on('error', ({ err, where }) => `${where}: ${err.message}`);
cache.once('invalidate', (e) => e.tags.length + (e.kind === 'user' ? 1 : 0) + (e.remote ? 1 : 0) + (e.delivered ? 1 : 0));
cache.on('hit', (e) => `${e.route} ${e.tier} ${e.stale ? 'stale' : 'fresh'}`);
cache.on('miss', (e) => `${e.route} ${e.key} ${e.collapsed === true}`);
cache.on('store', (e) => e.tiers.includes('L2') && e.bytes > 0 && e.fillMs >= 0 && e.route !== '');
cache.on('bypass', (e) => `${e.route}: ${e.reason}`);
cache.on('l2', (e) => (e.state === 'down' ? e.err?.message : 'up'));
cache.on('bus', (e) => e.state === 'up');
const stats = cache.stats();
void [stats.l1.maxBytes, stats.l2.breaker, stats.l2.state, stats.bus.gaps, stats.bus.sent, stats.stale, stats.bypasses['cookie'], stats.queuedInvalidations];

// Prometheus and the status page.
const registry = new Registry();
const collector = prometheusCollector(cache, { registry, prefix: 'shop_' });
collector.stop();
prometheusCollector(cache);
app.use('/_tiercache', statusPage(cache));
createServer(statusPage(cache, { showKeys: true }));

async function dataApi(users: DataCache): Promise<void> {
  await cache.invalidateUser(42);
  await cache.invalidateUser('42', { strict: process.env.STRICT === '1' ? true : undefined });
  const user = await cache.getOrSet(
    'user:42',
    (ctx) => {
      ctx.setTtl('10s');
      return { id: 42, name: 'ada' } satisfies User;
    },
    { ttl: '1m', tags: undefined },
  );
  assertType<Exactly<typeof user, { id: number; name: string }>>();
  const scoped = users.namespace('admins');
  await scoped.set('1', user);
  await scoped.deleteMany(['1', '2']);
  await users.clear();
  const { delivered } = await cache.delete('user:42');
  if (!delivered) console.warn('queued');
  const stats = cache.stats();
  stats.fills.toFixed();
}
void dataApi(cache.namespace('users'));

const v8Cache = createCache({ redis: false, serializer: 'v8' });
const own: Serializer = { name: 'msgpack', serialize: (v) => JSON.stringify(v), deserialize: (b) => JSON.parse(b.toString()) };
createCache({ redis: false, serializer: own });
void v8Cache.close();

try {
  createCache({ redis: 'nope' });
} catch (err) {
  if (err instanceof TierCacheConfigError) console.error(err.option);
}
void durations;
