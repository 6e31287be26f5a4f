// Example: the same movie API on Koa with tiercache.
//   npm run example:koa            (L1 only)
//   REDIS_URL=redis://127.0.0.1:6379 npm run example:koa   (L1 + Redis; TIERCACHE_REDIS_URL works too)
import Router from '@koa/router';
import Koa, { type Context } from 'koa';
import { createCache } from '../../src/index.js';
import { koaCache } from '../../src/koa.js';
import { statusPage } from '../../src/status.js';
import { catalog, exampleCacheOptions } from '../shared/catalog.js';
import { serve } from '../shared/serve.js';

const cache = createCache(exampleCacheOptions());
cache.on('error', ({ err, where }) => console.warn(`[tiercache] ${where}:`, err.message));

const app = new Koa();
const router = new Router();
// Stand-in for real authentication: the caller says who they are.
const userOf = (ctx: Context) => ctx.get('x-user') || undefined;

async function readJson(ctx: Context): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of ctx.req) text += chunk;
  try {
    const parsed: unknown = text === '' ? {} : JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null ? { ...parsed } : {};
  } catch {
    return {};
  }
}

// The live status page (open http://127.0.0.1:3000/_tiercache). A real app mounts it behind its own auth.
const status = statusPage(cache);
app.use(async (ctx, next) => {
  if (ctx.path !== '/_tiercache') return next();
  ctx.respond = false; // the handler writes the answer itself
  status(ctx.req, ctx.res);
});

// App-wide: every GET whose path is in the TTL table is cached; others pass through.
app.use(koaCache(cache));

router.get('/api/movies', async (ctx) => {
  ctx.body = await catalog.listMovies();
});

router.get('/api/movies/:id', koaCache(cache, { tags: (ctx) => [`movie:${ctx.params.id}`] }), async (ctx) => {
  const movie = await catalog.movie(String(ctx.params.id));
  if (movie === undefined) {
    ctx.status = 404;
    ctx.body = { error: 'no such movie' };
  } else ctx.body = movie;
});

router.get('/api/search', async (ctx) => {
  const q = String(ctx.query.q ?? '');
  ctx.body = { q, language: ctx.get('accept-language') || 'en', results: await catalog.search(q) };
});

router.get('/api/users/:id', async (ctx) => {
  const user = await catalog.user(String(ctx.params.id));
  if (user === undefined) {
    ctx.status = 404;
    ctx.body = { error: 'no such user' };
  } else ctx.body = { id: user.id, name: user.name };
});

router.get('/api/me', koaCache(cache, { ttl: '1m', user: userOf }), async (ctx) => {
  const id = userOf(ctx);
  const user = id === undefined ? undefined : await catalog.user(id);
  if (user === undefined) {
    ctx.status = 401;
    ctx.body = { error: 'send x-user: u1' };
  } else {
    ctx.set('Cache-Control', 'private');
    ctx.body = user;
  }
});

router.put('/api/me', async (ctx) => {
  const id = userOf(ctx);
  const body = await readJson(ctx);
  const user = id === undefined ? undefined : await catalog.updateUser(id, { name: String(body.name ?? '') });
  if (user === undefined) {
    ctx.status = 401;
    ctx.body = { error: 'send x-user: u1' };
    return;
  }
  await cache.invalidateUser(user.id);
  await cache.invalidatePrefix(`/api/users/${user.id}`);
  ctx.body = user;
});

router.put('/api/movies/:id', async (ctx) => {
  const body = await readJson(ctx);
  const movie = await catalog.updateMovie(String(ctx.params.id), typeof body.title === 'string' ? { title: body.title } : {});
  if (movie === undefined) {
    ctx.status = 404;
    ctx.body = { error: 'no such movie' };
    return;
  }
  await cache.invalidateTags([`movie:${movie.id}`]);
  await cache.invalidatePrefix('/api/movies');
  ctx.body = movie;
});

router.get('/api/admin/stats', (ctx) => {
  ctx.body = { stats: cache.stats(), health: cache.health() };
});

app.use(router.routes());

serve('koa', app.callback(), cache);
