// Competitor on misses: route-cache 0.7 with its ioredis store on $REDIS_URL,
// per its README; every never-seen URL runs the handler and is stored in Redis.
import express from 'express';
import { Redis } from 'ioredis';
import routeCache from 'route-cache';
import IoRedisStore from 'route-cache/ioRedisStore.js';
import { BENCH_PATH } from '../body.mjs';
import { expressCatalog, redisUrl } from '../miss-app.js';
import { serve } from '../serve.js';

const redis = new Redis(redisUrl('express-route-cache-redis'));
routeCache.config({ cacheStore: new IoRedisStore(redis) });
const app = express();
app.get(BENCH_PATH, routeCache.cacheSeconds(60), expressCatalog);
serve('express-route-cache-redis', app, () => redis.quit());
