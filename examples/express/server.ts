// Example: a small movie API on Express with tiercache.
//   npm run example:express            (L1 only)
//   REDIS_URL=redis://127.0.0.1:6379 npm run example:express   (L1 + Redis; TIERCACHE_REDIS_URL works too)
// Then: curl -i localhost:3000/api/movies   (twice: see Cache-Status)
import express, { type Request } from 'express';
import { createCache } from '../../src/index.js';
import { expressCache } from '../../src/express.js';
import { statusPage } from '../../src/status.js';
import { catalog, exampleCacheOptions } from '../shared/catalog.js';
import { serve } from '../shared/serve.js';

const cache = createCache(exampleCacheOptions());
cache.on('error', ({ err, where }) => console.warn(`[tiercache] ${where}:`, err.message));

const app = express();
// The live status page (open http://127.0.0.1:3000/_tiercache). A real app mounts it behind its own auth.
app.use('/_tiercache', statusPage(cache));
app.use(express.json());
// Stand-in for real authentication: the caller says who they are.
const userOf = (req: Request) => req.header('x-user') || undefined;

// App-wide: every GET whose path is in the TTL table is cached; others pass through.
app.use(expressCache(cache));

app.get('/api/movies', async (_req, res) => {
  res.json(await catalog.listMovies());
});

// Per route: tag the entry with the movie id, so a write can drop exactly it.
app.get('/api/movies/:id', expressCache(cache, { tags: (req) => [`movie:${req.params.id}`] }), async (req, res) => {
  const movie = await catalog.movie(String(req.params.id));
  if (movie === undefined) res.status(404).json({ error: 'no such movie' });
  else res.json(movie);
});

app.get('/api/search', async (req, res) => {
  const q = String(req.query.q ?? '');
  res.json({ q, language: req.header('accept-language') ?? 'en', results: await catalog.search(q) });
});

app.get('/api/users/:id', async (req, res) => {
  const user = await catalog.user(String(req.params.id));
  if (user === undefined) res.status(404).json({ error: 'no such user' });
  else res.json({ id: user.id, name: user.name });
});

// User-scoped: each user gets their own entry, never anyone else's.
app.get('/api/me', expressCache(cache, { ttl: '1m', user: userOf }), async (req, res) => {
  const id = userOf(req);
  const user = id === undefined ? undefined : await catalog.user(id);
  if (user === undefined) res.status(401).json({ error: 'send x-user: u1' });
  else res.set('Cache-Control', 'private').json(user);
});

// Writes: change the data, then invalidate what showed it, on every instance.
app.put('/api/me', async (req, res) => {
  const id = userOf(req);
  const user = id === undefined ? undefined : await catalog.updateUser(id, { name: String(req.body?.name ?? '') });
  if (user === undefined) {
    res.status(401).json({ error: 'send x-user: u1' });
    return;
  }
  await cache.invalidateUser(user.id); // their /api/me
  await cache.invalidatePrefix(`/api/users/${user.id}`); // the public profile
  res.json(user);
});

app.put('/api/movies/:id', async (req, res) => {
  const movie = await catalog.updateMovie(String(req.params.id), req.body ?? {});
  if (movie === undefined) {
    res.status(404).json({ error: 'no such movie' });
    return;
  }
  await cache.invalidateTags([`movie:${movie.id}`]); // /api/movies/:id
  await cache.invalidatePrefix('/api/movies'); // the list, and every movie page
  res.json(movie);
});

app.get('/api/admin/stats', (_req, res) => {
  res.json({ stats: cache.stats(), health: cache.health() });
});

serve('express', app, cache);
