// Competitor on misses: route-cache 0.7 with its default memory store (an
// LRU) on the route, per its README; every never-seen URL runs the handler
// and is stored.
import express from 'express';
import routeCache from 'route-cache';
import { BENCH_PATH } from '../body.mjs';
import { expressCatalog } from '../miss-app.js';
import { serve } from '../serve.js';

const app = express();
app.get(BENCH_PATH, routeCache.cacheSeconds(60), expressCatalog);
serve('express-route-cache', app);
