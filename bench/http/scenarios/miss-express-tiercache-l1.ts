// Misses through tiercache mounted app-wide, L1 only (`redis: false`): every
// request is a never-seen URL, so the handler runs and its answer is stored.
// Once L1 holds maxEntries (default 10,000) each store also evicts one entry.
import express from 'express';
import { expressCache } from '../../../src/express.js';
import { BENCH_PATH } from '../body.mjs';
import { expressCatalog, missCache } from '../miss-app.js';
import { serve } from '../serve.js';

const cache = await missCache(false);
const app = express();
app.use(expressCache(cache));
app.get(BENCH_PATH, expressCatalog);
serve('express-tiercache-l1', app, () => cache.close());
