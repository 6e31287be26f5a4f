// Competitor for L2 hits: route-cache 0.7 with its ioredis store on
// $REDIS_URL, per its README. Every hit is a Redis lookup (route-cache asks
// for a stored redirect first, then the entry) and a res.json of the parsed
// entry. route-cache sets no header: the runner proves the hits by the
// handler not running while measured.
import express from 'express';
import { Redis } from 'ioredis';
import routeCache from 'route-cache';
import IoRedisStore from 'route-cache/ioRedisStore.js';
import { BENCH_PATH, BODY_OBJECT } from '../body.mjs';
import { handlerRan, serve } from '../serve.js';

const url = process.env['REDIS_URL'];
if (url === undefined || url === '') throw new Error('express-route-cache-redis: REDIS_URL must be set');
const redis = new Redis(url);
routeCache.config({ cacheStore: new IoRedisStore(redis) });
const app = express();
app.get(BENCH_PATH, routeCache.cacheSeconds(60), (_req, res) => {
  handlerRan();
  res.json(BODY_OBJECT);
});
serve('express-route-cache-redis', app, () => redis.quit());
