// Misses through tiercache mounted app-wide with L1 and L2 (Redis from
// $REDIS_URL): each miss looks up both tiers, takes the fill lock, runs the
// handler and stores the answer in L1 and Redis.
import express from 'express';
import { expressCache } from '../../../src/express.js';
import { BENCH_PATH } from '../body.mjs';
import { expressCatalog, missCache, redisUrl } from '../miss-app.js';
import { serve } from '../serve.js';

const cache = await missCache(redisUrl('express-tiercache-l2'));
const app = express();
app.use(expressCache(cache));
app.get(BENCH_PATH, expressCatalog);
serve('express-tiercache-l2', app, () => cache.close());
